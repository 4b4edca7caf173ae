"""HealthGate: `pulumi up` waits until a newly created group is healthy, as one `pulumi_command.local.Command`.

The Command runs `.venv/bin/python -m fleet.ops.gate --group G --asg <on-demand> --asg <spot> [--target-group-arn
ARN] --timeout S --region R` (fleet/ops/gate.py): each ASG needs its MinSize (its share of node_min)
InService and healthy, in the target group too for http groups, within fleet/ops/timing.py's
gate_timeout (launch + autoscale.timeout + health check, plus half); else it exits 1 with one line
naming the group and what was missing, and `pulumi up` fails.

`triggers` are the ASG names (autonamed), so the gate runs when the ASGs are created: a stack's first
`pulumi up`, a new group, or an ASG replacement. A new launch template version does not re-run it; the
Rollout gates those. It depends on the AsgPair and TargetGroup components (their ASGs, hooks, target
group and listener rule: a target group without a listener rule never reports a target healthy).

The Command runs like the Rollout's (components/rollout.py): the project's virtualenv python by a
relative path, no `dir` and no `environment` (components/project_python.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pulumi
import pulumi_command as command

from components.project_python import python_module_command
from fleet.ops import timing
from fleet.spec.model import Group


def gate_command_line(project_dir: Path, group: str, asg_names: Sequence[str], target_group_arn: str | None,
                      timeout: int, region: str | None = None) -> str:
    """`.venv/bin/python -m fleet.ops.gate ...` with every value shell-quoted."""
    argv = ["--group", group]
    for name in asg_names:
        argv += ["--asg", name]
    if target_group_arn:
        argv += ["--target-group-arn", target_group_arn]
    argv += ["--timeout", str(int(timeout))]
    if region:
        argv += ["--region", region]
    return python_module_command(project_dir, "fleet.ops.gate", argv)


@dataclass
class HealthGateArgs:
    group: Group
    asg_names: Sequence[pulumi.Input[str]]  # on-demand first
    region: str
    project_dir: Path
    target_group_arn: pulumi.Input[str] | None = None
    after: Sequence[pulumi.Resource] = ()


class HealthGate(pulumi.ComponentResource):
    command: command.local.Command

    def __init__(self, name: str, args: HealthGateArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleet:health_gate:HealthGate", name, None, opts)
        group, count = args.group, len(args.asg_names)

        def line(values: list) -> str:
            names, arn = values[:count], values[count]
            return gate_command_line(args.project_dir, group.name, names, arn, timing.gate_timeout(group), args.region)

        create = pulumi.Output.all(*args.asg_names, args.target_group_arn).apply(line)
        self.command = command.local.Command(f"{name}-wait", command.local.CommandArgs(
            create=create,
            triggers=list(args.asg_names),
            add_previous_output_in_env=False,  # its output never comes back as environment variables
        ), opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)))
        self.register_outputs({"create": create})
