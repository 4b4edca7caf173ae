"""Property-based: hostile cookbooks, roles, data bags, lock files and plan files never break the
bad-input contract (the nodes.yaml/stack-file counterpart is tests/test_fuzz_contract.py).

For every generated project, `fleet validate` exits 0 or 2, with one short line per problem naming a
file, no control characters and no traceback (an exception escaping `main` fails the test); the
cookbook closure never names a path outside the project, and when validate accepts the project, the
image hash (`fleet packer`) and the boot bundle are made without error. For every pair of generated
plan files, `fleet plan diff` exits 0 or 2 and prints nothing raw: no control character reaches the
terminal.

Inputs: run list items from a pool of hostile names (`/etc`, `..`, empty parts, spaces, versions),
roles that name each other, metadata.json/metadata.rb/role/data bag/lock contents that are random JSON
values, mutations of good ones, or raw bytes (deep nesting, NaN, 1e999, invalid UTF-8), plans mutated
from a good one (values, kinds, deleted keys) or replaced by raw text.

Bounded for CI: derandomized, no example database, a fixed number of examples (projects: 150, plans: 150).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet.cli import main
from fleet.render.bundle import build_bundle
from fleet.spec.cookbooks import closure
from fleet.spec.load import load_fleet
from tests.test_fuzz_contract import _paths

MAX_LINE = 800
CONTEXT = "fleet: project "
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
SETTINGS = settings(max_examples=150, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

NAMES = ["app", "lib", "r1", "r2", "users", "/etc", "..", ".", "", "a b", "../../x", "/", "app/..", "x\x1b[2J",
         "\u2028", "app@1.0", "sudo::", "::x", "a" * 300, "app::server", "app::missing", "lib::default"]
ITEMS = st.one_of(
    st.sampled_from(["recipe[app]", "recipe[app::server]", "recipe[lib]", "role[r1]", "role[r2]", "recipe[nope]",
                     "role[ghost]", "recipe[app@1.2.3]", "recipe[app::server@1]"]),
    st.builds(lambda kind, name: f"{kind}[{name}]", st.sampled_from(["recipe", "role"]), st.sampled_from(NAMES)),
    st.text(max_size=12),
)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(allow_nan=False),
                         st.text(max_size=10), st.sampled_from(NAMES))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8) | st.sampled_from(NAMES), inner, max_size=4),
                           max_leaves=12)
RAW = st.sampled_from([b"", b"{", b"[" * 3000 + b"]" * 3000, b'{"a": NaN}', b'{"a": 1e999}', b"\xff\xfe",
                       b'{"a": 1, "a": 2}', b"null", b"9" * 5000, b'"\x1b[2J"'])


def _json_file(good: Any) -> st.SearchStrategy[bytes]:
    """A good document, the good one with a key changed, any JSON value, or raw bytes."""
    def edited(pair):
        key, value = pair
        doc = copy.deepcopy(good)
        if isinstance(doc, dict):
            doc[key] = value
        return json.dumps(doc).encode()

    keys = st.sampled_from(sorted(good) if isinstance(good, dict) else ["x"])
    return st.one_of(st.just(json.dumps(good).encode()), st.tuples(keys, json_values).map(edited),
                     json_values.map(lambda v: json.dumps(v).encode()), RAW)


ROLE = {"name": "r", "run_list": ["recipe[app]"], "env_run_lists": {"prod": ["recipe[lib]"]}}
META = {"name": "app", "dependencies": {"lib": ">= 0.0.0"}}
LOCK = {"images": {"us-east-1": {"099720109477/ubuntu-*": {
    "ami_id": "ami-0123456789abcdef0", "name": "ubuntu", "creation_date": "2024-01-31T12:00:00.000Z",
    "root_device_name": "/dev/sda1", "resolved_at": "https://ec2.us-east-1.amazonaws.com"}}}}

projects = st.fixed_dictionaries({
    "run_list": st.lists(ITEMS, max_size=4),
    "converge": st.booleans(),
    "locked": st.booleans(),
    "role1": st.one_of(st.lists(ITEMS, max_size=3).map(lambda items: json.dumps({"run_list": items}).encode()),
                       _json_file(ROLE)),
    "role2": st.lists(ITEMS, max_size=3).map(lambda items: json.dumps({"run_list": items}).encode()),
    "metadata_json": st.none() | _json_file(META),
    "metadata_rb": st.lists(st.sampled_from(NAMES), max_size=3).map(
        lambda deps: "".join(f"depends '{d}'\n" for d in deps).encode()) | RAW,
    "bag_item": _json_file({"id": "a", "x": 1}),
    "lock": _json_file(LOCK),
})


def _write(root: Path, p: dict[str, Any]) -> None:
    (root / "cookbooks" / "app" / "recipes").mkdir(parents=True)
    (root / "cookbooks" / "app" / "recipes" / "default.rb").write_text("data_bag_item('users', 'a')\n")
    (root / "cookbooks" / "app" / "recipes" / "server.rb").write_text("log 'x'\n")
    (root / "cookbooks" / "lib" / "recipes").mkdir(parents=True)
    (root / "cookbooks" / "lib" / "recipes" / "default.rb").write_text("log 'lib'\n")
    (root / "cookbooks" / "app" / "metadata.rb").write_bytes(p["metadata_rb"])
    if p["metadata_json"] is not None:
        (root / "cookbooks" / "app" / "metadata.json").write_bytes(p["metadata_json"])
    (root / "roles").mkdir()
    (root / "roles" / "r1.json").write_bytes(p["role1"])
    (root / "roles" / "r2.json").write_bytes(p["role2"])
    (root / "data_bags" / "users").mkdir(parents=True)
    (root / "data_bags" / "users" / "a.json").write_bytes(p["bag_item"])
    source = "{name: 'ubuntu-*', owners: ['099720109477']}" if p["locked"] else "ami-12345678"
    boot = "  boot: {converge: true}\n" if p["converge"] else ""
    (root / "nodes.yaml").write_text(f"g:\n  instance_type: m5.large\n  source_ami: {source}\n"
                                     f"  run_list: {json.dumps(p['run_list'])}\n{boot}")
    (root / "nodes.lock.json").write_bytes(p["lock"])


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _assert_lines(code: int, out: str, err: str, root: Path, what: str) -> None:
    assert code in (0, 2), f"{what}: exit {code}\n{err[-2000:]}"
    if code == 2:
        assert out == "", what
        lines = [line for line in err.splitlines() if not line.startswith(CONTEXT)]
        assert lines, f"{what}: exit 2 without a problem line"
        for line in lines:
            assert line.startswith(str(root)), f"{what}: line without its file: {line[:300]!r}"
            assert len(line) <= MAX_LINE, f"{what}: line of {len(line)} characters"
            assert not CONTROL.search(line), f"{what}: control character in {line[:300]!r}"


@SETTINGS
@given(p=projects)
def test_hostile_project_files_keep_the_contract(p):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp).resolve()
        _write(root, p)
        found = closure(root, p["run_list"])
        for _, path in found.paths(root):
            assert path.resolve().is_relative_to(root), path
        code, out, err = _run(["--project", str(root), "validate"])
        _assert_lines(code, out, err, root, "validate")
        if code != 0:
            return
        c, o, e = _run(["--project", str(root), "packer", "g"])
        assert c == 0, f"packer after validate OK: exit {c}\n{e[-2000:]}"
        json.loads(o)
        group = load_fleet(root / "nodes.yaml", project_dir=root).groups["g"]
        if group.converges:
            build_bundle(group, root)


GOOD_PLAN = {"project": "fleet", "stack": "staging", "outputs": {}, "violations": [
    {"policy": "p", "resource": "lt", "message": "m"}], "resources": [
    {"type": "fleet:node_group:NodeGroup", "name": "g", "parent": None, "inputs": {}, "options": {}},
    {"type": "aws:ec2/launchTemplate:LaunchTemplate", "name": "lt", "parent": "g",
     "inputs": {"instanceType": "m5.large", "tags": {"fleet:group": "g"}, "userData": "IyEvYmluL3NoCg=="},
     "options": {"ignoreChanges": ["tags"], "dependsOn": [], "protect": False, "deleteBeforeReplace": False}},
    {"type": "aws:ec2/instance:Instance", "name": "i-0", "parent": "g", "inputs": {"tags": {"fleet:group": "g"}},
     "options": {"replaceOnChanges": ["ami"]}},
    {"type": "aws:autoscaling/group:Group", "name": "g-spot", "parent": "g",
     "inputs": {"tags": [{"key": "fleet:group", "value": "g"}], "maxSize": 3}, "options": {}}]}


def _mutated(edits: list[tuple[int, str, Any]]) -> bytes:
    data = copy.deepcopy(GOOD_PLAN)
    for pick, op, value in edits:
        paths = _paths(data)
        path = paths[pick % len(paths)]
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        if op == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    return json.dumps(data).encode()


plan_values = json_values | st.sampled_from(["\x1b[2J\x1b[31m", "a\u2028b", "x" * 500, "\x00", {"a": "\x1b]0;t\x07"}])
plans = st.one_of(
    st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(["set", "set", "delete"]), plan_values),
             max_size=4).map(_mutated),
    RAW, json_values.map(lambda v: json.dumps(v).encode()))


@SETTINGS
@given(old=plans, new=plans, allow=st.booleans())
def test_hostile_plan_files_keep_the_contract(old, new, allow):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp).resolve()
        (root / "old.json").write_bytes(old)
        (root / "new.json").write_bytes(new)
        argv = ["plan", "diff", str(root / "old.json"), str(root / "new.json")] + (["--allow-other-stack"] * allow)
        code, out, err = _run(argv)
        _assert_lines(code, out, err, root, "plan diff")
        assert not CONTROL.search(out), f"control character in the diff: {out[:500]!r}"


def test_the_generated_project_is_valid_when_nothing_is_hostile(tmp_path):
    """The generator's good documents make a valid project: the property above is not vacuous."""
    p = {"run_list": ["recipe[app::server]", "role[r1]"], "converge": True, "locked": True,
         "role1": json.dumps(ROLE).encode(), "role2": b'{"run_list": []}', "metadata_json": json.dumps(META).encode(),
         "metadata_rb": b"", "bag_item": b'{"id": "a"}', "lock": json.dumps(LOCK).encode()}
    _write(tmp_path, p)
    code, out, err = _run(["--project", str(tmp_path), "validate"])
    assert code == 0, err
    shutil.rmtree(tmp_path / "cookbooks" / "lib")
    assert _run(["--project", str(tmp_path), "validate"])[0] == 2
