"""fleet simulate --from-cloudwatch: the group's recorded load read back from a moto server over HTTP
(CPUUtilization x GroupInServiceInstances per minute, both ASGs of the pair, gaps carried forward)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import numpy as np
import pytest

from fleet.ops.cloudwatch import NoRecordedLoad, recorded_load

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _pair(asg, ec2):
    lt = ec2.create_launch_template(LaunchTemplateName="web", LaunchTemplateData={
        "ImageId": "ami-12c6146b", "InstanceType": "t3.micro"})["LaunchTemplate"]["LaunchTemplateId"]
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    names = []
    for capacity in ("spot", "on-demand"):
        name = f"staging-web-{capacity}"
        asg.create_auto_scaling_group(
            AutoScalingGroupName=name, MinSize=0, MaxSize=4, DesiredCapacity=0, VPCZoneIdentifier=subnet,
            LaunchTemplate={"LaunchTemplateId": lt, "Version": "1"},
            Tags=[{"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": k, "Value": v,
                   "PropagateAtLaunch": True}
                  for k, v in {"fleet:stack": "staging", "fleet:group": "web", "fleet:capacity": capacity}.items()])
        names.append(name)
    return names


def _put(cw, namespace, metric, asg, minute, value):
    cw.put_metric_data(Namespace=namespace, MetricData=[{
        "MetricName": metric, "Dimensions": [{"Name": "AutoScalingGroupName", "Value": asg}],
        "Timestamp": NOW - timedelta(minutes=60 - minute), "Value": value}])


def test_recorded_load_is_cpu_times_in_service_over_both_asgs(aws):
    asg, ec2, cw = boto3.client("autoscaling"), boto3.client("ec2"), boto3.client("cloudwatch")
    spot, od = _pair(asg, ec2)
    for minute in range(0, 60, 2):  # every other minute recorded: the gaps take the minute before
        _put(cw, "AWS/EC2", "CPUUtilization", spot, minute, 50.0)
        _put(cw, "AWS/AutoScaling", "GroupInServiceInstances", spot, minute, 4.0)
        _put(cw, "AWS/EC2", "CPUUtilization", od, minute, 25.0)
        _put(cw, "AWS/AutoScaling", "GroupInServiceInstances", od, minute, 2.0)
    rec = recorded_load("staging", "web", days=1, now=NOW)
    assert rec.asgs == sorted([spot, od])
    window = rec.load[-60:]
    assert np.allclose(window, 0.5 * 4 + 0.25 * 2)  # 2.5 instances busy, every minute of the last hour
    assert len(rec.load) == 1440


def test_no_pair_or_no_datapoint_is_an_error(aws):
    with pytest.raises(NoRecordedLoad, match="no Auto Scaling group tagged"):
        recorded_load("staging", "web", days=1, now=NOW)
    _pair(boto3.client("autoscaling"), boto3.client("ec2"))
    with pytest.raises(NoRecordedLoad, match="has no CPUUtilization"):
        recorded_load("staging", "web", days=1, now=NOW)


def test_cli_simulates_the_recorded_load(aws, tmp_path, monkeypatch, capsys):
    import json

    from fleet.cli import main
    from fleet.ops import cloudwatch

    asg, ec2, cw = boto3.client("autoscaling"), boto3.client("ec2"), boto3.client("cloudwatch")
    spot, od = _pair(asg, ec2)
    for minute in range(60):
        _put(cw, "AWS/EC2", "CPUUtilization", spot, minute, 60.0)
        _put(cw, "AWS/AutoScaling", "GroupInServiceInstances", spot, minute, 3.0)
    real = cloudwatch.recorded_load
    monkeypatch.setattr(cloudwatch, "recorded_load", lambda *a, **kw: real(*a, **kw, now=NOW))
    (tmp_path / "Pulumi.yaml").write_text("name: simtest\nruntime: python\n")
    (tmp_path / "Pulumi.staging.yaml").write_text("config:\n  aws:region: us-east-1\n")
    (tmp_path / "nodes.yaml").write_text(
        "web:\n  instance_type: m5.large\n  source_ami: ami-0123456789abcdef0\n"
        "  autoscale: {node_min: 2, node_max: 6, spot: {instance_types: [m5.large, m5a.large, m6i.large]}}\n"
        "  http: {port: 8080, paths: ['/*']}\n")
    monkeypatch.chdir(tmp_path)
    assert main(["simulate", "web", "--stack", "staging", "--from-cloudwatch", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["minutes"] == 1440 and doc["trace"].startswith("CloudWatch")
    assert isinstance(doc["recorded_scaling_activities"], int)
    assert doc["lanes"][0]["p95_cpu"] > 0

    def nothing(*a, **kw):
        raise cloudwatch.NoRecordedLoad("no datapoint")
    monkeypatch.setattr(cloudwatch, "recorded_load", nothing)
    assert main(["simulate", "web", "--stack", "staging", "--from-cloudwatch"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == "fleet simulate web: no datapoint"
