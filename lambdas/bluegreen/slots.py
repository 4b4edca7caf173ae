"""Blue/green slots of one http group, as AWS holds them: the primitives a rollback is made of.

Shared by the rollout (fleet/ops/bluegreen.py, run by `pulumi up`'s Command and `fleet rollback`) and
the standby function (handler.py beside this file, run by EventBridge on an alarm or a schedule), so a
rollback is the same one listener-rule write whoever makes it. Plain boto3, no imports of ours: the
function ships exactly the files of this folder.

State lives in AWS only:
- which slot is live: the listener rule's forward weights (the slot with the larger weight; a rule
  that forwards to one target group alone, as before slots existed, is that slot at 100);
- each slot's ASGs and target group: ASG tags `fleet:group`, `fleet:stack`, `fleet:slot`,
  `fleet:capacity`, and the ASGs' TargetGroupARNs;
- the lock and the standby record: one item per group in the stack's rollout table (DynamoDB), key
  `<stack>/<group>`. The lock is a conditional write (owner + expiry): a rollout, a rollback and the
  function serialize on it, and a lock whose holder died expires by itself.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

SLOTS = ("a", "b")
SLOT_TAG = "fleet:slot"
CAPACITIES = ("on-demand", "spot")


class SlotError(Exception):
    """The group's slots are not as a blue/green group's must be; the message is one line."""


class Busy(SlotError):
    """Another rollout or rollback holds the group's lock."""


def other(slot: str) -> str:
    return "b" if slot == "a" else "a"


def tags_of(resource: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


@dataclass
class Slot:
    name: str
    asgs: dict[str, dict] = field(default_factory=dict)  # capacity -> DescribeAutoScalingGroups entry
    target_group_arn: str | None = None

    def desired(self) -> dict[str, int]:
        return {c: g["DesiredCapacity"] for c, g in self.asgs.items()}


def find_slots(autoscaling, group: str, stack: str) -> dict[str, Slot]:
    """The group's slots by ASG tags (one paginated DescribeAutoScalingGroups)."""
    pages = autoscaling.get_paginator("describe_auto_scaling_groups").paginate(Filters=[
        {"Name": "tag:fleet:group", "Values": [group]}, {"Name": "tag:fleet:stack", "Values": [stack]}])
    slots: dict[str, Slot] = {}
    for g in (g for page in pages for g in page["AutoScalingGroups"]):
        tags = tags_of(g)
        slot, capacity = tags.get(SLOT_TAG), tags.get("fleet:capacity")
        if slot not in SLOTS or capacity not in CAPACITIES:
            continue
        s = slots.setdefault(slot, Slot(slot))
        if capacity in s.asgs:
            raise SlotError(f"group {group}: two {capacity} ASGs in slot {slot}: "
                            f"{s.asgs[capacity]['AutoScalingGroupName']}, {g['AutoScalingGroupName']}")
        s.asgs[capacity] = g
        arns = g.get("TargetGroupARNs") or []
        if arns:
            s.target_group_arn = arns[0]
    if not slots:
        raise SlotError(f"no Auto Scaling groups tagged fleet:group={group} fleet:stack={stack} "
                        "(not deployed yet? `pulumi up` creates them)")
    missing = [s for s in SLOTS if s not in slots or not slots[s].target_group_arn]
    if missing:
        raise SlotError(f"group {group}: no ASGs with a target group tagged fleet:slot={'/'.join(missing)} "
                        f"in stack {stack} (deployed before blue/green? `pulumi up` adds the second slot)")
    return slots


def read_weights(elbv2, rule_arn: str, slots: dict[str, Slot]) -> dict[str, int]:
    """Slot -> weight as the listener rule has them now (one DescribeRules). A slot the rule does not
    name has weight 0; a plain forward to one target group is that group at 100."""
    rule = elbv2.describe_rules(RuleArns=[rule_arn])["Rules"][0]
    by_arn: dict[str, int] = {}
    for action in rule.get("Actions", []):
        if action.get("Type") != "forward":
            continue
        config = action.get("ForwardConfig") or {}
        if config.get("TargetGroups"):
            for tg in config["TargetGroups"]:
                by_arn[tg["TargetGroupArn"]] = int(tg.get("Weight", 1))
        elif action.get("TargetGroupArn"):
            by_arn[action["TargetGroupArn"]] = 100
    return {name: by_arn.get(s.target_group_arn, 0) for name, s in slots.items()}


def live_slot(weights: dict[str, int]) -> str:
    """The slot with the larger weight; `a` on a tie (a fresh group)."""
    return max(SLOTS, key=lambda s: (weights.get(s, 0), s == "a"))


def write_weights(elbv2, rule_arn: str, slots: dict[str, Slot], weights: dict[str, int]) -> None:
    """One ModifyRule: forward to both slots' target groups with these weights, stickiness off (a
    sticky client would stay on a slot after its weight went to 0)."""
    elbv2.modify_rule(RuleArn=rule_arn, Actions=[{
        "Type": "forward",
        "ForwardConfig": {
            "TargetGroups": [{"TargetGroupArn": slots[s].target_group_arn, "Weight": int(weights.get(s, 0))}
                             for s in SLOTS],
            "TargetGroupStickinessConfig": {"Enabled": False},
        },
    }])


def all_to(slot: str) -> dict[str, int]:
    return {slot: 100, other(slot): 0}


class Lock:
    """The group's lock: a conditional UpdateItem on the rollout table. `acquire` fails with Busy
    when someone else holds an unexpired lock; `release` only removes our own."""

    def __init__(self, dynamodb, table: str, stack: str, group: str, *, ttl: float = 3600,
                 owner: str | None = None, clock=time.time):
        self.dynamodb, self.table, self.key = dynamodb, table, {"group": {"S": f"{stack}/{group}"}}
        self.ttl, self.owner, self.clock = ttl, owner or uuid.uuid4().hex, clock

    def acquire(self) -> None:
        now = int(self.clock())
        try:
            self.dynamodb.update_item(
                TableName=self.table, Key=self.key,
                UpdateExpression="SET lock_owner = :me, lock_expires = :exp",
                ConditionExpression="attribute_not_exists(lock_owner) OR lock_expires < :now OR lock_owner = :me",
                ExpressionAttributeValues={":me": {"S": self.owner}, ":exp": {"N": str(now + int(self.ttl))},
                                           ":now": {"N": str(now)}})
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            raise Busy(f"{self.key['group']['S']}: another rollout or rollback holds the lock") from None

    def release(self) -> None:
        try:
            self.dynamodb.update_item(
                TableName=self.table, Key=self.key, UpdateExpression="REMOVE lock_owner, lock_expires",
                ConditionExpression="lock_owner = :me", ExpressionAttributeValues={":me": {"S": self.owner}})
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            pass  # expired and taken by someone else: theirs now

    def record(self) -> dict:
        """The group's standby record (plain values), {} when none."""
        item = self.dynamodb.get_item(TableName=self.table, Key=self.key, ConsistentRead=True).get("Item") or {}
        return {k: _plain(v) for k, v in item.items() if k not in ("group", "lock_owner", "lock_expires")}

    def write_record(self, **values) -> None:
        """Set (or, with None, remove) fields of the record while holding the lock."""
        sets = {k: v for k, v in values.items() if v is not None}
        removes = [k for k, v in values.items() if v is None]
        expr = ("SET " + ", ".join(f"#{k} = :{k}" for k in sets) if sets else "") + \
               (" REMOVE " + ", ".join(f"#{k}" for k in removes) if removes else "")
        self.dynamodb.update_item(
            TableName=self.table, Key=self.key, UpdateExpression=expr.strip(),
            ConditionExpression="lock_owner = :me",
            ExpressionAttributeNames={f"#{k}": k for k in values},
            ExpressionAttributeValues={":me": {"S": self.owner}, **{f":{k}": _attr(v) for k, v in sets.items()}})


def _attr(value) -> dict:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        return {"N": str(value)}
    if isinstance(value, dict):
        return {"M": {k: _attr(v) for k, v in value.items()}}
    return {"S": str(value)}


def _plain(attr: dict):
    (kind, value), = attr.items()
    if kind == "N":
        return int(value) if value.lstrip("-").isdigit() else float(value)
    if kind == "M":
        return {k: _plain(v) for k, v in value.items()}
    return value


def set_size(autoscaling, asg: dict, desired: int, *, min_size: int | None = None,
             max_size: int | None = None) -> None:
    """One UpdateAutoScalingGroup: desired (min pinned to it unless given), max raised to fit."""
    min_size = desired if min_size is None else min_size
    max_size = max(desired, asg["MaxSize"] if max_size is None else max_size)
    autoscaling.update_auto_scaling_group(AutoScalingGroupName=asg["AutoScalingGroupName"],
                                          MinSize=min_size, MaxSize=max_size, DesiredCapacity=desired)


def healthy_count(elbv2, target_group_arn: str) -> int:
    found = elbv2.describe_target_health(TargetGroupArn=target_group_arn)["TargetHealthDescriptions"]
    return sum(1 for t in found if t["TargetHealth"]["State"] == "healthy")


def table_name(stack: str) -> str:
    """The stack's rollout table: a fixed name, so `fleet rollback` and the function find it from the
    stack alone (a hash-keyed table is never replaced by an update)."""
    return f"fleet-{stack}-rollouts"


def flip(elbv2, rule_arn: str, slots: dict[str, Slot], to: str) -> dict[str, int]:
    """The rollback itself: one ModifyRule sending all traffic to `to`. Returns the weights written."""
    weights = all_to(to)
    write_weights(elbv2, rule_arn, slots, weights)
    return weights


def shrink_standby(autoscaling, slots: dict[str, Slot], record: dict) -> list[str]:
    """Scale the standby slot down to its recorded `standby_sizes` (capacity -> instances, min = that;
    processes are never suspended). Returns the ASG names changed."""
    slot = record.get("standby_slot")
    sizes = record.get("standby_sizes") or {}
    changed = []
    for capacity, asg in slots[slot].asgs.items() if slot in slots else ():
        size = int(sizes.get(capacity, 0))
        if (asg["MinSize"], asg["DesiredCapacity"]) != (size, size):
            park(autoscaling, asg, size, parked=not any(int(n) for n in sizes.values()))
            changed.append(asg["AutoScalingGroupName"])
    return changed


def park(autoscaling, asg: dict, size: int, *, parked: bool) -> None:
    """Min = desired = size; a slot kept at 0 in all is parked (MaxSize 0 too), which tells the spot
    capacity reconciler to leave it alone (its on-demand base would launch an instance otherwise)."""
    params = dict(AutoScalingGroupName=asg["AutoScalingGroupName"], MinSize=size, DesiredCapacity=size)
    if parked:
        params["MaxSize"] = 0
    autoscaling.update_auto_scaling_group(**params)
