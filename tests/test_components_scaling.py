"""ScalingPolicies under mocks: seed 004 on both ASGs - target tracking that never scales in, a
step scale-out on its CPU alarm, a simple scale-in with cooldown on its alarm; on-demand later."""

from __future__ import annotations

from components.scaling import ScalingPolicies, ScalingPoliciesArgs
from fleet.ops.rollout import health_alarm_prefix
from tests.pulumi_mocks import http_group, run

POLICY = "aws:autoscaling/policy:Policy"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
ASGS = {"spot": "web-spot-1234567", "on-demand": "web-on-demand-7654321"}


def _run(g):
    def program():
        s = ScalingPolicies(g.name, ScalingPoliciesArgs(group=g, stack="prod", asg_names=ASGS))
        return {c: {k: a.name for k, a in kinds.items()} for c, kinds in s.alarms.items()}
    r = run(program, stack="prod")
    policies = {(p.inputs["autoscalingGroupName"], p.inputs["policyType"]): p for p in r.of_type(POLICY)}
    alarms = {(a.inputs["dimensions"]["AutoScalingGroupName"], a.inputs["comparisonOperator"]): a
              for a in r.of_type(ALARM)}
    return r, policies, alarms


def test_three_policies_and_two_alarms_per_asg():
    r, policies, alarms = _run(http_group("web"))
    assert len(policies) == 6 and len(alarms) == 4
    assert set(r.value) == {"spot", "on-demand"}


def test_target_tracking_never_scales_in_and_on_demand_targets_higher():
    _, policies, _ = _run(http_group("web", scaling={"target_cpu": 45}))
    spot = policies[(ASGS["spot"], "TargetTrackingScaling")].inputs["targetTrackingConfiguration"]
    od = policies[(ASGS["on-demand"], "TargetTrackingScaling")].inputs["targetTrackingConfiguration"]
    assert spot["disableScaleIn"] is True and od["disableScaleIn"] is True
    assert spot["predefinedMetricSpecification"]["predefinedMetricType"] == "ASGAverageCPUUtilization"
    assert (spot["targetValue"], od["targetValue"]) == (45, 75)


def test_step_scale_out_on_the_burst_alarm():
    _, policies, alarms = _run(http_group("web"))
    for asg, cpu in ((ASGS["spot"], 85), (ASGS["on-demand"], 95)):
        step = policies[(asg, "StepScaling")]
        assert step.inputs["adjustmentType"] == "PercentChangeInCapacity"
        assert step.inputs["stepAdjustments"] == [{"scalingAdjustment": 20, "metricIntervalLowerBound": "0"}]
        assert step.inputs["minAdjustmentMagnitude"] == 1
        high = alarms[(asg, "GreaterThanThreshold")]
        assert (high.inputs["threshold"], high.inputs["period"], high.inputs["evaluationPeriods"]) == (cpu, 60, 2)
        assert high.inputs["metricName"] == "CPUUtilization" and high.inputs["namespace"] == "AWS/EC2"
        assert high.inputs["alarmActions"] == [step.outputs["arn"]]


def test_simple_scale_in_with_cooldown_on_the_low_cpu_alarm():
    _, policies, alarms = _run(http_group("web", scaling={"scale_in": {"cooldown": 600, "remove_percent": 15}}))
    for asg in ASGS.values():
        simple = policies[(asg, "SimpleScaling")]
        assert simple.inputs["scalingAdjustment"] == -15 and simple.inputs["cooldown"] == 600
        assert simple.inputs["adjustmentType"] == "PercentChangeInCapacity"
        low = alarms[(asg, "LessThanThreshold")]
        assert (low.inputs["threshold"], low.inputs["period"], low.inputs["evaluationPeriods"]) == (30, 60, 10)
        assert low.inputs["alarmActions"] == [simple.outputs["arn"]]


def test_scaling_alarms_are_prefixed_but_never_gate_rollouts():
    _, _, alarms = _run(http_group("12_04-www"))
    for a in alarms.values():
        name = a.outputs["name"]
        assert name.startswith("fleet-prod-12-04-www-") and "name" not in a.inputs
        assert not name.startswith(health_alarm_prefix("12_04-www", "prod"))
