"""AWS's example events, as its user guides print them (placeholders for time and ids filled in): the
inputs the spot capacity handler and the refresh alert patterns are tested with. Test fixtures, not
code the fleet runs."""

from __future__ import annotations

# The example events of the EC2 user guide ("Spot Instance interruption notices", "EC2 instance
# rebalance recommendations") and the EC2 Auto Scaling user guide (event reference), with the
# documented placeholders for time (and instance-action) filled in.
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


def _asg_sample(detail_type: str, status: str, description: str | None, message: str) -> dict:
    detail = {
        "StatusCode": status,
        "AutoScalingGroupName": "my-auto-scaling-group",
        "ActivityId": "87654321-4321-4321-4321-210987654321",
        "Details": {"Availability Zone": "us-west-2b", "Subnet ID": "subnet-12345678"},
        "RequestId": "12345678-1234-1234-1234-123456789012",
        "StatusMessage": message,
        "EndTime": "2024-05-14T12:00:00Z",
        "EC2InstanceId": "i-1234567890abcdef0",
        "StartTime": "2024-05-14T11:59:00Z",
        "Cause": "description-text",
    }
    if description is not None:  # the successful events carry one, the unsuccessful ones do not
        detail["Description"] = description
    return _autoscaling_event(detail_type, ["auto-scaling-group-arn", "instance-arn"], detail)


def _autoscaling_event(detail_type: str, resources: list[str], detail: dict) -> dict:
    """The envelope AWS's example aws.autoscaling events share (the user guide's placeholders)."""
    return {
        "version": "0",
        "id": "12345678-1234-1234-1234-123456789012",
        "detail-type": detail_type,
        "source": "aws.autoscaling",
        "account": "123456789012",
        "time": "2024-05-14T12:00:00Z",
        "region": "us-west-2",
        "resources": resources,
        "detail": detail,
    }


SAMPLE_ASG_EVENTS: dict[str, dict] = {
    "EC2 Instance Launch Successful": _asg_sample(
        "EC2 Instance Launch Successful", "InProgress", "Launching a new EC2 instance: i-12345678", ""),
    "EC2 Instance Launch Unsuccessful": _asg_sample(
        "EC2 Instance Launch Unsuccessful", "Failed", None, "message-text"),
    "EC2 Instance Terminate Successful": _asg_sample(
        "EC2 Instance Terminate Successful", "InProgress", "Terminating EC2 instance: i-12345678", ""),
    # documented too, and not a trigger: nothing about capacity changed
    "EC2 Instance Terminate Unsuccessful": _asg_sample(
        "EC2 Instance Terminate Unsuccessful", "Failed", None, "message-text"),
}

# What EventBridge delivers for a schedule rule (EventBridge user guide, "Scheduled events").
SAMPLE_SCHEDULED_EVENT: dict = {
    "version": "0",
    "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2024-05-14T12:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/my-schedule"],
    "detail": {},
}


def sample_refresh_event(detail_type: str, asg_name: str = "my-asg") -> dict:
    """AWS's example event for `detail_type` (same page), with its placeholders filled in."""
    return _autoscaling_event(
        detail_type,
        [f"arn:aws:autoscaling:us-west-2:123456789012:autoScalingGroup:"
         f"d4738357-2d40-4038-ae7e-b00ae0227003:autoScalingGroupName/{asg_name}"],
        {"InstanceRefreshId": "c613620e-07e2-4ed2-a9e2-ef8258911ade", "AutoScalingGroupName": asg_name},
    )
