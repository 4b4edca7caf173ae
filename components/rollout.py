"""Rollout: the health-gated rollout of one node group's spot/on-demand pair, as one
`pulumi_command.local.Command`.

The Command runs `.venv/bin/python -m fleet.ops.rollout --group G --stack S --launch-template-id ID --version N
[--alarm A ...] --warmup S --bake-time S --timeout S --rollback-timeout S --region R`
(fleet/ops/rollout.py: the on-demand canary refreshes, soaks `rollout.bake_time` seconds as the
refresh's BakeTime with the health alarms watched, then spot refreshes; on any failure both ASGs
end on the previous launch template version and the Command exits 1 with one line naming the
group, the step and the reason, so `pulumi up` fails). Its bounds come from fleet/ops/timing.py,
modelled from the group's own timeouts.

Ordering is the point (the provider's own refresh starts after it switched the ASG, so AWS's
rollback would return to the bad version). The Command runs BEFORE Pulumi updates the ASGs: both ASGs
`depends_on` it. So when a refresh starts, its ASG is still configured with the previous launch
template version, and AWS's auto-rollback returns to that version. On success AWS itself leaves
both ASGs on the new version, and Pulumi's update of the ASGs that follows (to `latest_version`)
changes nothing; on failure `pulumi up` stops before that update, and Pulumi's state, AWS and the
instances all still say the old version. No `ignore_changes` on the version is needed, so state
never goes stale (a later unrelated ASG update cannot send an old version back).

Because the Command runs before the ASGs may exist, it finds them by tags (fleet:group,
fleet:stack, fleet:capacity), not by name. On a stack's first `pulumi up` there are none and the
Command exits 0: the ASGs are then created on this version, and the new-group health gate
(components/health_gate.py) waits for them to get healthy.

- `triggers=[launch_template_version]`: a new launch template version replaces the Command, which
  runs `create` again (a Command's create runs once otherwise); a re-run at an unchanged version is a no-op.
- The launching lifecycle hook of a group that converges at boot is the rollout's first step
  (`--launch-hook-heartbeat N`; `--no-launch-hook` deletes it), not a Pulumi resource after the ASGs:
  turning converge on gates the new version's very first instances, turning it off leaves none
  waiting on a hook nothing completes. Converge on or off changes the user data, so the launch
  template gets a new version and the rollout runs; a changed heartbeat alone changes the command
  line, and pulumi-command runs `create` again for an update that has no `update` command.
- Like BakedImage's Command it runs the project's virtualenv python by a relative path and sets no
  `dir` and no `environment` (components/project_python.py).

The command line is built inside `apply` from plain values; only a string is computed there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import pulumi
import pulumi_command as command

from components.project_python import python_module_command
from fleet.ops import timing
from fleet.spec.model import Group


def rollout_command_line(project_dir: Path, group: str, stack: str, launch_template_id: str,
                         version: int | float | str, alarms: Iterable[str] = (), *, warmup: int | None = None,
                         bake_time: int = 300, timeout: int = 3600, rollback_timeout: int = 1800,
                         region: str | None = None, launch_hook_heartbeat: int | None = None,
                         no_launch_hook: bool = False) -> str:
    """`.venv/bin/python -m fleet.ops.rollout ...` with every value shell-quoted. `launch_hook_heartbeat`
    puts the launching lifecycle hook on both ASGs before the refreshes, `no_launch_hook` deletes it."""
    argv = ["--group", group, "--stack", stack,
            "--launch-template-id", launch_template_id, "--version", str(int(float(version)))]
    for alarm in alarms:
        argv += ["--alarm", alarm]
    if warmup is not None:
        argv += ["--warmup", str(int(warmup))]
    argv += ["--bake-time", str(int(bake_time)), "--timeout", str(int(timeout)),
             "--rollback-timeout", str(int(rollback_timeout))]
    if region:
        argv += ["--region", region]
    if launch_hook_heartbeat is not None:
        argv += ["--launch-hook-heartbeat", str(int(launch_hook_heartbeat))]
    elif no_launch_hook:
        argv += ["--no-launch-hook"]
    return python_module_command(project_dir, "fleet.ops.rollout", argv)


@dataclass
class RolloutArgs:
    group: Group
    stack: str
    launch_template_id: pulumi.Input[str]
    launch_template_version: pulumi.Input[int]
    region: str
    project_dir: Path
    alarm_names: Sequence[pulumi.Input[str]] = ()
    launch_hook_heartbeat: int | None = None  # the group converges at boot: its hook; None: no hook
    after: Sequence[pulumi.Resource] = ()  # what the new instances boot from (the group's bundle objects)


class Rollout(pulumi.ComponentResource):
    command: command.local.Command

    def __init__(self, name: str, args: RolloutArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleet:rollout:Rollout", name, None, opts)

        group = args.group
        warmup = group.autoscale.timeout if group.autoscale else None

        def line(values: list) -> str:
            template_id, version, *alarms = values
            return rollout_command_line(args.project_dir, group.name, args.stack, template_id, version, alarms,
                                        warmup=warmup, bake_time=group.rollout.bake_time,
                                        timeout=timing.rollout_timeout(group),
                                        rollback_timeout=timing.rollback_timeout(group), region=args.region,
                                        launch_hook_heartbeat=args.launch_hook_heartbeat,
                                        no_launch_hook=args.launch_hook_heartbeat is None)

        create = pulumi.Output.all(args.launch_template_id, args.launch_template_version,
                                   *args.alarm_names).apply(line)
        self.command = command.local.Command(f"{name}-refresh", command.local.CommandArgs(
            create=create,
            triggers=[args.launch_template_version],
            add_previous_output_in_env=False,  # its output never comes back as environment variables
        ), opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)))
        self.register_outputs({"create": create})
