"""Health-gated rollout of a node group's spot/on-demand pair to one launch template version.

Why not the provider's `instance_refresh` block: it switches the ASG to the new version first, so AWS
auto-rollback "rolls back" to the bad version, and it does not wait. Here each refresh
carries DesiredConfiguration: the ASG keeps its old version until the refresh succeeds, AutoRollback
returns to it, alarms gate it, and launch-before-terminate (min 100 %, max 200 %) keeps full capacity.

One rollout per group (`roll_pair`), in three steps:
1. canary: the on-demand ASG refreshes, with BakeTime = `rollout.bake_time`;
2. soak: that BakeTime. AWS keeps the refresh in `Baking` and keeps watching the health alarms
   (AlarmSpecification) until it ends, and an alarm during it fails the refresh and rolls it back;
3. spot: the spot ASG refreshes, alarm-gated, no bake (the canary already soaked this version).
If any step fails, raises, or runs out of time, both ASGs end on the previous version: the refresh in
flight by AWS's rollback (AutoRollback, or RollbackInstanceRefresh on a timeout), and a canary that had
already finished by a refresh back to the version it had before. The error is one line naming the
group, the step and the reason.

Refresh preferences chosen, and why:
- BakeTime (not a hand-written sleep) is the soak: AWS itself watches the alarms during it and rolls the
  canary back, so an alarm is acted on even if this process dies mid-soak.
- CheckpointPercentages/CheckpointDelay are not used: a checkpoint pauses one ASG part-way through its
  own refresh, but the canary here is a whole ASG (the on-demand one), and the soak must come after it
  is fully replaced, which is BakeTime; a checkpoint in the spot refresh would soak the same version a
  second time. Checkpoints also need a CheckpointDelay, which AWS defaults to an hour.
- A refresh this rollout did not start (say, left by a run that timed out) is waited for, but its
  outcome is not taken as ours: afterwards the ASG is read again and our own refresh starts (with
  SkipMatching it replaces only what is not on the version yet, and the canary's soak still runs).

The launching lifecycle hook (groups that converge at boot) belongs to the rollout, not to a Pulumi
resource after it: before any refresh, `roll_pair` puts the hook on both ASGs (or deletes it when the
group no longer converges), so the new version's first instances are gated by it (converge turned on)
and are not left waiting on a hook nothing completes (converge turned off). On a failure the hooks go
back to what they were before the rollout as soon as AWS starts rolling back, so the previous
version's instances launch as they did before.

A version that failed is remembered on both ASGs (tag `fleet:rollout-failed`: template, version,
when, why). The next run for that same version (the next `pulumi up` re-runs the Command) starts
nothing and fails with one line saying the group is still on its previous version and why, instead
of running the bad canary again; `fleet deploy` retries it on purpose, and any success clears the tag.
A restore goes back to the launch template id the ASG had, not the one rolled out: a replaced
template has a new id, and its version numbers start again at 1.

Run by the Rollout component's Command as `python -m fleet.ops.rollout ...` (see `main`): progress goes to
stderr, one JSON line last on stdout (a Command's stdout shows in diffs), exit 1 with one line on
failure so `pulumi up` fails.
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
from fleet.ops.aws import failure_line, is_aws_error
from fleet.ops.gate import GateError, wait_healthy
from fleet.spec.names import health_alarm_prefix
from fleet.spec.readiness import LAUNCH_HOOK_NAME

ACTIVE = ("Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking")
FAILED = {
    "Failed": "failed",
    "Cancelled": "was cancelled",
    "RollbackSuccessful": "failed and was rolled back to the previous launch template version",
    "RollbackFailed": "failed and its rollback failed too, so the group may run mixed versions",
}
SPOT, ON_DEMAND = "spot", "on-demand"
CANARY, SOAK = "canary", "soak"
# SpotInstancePools is "Valid only when the SpotAllocationStrategy is lowest-price" (botocore's model of
# InstancesDistribution); DescribeAutoScalingGroups returns it for other strategies too (default 2), and a
# DesiredConfiguration that carries it is rejected. tests/test_rollout.py reads the model to keep this true.
POOLS_STRATEGY = "lowest-price"
FAILED_TAG = "fleet:rollout-failed"  # "<template id>:<version> <UTC time> <why>" on both ASGs of the group
TAG_VALUE_LIMIT = 256  # Auto Scaling's limit on a tag value
LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"


class RolloutError(Exception):
    """A rollout that did not reach its version; the message is one line, fit for `pulumi up` output."""


class RefreshFailed(RolloutError):
    """One refresh ended badly. `status` is its end state, `last` the last state seen before that
    (`Baking` when the soak failed), `rolled_back` whether AWS put the ASG back on its old version."""

    def __init__(self, message: str, *, status: str, last: str | None = None):
        super().__init__(message)
        self.status, self.last = status, last

    @property
    def rolled_back(self) -> bool:
        return self.status == "RollbackSuccessful"


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


@dataclass
class Waiter:
    """The clock, sleep, log and poll interval every wait here shares (tests pass fakes)."""

    autoscaling: object
    poll: float = 15
    log: Callable[[str], None] = _stderr
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    on_rollback: Callable[[str], None] | None = None  # called with the ASG's name when AWS starts rolling back
    wall: Callable[[], float] = time.time  # the time written into the failure tag


def roll(asg_name: str, launch_template_id: str, version: int | str, *, alarms: Iterable[str] = (),
         warmup: int | None = None, bake_time: int = 0, timeout: float = 1800,
         rollback_timeout: float | None = None, poll: float = 15, client=None,
         log: Callable[[str], None] = _stderr, sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic) -> RolloutResult:
    """Bring `asg_name` to `launch_template_id` at `version`, or raise RolloutError.

    No-op when the ASG is configured with that version, every instance runs it and no refresh was in
    flight. A refresh that is already active is waited for (AWS allows one at a time) but not taken as
    ours: the ASG is read again and our own refresh starts. `timeout` covers the whole call; when it runs
    out, the refresh is rolled back (RollbackInstanceRefresh) and waited for up to `rollback_timeout`
    (default: `timeout`), then RefreshFailed says so.
    """
    w = Waiter(client or aws_client("autoscaling"), poll, log, sleep, clock)
    return _roll(w, asg_name, launch_template_id, str(version), alarms=list(alarms), warmup=warmup,
                 bake_time=bake_time, deadline=clock() + timeout, timeout=timeout,
                 rollback_timeout=timeout if rollback_timeout is None else rollback_timeout)


def _roll(w: Waiter, asg_name: str, template_id: str, want: str, *, alarms: list[str], warmup: int | None,
          bake_time: int, deadline: float, timeout: float, rollback_timeout: float,
          force: bool = False) -> RolloutResult:
    """`force`: start our own refresh even if the group looks done (a foreign refresh just ended)."""
    foreign = wait_foreign(w, asg_name, deadline, timeout) or force
    while True:
        group = _group(w.autoscaling, asg_name)
        if _runs(group, template_id, want) and not foreign:
            w.log(f"{asg_name}: already on {template_id} version {want}; nothing to do")
            return RolloutResult(asg_name, int(want), "no-op")
        try:
            refresh_id = w.autoscaling.start_instance_refresh(
                AutoScalingGroupName=asg_name,
                Strategy="Rolling",
                DesiredConfiguration=_desired_configuration(group, template_id, want),
                Preferences=_preferences(alarms, warmup, bake_time),
            )["InstanceRefreshId"]
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") != "InstanceRefreshInProgress":
                raise
            w.log(f"{asg_name}: another instance refresh started just now; waiting for it")
            foreign = wait_foreign(w, asg_name, deadline, timeout) or foreign
            continue
        w.log(f"{asg_name}: started instance refresh {refresh_id} to {template_id} version {want}"
              + (f", then a {bake_time}s soak with the alarms watched" if bake_time else ""))
        try:
            _wait(w, asg_name, refresh_id, deadline, timeout)
        except _TimedOut as t:
            raise _roll_back_after_timeout(w, asg_name, refresh_id, t, rollback_timeout) from None
        return RolloutResult(asg_name, int(want), "succeeded", refresh_id)


def restore(asg_name: str, template_id: str, version: str, *, timeout: float, waiter: Waiter) -> str:
    """Refresh a finished ASG back to `version` (its version before this rollout): no alarm gate (the
    alarms may be firing because of the bad version) and no AutoRollback (rolling back a rollback would
    return to the bad version). Returns the refresh id or raises RolloutError."""
    w = waiter
    deadline = w.clock() + timeout
    wait_foreign(w, asg_name, deadline, timeout)
    group = _group(w.autoscaling, asg_name)
    refresh_id = w.autoscaling.start_instance_refresh(
        AutoScalingGroupName=asg_name, Strategy="Rolling",
        DesiredConfiguration=_desired_configuration(group, template_id, version),
        Preferences={"AutoRollback": False, "MinHealthyPercentage": 100, "MaxHealthyPercentage": 200,
                     "SkipMatching": True},
    )["InstanceRefreshId"]
    w.log(f"{asg_name}: started instance refresh {refresh_id} back to {template_id} version {version}")
    try:
        _wait(w, asg_name, refresh_id, deadline, timeout)
    except _TimedOut as t:
        raise RolloutError(f"refresh {refresh_id} back to version {version} still {t.status} after "
                           f"{timeout:g}s") from None
    return refresh_id


class _TimedOut(Exception):
    def __init__(self, status: str, percent: int):
        self.status, self.percent = status, percent


def _roll_back_after_timeout(w: Waiter, asg_name: str, refresh_id: str, t: _TimedOut,
                             rollback_timeout: float) -> RefreshFailed:
    """The forward bound ran out: ask AWS to roll the refresh back and wait for that."""
    what = f"{asg_name}: timed out waiting for instance refresh {refresh_id} ({t.status}, {t.percent}% complete)"
    try:
        w.autoscaling.rollback_instance_refresh(AutoScalingGroupName=asg_name)
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code")
        return RefreshFailed(f"{what}; its rollback could not start ({code}): follow it with "
                             f"`aws autoscaling describe-instance-refreshes --auto-scaling-group-name {asg_name}`",
                             status="RollbackFailed", last=t.status)
    w.log(f"{what}; rolling it back")
    try:
        _wait(w, asg_name, refresh_id, w.clock() + rollback_timeout, rollback_timeout)
    except RefreshFailed as f:
        if f.rolled_back:
            return RefreshFailed(f"{what}; rolled back to the previous launch template version",
                                 status=f.status, last=t.status)
        return RefreshFailed(f"{what}; then {f}", status=f.status, last=t.status)
    except _TimedOut as again:
        return RefreshFailed(f"{what}; its rollback is still {again.status} after {rollback_timeout:g}s",
                             status="RollbackFailed", last=t.status)
    return RefreshFailed(f"{what}; it then succeeded while being rolled back", status="Successful",
                         last=t.status)


def wait_foreign(w: Waiter, asg_name: str, deadline: float, timeout: float) -> str | None:
    """Wait out a refresh that is already active on the ASG (not ours); its outcome is only logged.
    Returns its id, or None when none was active."""
    active = _active_refresh(w.autoscaling, asg_name)
    if not active:
        return None
    rid = active["InstanceRefreshId"]
    w.log(f"{asg_name}: instance refresh {rid} (not started by this rollout) is {active['Status']}; "
          "waiting for it to end, then starting our own")
    try:
        _wait(w, asg_name, rid, deadline, timeout, foreign=True)
        w.log(f"{asg_name}: instance refresh {rid} ended Successful; checking the group again")
    except RefreshFailed as f:
        w.log(f"{asg_name}: instance refresh {rid} ended {f.status}; checking the group again")
    except _TimedOut as t:
        raise RolloutError(f"{asg_name}: timed out after {timeout:g}s waiting for instance refresh {rid} that "
                           f"this rollout did not start ({t.status}, {t.percent}% complete)") from None
    return rid


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
    describe it, so its policy is sent back with only the template version changed, minus what AWS
    rejects there (SpotInstancePools for strategies other than lowest-price)."""
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
        distribution = dict(mixed["InstancesDistribution"])
        if distribution.get("SpotAllocationStrategy", POOLS_STRATEGY) != POOLS_STRATEGY:
            distribution.pop("SpotInstancePools", None)
        policy["InstancesDistribution"] = distribution
    return {"MixedInstancesPolicy": policy}


def _preferences(alarms: Iterable[str], warmup: int | None, bake_time: int = 0) -> dict:
    prefs = {
        "AutoRollback": True,
        "MinHealthyPercentage": 100,
        "MaxHealthyPercentage": 200,
        "SkipMatching": True,
    }
    if warmup is not None:
        prefs["InstanceWarmup"] = int(warmup)
    if bake_time:
        prefs["BakeTime"] = int(bake_time)
    alarms = list(alarms)
    if alarms:
        prefs["AlarmSpecification"] = {"Alarms": alarms}
    return prefs


def _wait(w: Waiter, asg_name: str, refresh_id: str, deadline: float, timeout: float, *,
          foreign: bool = False) -> str:
    """Poll one refresh until Successful (return its id), an end state (RefreshFailed) or the deadline
    (_TimedOut), logging every change. A rollback of a refresh that is ours (not `foreign`) is told to
    `w.on_rollback` as soon as it is seen."""
    last, before = None, None
    while True:
        found = w.autoscaling.describe_instance_refreshes(
            AutoScalingGroupName=asg_name, InstanceRefreshIds=[refresh_id])["InstanceRefreshes"]
        if not found:
            raise RefreshFailed(f"{asg_name}: instance refresh {refresh_id} has disappeared", status="Failed",
                                last=before)
        refresh = found[0]
        status, percent = refresh["Status"], refresh.get("PercentageComplete", 0)
        reason = " ".join(str(refresh.get("StatusReason") or "").split())
        if (status, percent, reason) != last:
            w.log(f"{asg_name}: instance refresh {refresh_id} {status}, {percent}% complete"
                  + (f" ({reason})" if reason else ""))
            if last is not None and last[0] != status and last[0] != "RollbackInProgress":
                before = last[0]
            last = (status, percent, reason)
        if status in ("RollbackInProgress", "RollbackSuccessful") and w.on_rollback is not None and not foreign:
            w.on_rollback(asg_name)
        if status == "Successful":
            return refresh_id
        if status in FAILED:
            rollback = " ".join(str((refresh.get("RollbackDetails") or {}).get("RollbackReason") or "").split())
            raise RefreshFailed(f"{asg_name}: instance refresh {refresh_id} {FAILED[status]}: "
                                f"{reason or rollback or 'no reason given'}", status=status, last=before)
        if w.clock() >= deadline:
            raise _TimedOut(status, percent)
        w.sleep(w.poll)


@dataclass(frozen=True)
class PairMember:
    capacity: str
    asg: str
    previous: str  # the launch template version the ASG was configured with before this rollout
    foreign: bool = False  # a refresh we did not start was waited out: start our own regardless
    previous_template: str = ""  # the launch template id it was configured with ("": the one rolled out)
    failed: str = ""  # its FAILED_TAG value, if a rollout failed on it before


@dataclass(frozen=True)
class LaunchHook:
    """What a group's launching lifecycle hook must be during its rollout: present with `heartbeat`
    seconds (the group converges at boot), or absent (None)."""

    heartbeat: int | None


def read_launch_hook(autoscaling, asg_name: str) -> dict | None:
    """The ASG's launching hook as DescribeLifecycleHooks gives it, or None."""
    hooks = autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=asg_name,
                                                 LifecycleHookNames=[LAUNCH_HOOK_NAME])["LifecycleHooks"]
    return hooks[0] if hooks else None


def put_launch_hook(autoscaling, asg_name: str, heartbeat: int, default_result: str = "ABANDON") -> None:
    """PutLifecycleHook (an upsert): new instances wait in Pending:Wait until the boot program completes it."""
    autoscaling.put_lifecycle_hook(LifecycleHookName=LAUNCH_HOOK_NAME, AutoScalingGroupName=asg_name,
                                   LifecycleTransition=LAUNCHING, HeartbeatTimeout=int(heartbeat),
                                   DefaultResult=default_result)


def delete_launch_hook(autoscaling, asg_name: str) -> None:
    autoscaling.delete_lifecycle_hook(LifecycleHookName=LAUNCH_HOOK_NAME, AutoScalingGroupName=asg_name)


def set_launch_hook(w: Waiter, asg_name: str, heartbeat: int | None, current: dict | None) -> None:
    """Make the ASG's launching hook `heartbeat` (None: no hook), given what it is now; no call when it
    already is."""
    if heartbeat is None:
        if current is not None:
            delete_launch_hook(w.autoscaling, asg_name)
            w.log(f"{asg_name}: launching lifecycle hook {LAUNCH_HOOK_NAME} deleted (the group no longer "
                  "converges at boot)")
        return
    if current is not None and (current.get("HeartbeatTimeout"), current.get("DefaultResult"),
                                current.get("LifecycleTransition")) == (heartbeat, "ABANDON", LAUNCHING):
        return
    put_launch_hook(w.autoscaling, asg_name, heartbeat)
    w.log(f"{asg_name}: launching lifecycle hook {LAUNCH_HOOK_NAME} put, heartbeat {heartbeat}s")


def _restore_launch_hook(w: Waiter, asg_name: str, before: dict | None, now: int | None) -> str:
    """Put the hook back as it was before the rollout ("" when it already is); a failure is reported, not
    raised: the rollback must go on."""
    try:
        if before is None:
            set_launch_hook(w, asg_name, None, {} if now is not None else None)
        elif (before.get("HeartbeatTimeout"), before.get("DefaultResult")) != (now, "ABANDON"):
            put_launch_hook(w.autoscaling, asg_name, before["HeartbeatTimeout"], before.get("DefaultResult", "ABANDON"))
            w.log(f"{asg_name}: launching lifecycle hook {LAUNCH_HOOK_NAME} put back, heartbeat "
                  f"{before['HeartbeatTimeout']}s")
    except (ClientError, BotoCoreError) as e:
        return f"; putting back {asg_name}'s launching lifecycle hook FAILED: {' '.join(str(e).split())}"
    return ""


def failed_tag_value(template_id: str, version: str, reason: str, when: float) -> str:
    """FAILED_TAG's value, within Auto Scaling's tag value limit."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
    return f"{template_id}:{version} {stamp} {' '.join(reason.split())}"[:TAG_VALUE_LIMIT]


def mark_failed(autoscaling, asg_names: Iterable[str], value: str) -> None:
    """CreateOrUpdateTags FAILED_TAG on the ASGs (not propagated to instances)."""
    autoscaling.create_or_update_tags(Tags=[
        {"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": FAILED_TAG, "Value": value,
         "PropagateAtLaunch": False} for name in asg_names])


def clear_failed(autoscaling, asg_names: Iterable[str]) -> None:
    autoscaling.delete_tags(Tags=[{"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": FAILED_TAG}
                                  for name in asg_names])


def _failed_for(member: PairMember, template_id: str, version: str) -> str | None:
    """The member's failure tag, when it is about this very template version."""
    head, _, rest = member.failed.partition(" ")
    return rest if head == f"{template_id}:{version}" else None


def roll_pair(group: str, members: list[PairMember], template_id: str, version: int | str, *,
              alarms: Iterable[str] = (), warmup: int | None = None, bake_time: int = 300,
              timeout: float = 3600, rollback_timeout: float = 1800, waiter: Waiter,
              launch_hook: LaunchHook | None = None) -> list[RolloutResult]:
    """The launching hook first (`launch_hook`; None leaves it as it is), then the canary (on-demand, with
    the soak as its BakeTime), then spot; on any failure both ASGs end on their previous version and
    launching hook (module docstring) and RolloutError says `group G: step S: reason` on one line.
    `members` are on-demand first; `timeout` bounds the forward steps together."""
    w, want, alarms = waiter, str(version), list(alarms)
    deadline = w.clock() + timeout
    done: list[PairMember] = []
    foreign = {m.asg for m in members if getattr(m, "foreign", False)}
    results: list[RolloutResult] = []
    hooks_before: dict[str, dict | None] = {}
    put_back: list[str] = []

    def hooks_back(_asg: str = "") -> None:
        """Once: the launching hooks as they were, before any instance of the previous version launches."""
        if launch_hook is None or put_back:
            return
        put_back.append("".join(_restore_launch_hook(w, m.asg, hooks_before[m.asg], launch_hook.heartbeat)
                                for m in members))

    step = "launch hook"
    try:
        if launch_hook is not None:
            hooks_before.update({m.asg: read_launch_hook(w.autoscaling, m.asg) for m in members})
            for m in members:
                set_launch_hook(w, m.asg, launch_hook.heartbeat, hooks_before[m.asg])
        w.on_rollback = hooks_back
        for m in members:
            canary = m.capacity == ON_DEMAND
            step = m.capacity if not canary else CANARY
            results.append(_roll(w, m.asg, template_id, want, alarms=alarms, warmup=warmup,
                                 bake_time=bake_time if canary else 0, deadline=deadline,
                                 timeout=timeout, rollback_timeout=rollback_timeout, force=m.asg in foreign))
            done.append(m)
    except (RolloutError, ClientError, BotoCoreError) as e:
        if step == CANARY and getattr(e, "last", None) == "Baking":
            step = SOAK
        reason = " ".join(str(e).split())
        if hooks_before:  # read: the hooks go back to it (AWS's rollback may have done so already)
            hooks_back()
            reason += put_back[0]
        if isinstance(e, RefreshFailed) and not e.rolled_back and e.status != "Successful":
            reason += _restore_in_flight(w, members[len(done)], template_id, want, rollback_timeout)
        for finished in reversed(done):
            reason += _restore_finished(w, finished, template_id, rollback_timeout)
        raise RolloutError(f"group {group}: step {step}: {reason}") from None
    finally:
        w.on_rollback = None
    return results


def _restore_in_flight(w: Waiter, m: PairMember, template_id: str, want: str, timeout: float) -> str:
    """AWS did not roll this ASG back (e.g. Failed without a rollback): refresh it back ourselves, if it
    changed version."""
    group = _group(w.autoscaling, m.asg)
    previous = m.previous_template or template_id
    spec = _template_spec(group)
    if (spec.get("LaunchTemplateId"), spec.get("Version")) == (previous, m.previous) and \
            _runs(group, previous, m.previous):
        return ""
    return _restore_finished(w, m, template_id, timeout)


def _restore_finished(w: Waiter, m: PairMember, template_id: str, timeout: float) -> str:
    """Refresh the ASG back to the template and version it had before (`m.previous_template`, which is not
    `template_id` when the template was replaced)."""
    if not m.previous:
        return f"; {m.capacity} ASG {m.asg} had no numbered version before: not restored"
    try:
        rid = restore(m.asg, m.previous_template or template_id, m.previous, timeout=timeout, waiter=w)
    except (RolloutError, ClientError, BotoCoreError) as e:
        return f"; restoring {m.capacity} ASG {m.asg} to version {m.previous} FAILED: {' '.join(str(e).split())}"
    return f"; {m.capacity} ASG {m.asg} restored to version {m.previous} (instance refresh {rid})"


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


def members_of(w: Waiter, group: str, stack: str, deadline: float, timeout: float) -> list[PairMember]:
    """The group's ASGs by tags, on-demand first, each with the version it had before this rollout
    (read after any refresh we did not start has ended). Empty before the ASGs exist."""
    by_capacity = find_group_asgs(w.autoscaling, group, stack)
    members = []
    for capacity in (ON_DEMAND, SPOT):
        found = by_capacity.pop(capacity, [])
        if len(found) > 1:
            raise RolloutError(f"group {group}: {len(found)} ASGs tagged fleet:group={group} fleet:stack={stack} "
                               f"fleet:capacity={capacity}: {[g['AutoScalingGroupName'] for g in found]}")
        if found:
            name = found[0]["AutoScalingGroupName"]
            foreign = wait_foreign(w, name, deadline, timeout) is not None
            spec = _template_spec(_group(w.autoscaling, name) if foreign else found[0])
            failed = next((t["Value"] for t in found[0].get("Tags", []) if t["Key"] == FAILED_TAG), "")
            members.append(PairMember(capacity, name, str(spec.get("Version") or ""), foreign,
                                      str(spec.get("LaunchTemplateId") or ""), failed))
    for capacity, rest in by_capacity.items():
        w.log(f"{group}: skipping {[g['AutoScalingGroupName'] for g in rest]}: fleet:capacity={capacity!r}")
    return members


def roll_group(group: str, stack: str, template_id: str, version: int | str, *, alarms: Iterable[str] = (),
               warmup: int | None = None, bake_time: int = 300, timeout: float = 3600,
               rollback_timeout: float = 1800, waiter: Waiter, launch_hook: LaunchHook | None = None,
               retry: bool = False) -> list[RolloutResult]:
    """Find the group's pair by tags and `roll_pair` it; [] when it does not exist yet (the stack's first
    `pulumi up`: the ASGs are then created on this version, and the new-group gate checks them).

    A version that already failed on the pair is not rolled again unless `retry` (`fleet deploy`): the
    error says which version the group is on and why the new one was refused. A failure tags both ASGs
    with FAILED_TAG; a success removes the tag."""
    w, want = waiter, str(version)
    members = members_of(w, group, stack, w.clock() + timeout, timeout)
    if not members:
        w.log(f"{group}: no ASGs yet; they are created on version {version}")
        return []
    earlier = next((why for m in members if (why := _failed_for(m, template_id, want)) is not None), None)
    if earlier is not None and not retry:
        on = sorted({f"{m.previous_template or template_id} version {m.previous or '?'}" for m in members})
        raise RolloutError(
            f"group {group}: still on launch template {' and '.join(on)}: version {want} of {template_id} failed "
            f"its rollout at {earlier}; not rolled again. Change the group (a new version) and `pulumi up`, "
            f"or retry this version with `fleet deploy {group} --stack {stack}`")
    try:
        results = roll_pair(group, members, template_id, version, alarms=alarms, warmup=warmup,
                            bake_time=bake_time, timeout=timeout, rollback_timeout=rollback_timeout, waiter=w,
                            launch_hook=launch_hook)
    except RolloutError as e:
        try:
            mark_failed(w.autoscaling, [m.asg for m in members],
                        failed_tag_value(template_id, want, str(e).removeprefix(f"group {group}: "), w.wall()))
        except (ClientError, BotoCoreError) as tag_error:
            raise RolloutError(f"{e}; tagging the ASGs {FAILED_TAG} FAILED: {' '.join(str(tag_error).split())}") \
                from None
        raise
    if any(m.failed for m in members):
        clear_failed(w.autoscaling, [m.asg for m in members if m.failed])
    return results


def deploy(group: str, stack: str, *, region: str | None = None, endpoint_url: str | None = None,
           alarms: Iterable[str] = (), warmup: int | None = None, bake_time: int = 300, timeout: float = 3600,
           rollback_timeout: float = 1800, gate_timeout: float = 600, poll: float = 15,
           log: Callable[[str], None] = _stderr, sleep: Callable[[float], None] = time.sleep,
           clock: Callable[[], float] = time.monotonic, autoscaling=None, ec2=None, cloudwatch=None,
           elbv2=None, launch_hook: LaunchHook | None = None) -> list[RolloutResult]:
    """`fleet deploy`: roll a group's pair to its launch template's latest version now (`roll_group`), then
    the new-group health gate (fleet/ops/gate.py): each ASG's MinSize healthy within `gate_timeout`.
    An explicit deploy retries a version whose rollout failed before (`retry`).

    Alarms are `alarms` plus those found by `discover_alarms`.
    """
    autoscaling = autoscaling or aws_client("autoscaling", region=region, endpoint_url=endpoint_url)
    ec2 = ec2 or aws_client("ec2", region=region, endpoint_url=endpoint_url)
    cloudwatch = cloudwatch or aws_client("cloudwatch", region=region, endpoint_url=endpoint_url)
    w = Waiter(autoscaling, poll, log, sleep, clock)

    by_capacity = find_group_asgs(autoscaling, group, stack)
    pair = by_capacity.get(ON_DEMAND, []) + by_capacity.get(SPOT, [])
    if not pair:
        raise RolloutError(f"no Auto Scaling groups tagged fleet:group={group} fleet:stack={stack}")
    template_id = _template_spec(pair[0]).get("LaunchTemplateId")
    if not template_id:
        raise RolloutError(f"{pair[0]['AutoScalingGroupName']}: has no launch template (by id) to roll out")
    latest = ec2.describe_launch_templates(LaunchTemplateIds=[template_id])["LaunchTemplates"][0]
    gate = list(dict.fromkeys([*alarms, *discover_alarms(cloudwatch, group, stack)]))
    log(f"{group}: alarms gating the rollout: {', '.join(gate) if gate else 'none'}")
    results = roll_group(group, stack, template_id, latest["LatestVersionNumber"], alarms=gate, warmup=warmup,
                         bake_time=bake_time, timeout=timeout, rollback_timeout=rollback_timeout, waiter=w,
                         launch_hook=launch_hook, retry=True)
    target_group_arn = next(iter(pair[0].get("TargetGroupARNs") or []), None)
    if target_group_arn and elbv2 is None:
        elbv2 = aws_client("elbv2", region=region, endpoint_url=endpoint_url)
    try:
        wait_healthy(group, [g["AutoScalingGroupName"] for g in pair], target_group_arn=target_group_arn,
                     timeout=gate_timeout, poll=poll, autoscaling=autoscaling, elbv2=elbv2, log=log, sleep=sleep,
                     clock=clock)
    except GateError as e:
        raise RolloutError(f"health gate: {e}") from None
    return results


def main(argv: list[str] | None = None) -> int:
    """`python -m fleet.ops.rollout (--group G --stack S | --asg NAME) --launch-template-id ID --version N ...`:
    what the Rollout Command runs (one per group).

    With --group/--stack the pair is found by its tags, which lets the Command run BEFORE Pulumi updates
    the ASGs (components/rollout.py says why); when they do not exist yet (the stack's first `pulumi up`),
    there is nothing to roll: exit 0. --asg refreshes one ASG alone (no canary, no soak).
    """
    parser = argparse.ArgumentParser(prog="python -m fleet.ops.rollout",
                                     description="Roll a group's ASG pair to a launch template version and wait.")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--group", help="the node group: its ASGs are found by tags fleet:group and fleet:stack")
    target.add_argument("--asg", help="one ASG by name (no canary, no soak)")
    parser.add_argument("--stack")
    parser.add_argument("--launch-template-id", required=True)
    parser.add_argument("--version", required=True, type=int)
    parser.add_argument("--alarm", action="append", default=[], help="CloudWatch alarm that stops and rolls back")
    parser.add_argument("--warmup", type=int, help="instance warmup in seconds (default: the ASG's)")
    parser.add_argument("--bake-time", type=int, default=300, help="soak after the canary, alarms watched")
    parser.add_argument("--region")
    parser.add_argument("--endpoint-url")
    parser.add_argument("--timeout", type=float, default=3600, help="bound of the forward steps together")
    parser.add_argument("--rollback-timeout", type=float, default=1800, help="bound of each rollback step")
    parser.add_argument("--poll", type=float, default=15)
    hook = parser.add_mutually_exclusive_group()
    hook.add_argument("--launch-hook-heartbeat", type=int, metavar="SECONDS",
                      help="put the launching lifecycle hook on both ASGs first (the group converges at boot)")
    hook.add_argument("--no-launch-hook", action="store_true",
                      help="delete the launching lifecycle hook from both ASGs first (the group does not converge)")
    args = parser.parse_args(argv)
    if args.group and not args.stack:
        parser.error("--group needs --stack")
    try:
        autoscaling = aws_client("autoscaling", region=args.region, endpoint_url=args.endpoint_url)
        if args.asg:
            result = roll(args.asg, args.launch_template_id, args.version, alarms=args.alarm, warmup=args.warmup,
                          timeout=args.timeout, rollback_timeout=args.rollback_timeout, poll=args.poll,
                          client=autoscaling)
            print(json.dumps(result.as_json()), flush=True)
            return 0
        results = roll_group(args.group, args.stack, args.launch_template_id, args.version, alarms=args.alarm,
                             warmup=args.warmup, bake_time=args.bake_time, timeout=args.timeout,
                             rollback_timeout=args.rollback_timeout, waiter=Waiter(autoscaling, args.poll),
                             launch_hook=LaunchHook(args.launch_hook_heartbeat)
                             if args.launch_hook_heartbeat is not None or args.no_launch_hook else None)
    except Exception as e:  # the Command's one line in `pulumi up`: AWS's failures say what to do
        if not isinstance(e, RolloutError) and not is_aws_error(e):
            raise
        line = failure_line(e) if is_aws_error(e) else " ".join(str(e).split())
        print(f"rollout failed: {line}", file=sys.stderr, flush=True)
        return 1
    print(json.dumps({"group": args.group, "version": args.version,
                      "result": "succeeded" if results else "no-op",
                      "asgs": [r.as_json() for r in results]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
