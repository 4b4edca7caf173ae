"""EventBridge and IAM contract of the spot capacity reconciler (lambdas/spot_capacity), kept pure.

The SpotCapacity component takes its rule patterns, schedule and IAM actions from here; the handler
imports nothing of ours, so tests check that the two agree (detail-types, tag keys, namespace).
"""

from __future__ import annotations

import json
from typing import Sequence

# Act on the two-minute warning only: rebalance recommendations are often false alarms,
# and capacity rebalancing on the spot ASG already handles them.
SPOT_INTERRUPTION_PATTERN: dict = {
    "source": ["aws.ec2"],
    "detail-type": ["EC2 Spot Instance Interruption Warning"],
}

# Auto Scaling's own events (EC2 Auto Scaling user guide, "Amazon EC2 Auto Scaling event reference"):
# a spot instance arrived, a spot launch failed (InsufficientInstanceCapacity, price, ...), one left.
ASG_DETAIL_TYPES: tuple[str, ...] = (
    "EC2 Instance Launch Successful",
    "EC2 Instance Launch Unsuccessful",
    "EC2 Instance Terminate Successful",
)

# The level-triggered safety net: every group is reconciled this often, whatever events were lost.
RECONCILE_SCHEDULE = "rate(5 minutes)"

# EventBridge's default limit on an event pattern (adjustable to 4096). ASG names are at most 255
# characters; ours are `<group slug>-spot-<7>` and far shorter, so 20 per rule stay well inside it.
EVENT_PATTERN_LIMIT = 2048
ASG_NAMES_PER_RULE = 20


def asg_events_pattern(spot_asg_names: Sequence[str]) -> dict:
    """Launch (un)successful / terminate events of exactly these spot ASGs."""
    return {
        "source": ["aws.autoscaling"],
        "detail-type": list(ASG_DETAIL_TYPES),
        "detail": {"AutoScalingGroupName": sorted(spot_asg_names)},
    }


def asg_events_pattern_json(spot_asg_names: Sequence[str]) -> str:
    text = json.dumps(asg_events_pattern(spot_asg_names), sort_keys=True)
    if len(text) > EVENT_PATTERN_LIMIT:
        raise ValueError(f"event pattern of {len(spot_asg_names)} ASG names is {len(text)} characters, "
                         f"over EventBridge's {EVENT_PATTERN_LIMIT}")
    return text


def chunks(items: Sequence, size: int = ASG_NAMES_PER_RULE) -> list[list]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


# Every API action the handler calls, for a least-privilege Lambda role. tests/test_spot_capacity.py
# records the calls the handler really makes and fails if one is missing here.
SPOT_CAPACITY_ACTIONS: tuple[str, ...] = (
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:UpdateAutoScalingGroup",
    "ec2:DescribeTags",
    "ec2:DescribeInstances",
    "ec2:CreateTags",
    "elasticloadbalancing:DeregisterTargets",
    "dynamodb:UpdateItem",
    "cloudwatch:PutMetricData",
)

# The instance tag a warning leaves (the warned instance counts as missing while it is in the group),
# the on-demand ASG tag that says its base, and the metrics (README "Spot capacity" lists them).
WARNED_TAG = "fleet:interruption-warned"
BASE_TAG = "fleet:on-demand-base"
CEILING_TAG = "fleet:pair-ceiling"  # the most instances the pair may run at once (node_max + spot headroom)
OD_MAX_TAG = "fleet:on-demand-max"  # the on-demand ASG's own maximum (its MaxSize is the reconciler's)
METRIC_NAMESPACE = "fleet/SpotCapacity"
METRIC_NAMES = ("SpotDeficit", "OnDemandExtra", "Capped")


# -- instance refresh alerts (components/alerts.py) ---------------------------------------------------

# Detail-types from the EC2 Auto Scaling user guide, "Instance refresh example events and patterns" (and the
# EventBridge events reference for aws.autoscaling): the refresh ends badly (Failed, Cancelled) or AWS starts,
# finishes or fails to finish a rollback. Started/Succeeded/Checkpoint/Started Baking are not alerts.
REFRESH_ALERT_DETAIL_TYPES: tuple[str, ...] = (
    "EC2 Auto Scaling Instance Refresh Failed",
    "EC2 Auto Scaling Instance Refresh Cancelled",
    "EC2 Auto Scaling Instance Refresh Rollback Started",
    "EC2 Auto Scaling Instance Refresh Rollback Succeeded",
    "EC2 Auto Scaling Instance Refresh Rollback Failed",
)
REFRESH_OTHER_DETAIL_TYPES: tuple[str, ...] = (
    "EC2 Auto Scaling Instance Refresh Started",
    "EC2 Auto Scaling Instance Refresh Succeeded",
    "EC2 Auto Scaling Instance Refresh Checkpoint Reached",
    "EC2 Auto Scaling Instance Refresh Started Baking",
)


def refresh_alert_pattern(asg_names: list[str]) -> dict:
    """The EventBridge pattern for one group's refresh alerts: its own ASGs by name (the events carry
    `detail.AutoScalingGroupName`). One rule per group keeps each pattern far below EventBridge's default
    2048-character limit, whatever the number of groups."""
    return {
        "source": ["aws.autoscaling"],
        "detail-type": list(REFRESH_ALERT_DETAIL_TYPES),
        "detail": {"AutoScalingGroupName": sorted(asg_names)},
    }
