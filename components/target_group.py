"""TargetGroup: an http group's target group, its listener rule, and its health alarms.

Health check from the group (defaults: interval 5 s, timeout 2 s, healthy threshold 2,
PITFALLS 27), deregistration delay 30 s unless set, optional slow start. Instances are attached
only through the ASGs' `target_group_arns` (PITFALLS 4): no attachment resource here. The
target group is autonamed from the group's slug (at most 24 characters + Pulumi's 8-character
suffix = 32, the AWS limit). The listener rule matches the group's hosts and paths with the
priority given by fleet.spec.names.rule_priorities (stable when other groups come and go).

`health_alarms` (target 5xx count and unhealthy hosts) are what the rollout's alarm
specification uses. They are autonamed with the prefix `fleet-<stack>-<group-slug>-health-`
(fleet.spec.names.health_alarm_prefix, which `fleet deploy` discovers them by) plus Pulumi's random
suffix, so a replacement never collides with, or deletes, its predecessor.
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
        self.target_group = aws.lb.TargetGroup(short_logical_name(group.name), aws.lb.TargetGroupArgs(
            vpc_id=args.vpc_id, port=http.port, protocol="HTTP", target_type="instance",
            deregistration_delay=http.deregistration_delay, slow_start=http.slow_start,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                enabled=True, protocol="HTTP", port="traffic-port", path=hc.path, interval=hc.interval,
                timeout=hc.timeout, healthy_threshold=hc.healthy_threshold,
                unhealthy_threshold=hc.unhealthy_threshold, matcher=hc.matcher),
            tags={**tags, PORT_TAG: str(http.port)}), opts=child)  # what a port change is checked against
        conditions = []
        if http.hosts:
            conditions.append(aws.lb.ListenerRuleConditionArgs(
                host_header=aws.lb.ListenerRuleConditionHostHeaderArgs(values=list(http.hosts))))
        if http.paths:
            conditions.append(aws.lb.ListenerRuleConditionArgs(
                path_pattern=aws.lb.ListenerRuleConditionPathPatternArgs(values=list(http.paths))))
        self.listener_rule = aws.lb.ListenerRule(f"{slug(group.name)}-rule", aws.lb.ListenerRuleArgs(
            listener_arn=args.listener_arn, priority=args.priority, conditions=conditions,
            actions=[aws.lb.ListenerRuleActionArgs(type="forward", target_group_arn=self.target_group.arn)],
            tags=tags), opts=child)

        prefix = health_alarm_prefix(group.name, args.stack)
        dims = {"TargetGroup": self.target_group.arn_suffix, "LoadBalancer": args.load_balancer_arn_suffix}
        notify = [args.alerts_topic_arn] if args.alerts_topic_arn is not None else []
        self.alarm_5xx = aws.cloudwatch.MetricAlarm(f"{prefix}5xx", aws.cloudwatch.MetricAlarmArgs(
            alarm_description=f"{group.name}: targets answer 5xx ({args.stack})",
            namespace="AWS/ApplicationELB", metric_name="HTTPCode_Target_5XX_Count", dimensions=dims,
            statistic="Sum", period=60, evaluation_periods=2, datapoints_to_alarm=2,
            comparison_operator="GreaterThanOrEqualToThreshold", threshold=ERROR_5XX_THRESHOLD,
            treat_missing_data="notBreaching", alarm_actions=notify, ok_actions=notify, tags=tags), opts=child)
        self.alarm_unhealthy = aws.cloudwatch.MetricAlarm(
            f"{prefix}unhealthy-hosts", aws.cloudwatch.MetricAlarmArgs(
                alarm_description=f"{group.name}: unhealthy targets ({args.stack})",
                namespace="AWS/ApplicationELB", metric_name="UnHealthyHostCount", dimensions=dims,
                statistic="Maximum", period=60, evaluation_periods=2, datapoints_to_alarm=2,
                comparison_operator="GreaterThanOrEqualToThreshold", threshold=1,
                treat_missing_data="notBreaching", alarm_actions=notify, ok_actions=notify, tags=tags), opts=child)
        self.health_alarms = [self.alarm_5xx, self.alarm_unhealthy]
        self.arn = self.target_group.arn
        self.arn_suffix = self.target_group.arn_suffix
        self.register_outputs({"arn": self.arn, "listener_rule_arn": self.listener_rule.arn,
                               "health_alarm_names": [a.name for a in self.health_alarms]})
