"""ScalingPolicies: seed 004's policies on both ASGs of a group, from the group's `scaling`.

Per ASG (spot with the group's thresholds, on-demand with the higher `scaling.on_demand` ones,
so the fallback scales later than spot):
- target tracking on average CPU with `disable_scale_in` (the slow simple policy owns scale-in,
  and a fast scale-in would churn capacity; the spot capacity reconciler's extra on-demand
  capacity is out of the scale-in's reach anyway: it also raises the on-demand ASG's MinSize);
- step scale-out: +burst.add_percent % when CPU > burst cpu for burst.periods x burst.period s,
  with its CloudWatch alarm;
- simple scale-in: -scale_in.remove_percent % when CPU < scale_in.cpu for scale_in.periods x
  scale_in.period s, then scale_in.cooldown s before the next scaling activity, with its alarm.

Alarms are autonamed `fleet-<stack>-<group-slug>-<capacity>-cpu-high|low-<random>` (Pulumi's
suffix: a replacement never collides with, or deletes, its predecessor). They never start with
the `...-health-` prefix that gates rollouts: a busy hour must not roll a deploy back.
Periods of 60 s need detailed monitoring, which the launch template enables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import pulumi
import pulumi_aws as aws

from components.naming import alarm_prefix
from fleet.spec.model import Group
from fleet.spec.names import slug

SPOT, ON_DEMAND = "spot", "on-demand"


@dataclass
class ScalingPoliciesArgs:
    group: Group
    stack: str
    asg_names: Mapping[str, pulumi.Input[str]]  # {"spot": ..., "on-demand": ...}
    tags: Mapping[str, str] = field(default_factory=dict)
    alerts_topic_arn: pulumi.Input[str] | None = None  # the alarms' ALARM state notifies it too


def thresholds(group: Group, capacity: str) -> tuple[float, float]:
    """(target CPU, burst CPU) of one ASG of the pair."""
    s = group.scaling
    if capacity == ON_DEMAND:
        return s.on_demand.target_cpu, s.on_demand.burst_cpu
    return s.target_cpu, s.burst.cpu


class ScalingPolicies(pulumi.ComponentResource):
    """`policies[capacity][kind]` and `alarms[capacity][kind]`, kind in target | burst | scale_in."""

    def __init__(self, name: str, args: ScalingPoliciesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleet:scaling:ScalingPolicies", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        group, s = args.group, args.group.scaling
        gslug, prefix, tags = slug(group.name), alarm_prefix(args.stack, group.name), dict(args.tags)
        notify = [args.alerts_topic_arn] if args.alerts_topic_arn is not None else []
        self.policies: dict[str, dict[str, aws.autoscaling.Policy]] = {}
        self.alarms: dict[str, dict[str, aws.cloudwatch.MetricAlarm]] = {}
        for capacity, asg_name in args.asg_names.items():
            target_cpu, burst_cpu = thresholds(group, capacity)
            base = f"{gslug}-{capacity}"
            target = aws.autoscaling.Policy(f"{base}-target-cpu", aws.autoscaling.PolicyArgs(
                autoscaling_group_name=asg_name, policy_type="TargetTrackingScaling",
                target_tracking_configuration=aws.autoscaling.PolicyTargetTrackingConfigurationArgs(
                    target_value=target_cpu, disable_scale_in=True,
                    predefined_metric_specification=(
                        aws.autoscaling.PolicyTargetTrackingConfigurationPredefinedMetricSpecificationArgs(
                            predefined_metric_type="ASGAverageCPUUtilization")))), opts=child)
            burst = aws.autoscaling.Policy(f"{base}-burst", aws.autoscaling.PolicyArgs(
                autoscaling_group_name=asg_name, policy_type="StepScaling",
                adjustment_type="PercentChangeInCapacity", min_adjustment_magnitude=1,
                metric_aggregation_type="Average",
                step_adjustments=[aws.autoscaling.PolicyStepAdjustmentArgs(
                    scaling_adjustment=s.burst.add_percent, metric_interval_lower_bound="0")]), opts=child)
            scale_in = aws.autoscaling.Policy(f"{base}-scale-in", aws.autoscaling.PolicyArgs(
                autoscaling_group_name=asg_name, policy_type="SimpleScaling",
                adjustment_type="PercentChangeInCapacity", min_adjustment_magnitude=1,
                scaling_adjustment=-s.scale_in.remove_percent, cooldown=s.scale_in.cooldown), opts=child)
            dims = {"AutoScalingGroupName": asg_name}
            burst_alarm = aws.cloudwatch.MetricAlarm(f"{prefix}{capacity}-cpu-high", aws.cloudwatch.MetricAlarmArgs(
                alarm_description=f"{group.name} {capacity}: CPU above {burst_cpu}% -> +{s.burst.add_percent}%",
                namespace="AWS/EC2", metric_name="CPUUtilization", dimensions=dims, statistic="Average",
                period=s.burst.period, evaluation_periods=s.burst.periods, threshold=burst_cpu,
                comparison_operator="GreaterThanThreshold", alarm_actions=[burst.arn, *notify], tags=tags), opts=child)
            scale_in_alarm = aws.cloudwatch.MetricAlarm(f"{prefix}{capacity}-cpu-low", aws.cloudwatch.MetricAlarmArgs(
                alarm_description=(f"{group.name} {capacity}: CPU below {s.scale_in.cpu}% -> "
                                   f"-{s.scale_in.remove_percent}%"),
                namespace="AWS/EC2", metric_name="CPUUtilization", dimensions=dims, statistic="Average",
                period=s.scale_in.period, evaluation_periods=s.scale_in.periods, threshold=s.scale_in.cpu,
                comparison_operator="LessThanThreshold", alarm_actions=[scale_in.arn, *notify], tags=tags), opts=child)
            self.policies[capacity] = {"target": target, "burst": burst, "scale_in": scale_in}
            self.alarms[capacity] = {"burst": burst_alarm, "scale_in": scale_in_alarm}
        self.register_outputs({
            "alarm_names": {c: {k: a.name for k, a in kinds.items()} for c, kinds in self.alarms.items()},
        })
