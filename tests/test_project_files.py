"""A project of the user's own (nodes file, stack file, cookbooks, no program): every file the plan,
`fleet packer`, the image hash and the boot bundle read comes from that project, never from the
checkout that runs the code. A cookbook edit in the project changes the plan's image hash, and the
plan's hash is the one the bake computes (or the bake refuses: "image inputs changed")."""

from __future__ import annotations

import json
from pathlib import Path

from fleet.cli import main
from fleet.image_hash import image_hash
from fleet.plan.engine import plan_result
from fleet.spec.load import load_fleet

NODES = """\
solo:
  instance_type: m5.large
  source_ami: ami-12345678
  autoscale: {node_min: 1, node_max: 2}
  run_list: ['recipe[solo]']
"""
COMMAND = "command:local:Command"


def own_project(root: Path) -> Path:
    (root / "nodes.yaml").write_text(NODES)
    (root / "cookbooks" / "solo" / "recipes").mkdir(parents=True)
    (root / "cookbooks" / "solo" / "metadata.rb").write_text("name 'solo'\n")
    (root / "cookbooks" / "solo" / "recipes" / "default.rb").write_text("log 'one'\n")
    return root


def project_hash(root: Path) -> str:
    return image_hash(load_fleet(root / "nodes.yaml", project_dir=root).groups["solo"], root)


def plan_hash(root: Path) -> str:
    data = plan_result(root, "staging", stack_named=False).data
    (build,) = [r for r in data["resources"] if r["type"] == COMMAND and r["name"] == "solo-image"]
    return build["inputs"]["triggers"][0]


def packer_ami_name(root: Path, capsys, monkeypatch) -> str:
    monkeypatch.chdir(root)
    capsys.readouterr()
    assert main(["packer", "solo"]) == 0
    return json.loads(capsys.readouterr().out)["builders"][0]["ami_name"]


def test_plan_of_a_project_without_a_program_hashes_the_projects_cookbooks(tmp_path, monkeypatch):
    root = own_project(tmp_path)
    monkeypatch.chdir(root)
    before = plan_hash(root)
    assert before == project_hash(root)
    (root / "cookbooks" / "solo" / "recipes" / "default.rb").write_text("log 'two'\n")
    after = plan_hash(root)
    assert after != before and after == project_hash(root)


def test_packer_template_names_the_projects_image_hash(tmp_path, capsys, monkeypatch):
    root = own_project(tmp_path)
    first = packer_ami_name(root, capsys, monkeypatch)
    assert first.endswith(project_hash(root)[:20])
    (root / "cookbooks" / "solo" / "recipes" / "default.rb").write_text("log 'two'\n")
    second = packer_ami_name(root, capsys, monkeypatch)
    assert second != first and second.endswith(project_hash(root)[:20])


def test_the_boot_bundle_of_a_project_without_a_program_carries_its_cookbooks(tmp_path, monkeypatch):
    import io
    import tarfile

    root = own_project(tmp_path)
    (root / "nodes.yaml").write_text(NODES + "  boot: {converge: true}\n")
    monkeypatch.chdir(root)
    plan_result(root, "staging", stack_named=False)
    (bundle,) = (root / ".fleet" / "bundles").glob("*.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(bundle.read_bytes())) as tar:
        names = tar.getnames()
        recipe = tar.extractfile("cookbooks/solo/recipes/default.rb").read()
    assert recipe == b"log 'one'\n" and not [n for n in names if n.startswith("cookbooks/seatgeek")]


def test_a_pulumi_yaml_without_the_commands_virtualenv_is_one_line(tmp_path, monkeypatch, capsys):
    """The project's own program runs its Commands with Pulumi.yaml's virtualenv: without one, the plan
    says so in one line (exit 2) before any resource, not with a traceback from inside a group."""
    root = own_project(tmp_path)
    (root / "nodes.yaml").write_text(NODES + "  image: {communicator: none}\n")
    (root / "Pulumi.yaml").write_text("name: mine\nruntime: python\n")
    (root / "__main__.py").write_text(Path(__file__).resolve().parent.parent.joinpath("__main__.py").read_text())
    monkeypatch.chdir(root)
    capsys.readouterr()
    assert main(["plan"]) == 2
    out, err = capsys.readouterr()
    lines = err.splitlines()[1:]
    assert out == "" and "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("Pulumi.yaml: key 'runtime.options.virtualenv': ") and "must name" in lines[0]
