"""Rollout: the health-gated instance refresh of one ASG, as a `pulumi_command.local.Command`.

The Command runs `python -m fleet.ops.rollout --group G --stack S --capacity C --launch-template-id ID
--version N [--alarm A ...] [--warmup S] --region R` (fleet/ops/rollout.py: an instance refresh with
DesiredConfiguration, AutoRollback, launch-before-terminate, alarm-gated; it waits and exits 1 with
a one-line reason when the refresh failed, was cancelled or rolled back, so `pulumi up` fails).

Ordering is the point (PITFALLS 6). The Command runs BEFORE Pulumi updates the ASG: each ASG
`depends_on` its own rollout. So when the refresh starts, the ASG is still configured with the
previous launch template version, and AWS's auto-rollback returns to that version. On success AWS
itself leaves the ASG on the new version, and Pulumi's update of the ASG that follows (to
`latest_version`) changes nothing; on failure `pulumi up` stops before that update, and Pulumi's
state, AWS and the instances all still say the old version. No `ignore_changes` on the version is
needed, so state never goes stale (a later unrelated ASG update cannot send an old version back).

Because the Command runs before the ASG may exist, it finds the ASG by tags (fleet:group,
fleet:stack, fleet:capacity), not by name. On a stack's first `pulumi up` there is no ASG yet and
the Command exits 0: the ASG is then created on this version.

- `triggers=[launch_template_version]`: a new launch template version replaces the Command, which
  runs `create` again (PITFALLS 9); a re-run at an unchanged version is a no-op in `roll`.
- The spot rollout `depends_on` the on-demand one: the on-demand ASG is the canary.
- Like BakedImage's Command it runs in the project directory with PYTHONPATH = the project, and
  `python` is the interpreter on the PATH of the `pulumi` process: run `pulumi up` from the
  project's activated virtualenv.

The command line is built inside `apply` from plain values; only a string is computed there.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import pulumi
import pulumi_command as command


def rollout_command_line(group: str, stack: str, capacity: str, launch_template_id: str,
                         version: int | float | str, alarms: Iterable[str] = (), warmup: int | None = None,
                         region: str | None = None) -> str:
    """`python -m fleet.ops.rollout ...` with every value shell-quoted."""
    argv = ["python", "-m", "fleet.ops.rollout", "--group", group, "--stack", stack, "--capacity", capacity,
            "--launch-template-id", launch_template_id, "--version", str(int(float(version)))]
    for alarm in alarms:
        argv += ["--alarm", alarm]
    if warmup is not None:
        argv += ["--warmup", str(int(warmup))]
    if region:
        argv += ["--region", region]
    return " ".join(shlex.quote(str(a)) for a in argv)


@dataclass
class RolloutArgs:
    group: str
    stack: str
    capacity: str
    launch_template_id: pulumi.Input[str]
    launch_template_version: pulumi.Input[int]
    region: str
    project_dir: Path
    alarm_names: Sequence[pulumi.Input[str]] = ()
    warmup: int | None = None
    after: Sequence[pulumi.Resource] = ()


class Rollout(pulumi.ComponentResource):
    command: command.local.Command

    def __init__(self, name: str, args: RolloutArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleet:rollout:Rollout", name, None, opts)

        def line(values: list) -> str:
            template_id, version, *alarms = values
            return rollout_command_line(args.group, args.stack, args.capacity, template_id, version, alarms,
                                        args.warmup, args.region)

        create = pulumi.Output.all(args.launch_template_id, args.launch_template_version,
                                   *args.alarm_names).apply(line)
        project_dir = str(args.project_dir)
        self.command = command.local.Command(f"{name}-refresh", command.local.CommandArgs(
            create=create,
            dir=project_dir,
            environment={"PYTHONPATH": project_dir},
            triggers=[args.launch_template_version],
        ), opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)))
        self.register_outputs({"create": create})
