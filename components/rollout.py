"""Rollout: the health-gated instance refresh of one ASG, as a `pulumi_command.local.Command`.

The Command runs `python -m fleet.rollout --asg NAME --launch-template-id ID --version N
[--alarm A ...] [--warmup S] --region R` (fleet/rollout.py: an instance refresh with
DesiredConfiguration, AutoRollback, launch-before-terminate, alarm-gated; it waits and exits 1 with a
one-line reason when the refresh failed, was cancelled or rolled back, so `pulumi up` fails with it).

- `triggers=[launch_template_version]`: a new launch template version replaces the Command, which
  runs `create` again (PITFALLS 9); nothing else re-runs it except a change of the command line itself
  (ASG renamed, alarms replaced), and that re-run is a no-op when the ASG already runs the version.
- The ASGs `ignore_changes` their launch template version (components.asg_pair.VERSION_PATHS), so
  this Command is the only thing that moves instances to a new version, and AWS's auto-rollback
  returns to the version the ASG had before (PITFALLS 6).
- First creation: the ASG is created on `latest_version` already, so `fleet.rollout.roll` finds
  the group configured with that version and reports a no-op.
- Like BakedImage's Command it runs in the project directory with PYTHONPATH = the project, and
  `python` is the interpreter on the PATH of the `pulumi` process: run `pulumi up` from the
  project's activated virtualenv.
- `after`: resources the refresh must wait for (NodeGroup: the drain hooks, and for the spot ASG
  the on-demand ASG's rollout, the canary).

The command line is built inside `apply` from the ASG name, template id, version and alarm names;
only a string is computed there, never a resource.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import pulumi
import pulumi_command as command


def rollout_command_line(asg_name: str, launch_template_id: str, version: int | float | str,
                         alarms: Iterable[str] = (), warmup: int | None = None, region: str | None = None) -> str:
    """`python -m fleet.rollout ...` with every value shell-quoted."""
    argv = ["python", "-m", "fleet.rollout", "--asg", asg_name, "--launch-template-id", launch_template_id,
            "--version", str(int(float(version)))]
    for alarm in alarms:
        argv += ["--alarm", alarm]
    if warmup is not None:
        argv += ["--warmup", str(int(warmup))]
    if region:
        argv += ["--region", region]
    return " ".join(shlex.quote(str(a)) for a in argv)


@dataclass
class RolloutArgs:
    asg_name: pulumi.Input[str]
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
        warmup, region = args.warmup, args.region

        def line(values: list) -> str:
            asg, template_id, version, *alarms = values
            return rollout_command_line(asg, template_id, version, alarms, warmup, region)

        create = pulumi.Output.all(args.asg_name, args.launch_template_id, args.launch_template_version,
                                   *args.alarm_names).apply(line)
        project_dir = str(args.project_dir)
        self.command = command.local.Command(f"{name}-refresh", command.local.CommandArgs(
            create=create,
            dir=project_dir,
            environment={"PYTHONPATH": project_dir},
            triggers=[args.launch_template_version],
        ), opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)))
        self.register_outputs({"create": create})
