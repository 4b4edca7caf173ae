"""Spot interruption warning -> take the instance out of its target groups now and raise the paired
on-demand ASG by one, so capacity is back before the spot instance disappears two minutes later.

Shipped alone in a pulumi.FileArchive on the Python 3.12 runtime: boto3 only, nothing imported from
fleet. Reads the stack name from FLEET_STACK; boto3 honours AWS_ENDPOINT_URL (a moto server in tests).

Once per instance, and how far that goes:
- Before acting, the handler looks for the instance tag `fleet:interruption-handled`; if it is there
  (or this warm container already handled the instance) the event is a duplicate and nothing is done.
- Order of effects: deregister (idempotent, so a retry after a failure there simply redoes it), then
  write the tag (value = event id), then SetDesiredCapacity. A crash between the tag and the bump
  loses the bump rather than doubling it: at most once, never twice.
- Check-then-tag is not atomic, so two invocations running at the same moment could both pass the
  check. The SpotInterruption component sets reserved_concurrent_executions=1: Lambda then runs one
  invocation at a time (EventBridge's async deliveries wait and are retried), which serialises the
  check and the write. The guarantee rests on that setting. EC2 tag reads are eventually consistent;
  the in-memory record of the (single, warm) container covers a duplicate arriving in that window,
  and a cold container reads the tag well after it was written.

Every decision is one JSON line on stdout (CloudWatch Logs): action, instance_id, asg, pair,
desired_before, desired_after, reason, plus event_id, stack, instance_action, deregistered_from.
Actions: bumped | capped | duplicate | ignored | gone | no-pair. The same dict is returned.

IAM actions used (fleet/ops/events.py SPOT_HANDLER_ACTIONS, checked by the tests): autoscaling
DescribeAutoScalingInstances, DescribeAutoScalingGroups, SetDesiredCapacity; ec2 DescribeInstances,
DescribeTags, CreateTags; elasticloadbalancing DeregisterTargets.
"""

from __future__ import annotations

import json
import os

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

WARNING = "EC2 Spot Instance Interruption Warning"
HANDLED_TAG = "fleet:interruption-handled"

# The warning gives two minutes: short timeouts, a few standard-mode retries, then fail and let
# Lambda retry the whole (idempotent up to the tag) invocation.
_CONFIG = Config(connect_timeout=5, read_timeout=15, retries={"mode": "standard", "max_attempts": 4})

# instance id -> event id, for this container's lifetime (see the module docstring).
_SEEN: dict[str, str] = {}


def _client(service: str):
    return boto3.client(service, region_name=os.environ.get("AWS_REGION") or None, config=_CONFIG)


def _decide(record: dict, action: str, reason: str, **fields) -> dict:
    """Finish the decision record, log it as one JSON line, return it."""
    record.update(fields, action=action, reason=reason)
    print(json.dumps(record, sort_keys=True, default=str), flush=True)
    return record


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def handler(event, context):
    """Lambda entry point for the EventBridge rule on SPOT_INTERRUPTION_PATTERN."""
    stack = os.environ.get("FLEET_STACK")
    if not stack:
        raise RuntimeError("FLEET_STACK is not set: the handler cannot tell its own ASGs from others")
    detail = event.get("detail") or {}
    instance_id = detail.get("instance-id")
    event_id = event.get("id") or "unknown"
    record = {
        "action": None, "reason": None, "event_id": event_id, "stack": stack, "instance_id": instance_id,
        "instance_action": detail.get("instance-action"), "asg": None, "pair": None,
        "desired_before": None, "desired_after": None, "deregistered_from": [],
    }
    if event.get("detail-type") != WARNING or not instance_id:
        return _decide(record, "ignored", f"not a spot interruption warning: {event.get('detail-type')!r}")

    autoscaling, ec2 = _client("autoscaling"), _client("ec2")

    found = autoscaling.describe_auto_scaling_instances(InstanceIds=[instance_id])["AutoScalingInstances"]
    if not found:
        return _not_in_an_asg(record, ec2, instance_id)
    asg_name = found[0]["AutoScalingGroupName"]
    record["asg"] = asg_name
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])["AutoScalingGroups"]
    if not groups:
        return _decide(record, "gone", f"Auto Scaling group {asg_name} no longer exists")
    spot = groups[0]
    tags = {t["Key"]: t["Value"] for t in spot.get("Tags", [])}
    if tags.get("fleet:capacity") != "spot" or tags.get("fleet:stack") != stack or not tags.get("fleet:group"):
        return _decide(record, "ignored", "not a spot ASG of this stack: "
                       f"fleet:capacity={tags.get('fleet:capacity')!r} fleet:stack={tags.get('fleet:stack')!r} "
                       f"fleet:group={tags.get('fleet:group')!r}")

    if instance_id in _SEEN:
        return _decide(record, "duplicate", f"already handled for event {_SEEN[instance_id]} (this container)")
    handled = ec2.describe_tags(Filters=[
        {"Name": "resource-id", "Values": [instance_id]},
        {"Name": "key", "Values": [HANDLED_TAG]},
    ])["Tags"]
    if handled:
        _SEEN[instance_id] = handled[0]["Value"]
        return _decide(record, "duplicate", f"already handled for event {handled[0]['Value']} ({HANDLED_TAG} tag)")

    pairs = _on_demand_pairs(autoscaling, tags["fleet:group"], stack)

    elbv2 = _client("elbv2") if spot.get("TargetGroupARNs") else None
    for arn in spot.get("TargetGroupARNs", []):
        try:
            elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": instance_id}])
        except ClientError as e:
            if _code(e) not in ("InvalidTarget", "TargetGroupNotFound"):
                raise
            continue
        record["deregistered_from"].append(arn)

    try:
        ec2.create_tags(Resources=[instance_id], Tags=[{"Key": HANDLED_TAG, "Value": event_id}])
    except ClientError as e:
        if not _code(e).startswith("InvalidInstanceID"):
            raise
        return _decide(record, "gone", f"instance vanished before it could be marked handled ({_code(e)})")
    _SEEN[instance_id] = event_id

    if len(pairs) != 1:
        names = [p["AutoScalingGroupName"] for p in pairs]
        return _decide(record, "no-pair", f"expected one on-demand ASG tagged fleet:group={tags['fleet:group']} "
                       f"fleet:stack={stack}, found {len(pairs)} {names}")
    pair = pairs[0]
    before, cap = pair["DesiredCapacity"], pair["MaxSize"]
    record.update(pair=pair["AutoScalingGroupName"], desired_before=before)
    if before >= cap:
        return _decide(record, "capped", f"on-demand ASG already at its MaxSize {cap}", desired_after=before)
    autoscaling.set_desired_capacity(AutoScalingGroupName=pair["AutoScalingGroupName"],
                                     DesiredCapacity=before + 1, HonorCooldown=False)
    return _decide(record, "bumped", "spot interruption warning", desired_after=before + 1)


def _not_in_an_asg(record: dict, ec2, instance_id: str) -> dict:
    """No ASG knows the instance: it is gone (terminated, detached) or was never one of ours."""
    try:
        reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    except ClientError as e:
        if _code(e).startswith("InvalidInstanceID"):
            return _decide(record, "gone", f"instance not found ({_code(e)})")
        raise
    instances = [i for r in reservations for i in r["Instances"]]
    state = instances[0]["State"]["Name"] if instances else None
    if state in (None, "shutting-down", "terminated"):
        return _decide(record, "gone", f"instance is {state or 'not found'} and in no Auto Scaling group")
    return _decide(record, "ignored", "instance is not in an Auto Scaling group")


def _on_demand_pairs(autoscaling, group: str, stack: str) -> list[dict]:
    filters = [
        {"Name": "tag:fleet:group", "Values": [group]},
        {"Name": "tag:fleet:stack", "Values": [stack]},
        {"Name": "tag:fleet:capacity", "Values": ["on-demand"]},
    ]
    pages = autoscaling.get_paginator("describe_auto_scaling_groups").paginate(Filters=filters)
    return [g for page in pages for g in page["AutoScalingGroups"]]
