"""Dashboard: one CloudWatch dashboard per group (seed 004 had one per cluster).

Autoscaled groups: CPU and in-service instances of both ASGs, and the spot capacity reconciler's
metrics (spot deficit, on-demand extra, capped; fleet/SpotCapacity by Stack and Group); http groups
add healthy and unhealthy hosts, target 5xx and response time (p50/p99). One-off groups: CPU per
instance.
The dashboard name is `fleet-<stack>-<group-slug>` (PutDashboard is an upsert; the name only
changes when the group does, which replaces the dashboard under a new name).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import pulumi
import pulumi_aws as aws

from fleet.ops.events import METRIC_NAMESPACE
from fleet.spec.names import slug


@dataclass
class DashboardArgs:
    group: str
    stack: str
    region: str
    asg_names: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    target_group_arn_suffix: pulumi.Input[str] | None = None
    load_balancer_arn_suffix: pulumi.Input[str] | None = None
    instance_ids: Sequence[pulumi.Input[str]] = ()


def dashboard_body(group: str, region: str, asg_names: Mapping[str, str], tg: str | None, lb: str | None,
                   instance_ids: Sequence[str], stack: str | None = None) -> str:
    """The dashboard JSON (pure: plain strings in, so tests can read it directly)."""
    def widget(title, metrics, stat="Average", y=0, x=0, width=12):
        return {"type": "metric", "x": x, "y": y, "width": width, "height": 6,
                "properties": {"title": title, "region": region, "stat": stat, "period": 60, "view": "timeSeries",
                               "metrics": metrics}}
    widgets = []
    if asg_names:
        widgets.append(widget(f"{group} CPU %", [
            ["AWS/EC2", "CPUUtilization", "AutoScalingGroupName", n, {"label": c}] for c, n in asg_names.items()]))
        widgets.append(widget(f"{group} in service", [
            ["AWS/AutoScaling", "GroupInServiceInstances", "AutoScalingGroupName", n, {"label": c}]
            for c, n in asg_names.items()], x=12))
        if stack is not None:
            dims = ["Stack", stack, "Group", group]
            widgets.append(widget(f"{group} spot capacity (reconciler)", [
                [METRIC_NAMESPACE, "SpotDeficit", *dims, {"label": "spot deficit"}],
                [METRIC_NAMESPACE, "OnDemandExtra", *dims, {"label": "on-demand extra"}],
                [METRIC_NAMESPACE, "Capped", *dims, {"label": "capped (1 = short of capacity)"}]],
                stat="Maximum", y=18, width=24))
    if instance_ids:
        widgets.append(widget(f"{group} CPU %", [["AWS/EC2", "CPUUtilization", "InstanceId", i] for i in instance_ids]))
    if tg and lb:
        dims = ["TargetGroup", tg, "LoadBalancer", lb]
        widgets.append(widget(f"{group} hosts", [
            ["AWS/ApplicationELB", "HealthyHostCount", *dims, {"label": "healthy"}],
            ["AWS/ApplicationELB", "UnHealthyHostCount", *dims, {"label": "unhealthy"}]], stat="Maximum", y=6))
        widgets.append(widget(f"{group} target 5xx", [
            ["AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", *dims]], stat="Sum", y=6, x=12))
        widgets.append(widget(f"{group} latency (s)", [
            ["AWS/ApplicationELB", "TargetResponseTime", *dims, {"stat": "p50", "label": "p50"}],
            ["AWS/ApplicationELB", "TargetResponseTime", *dims, {"stat": "p99", "label": "p99"}]], y=12, width=24))
    return json.dumps({"widgets": widgets}, sort_keys=True)


class Dashboard(pulumi.ComponentResource):
    dashboard: aws.cloudwatch.Dashboard

    def __init__(self, name: str, args: DashboardArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleet:dashboard:Dashboard", name, None, opts)
        capacities = list(args.asg_names)
        body = pulumi.Output.all(
            [args.asg_names[c] for c in capacities], args.target_group_arn_suffix, args.load_balancer_arn_suffix,
            list(args.instance_ids),
        ).apply(lambda v: dashboard_body(args.group, args.region, dict(zip(capacities, v[0], strict=True)),
                                         v[1], v[2], v[3], stack=args.stack))
        self.dashboard = aws.cloudwatch.Dashboard(f"{slug(args.group)}-dashboard", aws.cloudwatch.DashboardArgs(
            dashboard_name=f"fleet-{slug(args.stack)}-{slug(args.group)}", dashboard_body=body),
            opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"dashboard_name": self.dashboard.dashboard_name})
