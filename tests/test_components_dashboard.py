"""Dashboard under mocks: one per group, CPU and in-service counts of both ASGs, and for http
groups healthy/unhealthy hosts, 5xx and latency; one-off groups chart their instances."""

from __future__ import annotations

import json

from components.dashboard import Dashboard, DashboardArgs
from tests.pulumi_mocks import run

DASH = "aws:cloudwatch/dashboard:Dashboard"


def _metrics(body):
    return [m for w in body["widgets"] for m in w["properties"]["metrics"]]


def test_http_group_dashboard_covers_both_asgs_hosts_5xx_and_latency():
    r = run(lambda: Dashboard("12_04-www", DashboardArgs(
        group="12_04-www", stack="prod", region="us-east-1", asg_names={"spot": "s-1", "on-demand": "o-1"},
        target_group_arn_suffix="targetgroup/x/1", load_balancer_arn_suffix="app/y/2")) and None, stack="prod")
    (dash,) = r.of_type(DASH)
    assert dash.inputs["dashboardName"] == "fleet-prod-12-04-www"
    body = json.loads(dash.inputs["dashboardBody"])
    names = {m[1] for m in _metrics(body)}
    assert {"CPUUtilization", "GroupInServiceInstances", "HealthyHostCount", "UnHealthyHostCount",
            "HTTPCode_Target_5XX_Count", "TargetResponseTime"} <= names
    asg_dims = {m[3] for m in _metrics(body) if m[2] == "AutoScalingGroupName"}
    assert asg_dims == {"s-1", "o-1"}
    assert all(w["properties"]["region"] == "us-east-1" for w in body["widgets"])


def test_worker_and_one_off_dashboards():
    r = run(lambda: [Dashboard("jobs", DashboardArgs(group="jobs", stack="prod", region="eu-west-1",
                                                     asg_names={"spot": "s", "on-demand": "o"})) and None,
                     Dashboard("cron", DashboardArgs(group="cron", stack="prod", region="eu-west-1",
                                                     instance_ids=["i-1", "i-2"])) and None])
    bodies = {d.inputs["dashboardName"]: json.loads(d.inputs["dashboardBody"]) for d in r.of_type(DASH)}
    assert "HealthyHostCount" not in {m[1] for m in _metrics(bodies["fleet-prod-jobs"])}
    cron = _metrics(bodies["fleet-prod-cron"])
    assert [m[3] for m in cron] == ["i-1", "i-2"] and all(m[2] == "InstanceId" for m in cron)


def test_autoscaled_groups_chart_the_spot_capacity_reconciler():
    r = run(lambda: [Dashboard("jobs", DashboardArgs(group="jobs", stack="prod", region="eu-west-1",
                                                     asg_names={"spot": "s", "on-demand": "o"})) and None,
                     Dashboard("cron", DashboardArgs(group="cron", stack="prod", region="eu-west-1",
                                                     instance_ids=["i-1"])) and None])
    bodies = {d.inputs["dashboardName"]: json.loads(d.inputs["dashboardBody"]) for d in r.of_type(DASH)}
    spot = [m for m in _metrics(bodies["fleet-prod-jobs"]) if m[0] == "fleet/SpotCapacity"]
    assert [m[1] for m in spot] == ["SpotDeficit", "OnDemandExtra", "Capped"]
    assert all(m[2:6] == ["Stack", "prod", "Group", "jobs"] for m in spot), "the handler's dimensions"
    assert not [m for m in _metrics(bodies["fleet-prod-cron"]) if m[0] == "fleet/SpotCapacity"]
