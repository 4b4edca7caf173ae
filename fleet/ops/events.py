"""EventBridge contract of the spot interruption handler, kept pure (no boto3, no pulumi).

The SpotInterruption component takes the rule pattern and the handler's IAM actions from here; the
handler itself (lambdas/spot_interruption) imports nothing of ours, so tests check that the two agree.
"""

from __future__ import annotations

# Act on the two-minute warning only: rebalance recommendations are often false alarms (PITFALLS 24),
# and capacity rebalancing on the spot ASG already handles them.
SPOT_INTERRUPTION_PATTERN: dict = {
    "source": ["aws.ec2"],
    "detail-type": ["EC2 Spot Instance Interruption Warning"],
}

# The example events from the EC2 user guide ("Spot Instance interruption notices" and "EC2 instance
# rebalance recommendations"), with the documented placeholders for time and instance-action filled in.
SAMPLE_SPOT_INTERRUPTION_EVENT: dict = {
    "version": "0",
    "id": "12345678-1234-1234-1234-123456789012",
    "detail-type": "EC2 Spot Instance Interruption Warning",
    "source": "aws.ec2",
    "account": "123456789012",
    "time": "2024-05-14T12:00:00Z",
    "region": "us-east-2",
    "resources": ["arn:aws:ec2:us-east-2:123456789012:instance/i-1234567890abcdef0"],
    "detail": {
        "instance-id": "i-1234567890abcdef0",
        "instance-action": "terminate",
    },
}

SAMPLE_REBALANCE_EVENT: dict = {
    "version": "0",
    "id": "12345678-1234-1234-1234-123456789012",
    "detail-type": "EC2 Instance Rebalance Recommendation",
    "source": "aws.ec2",
    "account": "123456789012",
    "time": "2024-05-14T12:00:00Z",
    "region": "us-east-2",
    "resources": ["arn:aws:ec2:us-east-2:123456789012:instance/i-1234567890abcdef0"],
    "detail": {
        "instance-id": "i-1234567890abcdef0",
    },
}

# Every API action the handler calls, for a least-privilege Lambda role. tests/test_spot_interruption.py
# records the calls the handler really makes and fails if one is missing here.
SPOT_HANDLER_ACTIONS: tuple[str, ...] = (
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:SetDesiredCapacity",
    "ec2:DescribeInstances",
    "ec2:DescribeTags",
    "ec2:CreateTags",
    "elasticloadbalancing:DeregisterTargets",
)

# The instance tag the handler writes before it raises the on-demand capacity (its once-only record).
HANDLED_TAG = "fleet:interruption-handled"
