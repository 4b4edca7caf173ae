"""Whether a target group exists, asked of ELBv2 itself.

The Resource Groups Tagging API is eventually consistent and lists recently deleted resources for a
while; the program's port-change check (components/port_changes.py) asks here before it trusts a
listed target group. Not a Pulumi invoke: a failed invoke fails the whole Pulumi run even when the
program catches it (the SDK records it as an unhandled RPC error), and "not found" is the answer
wanted here.
"""

from __future__ import annotations

from botocore.exceptions import ClientError


def target_group_exists(elbv2, arn: str) -> bool:
    """DescribeTargetGroups by ARN: False on TargetGroupNotFound; any other error is raised."""
    try:
        found = elbv2.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"]
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") == "TargetGroupNotFound":
            return False
        raise
    return bool(found)
