"""HealthGate under mocks: one per autoscaled group, run when its ASGs are created (triggers = the ASG names),
after the ASGs, their hooks, the target group and its listener rule, bounded by fleet/ops/timing's gate_timeout;
the Command line goes through fleet.ops.gate's own CLI."""

from __future__ import annotations

import shlex
from pathlib import Path

from components.health_gate import gate_command_line
from fleet.ops import gate, timing
from tests.pulumi_mocks import group, http_group, worker_group
from tests.test_components_rollout import ASG, COMMAND, _asgs, _node

GATE = "fleet:health_gate:HealthGate"
TG = "aws:lb/targetGroup:TargetGroup"
RULE = "aws:lb/listenerRule:ListenerRule"
HOOK = "aws:autoscaling/lifecycleHook:LifecycleHook"


def _gate_cmd(r):
    (cmd,) = [x for x in r.of_type(COMMAND) if x.parent_type == GATE]
    return cmd


def test_http_group_waits_for_both_asgs_in_the_target_group():
    g = http_group("www", autoscale={"node_min": 2, "node_max": 6, "timeout": 300}, rollout={"strategy": "refresh"})
    r = _node(g)
    cmd, asgs = _gate_cmd(r), _asgs(r)
    (tg,) = r.of_type(TG)
    names = [asgs["on-demand"].outputs["name"], asgs["spot"].outputs["name"]]
    assert cmd.inputs["triggers"] == names, "runs again only when an ASG is (re)created"
    argv = shlex.split(cmd.inputs["create"])
    assert argv == [".venv/bin/python", "-m", "fleet.ops.gate", "--group", "www", "--asg", names[0], "--asg", names[1],
                    "--target-group-arn", tg.outputs["arn"], "--timeout", str(timing.gate_timeout(g)),
                    "--region", "eu-west-1"]
    assert timing.gate_timeout(g) == 600
    deps = set(cmd.options["dependencies"])
    assert {a.name for a in r.of_type(ASG)} <= deps
    assert {h.name for h in r.of_type(HOOK)} <= deps
    assert {x.name for x in r.of_type(RULE)} <= deps and tg.name in deps


def test_command_line_parses_with_fleet_gate(monkeypatch):
    seen = {}
    monkeypatch.setattr(gate, "aws_client", lambda *a, **k: "client")
    monkeypatch.setattr(gate, "wait_healthy", lambda *a, **k: seen.update(args=a, kwargs=k) or [])
    line = gate_command_line(Path(__file__).resolve().parent.parent, "web od'1", ["a b", "c"], "arn:tg", 615,
                             "us-east-1")
    assert gate.main(shlex.split(line)[3:]) == 0
    assert seen["args"] == ("web od'1", ["a b", "c"])
    assert seen["kwargs"]["target_group_arn"] == "arn:tg" and seen["kwargs"]["timeout"] == 615.0


def test_worker_group_gate_has_no_target_group():
    g = worker_group("jobs", autoscale={"node_min": 1, "node_max": 4, "timeout": 120})
    create = _gate_cmd(_node(g)).inputs["create"]
    assert "--target-group-arn" not in create and f"--timeout {timing.gate_timeout(g)}" in create


def test_no_gate_for_autoscale_false_groups():
    r = _node(group("cron", instances=2, image={"builder": "ami"}))
    assert not r.of_type(GATE)
