"""The standby function: rollback with no one watching, and the standby's scale-down.

Two triggers (components/bluegreen.py):
- an EventBridge rule on the stack's health alarms entering ALARM. If the alarm's slot (its
  `fleet:slot` tag) is live and the group's other slot is within its standby window (the group's
  record in the rollout table), the rule's weights go back to the standby in one write. An alarm of
  the slot at weight 0, one outside the window, or one while a rollout holds the group's lock (the
  rollout watches the alarms itself and rolls back) changes nothing;
- a schedule: every standby whose window has ended is scaled down to its recorded size (MinSize too;
  processes are never suspended).

Environment: FLEET_STACK, FLEET_ROLLOUT_TABLE. Every decision is logged as one JSON line and returned.
"""

from __future__ import annotations

import json
import os
import time

import boto3

try:  # packaged flat in the function; a package in the repository
    import slots as sl  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - the repository layout
    from lambdas.bluegreen import slots as sl

ALARM_EVENT = "CloudWatch Alarm State Change"
SCHEDULED = "Scheduled Event"


def _log(record: dict) -> dict:
    print(json.dumps(record, sort_keys=True, default=str), flush=True)
    return record


def handler(event, context, *, now=time.time):
    stack, table = os.environ.get("FLEET_STACK"), os.environ.get("FLEET_ROLLOUT_TABLE")
    if not stack or not table:
        raise RuntimeError("FLEET_STACK and FLEET_ROLLOUT_TABLE must be set")
    kind = event.get("detail-type")
    if kind == ALARM_EVENT:
        return on_alarm(event, stack, table, now)
    if kind == SCHEDULED:
        return {"decisions": end_standbys(stack, table, now)}
    return _log({"action": "ignored", "reason": f"not a trigger of this function: {kind!r}"})


def on_alarm(event: dict, stack: str, table: str, now=time.time) -> dict:
    detail = event.get("detail") or {}
    name = detail.get("alarmName")
    base = {"trigger": "alarm", "alarm": name, "state": (detail.get("state") or {}).get("value")}
    if base["state"] != "ALARM":
        return _log({**base, "action": "ignored", "reason": "not ALARM"})
    cloudwatch = boto3.client("cloudwatch")
    arn = (event.get("resources") or [None])[0]
    tags = {t["Key"]: t["Value"] for t in cloudwatch.list_tags_for_resource(ResourceARN=arn)["Tags"]} if arn else {}
    group, slot = tags.get("fleet:group"), tags.get("fleet:slot")
    if tags.get("fleet:stack") != stack or not group or slot not in sl.SLOTS:
        return _log({**base, "action": "ignored", "reason": "not a slot alarm of this stack"})
    base["group"] = group
    lock = sl.Lock(boto3.client("dynamodb"), table, stack, group, ttl=300, clock=now)
    try:
        lock.acquire()
    except sl.Busy as e:
        return _log({**base, "action": "busy", "reason": f"{e}: the rollout holding it watches the alarms"})
    try:
        record = lock.record()
        standby = record.get("standby_slot")
        if standby != sl.other(slot) or record.get("standby_scaled") or int(record.get("standby_until", 0)) < now():
            return _log({**base, "action": "ignored", "reason": f"slot {sl.other(slot)} is not on standby"})
        autoscaling, elbv2 = boto3.client("autoscaling"), boto3.client("elbv2")
        slots = sl.find_slots(autoscaling, group, stack)
        weights = sl.read_weights(elbv2, record["rule_arn"], slots)
        if sl.live_slot(weights) != slot:
            return _log({**base, "action": "ignored", "reason": f"slot {slot} is not live ({weights})"})
        done = sl.flip(elbv2, record["rule_arn"], slots, standby)
        lock.write_record(live_slot=standby, standby_slot=slot, standby_until=int(now()), standby_scaled=False)
        return _log({**base, "action": "rolled-back", "live": standby, "weights": done})
    finally:
        lock.release()


def end_standbys(stack: str, table: str, now=time.time) -> list[dict]:
    """Scale down every standby of the stack whose window has ended."""
    dynamodb, autoscaling = boto3.client("dynamodb"), boto3.client("autoscaling")
    prefix = f"{stack}/"
    items = [i for page in dynamodb.get_paginator("scan").paginate(TableName=table) for i in page["Items"]]
    decisions = []
    for item in items:
        key = item["group"]["S"]
        if not key.startswith(prefix) or "standby_until" not in item or item.get("standby_scaled", {}).get("BOOL"):
            continue
        if int(item["standby_until"]["N"]) > now():
            continue
        group = key[len(prefix):]
        lock = sl.Lock(dynamodb, table, stack, group, ttl=300, clock=now)
        try:
            lock.acquire()
        except sl.Busy:
            decisions.append(_log({"group": group, "action": "busy"}))
            continue
        try:
            record = lock.record()
            if record.get("standby_scaled") or int(record.get("standby_until", 0)) > now():
                continue  # a rollout or rollback moved it meanwhile
            changed = sl.shrink_standby(autoscaling, sl.find_slots(autoscaling, group, stack), record)
            lock.write_record(standby_scaled=True)
            decisions.append(_log({"group": group, "action": "scaled-down", "slot": record.get("standby_slot"),
                                   "asgs": changed, "sizes": record.get("standby_sizes")}))
        finally:
            lock.release()
    return decisions
