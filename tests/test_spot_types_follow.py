"""A derived spot type list (none, or fewer than 3, written) follows the group's instance_type wherever
it is set: nodes.yaml, `__base__`, or the stack's override. `fleet show` prints the list the program
gives the spot ASG, and the plan's spot ASG has exactly it."""

from __future__ import annotations

import json

import pytest

from fleet.cli import main

NODES = "__base__: {instance_type: m5.large, source_ami: ami-12c6146b}\nweb:\n  autoscale: {node_min: 1, node_max: 3}\n"


@pytest.mark.parametrize("override,first", [
    ("", "m5.large"),
    ("config:\n  fleet:groups:\n    web: {instance_type: c5.xlarge}\n", "c5.xlarge"),
])
def test_derived_spot_types_follow_the_instance_type(tmp_path, monkeypatch, capsys, override, first):
    (tmp_path / "nodes.yaml").write_text(NODES)
    if override:
        (tmp_path / "Pulumi.staging.yaml").write_text(override)
    monkeypatch.chdir(tmp_path)
    assert main(["show", "web"]) == 0
    shown = json.loads(capsys.readouterr().out)["autoscale"]["spot"]["instance_types"]
    assert shown[0] == first and len(shown) >= 3
    family = first.split(".")[0].rstrip("0123456789")
    assert all(t.endswith("." + first.split(".")[1]) and t.startswith(family) for t in shown), shown
    assert main(["plan", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    [spot] = [r for r in plan["resources"] if r["type"] == "aws:autoscaling/group:Group" and r["name"].endswith("spot")]
    overrides = spot["inputs"]["mixedInstancesPolicy"]["launchTemplate"]["overrides"]
    assert [o["instanceType"] for o in overrides] == shown
