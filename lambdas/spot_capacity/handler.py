"""Spot capacity reconciler: keeps each group's on-demand ASG at its CPU-driven part plus the spot deficit.

Level-triggered: every invocation reads the current state of a group's pair and writes what it should
be (reconcile.plan); events only say *which* groups to look at and *when*:
- `EC2 Spot Instance Interruption Warning`: tag the instance `fleet:interruption-warned` (so every
  later run counts it as missing until it is gone), then drain it from its target groups at once (in
  that order: a failure between the two leaves it tagged and serving, never drained and uncounted),
  reconcile its group;
- Auto Scaling `EC2 Instance Launch Successful` / `Launch Unsuccessful` / `Terminate Successful` of the
  stack's spot ASGs: reconcile that group (a replacement arrived, a launch failed, an instance left);
- the schedule (`Scheduled Event` from aws.events): reconcile every group of the stack, so a lost or
  failed event is repaired within one period.
Every event's shape is checked before anything is done: a malformed one (a field missing or of the
wrong type, an instance id or ASG name that is not one) is logged as `ignored` with the reason and
not retried.

A spot instance still launching counts as arriving, not missing, until its launch bound (LAUNCH_SECONDS
+ the spot ASG's health check grace period, which is the group's `autoscale.timeout`) from EC2's
LaunchTime has passed (reconcile.arriving).

Time: a run never outlasts the function. The scheduled run tries each group's lease once (a busy
group is being reconciled by its holder: `busy`) and starts no group with less than MARGIN seconds of
the invocation left (`deferred`: the next period, in another order, gets it); an event's run waits for
its group's lease at most WAIT_SECONDS and never past that margin.

Concurrency without reserved concurrency: one lease per group in the stack's DynamoDB table
(FLEET_CAPACITY_TABLE), taken with a conditional write (free, or expired) and released with a
conditional write by its owner. Read-decide-write of a group runs under its lease only; other
invocations for the same group wait for it and then reconcile from the state as it is then, so 20
concurrent deliveries give the same result as one. A lease outlives the function's timeout
(LEASE_SECONDS > the component's timeout), so a crashed holder's lease expires and is taken over.
The same item holds the group's record `extra` (what the reconciler added to the on-demand ASG) and,
while an ASG write is under way, the intended write (`next`): a run that finds `next` left by a crashed
predecessor compares it with the ASG's MinSize (which only the reconciler moves) to know whether
that write happened; `last_decision` is the last run's action, time, deficit and desired count (read by
`fleet status`). Why not the alternatives: a FIFO queue serialises delivery but not a handler
run from anywhere else (a retry, a second trigger); ASG tags have no conditional write at all.

Every decision is one JSON line on stdout and is returned (a scheduled run logs `busy` for a group whose
lease stayed taken and goes on with the others); per reconciled group the handler also
puts the metrics SpotDeficit, OnDemandExtra and Capped (namespace fleet/SpotCapacity, dimensions
Stack and Group). IAM actions used: fleet/ops/events.py SPOT_CAPACITY_ACTIONS (checked by the tests).

Shipped as exactly this directory's two modules (handler.py, reconcile.py); boto3 only, nothing of
fleet's. boto3 honours AWS_ENDPOINT_URL (a moto server in tests).
"""

from __future__ import annotations

import json
import os
import random
import re
import time
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

try:  # a package in tests and the bench; top-level modules in the Lambda archive
    from . import reconcile
except ImportError:  # pragma: no cover - the Lambda runtime
    import reconcile  # type: ignore[no-redef]

WARNING = "EC2 Spot Instance Interruption Warning"
ASG_EVENTS = ("EC2 Instance Launch Successful", "EC2 Instance Launch Unsuccessful", "EC2 Instance Terminate Successful")
SCHEDULED = "Scheduled Event"
WARNED_TAG = "fleet:interruption-warned"
BASE_TAG = "fleet:on-demand-base"
CEILING_TAG = "fleet:pair-ceiling"  # most instances the pair may run at once
OD_MAX_TAG = "fleet:on-demand-max"  # the on-demand ASG's own maximum (its MaxSize is the room under the ceiling)
SLOT_TAG = "fleet:slot"  # blue/green groups: a pair per slot (reconcile_group)
NAMESPACE = "fleet/SpotCapacity"
METRICS = ("SpotDeficit", "OnDemandExtra", "Capped")

LEASE_SECONDS = 90      # longer than the function's timeout (components/spot_capacity.py TIMEOUT)
WAIT_SECONDS = 40       # how long an invocation waits for a busy group's lease before it fails (and is retried)
FUNCTION_TIMEOUT = 60   # components/spot_capacity.py TIMEOUT: the budget when no Lambda context says it
MARGIN = 10             # seconds kept at the end of an invocation: no group starts with less left
LAUNCH_SECONDS = 90     # RunInstances to a booting OS (fleet/spec/readiness.py LAUNCH_SECONDS)
LAUNCHING = ("Pending", "Pending:Wait", "Pending:Proceed")
INSTANCE_ID = re.compile(r"i-[0-9a-f]{8,17}")
EVENT_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")

_CONFIG = Config(connect_timeout=5, read_timeout=15, retries={"mode": "standard", "max_attempts": 4})


class LeaseBusy(RuntimeError):
    """The group's lease stayed taken for WAIT_SECONDS: fail, so Lambda's async retry runs this again."""


def _client(service: str):
    return boto3.client(service, region_name=os.environ.get("AWS_REGION") or None, config=_CONFIG)


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _log(record: dict) -> dict:
    print(json.dumps(record, sort_keys=True, default=str), flush=True)
    return record


def _tags(asg: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in asg.get("Tags", [])}


def _now() -> float:
    return time.time()


def _malformed(event) -> str | None:
    """Why `event` cannot be acted on (None: its shape is fine). Only what a trigger of this handler uses
    is checked; an event of another kind is ignored later as not a trigger."""
    if not isinstance(event, dict):
        return f"the event is {type(event).__name__}, not an object"
    kind, detail = event.get("detail-type"), event.get("detail", {})
    if not isinstance(kind, str):
        return f"detail-type is {type(kind).__name__}, not a string"
    if kind not in (WARNING, *ASG_EVENTS, SCHEDULED):
        return None
    if not isinstance(detail, dict):
        return f"detail is {type(detail).__name__}, not an object"
    if kind == WARNING:
        instance_id, when = detail.get("instance-id"), event.get("time")
        if not isinstance(instance_id, str) or not INSTANCE_ID.fullmatch(instance_id):
            return f"detail.instance-id is not an instance id: {json.dumps(instance_id, default=str)[:80]}"
        if when is not None and (not isinstance(when, str) or not EVENT_TIME.fullmatch(when)):
            return f"time is not an event time: {json.dumps(when, default=str)[:80]}"
    if kind in ASG_EVENTS:
        name = detail.get("AutoScalingGroupName")
        if not isinstance(name, str) or not 1 <= len(name) <= 255 or not name.isprintable():
            return f"detail.AutoScalingGroupName is not an ASG name: {json.dumps(name, default=str)[:80]}"
    if kind == SCHEDULED and not isinstance(event.get("source"), str):
        return "source is not a string"
    return None


def _time_left(context) -> float:
    """Seconds until the invocation times out (the Lambda context's count, else FUNCTION_TIMEOUT)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return remaining() / 1000 if remaining else FUNCTION_TIMEOUT


def handler(event, context):
    """Lambda entry point for the warning rule, the Auto Scaling rule(s) and the schedule."""
    stack = os.environ.get("FLEET_STACK")
    table = os.environ.get("FLEET_CAPACITY_TABLE")
    if not stack or not table:
        raise RuntimeError("FLEET_STACK and FLEET_CAPACITY_TABLE must be set: the reconciler cannot tell "
                           "its own groups from others or keep its record without them")
    until = time.monotonic() + _time_left(context) - MARGIN
    malformed = _malformed(event)
    if malformed:
        event_id = event.get("id") if isinstance(event, dict) else None
        return {"decisions": [_log({"stack": stack, "event_id": json.dumps(event_id, default=str)[:80],
                                    "action": "ignored", "reason": f"malformed event: {malformed}"})]}
    kind, detail = event.get("detail-type"), event.get("detail") or {}
    base = {"stack": stack, "event_id": event.get("id"), "trigger": kind}
    autoscaling = _client("autoscaling")

    if kind == WARNING:
        instance_id = detail["instance-id"]
        found = autoscaling.describe_auto_scaling_instances(InstanceIds=[instance_id])["AutoScalingInstances"]
        spot = _describe(autoscaling, found[0]["AutoScalingGroupName"]) if found else None
        reason = _not_ours(spot, stack) if found else "instance is not in an Auto Scaling group"
        if reason:
            return {"decisions": [_log({**base, "action": "ignored", "instance_id": instance_id, "reason": reason})]}
        _mark_warned(instance_id, event.get("time") or "unknown")  # first: once drained, only the tag counts it
        drained = _drain(spot, instance_id)
        group = _tags(spot)["fleet:group"]
        return {"decisions": [reconcile_group(stack, table, group, autoscaling, warned={instance_id}, until=until,
                                              slot=_tags(spot).get(SLOT_TAG),
                                              log={**base, "instance_id": instance_id, "drained_from": drained})]}

    if kind in ASG_EVENTS:
        name = detail.get("AutoScalingGroupName")
        spot = _describe(autoscaling, name) if name else None
        reason = _not_ours(spot, stack)
        if reason:
            return {"decisions": [_log({**base, "action": "ignored", "asg": name, "reason": reason})]}
        return {"decisions": [reconcile_group(stack, table, _tags(spot)["fleet:group"], autoscaling, until=until,
                                              slot=_tags(spot).get(SLOT_TAG),
                                              log={**base, "asg": name, "status": detail.get("StatusCode"),
                                                   "cause": detail.get("StatusMessage")})]}

    if kind == SCHEDULED and event.get("source") == "aws.events":
        groups = sorted({(_tags(g)["fleet:group"], _tags(g).get(SLOT_TAG) or "")
                         for g in _stack_asgs(autoscaling, stack, "spot")})
        random.shuffle(groups)  # when some are deferred, the next period starts elsewhere
        return {"decisions": [_scheduled(stack, table, g, autoscaling, base, until, slot or None)
                              for g, slot in groups]}

    return {"decisions": [_log({**base, "action": "ignored", "reason": f"not a trigger of this handler: {kind!r}"})]}


def _scheduled(stack: str, table: str, group: str, autoscaling, base: dict, until: float,
               slot: str | None = None) -> dict:
    """A scheduled run skips a group whose lease is taken (the holder is reconciling it; the next period
    comes anyway) without waiting, and starts no group past `until`, instead of failing the others."""
    if time.monotonic() >= until:
        return _log({**base, "group": group, **({"slot": slot} if slot else {}), "action": "deferred",
                     "reason": f"less than {MARGIN} s of the invocation left: the next scheduled run reconciles it"})
    try:
        return reconcile_group(stack, table, group, autoscaling, log=dict(base), slot=slot, wait=0)
    except LeaseBusy as e:
        return _log({**base, "group": group, "action": "busy", "reason": str(e)})


def _describe(autoscaling, name: str) -> dict | None:
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    return groups[0] if groups else None


def _not_ours(spot: dict | None, stack: str) -> str | None:
    """Why an ASG is not one of this stack's spot ASGs, or None when it is."""
    if spot is None:
        return "the Auto Scaling group no longer exists"
    tags = _tags(spot)
    if tags.get("fleet:capacity") != "spot" or tags.get("fleet:stack") != stack or not tags.get("fleet:group"):
        return ("not a spot ASG of this stack: "
                f"fleet:capacity={tags.get('fleet:capacity')!r} fleet:stack={tags.get('fleet:stack')!r} "
                f"fleet:group={tags.get('fleet:group')!r}")
    return None


def _stack_asgs(autoscaling, stack: str, capacity: str, group: str | None = None,
                slot: str | None = None) -> list[dict]:
    filters = [{"Name": "tag:fleet:stack", "Values": [stack]}, {"Name": "tag:fleet:capacity", "Values": [capacity]}]
    if group is not None:
        filters.append({"Name": "tag:fleet:group", "Values": [group]})
    pages = autoscaling.get_paginator("describe_auto_scaling_groups").paginate(Filters=filters)
    found = [g for page in pages for g in page["AutoScalingGroups"]]
    return found if group is None else [g for g in found if _tags(g).get(SLOT_TAG) == slot]


def _drain(spot: dict, instance_id: str) -> list[str]:
    """Take the warned instance out of its ASG's target groups now (idempotent)."""
    drained = []
    arns = spot.get("TargetGroupARNs", [])
    elbv2 = _client("elbv2") if arns else None
    for arn in arns:
        try:
            elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": instance_id}])
        except ClientError as e:
            if _code(e) not in ("InvalidTarget", "TargetGroupNotFound"):
                raise
            continue
        drained.append(arn)
    return drained


def _mark_warned(instance_id: str, when: str) -> None:
    try:
        _client("ec2").create_tags(Resources=[instance_id], Tags=[{"Key": WARNED_TAG, "Value": when}])
    except ClientError as e:
        if not _code(e).startswith("InvalidInstanceID"):
            raise  # a vanished instance needs no mark: it is no longer in the group


def _launch_times(instance_ids: list[str]) -> dict[str, float]:
    """EC2's LaunchTime (epoch seconds) of the launching instances; one that EC2 no longer knows has none."""
    if not instance_ids:
        return {}
    try:
        pages = _client("ec2").get_paginator("describe_instances").paginate(InstanceIds=instance_ids)
        return {i["InstanceId"]: i["LaunchTime"].timestamp()
                for page in pages for r in page["Reservations"] for i in r["Instances"]}
    except ClientError as e:
        if not _code(e).startswith("InvalidInstanceID"):
            raise
        return {}


def _warned(instance_ids: list[str]) -> set[str]:
    if not instance_ids:
        return set()
    found = set()
    pages = _client("ec2").get_paginator("describe_tags").paginate(Filters=[
        {"Name": "resource-id", "Values": instance_ids}, {"Name": "key", "Values": [WARNED_TAG]}])
    for page in pages:
        found.update(t["ResourceId"] for t in page["Tags"])
    return found


class Lease:
    """The group's item in the capacity table: a lease (owner, until) plus the record (extra, next)."""

    def __init__(self, table: str, key: str):
        self.dynamodb, self.table, self.key = _client("dynamodb"), table, {"group": {"S": key}}
        self.owner = uuid.uuid4().hex

    def acquire(self, wait: float | None = None) -> dict:
        """Take the lease, waiting for it at most `wait` seconds (WAIT_SECONDS by default; 0: one try)."""
        wait = WAIT_SECONDS if wait is None else max(0.0, wait)
        deadline, delay = time.monotonic() + wait, 0.05
        while True:
            now = time.time()
            try:
                item = self.dynamodb.update_item(
                    TableName=self.table, Key=self.key,
                    UpdateExpression="SET lease_owner = :me, lease_until = :until",
                    ConditionExpression="attribute_not_exists(lease_owner) OR lease_until < :now",
                    ExpressionAttributeValues={":me": {"S": self.owner}, ":until": {"N": str(now + LEASE_SECONDS)},
                                               ":now": {"N": str(now)}},
                    ReturnValues="ALL_NEW")["Attributes"]
                return item
            except ClientError as e:
                if _code(e) != "ConditionalCheckFailedException":
                    raise
            if time.monotonic() >= deadline:
                raise LeaseBusy(f"{self.key['group']['S']}: lease still held after {wait:g} s")
            time.sleep(min(delay * (0.5 + random.random()), max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 1.0)

    def _write(self, expression: str, values: dict | None = None) -> None:
        """A conditional write by the lease's owner: fails if the lease was lost (expired and taken)."""
        self.dynamodb.update_item(TableName=self.table, Key=self.key, UpdateExpression=expression,
                                  ConditionExpression="lease_owner = :me",
                                  ExpressionAttributeValues={":me": {"S": self.owner}, **(values or {})})

    def intend(self, extra: int, min_size: int, desired: int) -> None:
        """Record the ASG write about to be made (see _recorded_extra)."""
        self._write("SET next_write = :next", {":next": {"M": {
            "extra": {"N": str(extra)}, "min_size": {"N": str(min_size)}, "desired": {"N": str(desired)}}}})

    def commit(self, extra: int, last: dict | None = None) -> None:
        """Record the extra now in effect (and `last`, the decision: what `fleet status` shows) and give the
        lease up, in one write."""
        values = {":extra": {"N": str(extra)}}
        expression = "SET extra = :extra"
        if last is not None:
            values[":last"] = {"M": {k: {"N": str(v)} if isinstance(v, int) else {"S": str(v)}
                                     for k, v in last.items()}}
            expression += ", last_decision = :last"
        self._write(f"{expression} REMOVE lease_owner, lease_until, next_write", values)

    def release(self) -> None:
        try:
            self.dynamodb.update_item(TableName=self.table, Key=self.key,
                                      UpdateExpression="REMOVE lease_owner, lease_until",
                                      ConditionExpression="lease_owner = :me",
                                      ExpressionAttributeValues={":me": {"S": self.owner}})
        except ClientError as e:
            if _code(e) != "ConditionalCheckFailedException":
                raise


def _recorded_extra(item: dict, od_min_size: int, base: int | None) -> int:
    """The extra the reconciler added, from its record. A predecessor that crashed between recording
    its intent and finishing leaves `next_write`: its ASG write happened iff MinSize already shows it.
    Without a record (a new or replaced table) MinSize - base is the best evidence: it is the extra."""
    pending = item.get("next_write", {}).get("M")
    if pending and od_min_size == int(pending["min_size"]["N"]):
        return int(pending["extra"]["N"])
    if "extra" in item:
        return int(item["extra"]["N"])
    return max(0, od_min_size - base) if base is not None else 0


def reconcile_group(stack: str, table: str, group: str, autoscaling, *, warned: set[str] = frozenset(),
                    log: dict | None = None, slot: str | None = None, wait: float | None = None,
                    until: float | None = None) -> dict:
    """Read the pair, decide, write; under the group's lease, waited for at most `wait` seconds and never
    past `until` (time.monotonic()). Returns (and logs) the decision.

    A blue/green group has a pair per slot (`fleet:slot` a|b): each is reconciled on its own, with its
    own lease and record (slot a keeps the key a group had before slots). A slot parked by the rollout
    (both ASGs at MaxSize 0) is left alone: its base must not launch an on-demand instance."""
    record = {**(log or {}), "group": group, **({"slot": slot} if slot else {})}
    lease = Lease(table, f"{stack}/{group}" + (f"/{slot}" if slot not in (None, "a") else ""))
    wait = WAIT_SECONDS if wait is None else wait
    item = lease.acquire(wait if until is None else min(wait, until - time.monotonic()))
    try:
        spots, ods = (_stack_asgs(autoscaling, stack, capacity, group, slot) for capacity in ("spot", "on-demand"))
        if len(spots) == 1 and len(ods) == 1 and spots[0]["MaxSize"] == ods[0]["MaxSize"] == 0:
            lease.release()
            return _log({**record, "action": "parked", "reason": "both ASGs of the slot are at MaxSize 0"})
        if len(spots) != 1 or len(ods) != 1:
            lease.release()
            return _log({**record, "action": "no-pair", "reason": f"expected one spot and one on-demand ASG "
                         f"tagged fleet:group={group} fleet:stack={stack}, found {len(spots)} and {len(ods)}"})
        spot, od = spots[0], ods[0]
        launched = _launch_times([i["InstanceId"] for i in spot.get("Instances", [])
                                  if i["LifecycleState"] in LAUNCHING])
        instances = [reconcile.SpotInstance(i["InstanceId"], i["LifecycleState"], i["HealthStatus"],
                                            launched.get(i["InstanceId"]))
                     for i in spot.get("Instances", [])]
        ids = [i.instance_id for i in instances]
        warned_now = sorted((_warned(ids) | set(warned)) & set(ids))
        now, bound = _now(), LAUNCH_SECONDS + spot.get("HealthCheckGracePeriod", 0)
        coming = sorted(reconcile.arriving(instances, warned_now, now=now, launch_bound=bound))
        od_tags = _tags(od)
        base = int(od_tags[BASE_TAG]) if BASE_TAG in od_tags else None
        extra = _recorded_extra(item, od["MinSize"], base)
        deficit = reconcile.deficit_to_cover(spot["DesiredCapacity"], instances, warned_now, extra=extra,
                                             now=now, launch_bound=bound)
        if base is None:  # an ASG from before the tag: MinSize is base + extra
            base = max(0, od["MinSize"] - extra)
        room = reconcile.on_demand_room(int(od_tags[CEILING_TAG]) if CEILING_TAG in od_tags else None,
                                        len(instances), base, int(od_tags.get(OD_MAX_TAG, od["MaxSize"])))
        p = reconcile.plan(deficit, reconcile.OnDemand(desired=od["DesiredCapacity"], max_size=room,
                                                       base=base, extra=extra))
        changed = (p.desired, p.min_size, room) != (od["DesiredCapacity"], od["MinSize"], od["MaxSize"])
        if changed:
            lease.intend(p.extra, p.min_size, p.desired)
            autoscaling.update_auto_scaling_group(AutoScalingGroupName=od["AutoScalingGroupName"],
                                                  MinSize=p.min_size, MaxSize=room, DesiredCapacity=p.desired)
        action = ("capped" if p.capped else "raised" if p.desired > od["DesiredCapacity"]
                  else "lowered" if p.desired < od["DesiredCapacity"] else "unchanged")
        lease.commit(p.extra, {"action": action, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "deficit": p.deficit, "desired": p.desired})
    except BaseException:
        lease.release()
        raise
    record.update(action=action, spot_asg=spot["AutoScalingGroupName"], on_demand_asg=od["AutoScalingGroupName"],
                  spot_desired=spot["DesiredCapacity"], warned=warned_now, arriving=coming, launch_bound=bound,
                  deficit=p.deficit, cpu_part=p.cpu_part,
                  extra_before=extra, extra=p.extra, base=base, max_size=room,
                  desired_before=od["DesiredCapacity"], desired_after=p.desired, min_size=p.min_size,
                  capped=p.capped, unmet=p.unmet,
                  reason=(f"deficit {p.deficit}, of which {p.extra} fit under max {room} "
                          f"above the CPU-driven {p.cpu_part}"))
    _put_metrics(stack, group, p)
    return _log(record)


def _put_metrics(stack: str, group: str, p: reconcile.Plan) -> None:
    dims = [{"Name": "Stack", "Value": stack}, {"Name": "Group", "Value": group}]
    values = {"SpotDeficit": p.deficit, "OnDemandExtra": p.extra, "Capped": int(p.capped)}
    _client("cloudwatch").put_metric_data(Namespace=NAMESPACE, MetricData=[
        {"MetricName": name, "Dimensions": dims, "Value": float(values[name]), "Unit": "Count"} for name in METRICS])
