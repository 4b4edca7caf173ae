"""New-group health gate: wait until a group's ASGs have node_min's share of instances healthy.

A new group (the stack's first `pulumi up`, or a group added to nodes.yaml) has no rollout to gate it:
its ASGs are created on the new version directly, and `wait_for_capacity_timeout = "0"` lets
`pulumi up` succeed with zero healthy instances. The HealthGate Command (components/health_gate.py)
runs this right after the ASGs are created, and `fleet deploy` runs it last.

Healthy means: LifecycleState InService and HealthStatus Healthy in the ASG, and, for http groups,
`healthy` in the target group. Each ASG needs its MinSize (its share of node_min) of those. The bound
is fleet/ops/timing.py's gate_timeout (launch + autoscale.timeout + health check, plus half).
On timeout: one line naming the group, each ASG short of its share and the last scaling activity of
the first one, e.g. `group www: <asg> 0/2 healthy after 600 s; last activity: Failed: Launching a new
EC2 instance. Status Reason: ...`; exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from fleet.ops.aws import client as aws_client
from fleet.ops.aws import failure_line, is_aws_error


class GateError(Exception):
    """The group did not get healthy in time; the message is one line."""


@dataclass(frozen=True)
class AsgHealth:
    asg: str
    healthy: int
    need: int

    @property
    def met(self) -> bool:
        return self.healthy >= self.need

    def __str__(self) -> str:
        return f"{self.asg} {self.healthy}/{self.need} healthy"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def asg_health(autoscaling, elbv2, asg_names: Sequence[str], target_group_arn: str | None) -> list[AsgHealth]:
    """Each ASG's healthy count against its MinSize."""
    groups = {g["AutoScalingGroupName"]: g for g in autoscaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=list(asg_names))["AutoScalingGroups"]}
    in_target_group = None
    if target_group_arn:
        in_target_group = {d["Target"]["Id"] for d in elbv2.describe_target_health(
            TargetGroupArn=target_group_arn)["TargetHealthDescriptions"]
            if d.get("TargetHealth", {}).get("State") == "healthy"}
    health = []
    for name in asg_names:
        g = groups.get(name)
        if g is None:
            raise GateError(f"no Auto Scaling group named {name}")
        ok = [i["InstanceId"] for i in g.get("Instances", [])
              if i.get("LifecycleState") == "InService" and i.get("HealthStatus") == "Healthy"]
        if in_target_group is not None:
            ok = [i for i in ok if i in in_target_group]
        health.append(AsgHealth(name, len(ok), int(g.get("MinSize", 0))))
    return health


def last_activity(autoscaling, asg_name: str) -> str:
    """The ASG's newest scaling activity as `Status: description (message)`, or `none`."""
    activities = autoscaling.describe_scaling_activities(AutoScalingGroupName=asg_name, MaxRecords=1)["Activities"]
    if not activities:
        return "none"
    a = activities[0]
    text = f"{a.get('StatusCode', '?')}: {a.get('Description', '')}"
    if a.get("StatusMessage"):
        text += f" ({a['StatusMessage']})"
    return " ".join(text.split())


def wait_healthy(group: str, asg_names: Sequence[str], *, target_group_arn: str | None = None,
                 timeout: float = 600, poll: float = 15, autoscaling=None, elbv2=None,
                 log: Callable[[str], None] = _stderr, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> list[AsgHealth]:
    """Poll until every ASG has its MinSize healthy (return the counts) or raise GateError at `timeout`."""
    autoscaling = autoscaling or aws_client("autoscaling")
    elbv2 = elbv2 if elbv2 is not None or not target_group_arn else aws_client("elbv2")
    deadline = clock() + timeout
    last = None
    while True:
        health = asg_health(autoscaling, elbv2, asg_names, target_group_arn)
        summary = ", ".join(map(str, health))
        if summary != last:
            log(f"group {group}: {summary}")
            last = summary
        if all(h.met for h in health):
            return health
        if clock() >= deadline:
            short = [h for h in health if not h.met]
            raise GateError(f"group {group}: {', '.join(map(str, short))} after {timeout:g} s; "
                            f"last activity: {last_activity(autoscaling, short[0].asg)}")
        sleep(poll)


def main(argv: list[str] | None = None) -> int:
    """`python -m fleet.ops.gate --group G --asg NAME [--asg NAME] [--target-group-arn ARN] --timeout S`:
    what the HealthGate Command runs. Exit 0 with one JSON line, or 1 with one line on stderr."""
    parser = argparse.ArgumentParser(prog="python -m fleet.ops.gate",
                                     description="Wait until a new group's ASGs have their MinSize healthy.")
    parser.add_argument("--group", required=True)
    parser.add_argument("--asg", action="append", required=True)
    parser.add_argument("--target-group-arn")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--poll", type=float, default=15)
    parser.add_argument("--region")
    parser.add_argument("--endpoint-url")
    args = parser.parse_args(argv)
    try:
        autoscaling = aws_client("autoscaling", region=args.region, endpoint_url=args.endpoint_url)
        elbv2 = aws_client("elbv2", region=args.region, endpoint_url=args.endpoint_url) \
            if args.target_group_arn else None
        health = wait_healthy(args.group, args.asg, target_group_arn=args.target_group_arn, timeout=args.timeout,
                              poll=args.poll, autoscaling=autoscaling, elbv2=elbv2)
    except Exception as e:  # the Command's one line in `pulumi up`: AWS's failures say what to do
        if not isinstance(e, GateError) and not is_aws_error(e):
            raise
        line = failure_line(e) if is_aws_error(e) else " ".join(str(e).split())
        print(f"health gate failed: {line}", file=sys.stderr, flush=True)
        return 1
    print(json.dumps({"group": args.group, "healthy": {h.asg: [h.healthy, h.need] for h in health}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
