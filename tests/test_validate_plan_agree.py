"""`fleet validate` runs every check `fleet plan` runs before registering: validate OK implies plan
exits 0 on the same input, and what validate refuses, plan refuses as bad input (exit 2) too, never
as a guardrail violation found after the program ran. A table of inputs walks through both."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import pytest

from fleet.cli import main

BASE = "__base__: {instance_type: m5.large, source_ami: ami-12345678}\n"
WEB = BASE + textwrap.dedent("""\
    web:
      autoscale: {node_min: 1, node_max: 3}
      http: {port: 8080, hosts: [www.example.com]HTTP}
    """)


def web(http: str = "", **extra: str) -> str:
    text = WEB.replace("HTTP", http)
    for key, value in extra.items():
        text += f"  {key}: {value}\n"
    return text


@dataclass
class Case:
    id: str
    nodes: str
    stack: str = "s"
    stack_file: str = "config: {}\n"
    ok: bool = True
    expect: str = ""  # a substring of validate's problem line


CASES = [
    Case("http-group", web()),
    Case("one-off-box", BASE + "cron: {autoscale: false, instances: 2}\n"),
    Case("deregistration-delay-0", web(", deregistration_delay: 0"), ok=False,
         expect="key 'http.deregistration_delay': 0 s"),
    Case("deregistration-delay-300", web(", deregistration_delay: 300"), ok=False,
         expect="key 'http.deregistration_delay'"),
    Case("deregistration-delay-5", web(", deregistration_delay: 5")),
    Case("health-check-every-30s", web(", health_check: {path: /, interval: 30}"), ok=False,
         expect="key 'http.health_check.interval'"),
    Case("too-few-spot-types", web(), ok=False, expect="spot",
         stack_file="config:\n  fleet:groups:\n    web: {instance_type: c5.9xlarge}\n"),
    Case("prod-without-certificate", web(), stack="prod", ok=False, expect="fleet:certificateArn"),
    Case("prod-with-certificate", web(), stack="prod", stack_file=(
        "config:\n  fleet:certificateArn: arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978\n")),
    Case("seed-001-style-m1-large", web(), stack_file="config:\n  fleet:groups:\n    web: {instance_type: m1.large}\n"),
    Case("prod-without-http", BASE + "cron: {autoscale: false}\n", stack="prod"),
    Case("raw-skipping-zero-blocks", BASE + "disk: {autoscale: false, image: {builder: raw, command: 'sh mk.sh', "
         "skip_zero_blocks_unsafe_if_encrypted: true}}\n", ok=False,
         expect="key 'image.skip_zero_blocks_unsafe_if_encrypted'"),
    Case("raw-uploading-every-block", BASE + "disk: {autoscale: false, image: {builder: raw, command: 'sh mk.sh'}}\n"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_validate_ok_iff_plan_ok(tmp_path, capsys, case):
    (tmp_path / "nodes.yaml").write_text(case.nodes)
    (tmp_path / f"Pulumi.{case.stack}.yaml").write_text(case.stack_file)
    project = ["--project", str(tmp_path), "--stack", case.stack]
    validated = main([*project, "validate"])
    _, verr = capsys.readouterr()
    planned = main([*project, "plan"])
    pout, perr = capsys.readouterr()
    if case.ok:
        assert (validated, planned) == (0, 0), verr + pout + perr
    else:
        assert (validated, planned) == (2, 2), verr + pout + perr
        problems = verr.strip().splitlines()[1:]
        assert problems == perr.strip().splitlines()[1:], "plan reports exactly what validate reports"
        assert any(case.expect in line for line in problems), problems
