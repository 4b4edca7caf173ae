"""What AWS would reject at apply time, rejected by `fleet validate` first.

- tag keys that instance metadata tags refuse: EC2 will not launch the instance;
- two groups with the same explicit `http.priority`: CreateRule fails with PriorityInUse;
- derived priorities that collide: a group's derived priority depends on its own name only, so a
  collision is an error asking for an explicit priority (never a silent probe that moves another group).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.cli import main
from fleet.spec.names import derived_priority, rule_priorities

BASE = "__base__: {instance_type: m5.large, source_ami: ami-12345678}\n"
HTTP = "autoscale: {}, http: {port: 80, hosts: [%s.example.com]%s}"


def http_group(name: str, priority: int | None = None) -> str:
    extra = f", priority: {priority}" if priority is not None else ""
    return f"'{name}': {{{HTTP % (name, extra)}}}\n"


def validate(tmp_path: Path, text: str, capsys) -> tuple[int, list[str]]:
    nodes = tmp_path / "nodes.yaml"
    nodes.write_text(text)
    code = main(["--project", str(tmp_path), "validate"])
    out, err = capsys.readouterr()
    return code, err.strip().splitlines()[1:]  # after the line naming the project, nodes file and stack


@pytest.mark.parametrize("key", ["cost center", "team/owner", ".", "..", "_index", "a\tb", "café"])
def test_tag_keys_imds_refuses_are_rejected(tmp_path, capsys, key):
    code, lines = validate(tmp_path, BASE + f"web: {{tags: {{{key!r}: x}}}}\n".replace("'", '"'), capsys)
    assert code == 2
    assert len(lines) == 1, lines
    assert "group 'web'" in lines[0] and "key 'tags'" in lines[0] and "instance metadata" in lines[0], lines[0]


@pytest.mark.parametrize("key", ["cost-center", "Team", "a.b", "x:y", "k=v", "a+b,c@d", "_private", "..x"])
def test_tag_keys_imds_allows_pass(tmp_path, capsys, key):
    code, lines = validate(tmp_path, BASE + f"web: {{tags: {{\"{key}\": x}}}}\n", capsys)
    assert code == 0, lines


def test_tag_key_from_base_names_the_group(tmp_path, capsys):
    code, lines = validate(tmp_path, BASE.replace("}", ", tags: {'cost center': x}}") + "web: {}\n", capsys)
    assert code == 2 and any("group 'web'" in line and "cost center" in line for line in lines), lines


def test_duplicate_explicit_priority_is_rejected(tmp_path, capsys):
    code, lines = validate(tmp_path, BASE + http_group("web", 10) + http_group("api", 10), capsys)
    assert code == 2
    assert len(lines) == 1, lines
    line = lines[0]
    assert "key 'http.priority'" in line and "10" in line and "'api'" in line and "'web'" in line, line
    assert "nodes.yaml:" in line


def test_duplicate_priority_from_a_stack_override_names_the_stack_file(tmp_path, capsys):
    (tmp_path / "Pulumi.s.yaml").write_text("config:\n  fleet:groups:\n    web:\n      http: {port: 80, "
                                            "hosts: [web.example.com], priority: 10}\n")
    nodes = tmp_path / "nodes.yaml"
    nodes.write_text(BASE + http_group("api", 10) + http_group("web"))
    assert main(["--project", str(tmp_path), "validate", "--stack", "s"]) == 2
    [_, line] = capsys.readouterr().err.strip().splitlines()
    assert "Pulumi.s.yaml:" in line and "group 'web'" in line and "key 'http.priority'" in line, line


def test_derived_priority_depends_only_on_the_name():
    # Seen before: adding `a105705` moved `api` from 33359 to 33360 (probing).
    assert derived_priority("api") == 33359 == derived_priority("a105705")
    before = rule_priorities([("api", None), ("web", None)])
    after = rule_priorities([("api", None), ("web", None), ("new", None)])
    assert before["api"] == after["api"] == 33359 and before["web"] == after["web"]


def test_derived_priority_collision_asks_for_an_explicit_priority(tmp_path, capsys):
    code, lines = validate(tmp_path, BASE + http_group("api") + http_group("a105705"), capsys)
    assert code == 2
    assert len(lines) == 1, lines
    line = lines[0]
    assert "key 'http.priority'" in line and "33359" in line and "explicit" in line, line
    assert "'api'" in line and "'a105705'" in line
    # either group with an explicit priority resolves it, and api keeps its own priority
    code, lines = validate(tmp_path, BASE + http_group("api") + http_group("a105705", 7), capsys)
    assert code == 0, lines


def test_explicit_priorities_and_derived_ones_never_meet():
    assert all(derived_priority(n) >= 1000 for n in ["a", "api", "web", "x" * 128])
    assert rule_priorities([("a", 5), ("b", None)]) == {"a": 5, "b": derived_priority("b")}
