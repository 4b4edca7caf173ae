"""Cookbooks, roles and data bags are the user's files: a wrong or hostile one is one line naming it
(exit 2), never a traceback, a hang, or a file from outside the project in the image hash or the boot
bundle. Run lists are checked against the project's cookbooks, with "did you mean"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.render.bundle import build_bundle
from fleet.spec.cookbooks import ClosureError, closure
from tests.pulumi_mocks import group

HEAD = "__base__: {instance_type: m5.large, source_ami: ami-12345678}\n"


def project(root: Path, run_list=("recipe[app]",), extra: str = "") -> Path:
    items = ", ".join(json.dumps(i) for i in run_list)
    (root / "nodes.yaml").write_text(HEAD + f"g:\n  run_list: [{items}]\n{extra}")
    app = root / "cookbooks" / "app"
    (app / "recipes").mkdir(parents=True, exist_ok=True)
    (app / "metadata.rb").write_text("name 'app'\n")
    (app / "recipes" / "default.rb").write_text("log 'x'\n")
    (app / "recipes" / "server.rb").write_text("log 'server'\n")
    return root


def validate(root: Path, capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main(["--project", str(root), "validate"])
    out = capsys.readouterr()
    lines = [line for line in out.err.splitlines() if not line.startswith("fleet: project ")]
    assert "Traceback" not in out.err
    return code, lines


def refused(root: Path, capsys, *needles: str) -> str:
    code, lines = validate(root, capsys)
    assert code == 2, lines
    text = "\n".join(lines)
    for needle in needles:
        assert needle in text, text
    assert all(Path(line.split(":")[0]).name == "nodes.yaml" for line in lines), lines
    return text


@pytest.mark.parametrize("item", ["recipe[/etc]", "recipe[../../x::y]", "recipe[sudo::]", "recipe[::x]", "recipe[.]",
                                  "recipe[..]", "role[../x]", "role[/etc/passwd]", "recipe[app::../../x]",
                                  "recipe[app@x]"])
def test_run_list_items_are_plain_names(tmp_path, capsys, item):
    root = project(tmp_path, run_list=(item,))
    refused(root, capsys, "key 'run_list[0]'", "expected items like recipe[cookbook::recipe] or role[name]")
    with pytest.raises(ClosureError, match="not a plain" if "@" not in item else "not a version"):
        build_bundle(group("g", run_list=[item]), root)


def test_nothing_outside_the_project_is_read(tmp_path):
    outside = tmp_path / "secret"
    (outside / "recipes").mkdir(parents=True)
    (outside / "recipes" / "default.rb").write_text("data_bag_item('x', 'y')\n")
    (tmp_path / "p").mkdir()
    root = project(tmp_path / "p", run_list=("recipe[../../secret]", "recipe[app]"))
    (root / "cookbooks" / "app" / "metadata.rb").write_text("depends '../../secret'\ndepends '/'\n")
    found = closure(root, ["recipe[../../secret]", "recipe[app]"])
    assert found.cookbooks == ("app",)
    assert any("depends '/'" in p for p in found.problems) and any("'../../secret'" in p for p in found.problems)


def test_a_cookbook_link_to_elsewhere_is_refused(tmp_path, capsys):
    (tmp_path / "p").mkdir()
    root = project(tmp_path / "p", run_list=("recipe[etc]",))
    (root / "cookbooks" / "etc").symlink_to("/etc")
    refused(root, capsys, "cookbooks/etc: leaves the project's cookbooks/ folder")
    assert closure(root, ["recipe[etc]"]).cookbooks == ()


def test_chef_package_outside_the_project_is_refused(tmp_path, capsys):
    root = project(tmp_path, extra="  boot: {converge: true, chef_package: pkg/../../x.deb}\n")
    refused(root, capsys, "key 'boot.chef_package'", "must stay inside the project")


def test_missing_cookbook_recipe_and_role_of_a_baked_group_with_did_you_mean(tmp_path, capsys):
    root = project(tmp_path, run_list=("recipe[ap]", "recipe[app::sever]", "role[web]"))
    (root / "roles").mkdir()
    (root / "roles" / "webs.json").write_text(json.dumps({"run_list": []}))
    text = refused(root, capsys, "key 'run_list'", "cookbook 'ap' (did you mean 'app'?)",
                   "recipe[app::sever] (did you mean 'server'?)", "role[web] (did you mean 'webs'?)",
                   "halfway through the bake")
    assert text.count("\n") == 0  # one line for the group


def test_a_project_without_cookbooks_refuses_a_baked_run_list(tmp_path, capsys):
    (tmp_path / "nodes.yaml").write_text(HEAD + "g:\n  run_list: ['recipe[app]']\n")
    refused(tmp_path, capsys, "needs cookbook 'app'")
    # no provisioner runs chef with `communicator: none`: nothing to check
    (tmp_path / "nodes.yaml").write_text(HEAD + "g:\n  run_list: ['recipe[app]']\n  image: {communicator: none}\n")
    assert validate(tmp_path, capsys)[0] == 0


def _roles(root: Path, roles: dict[str, list[str]]) -> None:
    (root / "roles").mkdir(exist_ok=True)
    for name, items in roles.items():
        (root / "roles" / f"{name}.json").write_text(json.dumps({"name": name, "run_list": items}))


@pytest.mark.parametrize("roles,chain", [
    ({"a": ["role[a]"]}, "role[a] -> role[a]"),
    ({"a": ["recipe[app]", "role[b]"], "b": ["role[a]"]}, "role[a] -> role[b] -> role[a]"),
])
def test_role_cycles_end_with_one_line_naming_the_chain(tmp_path, roles, chain):
    root = project(tmp_path, run_list=("role[a]",))
    _roles(root, roles)
    proc = subprocess.run([sys.executable, "-m", "fleet", "--project", str(root), "validate"], capture_output=True,
                          text=True, timeout=60, cwd=root)
    lines = proc.stderr.splitlines()[1:]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert f"roles name each other in a cycle: {chain}" in lines[0]


@pytest.mark.parametrize("name,content,needle", [
    ("metadata.json", '{"dependencies": 5}', "dependencies must be a mapping"),
    ("metadata.json", "[1, 2]", "metadata is a JSON object, not list"),
    ("metadata.json", "[" * 5000 + "]" * 5000, "nested more than"),
    ("metadata.json", '{"dependencies": {"x": NaN}}', "NaN is not a number"),
    ("metadata.json", '{"dependencies": {"/": "1.0"}}', "depends '/': not a plain cookbook name"),
    ("metadata.json", "{\"a\": 1, \"a\": 2}", "appears twice"),
    ("metadata.json", "not json", "not JSON (line 1"),
    ("metadata.rb", "depends \"/\"\n", "depends '/': not a plain cookbook name"),
    ("metadata.rb", None, "metadata.rb: is not a file"),
])
def test_malformed_cookbook_metadata_is_one_line(tmp_path, capsys, name, content, needle):
    root = project(tmp_path)
    meta = root / "cookbooks" / "app" / name
    (root / "cookbooks" / "app" / "metadata.rb").unlink()
    if content is None:
        meta.mkdir()
    else:
        meta.write_text(content)
    text = refused(root, capsys, f"cookbooks/app/{name}", needle)
    assert text.count("\n") == 0


@pytest.mark.parametrize("role,needle", [
    ({"run_list": "recipe[app]"}, "run_list must be a list of items, not str"),
    ({"env_run_lists": ["recipe[app]"]}, "env_run_lists must be a mapping"),
    ({"env_run_lists": {"prod": "x"}}, "env_run_lists.prod must be a list"),
    ({"run_list": ["recipe[a b]"]}, "'a b' is not a plain cookbook name"),
    ({"run_list": [5]}, "5 is not a run list item"),
    ([1], "a role is a JSON object, not list"),
])
def test_malformed_roles_are_one_line(tmp_path, capsys, role, needle):
    root = project(tmp_path, run_list=("role[web]",))
    (root / "roles").mkdir()
    (root / "roles" / "web.json").write_text(json.dumps(role))
    refused(root, capsys, "roles/web.json", needle)


def test_data_bag_items_must_be_json_objects(tmp_path, capsys):
    root = project(tmp_path)
    (root / "cookbooks" / "app" / "recipes" / "default.rb").write_text("data_bag_item('users', 'a')\n")
    bag = root / "data_bags" / "users"
    bag.mkdir(parents=True)
    (bag / "a.json").write_text("{not json")
    (bag / "b.json").write_text("[1]")
    (bag / "c.json").write_text('{"id": "c"}')
    text = refused(root, capsys, "data_bags/users/a.json: not JSON", "data_bags/users/b.json: a data bag item is a "
                   "JSON object, not list")
    assert "c.json" not in text


def test_an_unreadable_file_is_one_line(tmp_path, capsys, monkeypatch):
    root = project(tmp_path, run_list=("role[web]",))
    _roles(root, {"web": ["recipe[app]"]})
    path = root / "roles" / "web.json"
    if os.geteuid() != 0:
        path.chmod(0)
    else:  # root reads any file: refuse the read the way the kernel would
        import fleet.spec.jsonfile as jsonfile

        real = jsonfile.read_bytes

        def denied(p, limit=None):
            if Path(p).resolve() == path.resolve():
                raise PermissionError(13, "Permission denied", str(p))
            return real(p, limit)

        monkeypatch.setattr(jsonfile, "read_bytes", denied)
    refused(root, capsys, "roles/web.json: cannot read file: Permission denied")


def test_an_unreadable_folder_is_one_line(tmp_path, capsys, monkeypatch):
    root = project(tmp_path)
    app = root / "cookbooks" / "app"
    if os.geteuid() != 0:
        app.chmod(0o600)  # listed, but nothing inside can be looked at
    else:  # root enters any folder: refuse the lookups inside it the way the kernel would
        real = Path.exists

        def denied(self, *args, **kwargs):
            if self.parent == app.resolve() or self.parent == app:
                raise PermissionError(13, "Permission denied", str(self))
            return real(self, *args, **kwargs)

        monkeypatch.setattr(Path, "exists", denied)
    try:
        refused(root, capsys, "cookbooks/app/metadata.json: cannot read: Permission denied")
    finally:
        app.chmod(0o755)
