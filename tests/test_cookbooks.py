"""Only what a run list really uses: the cookbook closure (depends from metadata.rb/metadata.json),
roles and data bags, in the image hash, the packer bake and the boot bundle; the `boot` key."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from fleet.image_hash import hash_groups
from fleet.render.bundle import build_bundle
from fleet.spec.cookbooks import closure
from fleet.spec.errors import SpecError
from fleet.spec.load import load_fleet
from tests.pulumi_mocks import group

ROOT = Path(__file__).resolve().parent.parent


def cookbook(root: Path, name: str, depends=(), metadata="rb", recipe="log 'x'\n") -> Path:
    d = root / "cookbooks" / name
    (d / "recipes").mkdir(parents=True, exist_ok=True)
    if metadata == "rb":
        (d / "metadata.rb").write_text(f"name '{name}'\n" + "".join(f"depends \"{x}\", '>= 1.0'\n" for x in depends))
    else:
        (d / "metadata.json").write_text(json.dumps({"name": name, "dependencies": {x: ">= 0.0.0" for x in depends}}))
    (d / "recipes" / "default.rb").write_text(recipe)
    return d


@pytest.fixture
def repo(tmp_path):
    cookbook(tmp_path, "app", depends=["lib"])
    cookbook(tmp_path, "lib", depends=["base"], metadata="json")
    cookbook(tmp_path, "base", recipe="users = data_bag_item('users', 'admins')\n")
    cookbook(tmp_path, "other")
    cookbook(tmp_path, "dyn", recipe="data_bag_item(node['bag'], 'x')\n")
    for bag in ("users", "secrets"):
        (tmp_path / "data_bags" / bag).mkdir(parents=True)
        (tmp_path / "data_bags" / bag / "a.json").write_text(json.dumps({"id": "a"}))
    (tmp_path / "roles").mkdir()
    (tmp_path / "roles" / "web.json").write_text(json.dumps({"name": "web", "run_list": ["recipe[other::x]"]}))
    return tmp_path


def test_closure_follows_depends_roles_and_data_bags(repo):
    c = closure(repo, ["recipe[app::server]"])
    assert c.cookbooks == ("app", "base", "lib")  # lib's metadata.json, app's metadata.rb
    assert c.data_bags == ("users",) and c.roles == () and c.missing == ()
    c = closure(repo, ["role[web]", "recipe[nope]", "role[ghost]"])
    assert c.cookbooks == ("other",) and c.roles == ("web.json",) and c.missing == ("nope", "role[ghost]")
    assert closure(repo, ["recipe[dyn]"]).data_bags == ("secrets", "users")  # a dynamic bag name: all bags


def test_image_hash_changes_only_for_groups_whose_closure_changed(repo):
    app = group("app", run_list=["recipe[app]"])
    other = group("other", run_list=["recipe[other]"])
    before = hash_groups({"app": app, "other": other}, repo)
    (repo / "cookbooks" / "base" / "recipes" / "default.rb").write_text("data_bag_item('users', 'b')\n")
    after = hash_groups({"app": app, "other": other}, repo)
    assert after["app"] != before["app"] and after["other"] == before["other"]
    (repo / "data_bags" / "secrets" / "a.json").write_text("{}")  # no recipe of app reads it
    assert hash_groups({"app": app, "other": other}, repo) == after
    (repo / "data_bags" / "users" / "a.json").write_text("{}")
    assert hash_groups({"app": app}, repo)["app"] != after["app"]
    (repo / "cookbooks" / "README.md").write_text("not a cookbook")
    assert hash_groups({"other": other}, repo)["other"] == before["other"]


def test_image_hash_does_not_depend_on_the_checkout_path(repo, tmp_path_factory):
    app = group("app", run_list=["recipe[app]"])
    copy = tmp_path_factory.mktemp("elsewhere") / "checkout"
    shutil.copytree(repo, copy)
    assert hash_groups({"a": app}, repo) == hash_groups({"a": app}, copy)


def test_converging_packer_group_leaves_cookbooks_out_of_its_image_hash(repo):
    baked = group("app", run_list=["recipe[app]"])
    semi = group("app", run_list=["recipe[app]"], boot={"converge": True})
    b1, s1 = hash_groups({"b": baked}, repo)["b"], hash_groups({"s": semi}, repo)["s"]
    (repo / "cookbooks" / "app" / "recipes" / "default.rb").write_text("log 'new'\n")
    assert hash_groups({"b": baked}, repo)["b"] != b1  # baked: rebake
    assert hash_groups({"s": semi}, repo)["s"] == s1  # converges at boot: no rebake, a new bundle instead


def test_bundle_is_deterministic_and_holds_exactly_the_closure(repo, tmp_path_factory):
    app = group("app", run_list=["recipe[app]"], default_attributes={"k": "v"})
    first = build_bundle(app, repo)
    assert first.key == f"bundles/{first.sha256}.tar.gz"
    copy = tmp_path_factory.mktemp("x") / "other-checkout"
    shutil.copytree(repo, copy)
    (copy / "cookbooks" / "app" / "recipes" / "default.rb").touch()  # new mtime, same bytes
    assert build_bundle(app, copy).data == first.data
    with tarfile.open(fileobj=io.BytesIO(first.data)) as tar:
        names = tar.getnames()
        assert all(m.mtime == 0 and m.uid == 0 for m in tar.getmembers())
        role = json.loads(tar.extractfile("roles/role-app.json").read())
    assert names == sorted(names)
    assert {n.split("/")[1] for n in names if n.startswith("cookbooks/")} == {"app", "base", "lib"}
    assert [n for n in names if n.startswith("data_bags/")] == ["data_bags/users/a.json"]
    assert role["run_list"] == ["recipe[app]"] and role["default_attributes"] == {"k": "v"}
    assert gzip.decompress(first.data)  # a valid gzip stream with mtime 0
    assert first.data[4:8] == b"\0\0\0\0"


def test_bundle_hash_changes_exactly_when_one_of_its_cookbooks_changes(repo):
    app = group("app", run_list=["recipe[app]"])
    h = build_bundle(app, repo).sha256
    (repo / "cookbooks" / "other" / "recipes" / "default.rb").write_text("log 'elsewhere'\n")
    assert build_bundle(app, repo).sha256 == h
    (repo / "cookbooks" / "lib" / "recipes" / "default.rb").write_text("log 'dep changed'\n")
    assert build_bundle(app, repo).sha256 != h


def test_packer_bake_stages_the_closure_and_data_bags(repo, tmp_path_factory):
    import tarfile

    from image_builds.packer_builder import stage

    work = tmp_path_factory.mktemp("work")
    app = group("app", run_list=["recipe[app]"])
    template = json.loads(stage(app, work, region="us-east-1", image_hash="ab" * 32, project_dir=repo,
                                endpoint_url=None).read_text())
    bundle = build_bundle(app, repo)  # the bake uploads the boot bundle itself
    assert any(p.get("source") == f"{bundle.sha256}.tar.gz" for p in template["provisioners"])
    with tarfile.open(work / f"{bundle.sha256}.tar.gz") as tar:
        names = tar.getnames()
    assert "data_bags/users/a.json" in names and "roles/role-app.json" in names
    assert sorted({n.split("/")[1] for n in names if n.startswith("cookbooks/")}) == ["app", "base", "lib"]


NODES = """\
__base__:
  instance_type: t3.micro
  source_ami: ami-0123456789abcdef0
g:
  run_list: ['recipe[app]']
{extra}"""


def validate(repo: Path, extra: str) -> subprocess.CompletedProcess:
    (repo / "nodes.yaml").write_text(NODES.format(extra=extra))
    return subprocess.run([sys.executable, "-m", "fleet", "--nodes", str(repo / "nodes.yaml"), "validate"],
                          capture_output=True, text=True, cwd=repo)  # the user stands in the project


@pytest.mark.parametrize("extra, key, words", [
    ("  image: {builder: ami}\n  post_run_list: ['recipe[gone]']\n", "run_list", "gone"),
    ("  boot: {converge: true, chef_package: pkgs/chef.deb}\n", "boot.chef_package", "no such file"),
    ("  boot: {converge: true, chef_package: ../chef.deb}\n", "boot.chef_package", "inside the project"),
    ("  boot: {converge: yes please}\n", "boot.converge", ""),
    ("  boot: {chef_package: chef.zip}\n", "boot.chef_package", ""),
])
def test_bad_boot_inputs_are_one_line_naming_file_group_and_key(repo, extra, key, words):
    proc = validate(repo, extra)
    assert proc.returncode == 2 and proc.stdout == ""
    context, *lines = proc.stderr.strip().splitlines()
    assert context.startswith(f"fleet: project {repo}, nodes nodes.yaml")
    assert len(lines) == 1, proc.stderr
    assert "nodes.yaml" in lines[0] and "'g'" in lines[0] and key in lines[0] and words in lines[0]


def test_boot_defaults(repo):
    (repo / "chef.deb").write_bytes(b"pkg")
    proc = validate(repo, "  boot: {converge: true, chef_package: chef.deb}\n")
    assert proc.returncode == 0, proc.stderr
    groups = load_fleet(repo / "nodes.yaml").groups
    assert groups["g"].converges and groups["g"].boot.chef_package == "chef.deb"
    assert not group("p", run_list=["recipe[x]"]).converges  # baked: the image ran the role
    assert group("a", run_list=["recipe[x]"], image={"builder": "ami"}).converges  # vanilla: bootstrap
    assert not group("a", image={"builder": "ami"}).converges  # nothing to run
    assert not group("a", image={"builder": "ami"}, run_list=["recipe[x]"], boot={"converge": False}).converges


def test_sample_nodes_yaml_has_all_three_boot_modes():
    groups = load_fleet(ROOT / "nodes.yaml", "staging").groups
    modes = {(g.image.builder == "ami", g.converges) for g in groups.values()}
    assert modes == {(False, False), (False, True), (True, True)}


def test_missing_cookbook_of_a_converging_group_is_reported(repo):
    (repo / "nodes.yaml").write_text(NODES.format(extra="  image: {builder: ami}\n  post_run_list: ['recipe[nope]']\n"))
    with pytest.raises(SpecError, match="needs cookbook 'nope'"):
        load_fleet(repo / "nodes.yaml", project_dir=repo)
