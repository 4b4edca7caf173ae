"""Health-gated rollout: move an ASG to one launch template version with an instance refresh, and wait.

Why not the provider's `instance_refresh` block: it switches the ASG to the new version first, so AWS
auto-rollback "rolls back" to the bad version, and it does not wait (PITFALLS 6). Here the refresh carries
DesiredConfiguration: the ASG keeps its old version until the refresh succeeds, AutoRollback returns to
it, alarms gate it, and launch-before-terminate (min 100 %, max 200 %) keeps full capacity meanwhile.

Run by the Rollout component's Command as `python -m fleet.ops.rollout ...` (see `main`): progress goes to
stderr, one JSON line last on stdout (PITFALLS 11), exit 1 with one line on failure so `pulumi up` fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterable

from botocore.exceptions import BotoCoreError, ClientError

from fleet.ops.aws import client as aws_client
from fleet.spec.names import health_alarm_prefix

ACTIVE = ("Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking")
FAILED = {
    "Failed": "failed",
    "Cancelled": "was cancelled",
    "RollbackSuccessful": "failed and was rolled back to the previous launch template version",
    "RollbackFailed": "failed and its rollback failed too, so the group may run mixed versions",
}


class RolloutError(Exception):
    """A rollout that did not reach its version; the message is one line, fit for `pulumi up` output."""


@dataclass(frozen=True)
class RolloutResult:
    asg: str
    version: int
    result: str  # "no-op" (already there) | "succeeded"
    refresh_id: str | None = None

    def as_json(self) -> dict:
        return asdict(self)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def roll(asg_name: str, launch_template_id: str, version: int | str, *, alarms: Iterable[str] = (),
         warmup: int | None = None, timeout: float = 1800, poll: float = 15, client=None,
         log: Callable[[str], None] = _stderr, sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic) -> RolloutResult:
    """Bring `asg_name` to `launch_template_id` at `version`, or raise RolloutError.

    No-op when the ASG is configured with that version and every instance runs it. A refresh that is
    already active is waited for (AWS allows one at a time, and starting a second would fail anyway),
    then the ASG is checked again. `timeout` covers the whole call; on timeout the refresh is left
    running (cancelling it would strand a half-replaced group) and the error says so.
    """
    autoscaling = client or aws_client("autoscaling")
    want = str(version)
    deadline = clock() + timeout
    waited = None
    while True:
        group = _group(autoscaling, asg_name)
        active = _active_refresh(autoscaling, asg_name)
        if active:
            log(f"{asg_name}: instance refresh {active['InstanceRefreshId']} is already {active['Status']}; "
                "waiting for it instead of starting another")
            waited = _wait(autoscaling, asg_name, active["InstanceRefreshId"],
                           deadline, timeout, poll, log, sleep, clock)
            group = _group(autoscaling, asg_name)
        if _runs(group, launch_template_id, want):
            if waited is None:
                log(f"{asg_name}: already on {launch_template_id} version {want}; nothing to do")
            return RolloutResult(asg_name, int(version), "no-op" if waited is None else "succeeded", waited)
        try:
            refresh_id = autoscaling.start_instance_refresh(
                AutoScalingGroupName=asg_name,
                Strategy="Rolling",
                DesiredConfiguration=_desired_configuration(group, launch_template_id, want),
                Preferences=_preferences(alarms, warmup),
            )["InstanceRefreshId"]
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") != "InstanceRefreshInProgress":
                raise
            if clock() >= deadline:
                raise RolloutError(f"{asg_name}: timed out after {timeout:g}s: another instance refresh kept "
                                   "the group busy") from None
            log(f"{asg_name}: another instance refresh started just now; waiting for it")
            sleep(poll)
            continue
        log(f"{asg_name}: started instance refresh {refresh_id} to {launch_template_id} version {want}")
        _wait(autoscaling, asg_name, refresh_id, deadline, timeout, poll, log, sleep, clock)
        return RolloutResult(asg_name, int(version), "succeeded", refresh_id)


def _group(autoscaling, asg_name: str) -> dict:
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])["AutoScalingGroups"]
    if not groups:
        raise RolloutError(f"no Auto Scaling group named {asg_name}")
    return groups[0]


def _active_refresh(autoscaling, asg_name: str) -> dict | None:
    refreshes = autoscaling.describe_instance_refreshes(AutoScalingGroupName=asg_name)["InstanceRefreshes"]
    return next((r for r in refreshes if r["Status"] in ACTIVE), None)


def _template_spec(group: dict) -> dict:
    mixed = group.get("MixedInstancesPolicy")
    if mixed:
        return mixed["LaunchTemplate"]["LaunchTemplateSpecification"]
    return group.get("LaunchTemplate") or {}


def _runs(group: dict, template_id: str, version: str) -> bool:
    """Configured with the version, and every instance that is not on its way out runs it."""
    spec = _template_spec(group)
    if (spec.get("LaunchTemplateId"), spec.get("Version")) != (template_id, version):
        return False
    for instance in group.get("Instances", []):
        if instance.get("LifecycleState", "").startswith("Terminat"):
            continue
        lt = instance.get("LaunchTemplate") or {}
        if (lt.get("LaunchTemplateId"), lt.get("Version")) != (template_id, version):
            return False
    return True


def _desired_configuration(group: dict, template_id: str, version: str) -> dict:
    """The spot ASG has a mixed instances policy: a LaunchTemplate-only desired configuration would not
    describe it, so its policy is sent back whole with only the template version changed."""
    spec = {"LaunchTemplateId": template_id, "Version": version}
    mixed = group.get("MixedInstancesPolicy")
    if not mixed:
        return {"LaunchTemplate": spec}
    launch_template = dict(mixed["LaunchTemplate"], LaunchTemplateSpecification=spec)
    if "Overrides" in launch_template:
        launch_template["Overrides"] = [
            dict(o, LaunchTemplateSpecification=spec)
            if (o.get("LaunchTemplateSpecification") or {}).get("LaunchTemplateId") == template_id else o
            for o in launch_template["Overrides"]
        ]
    policy = {"LaunchTemplate": launch_template}
    if "InstancesDistribution" in mixed:
        policy["InstancesDistribution"] = mixed["InstancesDistribution"]
    return {"MixedInstancesPolicy": policy}


def _preferences(alarms: Iterable[str], warmup: int | None) -> dict:
    prefs = {
        "AutoRollback": True,
        "MinHealthyPercentage": 100,
        "MaxHealthyPercentage": 200,
        "SkipMatching": True,
    }
    if warmup is not None:
        prefs["InstanceWarmup"] = int(warmup)
    alarms = list(alarms)
    if alarms:
        prefs["AlarmSpecification"] = {"Alarms": alarms}
    return prefs


def _wait(autoscaling, asg_name, refresh_id, deadline, timeout, poll, log, sleep, clock) -> str:
    """Poll one refresh until Successful (return its id) or an end state (raise), logging changes."""
    last = None
    while True:
        found = autoscaling.describe_instance_refreshes(
            AutoScalingGroupName=asg_name, InstanceRefreshIds=[refresh_id])["InstanceRefreshes"]
        if not found:
            raise RolloutError(f"{asg_name}: instance refresh {refresh_id} has disappeared")
        refresh = found[0]
        status, percent = refresh["Status"], refresh.get("PercentageComplete", 0)
        reason = " ".join(str(refresh.get("StatusReason") or "").split())
        if (status, percent, reason) != last:
            log(f"{asg_name}: instance refresh {refresh_id} {status}, {percent}% complete"
                + (f" ({reason})" if reason else ""))
            last = (status, percent, reason)
        if status == "Successful":
            return refresh_id
        if status in FAILED:
            raise RolloutError(f"{asg_name}: instance refresh {refresh_id} {FAILED[status]}: "
                               f"{reason or 'no reason given'}")
        if clock() >= deadline:
            raise RolloutError(
                f"{asg_name}: timed out after {timeout:g}s waiting for instance refresh {refresh_id} "
                f"({status}, {percent}% complete); it is still running, not cancelled: follow it with "
                f"`aws autoscaling describe-instance-refreshes --auto-scaling-group-name {asg_name} "
                f"--instance-refresh-ids {refresh_id}`")
        sleep(poll)


def discover_alarms(cloudwatch, group: str, stack: str) -> list[str]:
    """The group's health alarms, found by `health_alarm_prefix`."""
    prefix = health_alarm_prefix(group, stack)
    pages = cloudwatch.get_paginator("describe_alarms").paginate(
        AlarmNamePrefix=prefix, AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    return [a["AlarmName"] for page in pages for a in page.get("MetricAlarms", []) + page.get("CompositeAlarms", [])]


def find_group_asgs(autoscaling, group: str, stack: str) -> dict[str | None, list[dict]]:
    """The group's ASGs in the stack by their fleet:capacity tag (tags fleet:group and fleet:stack)."""
    pages = autoscaling.get_paginator("describe_auto_scaling_groups").paginate(Filters=[
        {"Name": "tag:fleet:group", "Values": [group]},
        {"Name": "tag:fleet:stack", "Values": [stack]},
    ])
    by_capacity: dict[str | None, list[dict]] = {}
    for g in (g for page in pages for g in page["AutoScalingGroups"]):
        capacity = next((t["Value"] for t in g.get("Tags", []) if t["Key"] == "fleet:capacity"), None)
        by_capacity.setdefault(capacity, []).append(g)
    return by_capacity


def deploy(group: str, stack: str, *, region: str | None = None, endpoint_url: str | None = None,
           alarms: Iterable[str] = (), warmup: int | None = None, timeout: float = 1800, poll: float = 15,
           log: Callable[[str], None] = _stderr, sleep: Callable[[float], None] = time.sleep,
           clock: Callable[[], float] = time.monotonic,
           autoscaling=None, ec2=None, cloudwatch=None) -> list[RolloutResult]:
    """Roll a group's ASGs to their launch template's latest version: on-demand first as the canary,
    then spot. A canary failure raises before spot is touched, so most capacity stays on the old version.

    ASGs are found by tags fleet:group and fleet:stack and ordered by fleet:capacity. Alarms are `alarms`
    plus those found by `discover_alarms`. `timeout` applies to each ASG.
    """
    autoscaling = autoscaling or aws_client("autoscaling", region=region, endpoint_url=endpoint_url)
    ec2 = ec2 or aws_client("ec2", region=region, endpoint_url=endpoint_url)
    cloudwatch = cloudwatch or aws_client("cloudwatch", region=region, endpoint_url=endpoint_url)

    by_capacity = find_group_asgs(autoscaling, group, stack)
    ordered = by_capacity.pop("on-demand", []) + by_capacity.pop("spot", [])
    for capacity, rest in by_capacity.items():
        log(f"{group}: skipping {[g['AutoScalingGroupName'] for g in rest]}: fleet:capacity={capacity!r}")
    if not ordered:
        raise RolloutError(f"no Auto Scaling groups tagged fleet:group={group} fleet:stack={stack}")

    gate = list(dict.fromkeys([*alarms, *discover_alarms(cloudwatch, group, stack)]))
    log(f"{group}: alarms gating the rollout: {', '.join(gate) if gate else 'none'}")
    results = []
    for g in ordered:
        template_id = _template_spec(g).get("LaunchTemplateId")
        if not template_id:
            raise RolloutError(f"{g['AutoScalingGroupName']}: has no launch template (by id) to roll out")
        latest = ec2.describe_launch_templates(LaunchTemplateIds=[template_id])["LaunchTemplates"][0]
        results.append(roll(g["AutoScalingGroupName"], template_id, latest["LatestVersionNumber"], alarms=gate,
                            warmup=warmup, timeout=timeout, poll=poll, client=autoscaling, log=log, sleep=sleep,
                            clock=clock))
    return results


def main(argv: list[str] | None = None) -> int:
    """`python -m fleet.ops.rollout (--asg NAME | --group G --stack S --capacity C) --launch-template-id ID
    --version N ...`: what the Rollout Command runs.

    With --group/--stack/--capacity the ASG is found by its tags, which lets the Command run BEFORE
    Pulumi updates the ASG (components/rollout.py says why); when no such ASG exists yet (the stack's
    first `pulumi up`), there is nothing to roll: the ASG is created on this version. Exit 0 then.
    """
    parser = argparse.ArgumentParser(prog="python -m fleet.ops.rollout",
                                     description="Instance-refresh one ASG to a launch template version and wait.")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--asg", help="the ASG's name")
    target.add_argument("--group", help="find the ASG by tags fleet:group (with --stack and --capacity)")
    parser.add_argument("--stack")
    parser.add_argument("--capacity", choices=("on-demand", "spot"))
    parser.add_argument("--launch-template-id", required=True)
    parser.add_argument("--version", required=True, type=int)
    parser.add_argument("--alarm", action="append", default=[], help="CloudWatch alarm that stops and rolls back")
    parser.add_argument("--warmup", type=int, help="instance warmup in seconds (default: the ASG's)")
    parser.add_argument("--region")
    parser.add_argument("--endpoint-url")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--poll", type=float, default=15)
    args = parser.parse_args(argv)
    if args.group and not (args.stack and args.capacity):
        parser.error("--group needs --stack and --capacity")
    try:
        autoscaling = aws_client("autoscaling", region=args.region, endpoint_url=args.endpoint_url)
        asg = args.asg
        if asg is None:
            found = find_group_asgs(autoscaling, args.group, args.stack).get(args.capacity, [])
            if len(found) > 1:
                raise RolloutError(f"{len(found)} ASGs tagged fleet:group={args.group} fleet:stack={args.stack} "
                                   f"fleet:capacity={args.capacity}: {[g['AutoScalingGroupName'] for g in found]}")
            if not found:
                print(json.dumps({"asg": None, "version": args.version, "result": "no-op", "refresh_id": None,
                                  "reason": "no ASG yet: it is created on this version"}), flush=True)
                return 0
            asg = found[0]["AutoScalingGroupName"]
        result = roll(asg, args.launch_template_id, args.version, alarms=args.alarm, warmup=args.warmup,
                      timeout=args.timeout, poll=args.poll, client=autoscaling)
    except (RolloutError, ClientError, BotoCoreError) as e:
        print(f"rollout failed: {' '.join(str(e).split())}", file=sys.stderr, flush=True)
        return 1
    print(json.dumps(result.as_json()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
