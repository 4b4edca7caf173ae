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
from fleet.render.scaling import ON_DEMAND, SPOT, rules
from fleet.spec.model import Group
from fleet.spec.names import slug

__all__ = ["ON_DEMAND", "SPOT", "ScalingPolicies", "ScalingPoliciesArgs", "thresholds"]


@dataclass
class ScalingPoliciesArgs:
    group: Group
    stack: str
    asg_names: Mapping[str, pulumi.Input[str]]  # {"spot": ..., "on-demand": ...}
    tags: Mapping[str, str] = field(default_factory=dict)
    alerts_topic_arn: pulumi.Input[str] | None = None  # the alarms' ALARM state notifies it too
    slot: str | None = None  # blue/green slot of the ASGs: slot b's names get "-b" (slot a keeps today's)


def thresholds(group: Group, capacity: str) -> tuple[float, float]:
    """(target CPU, burst CPU) of one ASG of the pair (fleet/render/scaling.py's rules)."""
    r = rules(group, capacity)
    return r.target_cpu, r.burst_alarm.threshold


class ScalingPolicies(pulumi.ComponentResource):
    """`policies[capacity][kind]` and `alarms[capacity][kind]`, kind in target | burst | scale_in."""

    def __init__(self, name: str, args: ScalingPoliciesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleet:scaling:ScalingPolicies", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        group = args.group
        gslug, prefix, tags = slug(group.name), alarm_prefix(args.stack, group.name), dict(args.tags)
        if args.slot not in (None, "a"):
            gslug, prefix = f"{gslug}-{args.slot}", f"{prefix}{args.slot}-"
        notify = [args.alerts_topic_arn] if args.alerts_topic_arn is not None else []
        self.policies: dict[str, dict[str, aws.autoscaling.Policy]] = {}
        self.alarms: dict[str, dict[str, aws.cloudwatch.MetricAlarm]] = {}
        for capacity, asg_name in args.asg_names.items():
            r = rules(group, capacity)  # the same values fleet/simulate replays
            base = f"{gslug}-{capacity}"
            target = aws.autoscaling.Policy(f"{base}-target-cpu", aws.autoscaling.PolicyArgs(
                autoscaling_group_name=asg_name, policy_type="TargetTrackingScaling",
                target_tracking_configuration=aws.autoscaling.PolicyTargetTrackingConfigurationArgs(
                    target_value=r.target_cpu, disable_scale_in=r.disable_scale_in,
                    predefined_metric_specification=(
                        aws.autoscaling.PolicyTargetTrackingConfigurationPredefinedMetricSpecificationArgs(
                            predefined_metric_type="ASGAverageCPUUtilization")))), opts=child)
            burst = aws.autoscaling.Policy(f"{base}-burst", aws.autoscaling.PolicyArgs(
                autoscaling_group_name=asg_name, policy_type=r.burst.policy_type,
                adjustment_type="PercentChangeInCapacity", min_adjustment_magnitude=r.burst.min_adjustment_magnitude,
                metric_aggregation_type="Average",
                step_adjustments=[aws.autoscaling.PolicyStepAdjustmentArgs(
                    scaling_adjustment=r.burst.percent, metric_interval_lower_bound="0")]), opts=child)
            scale_in = aws.autoscaling.Policy(f"{base}-scale-in", aws.autoscaling.PolicyArgs(
                autoscaling_group_name=asg_name, policy_type=r.scale_in.policy_type,
                adjustment_type="PercentChangeInCapacity", min_adjustment_magnitude=r.scale_in.min_adjustment_magnitude,
                scaling_adjustment=r.scale_in.percent, cooldown=r.scale_in.cooldown), opts=child)
            dims = {"AutoScalingGroupName": asg_name}
            hi, lo = r.burst_alarm, r.scale_in_alarm
            burst_alarm = aws.cloudwatch.MetricAlarm(f"{prefix}{capacity}-cpu-high", aws.cloudwatch.MetricAlarmArgs(
                alarm_description=f"{group.name} {capacity}: CPU above {hi.threshold}% -> +{r.burst.percent}%",
                namespace="AWS/EC2", metric_name="CPUUtilization", dimensions=dims, statistic="Average",
                period=hi.period, evaluation_periods=hi.evaluation_periods,
                threshold=hi.threshold, comparison_operator=hi.comparison, alarm_actions=[burst.arn, *notify],
                tags=tags), opts=child)
            scale_in_alarm = aws.cloudwatch.MetricAlarm(f"{prefix}{capacity}-cpu-low", aws.cloudwatch.MetricAlarmArgs(
                alarm_description=(f"{group.name} {capacity}: CPU below {lo.threshold}% -> "
                                   f"{r.scale_in.percent}%"),
                namespace="AWS/EC2", metric_name="CPUUtilization", dimensions=dims, statistic="Average",
                period=lo.period, evaluation_periods=lo.evaluation_periods,
                threshold=lo.threshold, comparison_operator=lo.comparison, alarm_actions=[scale_in.arn, *notify],
                tags=tags), opts=child)
            self.policies[capacity] = {"target": target, "burst": burst, "scale_in": scale_in}
            self.alarms[capacity] = {"burst": burst_alarm, "scale_in": scale_in_alarm}
        self.register_outputs({
            "alarm_names": {c: {k: a.name for k, a in kinds.items()} for c, kinds in self.alarms.items()},
        })
