"""fleet.ops.gate, the new-group health gate: Stubber-driven runs (met; not met, with the one-line reason and
the last scaling activity; instances healthy in the ASG but not in the target group do not count), its CLI's
exit codes, and the Command's exact invocation against the moto server."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from fleet.ops import aws as fleet_aws
from fleet.ops import gate
from fleet.ops.gate import AsgHealth, GateError, wait_healthy
from tests.conftest import ROOT

OD, SP = "www-od", "www-spot"
TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/www/0123456789abcdef"


def asg(name: str, min_size: int, instances: list[tuple[str, str, str]]) -> dict:
    return {"AutoScalingGroupName": name, "MinSize": min_size, "MaxSize": 6, "DesiredCapacity": min_size,
            "DefaultCooldown": 300, "AvailabilityZones": ["us-east-1a"], "HealthCheckType": "ELB",
            "CreatedTime": datetime(2024, 5, 1, tzinfo=UTC),
            "Instances": [{"InstanceId": i, "AvailabilityZone": "us-east-1a", "LifecycleState": state,
                           "HealthStatus": health, "ProtectedFromScaleIn": False} for i, state, health in instances]}


class Script:
    def __init__(self):
        self.autoscaling = fleet_aws.client("autoscaling", region="us-east-1")
        self.elbv2 = fleet_aws.client("elbv2", region="us-east-1")
        self.asg_stub, self.elb_stub = Stubber(self.autoscaling), Stubber(self.elbv2)
        self.logs: list[str] = []
        self.now = [0.0]

    def look(self, od: dict, spot: dict, healthy_in_tg: list[str] | None = None):
        self.asg_stub.add_response("describe_auto_scaling_groups", {"AutoScalingGroups": [od, spot]},
                                   {"AutoScalingGroupNames": [OD, SP]})
        if healthy_in_tg is not None:
            targets = [{"Target": {"Id": i, "Port": 8080}, "TargetHealth": {"State": "healthy"}} for i in healthy_in_tg]
            targets.append({"Target": {"Id": "i-draining", "Port": 8080},
                            "TargetHealth": {"State": "unhealthy", "Reason": "Target.FailedHealthChecks"}})
            self.elb_stub.add_response("describe_target_health", {"TargetHealthDescriptions": targets},
                                       {"TargetGroupArn": TG})

    def run(self, target_group_arn=TG, timeout=600):
        with self.asg_stub, self.elb_stub:
            return wait_healthy("www", [OD, SP], target_group_arn=target_group_arn, timeout=timeout, poll=15,
                                autoscaling=self.autoscaling, elbv2=self.elbv2, log=self.logs.append,
                                sleep=lambda s: self.now.__setitem__(0, self.now[0] + s), clock=lambda: self.now[0])


@pytest.fixture
def script():
    s = Script()
    yield s
    s.asg_stub.assert_no_pending_responses()
    s.elb_stub.assert_no_pending_responses()


def test_gate_met_once_each_asg_has_its_min_healthy_in_the_target_group(script):
    script.look(asg(OD, 1, [("i-1", "Pending", "Healthy")]), asg(SP, 2, []), healthy_in_tg=[])
    script.look(asg(OD, 1, [("i-1", "InService", "Healthy")]),
                asg(SP, 2, [("i-2", "InService", "Healthy"), ("i-3", "InService", "Healthy")]),
                healthy_in_tg=["i-1", "i-2"])  # i-3 is InService but not yet healthy in the target group
    script.look(asg(OD, 1, [("i-1", "InService", "Healthy")]),
                asg(SP, 2, [("i-2", "InService", "Healthy"), ("i-3", "InService", "Healthy")]),
                healthy_in_tg=["i-1", "i-2", "i-3"])

    assert script.run() == [AsgHealth(OD, 1, 1), AsgHealth(SP, 2, 2)]
    assert script.logs == [f"group www: {OD} 0/1 healthy, {SP} 0/2 healthy",
                           f"group www: {OD} 1/1 healthy, {SP} 1/2 healthy",
                           f"group www: {OD} 1/1 healthy, {SP} 2/2 healthy"]
    assert script.now[0] == 30


def test_gate_not_met_fails_with_one_line_and_the_last_activity(script):
    for _ in range(41):  # 0, 15, ..., 600 s
        script.look(asg(OD, 1, [("i-1", "InService", "Healthy")]),
                    asg(SP, 2, [("i-2", "InService", "Unhealthy")]), healthy_in_tg=["i-1"])
    script.asg_stub.add_response("describe_scaling_activities", {"Activities": [{
        "ActivityId": "a-1", "AutoScalingGroupName": SP, "Cause": "At 2024-05-01 an instance was started",
        "StartTime": datetime(2024, 5, 1, tzinfo=UTC), "StatusCode": "Failed",
        "Description": "Launching a new EC2 instance. Status Reason: Could not launch Spot Instances.",
        "StatusMessage": "InsufficientInstanceCapacity:\n no capacity"}]},
        {"AutoScalingGroupName": SP, "MaxRecords": 1})

    with pytest.raises(GateError) as err:
        script.run()

    assert str(err.value) == (
        f"group www: {SP} 0/2 healthy after 600 s; last activity: Failed: Launching a new EC2 instance. "
        "Status Reason: Could not launch Spot Instances. (InsufficientInstanceCapacity: no capacity)")
    assert script.now[0] == 600


def test_worker_group_counts_asg_health_alone(script):
    script.look(asg(OD, 0, []), asg(SP, 1, [("i-2", "InService", "Healthy")]))
    assert script.run(target_group_arn=None) == [AsgHealth(OD, 0, 0), AsgHealth(SP, 1, 1)]


def test_no_activity_yet(script):
    script.look(asg(OD, 1, []), asg(SP, 0, []))
    script.asg_stub.add_response("describe_scaling_activities", {"Activities": []},
                                 {"AutoScalingGroupName": OD, "MaxRecords": 1})
    with pytest.raises(GateError, match=f"^group www: {OD} 0/1 healthy after 0 s; last activity: none$"):
        script.run(target_group_arn=None, timeout=0)


def test_main_exit_codes_and_lines(monkeypatch, capsys):
    monkeypatch.setattr(gate, "wait_healthy", lambda *a, **k: [AsgHealth(OD, 1, 1)])
    assert gate.main(["--group", "www", "--asg", OD, "--timeout", "60", "--region", "eu-west-1"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {"group": "www", "healthy": {OD: [1, 1]}}

    def fail(*a, **k):
        raise GateError(f"group www: {OD} 0/1 healthy after 60 s; last activity: none")
    monkeypatch.setattr(gate, "wait_healthy", fail)
    assert gate.main(["--group", "www", "--asg", OD]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [f"health gate failed: group www: {OD} 0/1 healthy after 60 s; "
                                         "last activity: none"]


def test_runs_as_a_module_against_the_moto_server(aws):
    """The Command's exact invocation over HTTP: a fresh ASG with min 1 (moto starts it InService)."""
    ec2, autoscaling = boto3.client("ec2"), boto3.client("autoscaling")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    lt = ec2.create_launch_template(LaunchTemplateName="jobs", LaunchTemplateData={
        "ImageId": "ami-12c6146b", "InstanceType": "t3.micro"})["LaunchTemplate"]["LaunchTemplateId"]
    for name, size in ((OD, 1), (SP, 0)):
        autoscaling.create_auto_scaling_group(AutoScalingGroupName=name, MinSize=size, MaxSize=3, DesiredCapacity=size,
                                              VPCZoneIdentifier=subnet,
                                              LaunchTemplate={"LaunchTemplateId": lt, "Version": "1"})
    proc = subprocess.run([sys.executable, "-m", "fleet.ops.gate", "--group", "jobs", "--asg", OD, "--asg", SP,
                           "--timeout", "30", "--poll", "1", "--endpoint-url", aws],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == {"group": "jobs", "healthy": {OD: [1, 1], SP: [0, 0]}}
    missing = subprocess.run([sys.executable, "-m", "fleet.ops.gate", "--group", "jobs", "--asg", "nope",
                              "--timeout", "0", "--endpoint-url", aws], cwd=ROOT, capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 1 and missing.stderr.splitlines() == [
        "health gate failed: no Auto Scaling group named nope"]
