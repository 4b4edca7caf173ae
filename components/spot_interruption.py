"""SpotInterruption: one per stack. EC2's two-minute spot warning -> a Lambda that drains the instance
from its target groups and raises the paired on-demand ASG's desired capacity by one (capped at its
max, once per instance). The handler is lambdas/spot_interruption/handler.py (boto3 only).

- EventBridge rule on `fleet.ops.events.SPOT_INTERRUPTION_PATTERN` (the warning only, never the
  rebalance recommendation: PITFALLS 24).
- Lambda: python3.12, `handler.handler`, the directory as a `pulumi.FileArchive`, FLEET_STACK in its
  environment, 60 s timeout (the warning gives 120 s), 128 MB, and `reserved_concurrent_executions=1`:
  the handler's once-per-instance guarantee (check the instance tag, then write it) relies on one
  invocation at a time; events wait in Lambda's async queue meanwhile.
- Its log group `/aws/lambda/<function name>` is created here with a retention; the EventBridge
  target (the only thing that invokes the function) waits for it, so Lambda never creates the group
  itself (it would then exist unmanaged and collide with this one).
- Failures: the EventBridge target has a retry policy and a dead-letter queue (events it could not
  deliver); the function sends events that still fail after Lambda's async retries to the same queue.
  The queue is encrypted (SSE-SQS) and keeps messages 14 days; its queue policy lets only this rule
  send to it.
- IAM, least privilege, no `*` action: exactly `fleet.ops.events.SPOT_HANDLER_ACTIONS`, plus writing its
  own log group and sending to its own dead-letter queue:
  - autoscaling:SetDesiredCapacity on ASGs tagged fleet:stack=<stack> and fleet:capacity=on-demand
    (aws:ResourceTag and autoscaling:ResourceTag conditions);
  - ec2:CreateTags on this stack's instances (aws:ResourceTag/fleet:stack), and only the tag key
    `fleet:interruption-handled` (ForAllValues aws:TagKeys);
  - elasticloadbalancing:DeregisterTargets on the stack's target group ARNs (no statement when the
    stack has none: the handler only deregisters from the ASG's own target groups);
  - autoscaling:DescribeAutoScalingInstances, autoscaling:DescribeAutoScalingGroups,
    ec2:DescribeInstances, ec2:DescribeTags on "*": these Describe actions do not support
    resource-level permissions (AWS's service authorization reference lists no resource type).
  The sqs:SendMessage permission is a separate role policy that the function waits for (Lambda checks
  it when a dead-letter queue is configured); the rest waits for the function (its log group is named
  after it) and the EventBridge target waits for the rest. Account and partition come from the role's ARN.
- Tags fleet:stack on everything taggable (rule, function, log group, queue, role).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import pulumi
import pulumi_aws as aws

from components.naming import stack_tags
from fleet.ops.events import HANDLED_TAG, SPOT_HANDLER_ACTIONS, SPOT_INTERRUPTION_PATTERN
from fleet.spec.names import slug

HANDLER_DIR = Path(__file__).resolve().parent.parent / "lambdas" / "spot_interruption"
RUNTIME = "python3.12"
HANDLER = "handler.handler"
TIMEOUT = 60  # seconds; the warning comes two minutes ahead
MEMORY = 128  # MB
LOG_RETENTION_DAYS = 30
# EventBridge -> Lambda delivery: retry for up to 15 minutes (after that the instance has long gone
# and the spot ASG has replaced it or failed to), then the dead-letter queue.
TARGET_MAX_EVENT_AGE = 900
TARGET_MAX_RETRIES = 10
# Lambda's own async retries of a failing invocation, and how long an event may wait in its queue
# (reserved concurrency 1: a burst of warnings is handled one after the other).
FUNCTION_MAX_EVENT_AGE = 900
FUNCTION_MAX_RETRIES = 2
DLQ_RETENTION = 14 * 24 * 3600  # the SQS maximum

DESCRIBE_ACTIONS = tuple(a for a in SPOT_HANDLER_ACTIONS if a.split(":")[1].startswith("Describe"))
LOG_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents")
DLQ_ACTIONS = ("sqs:SendMessage",)


def handler_policy(stack: str, region: str, partition: str, account: str, log_group_arn: str,
                   target_group_arns: Sequence[str]) -> dict:
    """The role policy for the handler's own calls (SPOT_HANDLER_ACTIONS) and its log group."""
    arn = f"arn:{partition}"
    statements = [
        {"Sid": "Describe", "Effect": "Allow", "Action": list(DESCRIBE_ACTIONS),
         # Describe* on "*": these actions do not support resource-level permissions.
         "Resource": "*"},
        {"Sid": "RaiseOnDemandPair", "Effect": "Allow", "Action": ["autoscaling:SetDesiredCapacity"],
         "Resource": f"{arn}:autoscaling:{region}:{account}:autoScalingGroup:*:autoScalingGroupName/*",
         "Condition": {"StringEquals": {
             "aws:ResourceTag/fleet:stack": stack, "autoscaling:ResourceTag/fleet:stack": stack,
             "aws:ResourceTag/fleet:capacity": "on-demand", "autoscaling:ResourceTag/fleet:capacity": "on-demand"}}},
        {"Sid": "MarkHandled", "Effect": "Allow", "Action": ["ec2:CreateTags"],
         "Resource": f"{arn}:ec2:{region}:{account}:instance/*",
         "Condition": {"StringEquals": {"aws:ResourceTag/fleet:stack": stack},
                       "ForAllValues:StringEquals": {"aws:TagKeys": [HANDLED_TAG]}}},
    ]
    if target_group_arns:
        statements.append({"Sid": "Drain", "Effect": "Allow", "Action": ["elasticloadbalancing:DeregisterTargets"],
                           "Resource": sorted(target_group_arns)})
    statements.append({"Sid": "Logs", "Effect": "Allow", "Action": list(LOG_ACTIONS),
                       "Resource": f"{log_group_arn}:*"})
    return {"Version": "2012-10-17", "Statement": statements}


def dlq_policy(queue_arn: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "DeadLetter", "Effect": "Allow", "Action": list(DLQ_ACTIONS), "Resource": queue_arn}]}


def _assume_role_policy() -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


def _queue_policy(queue_arn: str, rule_arn: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "EventBridgeDeadLetter", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
         "Action": "sqs:SendMessage", "Resource": queue_arn,
         "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}}]})


def _arn_parts(role_arn: str) -> tuple[str, str]:
    """(partition, account) of an IAM role ARN `arn:<partition>:iam::<account>:role/<name>`."""
    parts = role_arn.split(":")
    return parts[1], parts[4]


@dataclass
class SpotInterruptionArgs:
    stack: str
    region: str
    target_group_arns: Sequence[pulumi.Input[str]] = ()
    log_retention_days: int = LOG_RETENTION_DAYS
    tags: Mapping[str, str] = field(default_factory=dict)


class SpotInterruption(pulumi.ComponentResource):
    rule: aws.cloudwatch.EventRule
    role: aws.iam.Role
    dlq_policy: aws.iam.RolePolicy
    policy: aws.iam.RolePolicy
    dead_letter_queue: aws.sqs.Queue
    queue_policy: aws.sqs.QueuePolicy
    function: aws.lambda_.Function
    invoke_config: aws.lambda_.FunctionEventInvokeConfig
    log_group: aws.cloudwatch.LogGroup
    permission: aws.lambda_.Permission
    target: aws.cloudwatch.EventTarget

    def __init__(self, name: str, args: SpotInterruptionArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleet:spot_interruption:SpotInterruption", name, None, opts)
        stack, region = args.stack, args.region
        tags = stack_tags(stack, args.tags)
        # Autonamed (Pulumi adds 8 characters): function and role names stay within their 64.
        base = f"fleet-{slug(stack)[:30].strip('-')}-spot"

        def child(*depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=list(depends_on))

        self.rule = aws.cloudwatch.EventRule(f"{base}-warning", aws.cloudwatch.EventRuleArgs(
            description=f"fleet {stack}: EC2 Spot Instance Interruption Warning -> spot interruption handler",
            event_pattern=json.dumps(SPOT_INTERRUPTION_PATTERN), tags=tags), opts=child())
        self.dead_letter_queue = aws.sqs.Queue(f"{base}-dlq", aws.sqs.QueueArgs(
            sqs_managed_sse_enabled=True, message_retention_seconds=DLQ_RETENTION, tags=tags), opts=child())
        self.queue_policy = aws.sqs.QueuePolicy(f"{base}-dlq-access", aws.sqs.QueuePolicyArgs(
            queue_url=self.dead_letter_queue.id,  # a queue's id is its URL
            policy=pulumi.Output.all(self.dead_letter_queue.arn, self.rule.arn).apply(
                lambda v: _queue_policy(v[0], v[1]))), opts=child())

        self.role = aws.iam.Role(f"{base}-role", aws.iam.RoleArgs(
            description=f"fleet {stack}: spot interruption handler (Lambda)",
            assume_role_policy=_assume_role_policy(), tags=tags), opts=child())
        self.dlq_policy = aws.iam.RolePolicy(f"{base}-dlq-send", aws.iam.RolePolicyArgs(
            role=self.role.id,
            policy=self.dead_letter_queue.arn.apply(lambda arn: json.dumps(dlq_policy(arn)))), opts=child())

        self.function = aws.lambda_.Function(f"{base}-handler", aws.lambda_.FunctionArgs(
            description=f"fleet {stack}: drain a spot instance on its interruption warning and raise the "
                        "paired on-demand ASG by one",
            runtime=RUNTIME, handler=HANDLER, code=pulumi.FileArchive(str(HANDLER_DIR)),
            role=self.role.arn, timeout=TIMEOUT, memory_size=MEMORY,
            reserved_concurrent_executions=1,  # the handler's once-per-instance guarantee relies on it
            environment=aws.lambda_.FunctionEnvironmentArgs(variables={"FLEET_STACK": stack}),
            dead_letter_config=aws.lambda_.FunctionDeadLetterConfigArgs(target_arn=self.dead_letter_queue.arn),
            tags=tags), opts=child(self.dlq_policy))
        self.invoke_config = aws.lambda_.FunctionEventInvokeConfig(
            f"{base}-async", aws.lambda_.FunctionEventInvokeConfigArgs(
                function_name=self.function.name, maximum_event_age_in_seconds=FUNCTION_MAX_EVENT_AGE,
                maximum_retry_attempts=FUNCTION_MAX_RETRIES), opts=child())
        self.log_group = aws.cloudwatch.LogGroup(f"{base}-logs", aws.cloudwatch.LogGroupArgs(
            name=self.function.name.apply(lambda n: f"/aws/lambda/{n}"),
            retention_in_days=args.log_retention_days, tags=tags), opts=child())

        self.policy = aws.iam.RolePolicy(f"{base}-policy", aws.iam.RolePolicyArgs(
            role=self.role.id,
            policy=pulumi.Output.all(self.role.arn, self.log_group.arn, *args.target_group_arns).apply(
                lambda v: json.dumps(handler_policy(stack, region, *_arn_parts(v[0]), v[1], v[2:])))), opts=child())

        self.permission = aws.lambda_.Permission(f"{base}-invoke", aws.lambda_.PermissionArgs(
            action="lambda:InvokeFunction", function=self.function.name, principal="events.amazonaws.com",
            source_arn=self.rule.arn), opts=child())
        self.target = aws.cloudwatch.EventTarget(f"{base}-target", aws.cloudwatch.EventTargetArgs(
            rule=self.rule.name, arn=self.function.arn,
            dead_letter_config=aws.cloudwatch.EventTargetDeadLetterConfigArgs(arn=self.dead_letter_queue.arn),
            retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
                maximum_event_age_in_seconds=TARGET_MAX_EVENT_AGE, maximum_retry_attempts=TARGET_MAX_RETRIES)),
            opts=child(self.permission, self.policy, self.log_group, self.queue_policy, self.invoke_config))

        self.register_outputs({
            "function_name": self.function.name, "rule_arn": self.rule.arn,
            "dead_letter_queue_url": self.dead_letter_queue.id, "log_group_name": self.log_group.name,
        })
