"""SpotCapacity: one per stack. The spot capacity reconciler (lambdas/spot_capacity) and what it needs.

- Triggers (EventBridge rules, each with a target on the function): the two-minute spot warning
  (`fleet.ops.events.SPOT_INTERRUPTION_PATTERN`, never the rebalance recommendation, which is often a false alarm);
  Auto Scaling's launch successful / launch unsuccessful / terminate successful events of exactly the
  stack's spot ASGs (`asg_events_pattern`, up to ASG_NAMES_PER_RULE names per rule so a pattern stays
  under EventBridge's 2048 characters); and a schedule (`RECONCILE_SCHEDULE`) that reconciles every
  group, so a lost event is repaired.
- State: a DynamoDB table (pay per request, encrypted at rest by default) with one item per group:
  the lease that serialises runs for the group (a conditional write) and the record of the capacity
  the reconciler added. This is what makes runs safe to overlap, so there is no reserved concurrency
  (it fails to deploy on accounts with a low concurrency quota).
- Lambda: python3.12, `handler.handler`, its code exactly `HANDLER_FILES` as an AssetArchive of
  StringAssets (the files' text, no path: nothing from the checkout's location and no `__pycache__`
  can reach the code's hash), FLEET_STACK and FLEET_CAPACITY_TABLE in its environment,
  TIMEOUT below the handler's lease, 128 MB.
- Its log group `/aws/lambda/<function name>` is created here with a retention; every EventBridge
  target waits for it, so Lambda never creates the group itself.
- Failures: each target has a retry policy and the stack's dead-letter queue; the function sends
  events that still fail after Lambda's async retries there too. The queue is encrypted (SSE-SQS),
  keeps messages 14 days, and its policy lets only these rules send to it.
- IAM, least privilege, no `*` action, exactly `fleet.ops.events.SPOT_CAPACITY_ACTIONS` plus its logs
  and its dead-letter queue:
  - autoscaling:UpdateAutoScalingGroup on ASGs tagged fleet:stack=<stack>, fleet:capacity=on-demand;
  - ec2:CreateTags on this stack's instances, only the key `fleet:interruption-warned`;
  - elasticloadbalancing:DeregisterTargets on the stack's target groups (none: no statement);
  - dynamodb:UpdateItem on its table;
  - cloudwatch:PutMetricData on "*" (the action has no resource type) for its namespace only
    (cloudwatch:namespace condition);
  - autoscaling:DescribeAutoScalingInstances, autoscaling:DescribeAutoScalingGroups, ec2:DescribeTags,
    ec2:DescribeInstances (launch times) on "*": these Describe actions do not support resource-level
    permissions.
- Alarms: per group, `<alarm prefix>spot-capped` when the reconciler could not cover the deficit
  under `on_demand.max` (metric Capped of namespace fleet/SpotCapacity), notifying `alarm_actions`.
- Tags fleet:stack on everything taggable (and fleet:group on a group's alarm).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import pulumi
import pulumi_aws as aws

from components.naming import alarm_prefix, stack_tags
from fleet.ops.events import (
    METRIC_NAMESPACE,
    RECONCILE_SCHEDULE,
    SPOT_CAPACITY_ACTIONS,
    SPOT_INTERRUPTION_PATTERN,
    WARNED_TAG,
    asg_events_pattern_json,
    chunks,
)
from fleet.spec.names import slug

HANDLER_DIR = Path(__file__).resolve().parent.parent / "lambdas" / "spot_capacity"
HANDLER_FILES = ("handler.py", "reconcile.py")
RUNTIME = "python3.12"
HANDLER = "handler.handler"
TIMEOUT = 60  # seconds; below the handler's LEASE_SECONDS (90), so a lease outlives its holder
MEMORY = 128  # MB
LOG_RETENTION_DAYS = 30
# EventBridge -> Lambda delivery: retry for up to 15 minutes, then the dead-letter queue (and the
# schedule reconciles anyway).
TARGET_MAX_EVENT_AGE = 900
TARGET_MAX_RETRIES = 10
FUNCTION_MAX_EVENT_AGE = 900
FUNCTION_MAX_RETRIES = 2
DLQ_RETENTION = 14 * 24 * 3600  # the SQS maximum
CAPPED_PERIOD = 300  # the schedule's period: a capped group reports at least once per period

DESCRIBE_ACTIONS = tuple(a for a in SPOT_CAPACITY_ACTIONS if a.split(":")[1].startswith("Describe"))
LOG_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents")
DLQ_ACTIONS = ("sqs:SendMessage",)


def handler_archive(directory: Path = HANDLER_DIR) -> pulumi.AssetArchive:
    """Exactly the handler's modules, by content: no path, so neither the checkout's location nor
    whatever else sits in the directory (`__pycache__`, editor files) can change the code's hash."""
    return pulumi.AssetArchive({name: pulumi.StringAsset((directory / name).read_text(encoding="utf-8"))
                                for name in HANDLER_FILES})


def handler_policy(stack: str, region: str, partition: str, account: str, log_group_arn: str, table_arn: str,
                   target_group_arns: Sequence[str]) -> dict:
    """The role policy for the handler's own calls (SPOT_CAPACITY_ACTIONS) and its log group."""
    arn = f"arn:{partition}"
    statements = [
        {"Sid": "Describe", "Effect": "Allow", "Action": list(DESCRIBE_ACTIONS),
         # Describe* on "*": these actions do not support resource-level permissions.
         "Resource": "*"},
        {"Sid": "SizeOnDemandPair", "Effect": "Allow", "Action": ["autoscaling:UpdateAutoScalingGroup"],
         "Resource": f"{arn}:autoscaling:{region}:{account}:autoScalingGroup:*:autoScalingGroupName/*",
         "Condition": {"StringEquals": {
             "aws:ResourceTag/fleet:stack": stack, "autoscaling:ResourceTag/fleet:stack": stack,
             "aws:ResourceTag/fleet:capacity": "on-demand", "autoscaling:ResourceTag/fleet:capacity": "on-demand"}}},
        {"Sid": "MarkWarned", "Effect": "Allow", "Action": ["ec2:CreateTags"],
         "Resource": f"{arn}:ec2:{region}:{account}:instance/*",
         "Condition": {"StringEquals": {"aws:ResourceTag/fleet:stack": stack},
                       "ForAllValues:StringEquals": {"aws:TagKeys": [WARNED_TAG]}}},
        {"Sid": "LeaseAndRecord", "Effect": "Allow", "Action": ["dynamodb:UpdateItem"], "Resource": table_arn},
        {"Sid": "Metrics", "Effect": "Allow", "Action": ["cloudwatch:PutMetricData"],
         # PutMetricData has no resource type; the namespace condition is its only scope.
         "Resource": "*", "Condition": {"StringEquals": {"cloudwatch:namespace": METRIC_NAMESPACE}}},
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


def _queue_policy(queue_arn: str, rule_arns: Sequence[str]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "EventBridgeDeadLetter", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
         "Action": "sqs:SendMessage", "Resource": queue_arn,
         "Condition": {"ArnEquals": {"aws:SourceArn": sorted(rule_arns)}}}]})


def _arn_parts(role_arn: str) -> tuple[str, str]:
    """(partition, account) of an IAM role ARN `arn:<partition>:iam::<account>:role/<name>`."""
    parts = role_arn.split(":")
    return parts[1], parts[4]


@dataclass
class SpotCapacityArgs:
    stack: str
    region: str
    spot_asg_names: Mapping[str, pulumi.Input[str]]  # group -> its spot ASG's name
    slot_spot_asg_names: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)  # blue/green slot b's
    target_group_arns: Sequence[pulumi.Input[str]] = ()
    alarm_actions: Sequence[pulumi.Input[str]] = ()  # e.g. the stack's SNS topic
    log_retention_days: int = LOG_RETENTION_DAYS
    tags: Mapping[str, str] = field(default_factory=dict)


class SpotCapacity(pulumi.ComponentResource):
    """`rules` (warning, asg-<n>..., schedule), `targets` and `permissions` by the same keys; `capped_alarms`
    by group."""

    table: aws.dynamodb.Table
    role: aws.iam.Role
    dlq_policy: aws.iam.RolePolicy
    policy: aws.iam.RolePolicy
    dead_letter_queue: aws.sqs.Queue
    queue_policy: aws.sqs.QueuePolicy
    function: aws.lambda_.Function
    invoke_config: aws.lambda_.FunctionEventInvokeConfig
    log_group: aws.cloudwatch.LogGroup

    def __init__(self, name: str, args: SpotCapacityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleet:spot_capacity:SpotCapacity", name, None, opts)
        stack, region = args.stack, args.region
        tags = stack_tags(stack, args.tags)
        # Autonamed (Pulumi adds 8 characters): function and role names stay within their 64.
        base = f"fleet-{slug(stack)[:30].strip('-')}-spot"

        def child(*depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=list(depends_on))

        self.rules: dict[str, aws.cloudwatch.EventRule] = {}
        self.rules["warning"] = aws.cloudwatch.EventRule(f"{base}-warning", aws.cloudwatch.EventRuleArgs(
            description=f"fleet {stack}: EC2 Spot Instance Interruption Warning -> spot capacity reconciler",
            event_pattern=json.dumps(SPOT_INTERRUPTION_PATTERN), tags=tags), opts=child())
        groups = sorted(args.spot_asg_names)
        for i, part in enumerate(chunks(groups)):
            names = [args.spot_asg_names[g] for g in part] + [args.slot_spot_asg_names[g] for g in part
                                                               if g in args.slot_spot_asg_names]
            self.rules[f"asg-{i}"] = aws.cloudwatch.EventRule(f"{base}-asg-{i}", aws.cloudwatch.EventRuleArgs(
                description=f"fleet {stack}: launch/terminate events of the spot ASGs of {', '.join(part)}"[:512],
                event_pattern=pulumi.Output.all(*names).apply(asg_events_pattern_json), tags=tags), opts=child())
        self.rules["schedule"] = aws.cloudwatch.EventRule(f"{base}-schedule", aws.cloudwatch.EventRuleArgs(
            description=f"fleet {stack}: reconcile every group's spot capacity (repairs lost events)",
            schedule_expression=RECONCILE_SCHEDULE, tags=tags), opts=child())

        self.table = aws.dynamodb.Table(f"{base}-state", aws.dynamodb.TableArgs(
            billing_mode="PAY_PER_REQUEST", hash_key="group",
            attributes=[aws.dynamodb.TableAttributeArgs(name="group", type="S")], tags=tags), opts=child())

        self.dead_letter_queue = aws.sqs.Queue(f"{base}-dlq", aws.sqs.QueueArgs(
            sqs_managed_sse_enabled=True, message_retention_seconds=DLQ_RETENTION, tags=tags), opts=child())
        rule_arns = [r.arn for r in self.rules.values()]
        self.queue_policy = aws.sqs.QueuePolicy(f"{base}-dlq-access", aws.sqs.QueuePolicyArgs(
            queue_url=self.dead_letter_queue.id,  # a queue's id is its URL
            policy=pulumi.Output.all(self.dead_letter_queue.arn, *rule_arns).apply(
                lambda v: _queue_policy(v[0], v[1:]))), opts=child())

        self.role = aws.iam.Role(f"{base}-role", aws.iam.RoleArgs(
            description=f"fleet {stack}: spot capacity reconciler (Lambda)",
            assume_role_policy=_assume_role_policy(), tags=tags), opts=child())
        self.dlq_policy = aws.iam.RolePolicy(f"{base}-dlq-send", aws.iam.RolePolicyArgs(
            role=self.role.id,
            policy=self.dead_letter_queue.arn.apply(lambda arn: json.dumps(dlq_policy(arn)))), opts=child())

        # No reserved_concurrent_executions: the handler's per-group lease makes overlapping runs safe.
        self.function = aws.lambda_.Function(f"{base}-reconciler", aws.lambda_.FunctionArgs(
            description=f"fleet {stack}: on-demand capacity = CPU-driven part + spot deficit; drains warned "
                        "spot instances",
            runtime=RUNTIME, handler=HANDLER, code=handler_archive(),
            role=self.role.arn, timeout=TIMEOUT, memory_size=MEMORY,
            environment=aws.lambda_.FunctionEnvironmentArgs(variables={
                "FLEET_STACK": stack, "FLEET_CAPACITY_TABLE": self.table.name}),
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
            policy=pulumi.Output.all(self.role.arn, self.log_group.arn, self.table.arn, *args.target_group_arns).apply(
                lambda v: json.dumps(handler_policy(stack, region, *_arn_parts(v[0]), v[1], v[2], v[3:])))),
            opts=child())

        self.permissions: dict[str, aws.lambda_.Permission] = {}
        self.targets: dict[str, aws.cloudwatch.EventTarget] = {}
        for key, rule in self.rules.items():
            self.permissions[key] = aws.lambda_.Permission(f"{base}-invoke-{key}", aws.lambda_.PermissionArgs(
                action="lambda:InvokeFunction", function=self.function.name, principal="events.amazonaws.com",
                source_arn=rule.arn), opts=child())
            self.targets[key] = aws.cloudwatch.EventTarget(f"{base}-target-{key}", aws.cloudwatch.EventTargetArgs(
                rule=rule.name, arn=self.function.arn,
                dead_letter_config=aws.cloudwatch.EventTargetDeadLetterConfigArgs(arn=self.dead_letter_queue.arn),
                retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
                    maximum_event_age_in_seconds=TARGET_MAX_EVENT_AGE, maximum_retry_attempts=TARGET_MAX_RETRIES)),
                opts=child(self.permissions[key], self.policy, self.log_group, self.queue_policy, self.invoke_config))

        self.capped_alarms: dict[str, aws.cloudwatch.MetricAlarm] = {}
        for group in groups:
            self.capped_alarms[group] = aws.cloudwatch.MetricAlarm(
                f"{alarm_prefix(stack, group)}spot-capped", aws.cloudwatch.MetricAlarmArgs(
                    alarm_description=(f"{group}: the spot deficit does not fit under on_demand.max; the group runs "
                                       "below its wanted capacity (raise on_demand.max or add spot instance types)"),
                    namespace=METRIC_NAMESPACE, metric_name="Capped",
                    dimensions={"Stack": stack, "Group": group}, statistic="Maximum",
                    period=CAPPED_PERIOD, evaluation_periods=1, threshold=1,
                    comparison_operator="GreaterThanOrEqualToThreshold", treat_missing_data="notBreaching",
                    alarm_actions=list(args.alarm_actions), ok_actions=list(args.alarm_actions),
                    tags={**tags, "fleet:group": group}), opts=child())

        self.register_outputs({
            "function_name": self.function.name, "table_name": self.table.name,
            "dead_letter_queue_url": self.dead_letter_queue.id, "log_group_name": self.log_group.name,
        })
