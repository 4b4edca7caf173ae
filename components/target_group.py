"""TargetGroup: an http group's target group, its listener rule, and its health alarms.

Health check from the group (defaults: interval 5 s, timeout 2 s, healthy threshold 2,
300 s slows every deploy, 0 caused outages), deregistration delay 30 s unless set, optional slow
start. Instances are attached
only through the ASGs' `target_group_arns` (both ways at once flap): no attachment resource here. The
target group is autonamed from the group's slug (at most 24 characters + Pulumi's 8-character
suffix = 32, the AWS limit). The listener rule matches the group's hosts and paths with the
priority given by fleet.spec.names.rule_priorities (stable when other groups come and go).

`health_alarms` (target 5xx count and unhealthy hosts) are what the rollout's alarm
specification uses. They are autonamed with the prefix `fleet-<stack>-<group-slug>-health-`
(fleet.spec.names.health_alarm_prefix, which `fleet deploy` discovers them by) plus Pulumi's random
suffix, so a replacement never collides with, or deletes, its predecessor.

`slots` (blue/green groups): a second target group for slot b (`target_groups["b"]`; slot a keeps
the target group, rule and alarm names a group had before slots existed) and health alarms per slot
(`slot_alarms`; slot b's are `<prefix>b-5xx` and `<prefix>b-unhealthy-hosts`). The listener rule is
created forwarding to both, slot a at weight 100 and b at 0, target-group stickiness off (a sticky
client would stay on the bad slot for the stickiness duration after a rollback). From then on only the
blue/green rollout writes the rule's forward action (fleet/ops/bluegreen.py): the rule carries
`ignore_changes=["actions"]`, the whole list, not only the weights. Ignoring only the weights is not
enough with pulumi-aws: when the target-group list of a forward action changes, the provider sends
the program's weights back and resets live traffic (pulumi-aws#5798), and a target group added with
weight 0 can land with weight 1 (pulumi-aws#5772). With the whole action ignored Pulumi never writes
it after creation, and the rollout writes both target groups with explicit weights on every run (so a
rule created before slots existed, or one whose weights landed wrong, is put right by the next run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import pulumi
import pulumi_aws as aws

from components.naming import short_logical_name
from components.port_changes import PORT_TAG
from fleet.spec.model import Group
from fleet.spec.names import health_alarm_prefix, slug

ERROR_5XX_THRESHOLD = 10  # target 5xx responses per minute, two minutes running


@dataclass
class TargetGroupArgs:
    group: Group
    stack: str
    vpc_id: pulumi.Input[str]
    listener_arn: pulumi.Input[str]
    load_balancer_arn_suffix: pulumi.Input[str]
    priority: int
    tags: Mapping[str, str] = field(default_factory=dict)
    alerts_topic_arn: pulumi.Input[str] | None = None  # health alarms notify it on ALARM and OK
    slots: bool = False  # blue/green: a target group and health alarms per slot (module docstring)


class TargetGroup(pulumi.ComponentResource):
    target_group: aws.lb.TargetGroup
    listener_rule: aws.lb.ListenerRule
    alarm_5xx: aws.cloudwatch.MetricAlarm
    alarm_unhealthy: aws.cloudwatch.MetricAlarm
    arn: pulumi.Output[str]
    arn_suffix: pulumi.Output[str]

    def __init__(self, name: str, args: TargetGroupArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleet:target_group:TargetGroup", name, None, opts)
        group, http = args.group, args.group.http
        if http is None:
            raise ValueError(f"group {group.name} has no http section")
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        hc = http.health_check
        def target_group(logical: str) -> aws.lb.TargetGroup:
            return aws.lb.TargetGroup(logical, aws.lb.TargetGroupArgs(
                vpc_id=args.vpc_id, port=http.port, protocol="HTTP", target_type="instance",
                deregistration_delay=http.deregistration_delay, slow_start=http.slow_start,
                health_check=aws.lb.TargetGroupHealthCheckArgs(
                    enabled=True, protocol="HTTP", port="traffic-port", path=hc.path, interval=hc.interval,
                    timeout=hc.timeout, healthy_threshold=hc.healthy_threshold,
                    unhealthy_threshold=hc.unhealthy_threshold, matcher=hc.matcher),
                tags={**tags, PORT_TAG: str(http.port)}), opts=child)  # what a port change is checked against
        self.target_group = target_group(short_logical_name(group.name))
        self.target_groups = {"a": self.target_group}
        if args.slots:
            self.target_groups["b"] = target_group(short_logical_name(f"{group.name}-b"))
        conditions = []
        if http.hosts:
            conditions.append(aws.lb.ListenerRuleConditionArgs(
                host_header=aws.lb.ListenerRuleConditionHostHeaderArgs(values=list(http.hosts))))
        if http.paths:
            conditions.append(aws.lb.ListenerRuleConditionArgs(
                path_pattern=aws.lb.ListenerRuleConditionPathPatternArgs(values=list(http.paths))))
        if args.slots:
            action = aws.lb.ListenerRuleActionArgs(type="forward", forward=aws.lb.ListenerRuleActionForwardArgs(
                target_groups=[aws.lb.ListenerRuleActionForwardTargetGroupArgs(arn=tg.arn, weight=weight)
                               for tg, weight in ((self.target_groups["a"], 100), (self.target_groups["b"], 0))],
                stickiness=aws.lb.ListenerRuleActionForwardStickinessArgs(enabled=False, duration=1)))
            rule_opts = pulumi.ResourceOptions(parent=self, ignore_changes=["actions"])
        else:
            action = aws.lb.ListenerRuleActionArgs(type="forward", target_group_arn=self.target_group.arn)
            rule_opts = child
        self.listener_rule = aws.lb.ListenerRule(f"{slug(group.name)}-rule", aws.lb.ListenerRuleArgs(
            listener_arn=args.listener_arn, priority=args.priority, conditions=conditions,
            actions=[action], tags=tags), opts=rule_opts)

        notify = [args.alerts_topic_arn] if args.alerts_topic_arn is not None else []
        self.slot_alarms: dict[str, list[aws.cloudwatch.MetricAlarm]] = {}
        for slot, tg in self.target_groups.items():
            prefix = health_alarm_prefix(group.name, args.stack) + ("" if slot == "a" else f"{slot}-")
            what = "" if not args.slots else f" slot {slot}"
            dims = {"TargetGroup": tg.arn_suffix, "LoadBalancer": args.load_balancer_arn_suffix}
            # the standby function reads the slot of an alarm from this tag
            tags = {**dict(args.tags), **({"fleet:slot": slot} if args.slots else {})}
            alarm_5xx = aws.cloudwatch.MetricAlarm(f"{prefix}5xx", aws.cloudwatch.MetricAlarmArgs(
                alarm_description=f"{group.name}{what}: targets answer 5xx ({args.stack})",
                namespace="AWS/ApplicationELB", metric_name="HTTPCode_Target_5XX_Count", dimensions=dims,
                statistic="Sum", period=60, evaluation_periods=2, datapoints_to_alarm=2,
                comparison_operator="GreaterThanOrEqualToThreshold", threshold=ERROR_5XX_THRESHOLD,
                treat_missing_data="notBreaching", alarm_actions=notify, ok_actions=notify, tags=tags), opts=child)
            alarm_unhealthy = aws.cloudwatch.MetricAlarm(
                f"{prefix}unhealthy-hosts", aws.cloudwatch.MetricAlarmArgs(
                    alarm_description=f"{group.name}{what}: unhealthy targets ({args.stack})",
                    namespace="AWS/ApplicationELB", metric_name="UnHealthyHostCount", dimensions=dims,
                    statistic="Maximum", period=60, evaluation_periods=2, datapoints_to_alarm=2,
                    comparison_operator="GreaterThanOrEqualToThreshold", threshold=1,
                    treat_missing_data="notBreaching", alarm_actions=notify, ok_actions=notify, tags=tags),
                opts=child)
            self.slot_alarms[slot] = [alarm_5xx, alarm_unhealthy]
        self.alarm_5xx, self.alarm_unhealthy = self.slot_alarms["a"]
        self.health_alarms = [a for alarms in self.slot_alarms.values() for a in alarms]
        self.arn = self.target_group.arn
        self.arn_suffix = self.target_group.arn_suffix
        self.register_outputs({"arn": self.arn, "listener_rule_arn": self.listener_rule.arn,
                               "health_alarm_names": [a.name for a in self.health_alarms]})
