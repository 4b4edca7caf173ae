"""The bake converges like the boot: Packer's template holds only `file` and `shell` provisioners
(what every Packer ships), they upload the boot path's own content-addressed bundle and boot program,
and the `shell` line runs that program in its local mode. Checked with real Packer (`packer validate`)
and by running the staged converge for real here, with a stand-in chef-solo that records what it got.
Packer's version and plugin check runs against stand-in `packer` executables that print what real
releases print."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fleet.image_hash import hash_groups
from fleet.render.bundle import build_bundle
from fleet.render.packer import BAKE_ROOT, REMOTE_DIR
from fleet.render.role import role_name
from fleet.spec.load import load_fleet
from image_builds import packer_builder
from tests.test_boot import CHEF_STANDIN

ROOT = Path(__file__).resolve().parent.parent
FLEET = load_fleet(ROOT / "nodes.yaml", "staging")
HASHES = hash_groups(FLEET.groups, ROOT)


def staged(tmp_path: Path, name: str = "api") -> tuple[dict, Path]:
    path = packer_builder.stage(FLEET.groups[name], tmp_path, region="us-east-1", image_hash=HASHES[name],
                                project_dir=ROOT, endpoint_url=None)
    return json.loads(path.read_text()), path


def test_the_template_needs_no_chef_provisioner_and_uploads_the_boot_bundle(tmp_path):
    group = FLEET.groups["api"]
    template, _ = staged(tmp_path)
    kinds = [p["type"] for p in template["provisioners"]]
    assert set(kinds) == {"file", "shell"} and kinds[0] == kinds[-1] == "shell"
    assert "chef" not in json.dumps(template["provisioners"]).replace("chef.log", "")
    assert template["builders"][0]["type"] == "amazon-ebs"  # the amazon plugin's builder
    bundle = build_bundle(group, ROOT)  # what the artifacts bucket serves at boot
    uploads = {p["source"]: p["destination"] for p in template["provisioners"] if p["type"] == "file"}
    assert uploads[f"{bundle.sha256}.tar.gz"] == f"{REMOTE_DIR}/{bundle.sha256}.tar.gz"
    assert (tmp_path / f"{bundle.sha256}.tar.gz").read_bytes() == bundle.data
    assert (tmp_path / "fleet_boot.py").read_bytes() == (ROOT / "boot" / "fleet_boot.py").read_bytes()
    config = json.loads((tmp_path / "bake.json").read_text())
    assert config["bundle"] == {"key": f"{bundle.sha256}.tar.gz", "sha256": bundle.sha256}
    assert config["role"] == role_name(group) and config["hook"] is None and config["local_dir"] == REMOTE_DIR
    assert f"python3 {REMOTE_DIR}/fleet_boot.py {REMOTE_DIR}/bake.json" in template["provisioners"][-1]["inline"][0]


@pytest.mark.parametrize("name", list(FLEET.groups))
def test_the_staged_template_passes_real_packer_validate(tmp_path, name):
    group = FLEET.groups[name]
    if group.image.builder != "packer":
        group = dataclasses.replace(group, source_ami="ami-12345678",
                                    image=dataclasses.replace(group.image, builder="packer", communicator="ssh"))
    path = packer_builder.stage(group, tmp_path, region="us-east-1", image_hash=HASHES[name], project_dir=ROOT,
                                endpoint_url=None)
    proc = subprocess.run([shutil.which("packer") or "packer", "validate", path.name], cwd=tmp_path,
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    os.remove(next(tmp_path.glob("*.tar.gz")))  # a file the template uploads is missing: Packer says so
    proc = subprocess.run(["packer", "validate", path.name], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0


def _run_converge(tmp_path: Path, chef_exit: int) -> tuple[subprocess.CompletedProcess, Path, Path]:
    """The provisioners as the build instance runs them: files into REMOTE_DIR, then the shell line
    (sh -e, Packer's inline default), with the directories moved under tmp_path and no sudo."""
    template, _ = staged(tmp_path / "stage" if (tmp_path / "stage").mkdir() is None else tmp_path)
    remote, bake_root, record = tmp_path / "remote", tmp_path / "bake-root", tmp_path / "record"
    remote.mkdir()
    for p in template["provisioners"]:
        if p["type"] == "file":
            data = (tmp_path / "stage" / p["source"]).read_bytes()
            if p["source"] == "bake.json":
                cfg = json.loads(data)
                cfg.update(local_dir=str(remote), root=str(bake_root))
                data = json.dumps(cfg).encode()
            (remote / Path(p["destination"]).name).write_bytes(data)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "chef-solo").write_text(CHEF_STANDIN)
    (bin_dir / "chef-solo").chmod(0o755)
    script = template["provisioners"][-1]["inline"][0]
    script = script.replace(REMOTE_DIR, str(remote)).replace(BAKE_ROOT, str(bake_root)).replace("sudo ", "")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FLEET_TEST_RECORD": str(record),
           "FLEET_TEST_CHEF_EXIT": str(chef_exit)}
    return subprocess.run(["sh", "-e", "-c", script], capture_output=True, text=True, env=env, timeout=120), \
        remote, record


def test_the_bake_runs_the_boot_converge_from_the_uploaded_bundle(tmp_path):
    proc, remote, record = _run_converge(tmp_path, 0)
    assert proc.returncode == 0, proc.stderr
    assert "fleet-boot: ready: group api" in proc.stderr
    assert "standin chef-solo run" in proc.stdout  # the chef log lands in Packer's log
    argv = (record / "argv").read_text().split()
    node = json.loads((record / "node.json").read_text())
    assert node["run_list"] == [f"role[{role_name(FLEET.groups['api'])}]"] and argv[0] == "--config"
    files = (record / "bundle-files").read_text().split()
    assert f"./roles/{role_name(FLEET.groups['api'])}.json" in files
    assert any(f.startswith("./cookbooks/") for f in files)
    assert not remote.exists() and not (tmp_path / "bake-root").exists()  # nothing left in the image


def test_a_failed_bake_converge_fails_the_build_and_leaves_nothing(tmp_path):
    proc, remote, _ = _run_converge(tmp_path, 1)
    assert proc.returncode == 1
    assert "fleet-boot: FAILED: chef-solo failed (exit 1)" in proc.stderr and "standin chef-solo run" in proc.stdout
    assert not remote.exists() and not (tmp_path / "bake-root").exists()


def test_a_converge_edit_of_the_boot_program_is_a_new_image(tmp_path, monkeypatch):
    import fleet.image_hash as ih

    code = tmp_path / "code"
    for sub in ("image_builds", "fleet/render", "boot"):
        shutil.copytree(ROOT / sub, code / sub, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(ih, "CODE_ROOT", code)
    before = ih.image_hash(FLEET.groups["api"], ROOT)
    with (code / "boot" / "fleet_boot.py").open("a") as f:
        f.write("# changed\n")
    assert ih.image_hash(FLEET.groups["api"], ROOT) != before


# --------------------------------------------------------------- Packer's version and plugins

STANDIN = """#!/bin/sh
# STAND-IN for packer (tests only): prints what a real release prints for `version` and `plugins installed`.
case "$1" in
  version) echo "Packer v{version}";;
  plugins) printf '%s' "{plugins}";;
  *) exit 3;;
esac
"""


def standin_packer(tmp_path: Path, monkeypatch, version: str, plugins: str = "") -> None:
    bin_dir = tmp_path / "packer-bin"
    bin_dir.mkdir()
    (bin_dir / "packer").write_text(STANDIN.replace("{version}", version).replace("{plugins}", plugins))
    (bin_dir / "packer").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def ssh_group():
    group = FLEET.groups["api"]
    return dataclasses.replace(group, image=dataclasses.replace(group.image, communicator="ssh"))


def test_packer_without_the_amazon_plugin_is_one_line_naming_the_install_command(tmp_path, monkeypatch):
    standin_packer(tmp_path, monkeypatch, "1.11.2")
    with pytest.raises(packer_builder.PackerError) as err:
        packer_builder.check_packer(ssh_group())
    assert str(err.value) == ("packer 1.11.2 has no amazon plugin (Packer 1.10+ bundles none): run "
                              "`packer plugins install github.com/hashicorp/amazon v1.3.3`")


def test_packer_with_the_amazon_plugin_passes(tmp_path, monkeypatch):
    installed = ("/root/.config/packer/plugins/github.com/hashicorp/amazon/"
                 "packer-plugin-amazon_v1.3.3_x5.0_linux_amd64\n")
    standin_packer(tmp_path, monkeypatch, "1.11.2", installed)
    assert packer_builder.check_packer(ssh_group()).endswith("/packer")


def test_packer_too_old_for_ssh_is_refused_but_bakes_without_a_communicator(tmp_path, monkeypatch):
    standin_packer(tmp_path, monkeypatch, "1.6.6")
    with pytest.raises(packer_builder.PackerError, match=r"packer 1\.6\.6 cannot log in .* Packer >= 1\.8\.1"):
        packer_builder.check_packer(ssh_group())
    none = dataclasses.replace(FLEET.groups["api"], image=dataclasses.replace(FLEET.groups["api"].image,
                                                                              communicator="none"))
    assert packer_builder.check_packer(none)  # bundled builder, nothing to log in to (moto)


def test_debians_packer_is_read_as_what_it_is():
    assert packer_builder.packer_version(shutil.which("packer") or "packer") >= (1, 6, 0)


def test_bake_writes_packers_output_to_a_log_file_not_to_stderr(tmp_path):
    class FakeProc:
        returncode = 1

        def __init__(self, *a, **k):
            self.stdout = iter(["1,,ui,say,==> amazon-ebs: Prevalidating AMI Name\n",
                                "1,,ui,error,Build 'amazon-ebs' errored: boom\n"])

        def wait(self, timeout=None):
            return 1

        def poll(self):
            return 1

    (tmp_path / "t.json").write_text("{}")
    log = tmp_path / "packer.log"
    with log.open("w") as out, pytest.raises(packer_builder.PackerError) as err:
        packer_builder.run_packer(tmp_path / "t.json", log=out, popen=FakeProc, packer="packer")
    assert "==> amazon-ebs: Prevalidating AMI Name" in log.read_text()
    assert "Build 'amazon-ebs' errored: boom" in str(err.value) and f"full log: {log}" in str(err.value)
