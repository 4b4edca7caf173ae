"""Alerts: who hears about a bad rollout, an unhealthy group or a scaling burst.

`Alerts` (one per stack): the SNS topic everything notifies. `fleet:alertsTopicArn` reuses a topic
you already have (then nothing is created here, and that topic's key and access policy must let
CloudWatch and EventBridge publish to it). Otherwise the stack creates:
- a customer-managed KMS key (rotation on) for the topic. Not the AWS-managed `alias/aws/sns`: its key
  policy cannot be changed, so CloudWatch alarms and EventBridge could not publish to a topic
  encrypted with it (SNS developer guide, "compatibility between event sources from AWS services and
  encrypted topics"). Its policy (an `aws.kms.KeyPolicy`, so the account and partition come from the
  key's own ARN, no invoke) keeps the account's root access and lets cloudwatch.amazonaws.com and
  events.amazonaws.com use the key for publishing only (GenerateDataKey*, Decrypt), with no source
  conditions: AWS documents that KMS requests from EventBridge do not carry them;
- the topic, autonamed `fleet-<stack>-alerts-…`, encrypted with that key;
- its access policy: the account's own principals manage it; cloudwatch.amazonaws.com may publish for
  alarms of this account and region, events.amazonaws.com for rules of this account and region
  (aws:SourceAccount + aws:SourceArn), nobody else.

`RefreshAlerts` (one per autoscaled group, under its NodeGroup): an EventBridge rule on
`fleet.ops.events.refresh_alert_pattern` (instance refresh failed, cancelled, rollback started /
succeeded / failed, of the group's two ASGs by name) and its target, the topic, with a one-line
message: `fleet <stack> group <group>: <detail-type> on <asg> (instance refresh <id>)`. One rule per
group keeps each pattern small (EventBridge's default pattern limit is 2048 characters).

Alarm actions (components/target_group.py, components/scaling.py): the health alarms notify the
topic on ALARM and on OK; the scaling alarms on ALARM, next to their scaling policy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import pulumi
import pulumi_aws as aws

from components.naming import short_logical_name, stack_tags
from fleet.ops.events import refresh_alert_pattern

PUBLISH_KEY_ACTIONS = ["kms:GenerateDataKey*", "kms:Decrypt"]


def _arn_parts(arn: str) -> tuple[str, str, str]:
    """(partition, region, account) of an ARN `arn:<partition>:<service>:<region>:<account>:...`."""
    _, partition, _, region, account = arn.split(":", 5)[:5]
    return partition, region, account


def key_policy(key_arn: str) -> str:
    """The topic key's policy: the account administers it; CloudWatch and EventBridge may encrypt for it."""
    partition, _, account = _arn_parts(key_arn)
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "AccountAdministers", "Effect": "Allow",
         "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "AlarmsAndRulesPublish", "Effect": "Allow",
         "Principal": {"Service": ["cloudwatch.amazonaws.com", "events.amazonaws.com"]},
         "Action": PUBLISH_KEY_ACTIONS, "Resource": "*"},
    ]}, sort_keys=True)


def topic_policy(topic_arn: str) -> str:
    """The topic's access policy: the account's principals, and this account's alarms and rules."""
    partition, region, account = _arn_parts(topic_arn)

    def service(sid: str, principal: str, source_arn: str) -> dict:
        return {"Sid": sid, "Effect": "Allow", "Principal": {"Service": principal}, "Action": "sns:Publish",
                "Resource": topic_arn, "Condition": {"StringEquals": {"aws:SourceAccount": account},
                                                     "ArnLike": {"aws:SourceArn": source_arn}}}
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "AccountManages", "Effect": "Allow", "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"},
         "Action": ["sns:Publish", "sns:Subscribe", "sns:GetTopicAttributes", "sns:SetTopicAttributes",
                    "sns:ListSubscriptionsByTopic"],
         "Resource": topic_arn},
        service("AlarmsPublish", "cloudwatch.amazonaws.com", f"arn:{partition}:cloudwatch:{region}:{account}:alarm:*"),
        service("RulesPublish", "events.amazonaws.com", f"arn:{partition}:events:{region}:{account}:rule/*"),
    ]}, sort_keys=True)


@dataclass
class AlertsArgs:
    stack: str
    topic_arn: str | None = None  # fleet:alertsTopicArn: reuse it, create nothing
    tags: Mapping[str, str] = field(default_factory=dict)


class Alerts(pulumi.ComponentResource):
    """`topic_arn` (Output); `key`, `key_policy`, `topic`, `topic_policy` when created here, else None."""

    key: aws.kms.Key | None
    key_policy: aws.kms.KeyPolicy | None
    topic: aws.sns.Topic | None
    topic_policy: aws.sns.TopicPolicy | None

    def __init__(self, name: str, args: AlertsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleet:alerts:Alerts", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.key = self.key_policy = self.topic = self.topic_policy = None
        if args.topic_arn:
            self.topic_arn = pulumi.Output.from_input(args.topic_arn)
        else:
            tags = stack_tags(args.stack, args.tags)
            self.key = aws.kms.Key(f"fleet-{args.stack}-alerts", aws.kms.KeyArgs(
                description=f"fleet {args.stack}: encrypts the alerts SNS topic", enable_key_rotation=True,
                deletion_window_in_days=30, tags=tags), opts=child)
            self.key_policy = aws.kms.KeyPolicy(f"fleet-{args.stack}-alerts", aws.kms.KeyPolicyArgs(
                key_id=self.key.id, policy=self.key.arn.apply(key_policy)), opts=child)
            self.topic = aws.sns.Topic(f"fleet-{args.stack}-alerts", aws.sns.TopicArgs(
                kms_master_key_id=self.key.arn, tags=tags), opts=child)
            self.topic_policy = aws.sns.TopicPolicy(f"fleet-{args.stack}-alerts", aws.sns.TopicPolicyArgs(
                arn=self.topic.arn, policy=self.topic.arn.apply(topic_policy)), opts=child)
            self.topic_arn = self.topic.arn
        self.register_outputs({"topic_arn": self.topic_arn})


@dataclass
class RefreshAlertsArgs:
    group: str
    stack: str
    asg_names: Sequence[pulumi.Input[str]]
    topic_arn: pulumi.Input[str]
    tags: Mapping[str, str] = field(default_factory=dict)


class RefreshAlerts(pulumi.ComponentResource):
    rule: aws.cloudwatch.EventRule
    target: aws.cloudwatch.EventTarget

    def __init__(self, name: str, args: RefreshAlertsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleet:alerts:RefreshAlerts", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        base = f"{short_logical_name(args.group)}-refresh-alerts"
        pattern = pulumi.Output.all(*args.asg_names).apply(
            lambda names: json.dumps(refresh_alert_pattern(list(names)), sort_keys=True))
        self.rule = aws.cloudwatch.EventRule(base, aws.cloudwatch.EventRuleArgs(
            description=f"fleet {args.stack} {args.group}: instance refresh failed, cancelled or rolled back",
            event_pattern=pattern, tags=dict(args.tags)), opts=child)
        template = (f'"fleet {args.stack} group {args.group}: <type> on <asg> (instance refresh <id>)"')
        self.target = aws.cloudwatch.EventTarget(base, aws.cloudwatch.EventTargetArgs(
            rule=self.rule.name, arn=args.topic_arn,
            input_transformer=aws.cloudwatch.EventTargetInputTransformerArgs(
                input_paths={"type": "$.detail-type", "asg": "$.detail.AutoScalingGroupName",
                             "id": "$.detail.InstanceRefreshId"},
                input_template=template)), opts=child)
        self.register_outputs({"rule_name": self.rule.name})
