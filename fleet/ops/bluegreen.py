"""Blue/green rollout and rollback of an http group's two slots (a, b) behind one weighted listener rule.

Why: an instance refresh back to the previous launch template version launches a whole group again
(minutes, fleet/ops/timing.py). Here the previous version stays up, registered in its own target
group at weight 0, and a rollback is one ModifyRule: traffic leaves the bad slot within seconds and
no instance is launched.

`deploy` (what `pulumi up`'s Command runs on a new launch template version, and `fleet deploy`):
1. lock the group (lambdas/bluegreen/slots.py: a conditional write; a second rollout waits for it);
2. read the live slot from the rule's weights (never from a file). A rule left between two weights (a
   run that died mid-canary, or a weight of 0 that landed as 1) is first written back to 100/0 on the
   slot that had the larger weight: every run starts from a consistent state;
3. the idle slot gets the new version and the live slot's desired capacity per ASG (MinSize pinned
   to it, so scale-in cannot shrink it during the soak); instances of the idle slot on another version
   are terminated (the slot carries no traffic) and replaced on the new one;
4. health wait: every idle ASG InService on the version and that many targets healthy in the idle
   target group. A timeout leaves the live slot untouched (weights never moved) and parks the idle slot
   at its standby size;
5. canary: `canary_weight` % to the idle slot for `bake_time` s, both slots' health alarms polled; an
   alarm sends everything back to the live slot in one write;
6. 100/0 to the new slot; the new live slot's MinSize goes back to its node_min share; the previous
   slot stays registered at weight 0, at full size (MinSize = desired), for `standby` s. The record
   (standby slot, until when, its size afterwards) is written for the standby function
   (lambdas/bluegreen/handler.py), which flips back on a health alarm of the live slot during the
   window, and shrinks the standby to `standby_min` (default: the node_min share) after it.

`rollback` (`fleet rollback GROUP --stack S`, and a failed soak): one write back to the other slot. If
the standby was already shrunk, it is scaled to the bad slot's size first (MinSize pinned to desired)
and the weight moves in proportion to its healthy targets, to 100 % once all are healthy.

Every step logs to stderr; `main` prints one JSON line on stdout and exits 1 with one line on failure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from botocore.exceptions import BotoCoreError, ClientError

from fleet.ops import timing
from fleet.ops.aws import client as aws_client
from fleet.ops.rollout import _desired_configuration as launch_configuration
from fleet.spec.model import Group
from fleet.spec.names import health_alarm_prefix
from fleet.spec.slots import slot_sizes
from lambdas.bluegreen import slots as sl

CAPACITIES = sl.CAPACITIES


class BlueGreenError(Exception):
    """A blue/green step that did not complete; one line, fit for `pulumi up` output."""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Clients:
    autoscaling: object
    elbv2: object
    cloudwatch: object
    dynamodb: object

    @classmethod
    def make(cls, region: str | None = None, endpoint_url: str | None = None) -> Clients:
        return cls(*(aws_client(s, region=region, endpoint_url=endpoint_url)
                     for s in ("autoscaling", "elbv2", "cloudwatch", "dynamodb")))


@dataclass
class Clock:
    """Time, sleep, log and poll interval every wait here shares (tests pass fakes)."""

    poll: float = 5
    log: Callable[[str], None] = _stderr
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], float] = time.time


@dataclass
class Settings:
    group: str
    stack: str
    rule_arn: str
    table: str
    template_id: str
    version: int
    alarms: dict[str, list[str]] = field(default_factory=dict)  # slot -> its health alarms
    canary_weight: int = 5
    bake_time: int = 300
    standby: int = 3600
    standby_sizes: dict[str, int] = field(default_factory=dict)  # capacity -> standby's size afterwards
    min_sizes: dict[str, int] = field(default_factory=dict)  # capacity -> the live slot's MinSize (node_min share)
    max_sizes: dict[str, int] = field(default_factory=dict)  # capacity -> MaxSize of a slot
    health_timeout: float = 900
    lock_timeout: float = 3600


@dataclass(frozen=True)
class Result:
    group: str
    result: str  # no-op | deployed | rolled-back
    live: str
    weights: dict
    version: int | None = None

    def as_json(self) -> dict:
        return dict(vars(self))


def _version_of(asg: dict) -> tuple[str | None, str | None]:
    spec = asg.get("LaunchTemplate") or ((asg.get("MixedInstancesPolicy") or {}).get("LaunchTemplate") or {}).get(
        "LaunchTemplateSpecification") or {}
    return spec.get("LaunchTemplateId"), (str(spec["Version"]) if spec.get("Version") is not None else None)


def _instance_on(instance: dict, template_id: str, version: int) -> bool:
    spec = instance.get("LaunchTemplate") or {}
    return spec.get("LaunchTemplateId") == template_id and str(spec.get("Version")) == str(version)


def slot_runs(slot: sl.Slot, template_id: str, version: int) -> bool:
    """Every ASG of the slot is configured with the version and runs it on all of its instances."""
    return all(_version_of(g) == (template_id, str(version))
               and all(_instance_on(i, template_id, version) for i in g.get("Instances", []))
               for g in slot.asgs.values())


def locked(s: Settings, c: Clients, k: Clock) -> sl.Lock:
    """Take the group's lock, waiting (polling) while another rollout or rollback holds it."""
    # held at most as long as a whole deploy can take, so a lock whose holder died frees itself after that
    ttl = max(s.lock_timeout, s.health_timeout + s.bake_time + 600) if s.template_id else s.lock_timeout
    lock = sl.Lock(c.dynamodb, s.table, s.stack, s.group, ttl=ttl, clock=k.now)
    deadline = k.now() + s.lock_timeout
    while True:
        try:
            lock.acquire()
            return lock
        except sl.Busy as e:
            if k.now() >= deadline:
                raise BlueGreenError(f"group {s.group}: {e} for more than {s.lock_timeout:g}s") from None
            k.log(f"{s.group}: {e}; waiting")
            k.sleep(k.poll)


def _configure(c: Clients, asg: dict, template_id: str, version: int, desired: int, max_size: int) -> None:
    """Put the idle ASG on the version at `desired` (MinSize pinned to it), one UpdateAutoScalingGroup."""
    # the spot ASG's whole mixed instances policy goes back with only the version changed (the refresh
    # rollout's DesiredConfiguration is the same shape: overrides and distribution kept, minus what AWS
    # rejects), so the slot keeps its instance types and allocation strategy
    c.autoscaling.update_auto_scaling_group(
        AutoScalingGroupName=asg["AutoScalingGroupName"], MinSize=desired, DesiredCapacity=desired,
        MaxSize=max(desired, max_size), **launch_configuration(asg, template_id, str(version)))


def _describe(c: Clients, slot: sl.Slot) -> dict[str, dict]:
    names = [g["AutoScalingGroupName"] for g in slot.asgs.values()]
    found = c.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=names)["AutoScalingGroups"]
    by_name = {g["AutoScalingGroupName"]: g for g in found}
    return {cap: by_name[g["AutoScalingGroupName"]] for cap, g in slot.asgs.items()}


def wait_healthy(s: Settings, c: Clients, k: Clock, slot: sl.Slot, want: dict[str, int]) -> None:
    """Until every ASG of `slot` has `want` InService instances on the version and that many targets are
    healthy in the slot's target group; BlueGreenError after `health_timeout`."""
    deadline, last = k.now() + s.health_timeout, None
    need = sum(want.values())
    while True:
        asgs = _describe(c, slot)
        ready = {cap: sum(1 for i in g.get("Instances", []) if i["LifecycleState"] == "InService"
                          and _instance_on(i, s.template_id, s.version)) for cap, g in asgs.items()}
        healthy = sl.healthy_count(c.elbv2, slot.target_group_arn)
        state = (tuple(sorted(ready.items())), healthy)
        if state != last:
            k.log(f"{s.group}: slot {slot.name}: {ready} in service on version {s.version}, "
                  f"{healthy}/{need} healthy targets")
            last = state
        if healthy >= need and all(ready.get(cap, 0) >= n for cap, n in want.items()):
            return
        if k.now() >= deadline:
            raise BlueGreenError(f"slot {slot.name} not healthy after {s.health_timeout:g}s "
                                 f"({healthy}/{need} healthy targets)")
        k.sleep(k.poll)


def firing(c: Clients, alarms: list[str]) -> list[str]:
    """The alarms among `alarms` in ALARM (one DescribeAlarms)."""
    if not alarms:
        return []
    found = c.cloudwatch.describe_alarms(AlarmNames=alarms)["MetricAlarms"]
    return sorted(a["AlarmName"] for a in found if a["StateValue"] == "ALARM")


def soak(s: Settings, c: Clients, k: Clock, alarms: list[str]) -> list[str]:
    """Watch `alarms` for `bake_time` s; the ones that fired, or [] when the soak passed."""
    end = k.now() + s.bake_time
    while True:
        fired = firing(c, alarms)
        if fired or k.now() >= end:
            return fired
        k.sleep(min(k.poll, max(end - k.now(), 0)))


def deploy(s: Settings, c: Clients, k: Clock | None = None) -> Result:
    """The whole blue/green deploy of `s.version` (module docstring), under the group's lock."""
    k = k or Clock()
    lock = locked(s, c, k)
    try:
        return _deploy(s, c, k, lock)
    finally:
        lock.release()


def _deploy(s: Settings, c: Clients, k: Clock, lock: sl.Lock) -> Result:
    slots = sl.find_slots(c.autoscaling, s.group, s.stack)
    weights = sl.read_weights(c.elbv2, s.rule_arn, slots)
    live = sl.live_slot(weights)
    idle = sl.other(live)
    if weights != sl.all_to(live):
        k.log(f"{s.group}: rule weights {weights}: writing 100/0 on live slot {live} first")
        weights = sl.flip(c.elbv2, s.rule_arn, slots, live)
    lock.write_record(rule_arn=s.rule_arn, live_slot=live)
    if slot_runs(slots[live], s.template_id, s.version):
        k.log(f"{s.group}: live slot {live} already runs {s.template_id} version {s.version}; nothing to deploy")
        return Result(s.group, "no-op", live, weights, s.version)

    want = {cap: max(g["DesiredCapacity"], s.min_sizes.get(cap, 0)) for cap, g in slots[live].asgs.items()}
    k.log(f"{s.group}: live slot {live}; deploying version {s.version} into slot {idle} at {want}")
    for cap, g in slots[idle].asgs.items():
        _configure(c, g, s.template_id, s.version, want.get(cap, 0), s.max_sizes.get(cap, g["MaxSize"]))
        for i in g.get("Instances", []):
            if not _instance_on(i, s.template_id, s.version):
                c.autoscaling.terminate_instance_in_auto_scaling_group(
                    InstanceId=i["InstanceId"], ShouldDecrementDesiredCapacity=False)
    # the standby being overwritten is no longer a rollback target: the live slot is
    lock.write_record(standby_slot=None, standby_until=None, standby_sizes=None)
    try:
        wait_healthy(s, c, k, slots[idle], want)
    except BlueGreenError as e:
        _park(s, c, slots[idle])
        raise BlueGreenError(f"group {s.group}: step health: {e}; live slot {live} untouched (weights "
                             f"{weights}), slot {idle} parked at {s.standby_sizes}") from None

    canary = {live: 100 - s.canary_weight, idle: s.canary_weight}
    sl.write_weights(c.elbv2, s.rule_arn, slots, canary)
    k.log(f"{s.group}: canary {canary}; soaking {s.bake_time}s with the health alarms watched")
    fired = soak(s, c, k, s.alarms.get(idle, []) + s.alarms.get(live, []))
    if fired:
        back = sl.flip(c.elbv2, s.rule_arn, slots, live)
        _park(s, c, slots[idle])
        raise BlueGreenError(f"group {s.group}: step soak: {', '.join(fired)} in ALARM; traffic back on slot "
                             f"{live} in one write ({back}), slot {idle} parked")

    done = sl.flip(c.elbv2, s.rule_arn, slots, idle)
    for cap, g in slots[idle].asgs.items():  # the new live slot scales freely again above node_min
        c.autoscaling.update_auto_scaling_group(AutoScalingGroupName=g["AutoScalingGroupName"],
                                                MinSize=min(s.min_sizes.get(cap, 0), want.get(cap, 0)))
    for g in _describe(c, slots[live]).values():  # the standby: full size as it is now, pinned
        c.autoscaling.update_auto_scaling_group(AutoScalingGroupName=g["AutoScalingGroupName"],
                                                MinSize=g["DesiredCapacity"])
    until = int(k.now() + s.standby)
    lock.write_record(live_slot=idle, standby_slot=live, standby_until=until,
                      standby_sizes=dict(s.standby_sizes), standby_scaled=False, version=s.version)
    k.log(f"{s.group}: slot {idle} live on version {s.version} ({done}); slot {live} on standby at full size "
          f"for {s.standby}s")
    return Result(s.group, "deployed", idle, done, s.version)


def _park(s: Settings, c: Clients, slot: sl.Slot) -> None:
    """A slot that will not take traffic: down to its standby size."""
    for cap, g in slot.asgs.items():
        sl.park(c.autoscaling, g, s.standby_sizes.get(cap, 0), parked=not any(s.standby_sizes.values()))


def rollback(group: str, stack: str, c: Clients, k: Clock | None = None, *, table: str | None = None,
             rule_arn: str | None = None, health_timeout: float = 900, lock_timeout: float = 600) -> Result:
    """Send the group's traffic back to the other slot (module docstring). The rule comes from the
    group's record when not given (every rollout writes it there)."""
    k = k or Clock()
    s = Settings(group, stack, rule_arn or "", table or sl.table_name(stack), "", 0,
                 health_timeout=health_timeout, lock_timeout=lock_timeout)
    lock = locked(s, c, k)
    try:
        record = lock.record()
        s.rule_arn = s.rule_arn or record.get("rule_arn") or ""
        if not s.rule_arn:
            raise BlueGreenError(f"group {group}: no rollout recorded in {s.table}: deploy it first")
        slots = sl.find_slots(c.autoscaling, group, stack)
        weights = sl.read_weights(c.elbv2, s.rule_arn, slots)
        bad = sl.live_slot(weights)
        good = sl.other(bad)
        need = sum(slots[bad].desired().values())
        healthy = sl.healthy_count(c.elbv2, slots[good].target_group_arn)
        if healthy >= max(need, 1) or (healthy and slots[good].desired() == slots[bad].desired()):
            done = sl.flip(c.elbv2, s.rule_arn, slots, good)
            k.log(f"{group}: rolled back to slot {good} in one write ({done})")
        else:
            done = _scale_up_and_shift(s, c, k, slots, good, bad)
        lock.write_record(live_slot=good, standby_slot=bad, standby_until=int(k.now()), standby_scaled=False)
        return Result(group, "rolled-back", good, done)
    finally:
        lock.release()


def _scale_up_and_shift(s: Settings, c: Clients, k: Clock, slots: dict[str, sl.Slot], good: str,
                        bad: str) -> dict[str, int]:
    """The standby was shrunk: size it like the bad slot (MinSize pinned to desired), then move weight in
    proportion to its healthy targets until all of them are healthy."""
    want = slots[bad].desired()
    for cap, g in slots[good].asgs.items():
        sl.set_size(c.autoscaling, g, want.get(cap, 0))
    need = max(sum(want.values()), 1)
    k.log(f"{s.group}: slot {good} was scaled down: scaling it to {want}, weight follows its healthy targets")
    deadline, written = k.now() + s.health_timeout, None
    while True:
        healthy = min(sl.healthy_count(c.elbv2, slots[good].target_group_arn), need)
        share = 100 * healthy // need
        if share and share != written:
            weights = {good: share, bad: 100 - share}
            sl.write_weights(c.elbv2, s.rule_arn, slots, weights)
            written = share
            k.log(f"{s.group}: {healthy}/{need} healthy in slot {good}: weights {weights}")
        if share >= 100:
            return sl.all_to(good)
        if k.now() >= deadline:
            raise BlueGreenError(f"group {s.group}: rollback: slot {good} has {healthy}/{need} healthy targets "
                                 f"after {s.health_timeout:g}s; weights {good} {written or 0}%")
        k.sleep(k.poll)


def slot_alarms(cloudwatch, group: str, stack: str) -> dict[str, list[str]]:
    """The group's health alarms per slot, found by name prefix (slot b's carry `b-` after it)."""
    prefix = health_alarm_prefix(group, stack)
    pages = cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=prefix, AlarmTypes=["MetricAlarm"])
    out: dict[str, list[str]] = {}
    for name in (a["AlarmName"] for page in pages for a in page.get("MetricAlarms", [])):
        out.setdefault("b" if name[len(prefix):].startswith("b-") else "a", []).append(name)
    return out


def deploy_latest(group: Group, stack: str, c: Clients, ec2, k: Clock | None = None) -> Result:
    """`fleet deploy GROUP` for a blue/green group: its launch template's latest version, with the rule
    the group's record names (written by the first `pulumi up`'s rollout run)."""
    k = k or Clock()
    slots = sl.find_slots(c.autoscaling, group.name, stack)
    template_id = _version_of(slots["a"].asgs[sl.CAPACITIES[0]])[0]
    if not template_id:
        raise BlueGreenError(f"group {group.name}: slot a has no launch template (by id) to deploy")
    latest = ec2.describe_launch_templates(LaunchTemplateIds=[template_id])["LaunchTemplates"][0]
    table = sl.table_name(stack)
    record = sl.Lock(c.dynamodb, table, stack, group.name).record()
    if not record.get("rule_arn"):
        raise BlueGreenError(f"group {group.name}: no rollout recorded in {table}: run `pulumi up` first")
    sizes = slot_sizes(group)
    s = Settings(group.name, stack, record["rule_arn"], table, template_id, int(latest["LatestVersionNumber"]),
                 alarms=slot_alarms(c.cloudwatch, group.name, stack), canary_weight=group.rollout.canary_weight,
                 bake_time=group.rollout.bake_time, standby=group.rollout.standby, standby_sizes=sizes["standby"],
                 min_sizes=sizes["min"], max_sizes=sizes["max"], health_timeout=timing.gate_timeout(group))
    return deploy(s, c, k)


def _pairs(values: list[str]) -> dict[str, int]:
    out = {}
    for v in values:
        key, _, n = v.partition("=")
        out[key] = int(n)
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m fleet.ops.bluegreen --group G --stack S --rule-arn R --launch-template-id ID --version N ...`:
    what the group's blue/green Command runs (components/bluegreen.py)."""
    p = argparse.ArgumentParser(prog="python -m fleet.ops.bluegreen",
                                description="Deploy a launch template version into a group's idle slot.")
    p.add_argument("--group", required=True)
    p.add_argument("--stack", required=True)
    p.add_argument("--rule-arn", required=True)
    p.add_argument("--table")
    p.add_argument("--launch-template-id", required=True)
    p.add_argument("--version", required=True, type=int)
    p.add_argument("--alarm", action="append", default=[], metavar="SLOT=NAME")
    p.add_argument("--canary-weight", type=int, default=5)
    p.add_argument("--bake-time", type=int, default=300)
    p.add_argument("--standby", type=int, default=3600)
    p.add_argument("--standby-size", action="append", default=[], metavar="CAPACITY=N")
    p.add_argument("--min-size", action="append", default=[], metavar="CAPACITY=N")
    p.add_argument("--max-size", action="append", default=[], metavar="CAPACITY=N")
    p.add_argument("--health-timeout", type=float, default=900)
    p.add_argument("--poll", type=float, default=5)
    p.add_argument("--region")
    p.add_argument("--endpoint-url")
    a = p.parse_args(argv)
    alarms: dict[str, list[str]] = {}
    for spec in a.alarm:
        slot, _, name = spec.partition("=")
        alarms.setdefault(slot, []).append(name)
    s = Settings(a.group, a.stack, a.rule_arn, a.table or sl.table_name(a.stack), a.launch_template_id, a.version,
                 alarms=alarms, canary_weight=a.canary_weight, bake_time=a.bake_time, standby=a.standby,
                 standby_sizes=_pairs(a.standby_size), min_sizes=_pairs(a.min_size), max_sizes=_pairs(a.max_size),
                 health_timeout=a.health_timeout)
    try:
        result = deploy(s, Clients.make(a.region, a.endpoint_url), Clock(poll=a.poll))
    except (BlueGreenError, sl.SlotError, ClientError, BotoCoreError) as e:
        print(f"rollout failed: {' '.join(str(e).split())}", file=sys.stderr, flush=True)
        return 1
    print(json.dumps(result.as_json()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
