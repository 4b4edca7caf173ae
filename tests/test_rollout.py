"""fleet.ops.rollout. moto has no instance refresh API, so `roll` runs against a real autoscaling client under
botocore's Stubber, which checks every request and response against the real service model and fails on
any call that was not scripted (a second StartInstanceRefresh, a CancelInstanceRefresh). `deploy` finds
its ASGs, launch templates and alarms on the moto server."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from fleet.ops import aws as fleet_aws
from fleet.ops import rollout
from fleet.ops.rollout import RolloutError, RolloutResult, roll
from tests.conftest import ROOT

ASG = "web-od"
LT = "lt-0123456789abcdef0"
PREFS = {"AutoRollback": True, "MinHealthyPercentage": 100, "MaxHealthyPercentage": 200, "SkipMatching": True}
MIXED = {
    "LaunchTemplate": {
        "LaunchTemplateSpecification": {"LaunchTemplateId": LT, "LaunchTemplateName": "web", "Version": "1"},
        "Overrides": [{"InstanceType": "m7g.large"}, {"InstanceType": "m6g.large"}, {"InstanceType": "c7g.large"}],
    },
    "InstancesDistribution": {"OnDemandBaseCapacity": 0, "OnDemandPercentageAboveBaseCapacity": 0,
                              "SpotAllocationStrategy": "price-capacity-optimized"},
}


def group(version="1", instances=("1", "1"), *, mixed=False, states=None) -> dict:
    """A DescribeAutoScalingGroups entry configured at `version` whose instances run `instances`."""
    spec = {"LaunchTemplateId": LT, "LaunchTemplateName": "web", "Version": version}
    states = states or ["InService"] * len(instances)
    g = {
        "AutoScalingGroupName": ASG, "MinSize": 1, "MaxSize": 6, "DesiredCapacity": len(instances),
        "DefaultCooldown": 300, "AvailabilityZones": ["us-east-1a"], "HealthCheckType": "ELB",
        "CreatedTime": datetime(2024, 5, 1, tzinfo=UTC),
        "Instances": [
            {"InstanceId": f"i-{n:017x}", "AvailabilityZone": "us-east-1a", "LifecycleState": state,
             "HealthStatus": "Healthy", "ProtectedFromScaleIn": False, "LaunchTemplate": dict(spec, Version=v)}
            for n, (v, state) in enumerate(zip(instances, states, strict=True))
        ],
    }
    if mixed:
        g["MixedInstancesPolicy"] = json.loads(json.dumps(MIXED))
        g["MixedInstancesPolicy"]["LaunchTemplate"]["LaunchTemplateSpecification"]["Version"] = version
    else:
        g["LaunchTemplate"] = spec
    return g


def refresh(rid: str, status: str, percent: int = 0, reason: str | None = None) -> dict:
    r = {"InstanceRefreshId": rid, "AutoScalingGroupName": ASG, "Status": status, "PercentageComplete": percent}
    if reason:
        r["StatusReason"] = reason
    return r


class Script:
    """The calls `roll` is expected to make, in order, with the answers AWS would give."""

    def __init__(self):
        self.client = fleet_aws.client("autoscaling", region="us-east-1")
        self.stub = Stubber(self.client)
        self.logs: list[str] = []

    def group(self, g: dict):
        self.stub.add_response("describe_auto_scaling_groups", {"AutoScalingGroups": [g]},
                               {"AutoScalingGroupNames": [ASG]})

    def history(self, *refreshes: dict):
        self.stub.add_response("describe_instance_refreshes", {"InstanceRefreshes": list(refreshes)},
                               {"AutoScalingGroupName": ASG})

    def start(self, rid: str, desired: dict | None = None, prefs: dict | None = None):
        self.stub.add_response("start_instance_refresh", {"InstanceRefreshId": rid}, {
            "AutoScalingGroupName": ASG, "Strategy": "Rolling",
            "DesiredConfiguration": desired or {"LaunchTemplate": {"LaunchTemplateId": LT, "Version": "2"}},
            "Preferences": prefs or PREFS,
        })

    def poll(self, *states: dict):
        for r in states:
            self.stub.add_response("describe_instance_refreshes", {"InstanceRefreshes": [r]},
                                   {"AutoScalingGroupName": ASG, "InstanceRefreshIds": [r["InstanceRefreshId"]]})

    def roll(self, version=2, **kwargs):
        kwargs.setdefault("sleep", lambda s: None)
        with self.stub:
            return roll(ASG, LT, version, client=self.client, log=self.logs.append, **kwargs)


@pytest.fixture
def script():
    s = Script()
    yield s
    s.stub.assert_no_pending_responses()


class TestRoll:
    def test_success_reports_progress(self, script):
        script.group(group("1"))
        script.history(refresh("r-old", "Successful", 100))
        script.start("r-1")
        script.poll(refresh("r-1", "Pending"), refresh("r-1", "InProgress", 50), refresh("r-1", "InProgress", 50),
                    refresh("r-1", "Successful", 100))

        result = script.roll()

        assert result == RolloutResult(ASG, 2, "succeeded", "r-1")
        assert any("50% complete" in line for line in script.logs)
        assert sum("InProgress, 50%" in line for line in script.logs) == 1, "unchanged progress is logged once"
        assert "Successful, 100% complete" in script.logs[-1]

    def test_failure_rolled_back_says_so_with_the_reason(self, script):
        script.group(group("1"))
        script.history()
        script.start("r-1")
        script.poll(refresh("r-1", "InProgress", 40),
                    refresh("r-1", "RollbackInProgress", 20, "Alarm fleet-staging-web-health-5xx is in ALARM state"),
                    refresh("r-1", "RollbackSuccessful", 0, "Alarm fleet-staging-web-health-5xx is in ALARM state"))

        with pytest.raises(RolloutError) as err:
            script.roll()

        message = str(err.value)
        assert "rolled back to the previous launch template version" in message
        assert "fleet-staging-web-health-5xx is in ALARM state" in message
        assert "r-1" in message and ASG in message
        assert "\n" not in message

    def test_rollback_failed(self, script):
        script.group(group("1"))
        script.history()
        script.start("r-1")
        script.poll(refresh("r-1", "RollbackFailed", 30, "Rollback failed:\n capacity unavailable"))
        with pytest.raises(RolloutError, match=r"rollback failed too.*: Rollback failed: capacity unavailable$"):
            script.roll()

    def test_failed_without_rollback(self, script):
        script.group(group("1"))
        script.history()
        script.start("r-1")
        script.poll(refresh("r-1", "Failed", 10, "Instances failed to launch"))
        with pytest.raises(RolloutError, match="r-1 failed: Instances failed to launch"):
            script.roll()

    def test_cancelled(self, script):
        script.group(group("1"))
        script.history()
        script.start("r-1")
        script.poll(refresh("r-1", "Cancelling", 30), refresh("r-1", "Cancelled", 30, "Cancelled by user"))
        with pytest.raises(RolloutError, match="r-1 was cancelled: Cancelled by user"):
            script.roll()

    def test_already_at_the_version_is_a_no_op(self, script):
        script.group(group("2", ("2", "2")))
        script.history(refresh("r-1", "Successful", 100))
        assert script.roll() == RolloutResult(ASG, 2, "no-op", None)

    def test_instances_on_their_way_out_do_not_count(self, script):
        script.group(group("2", ("2", "1"), states=["InService", "Terminating:Wait"]))
        script.history()
        assert script.roll().result == "no-op"

    def test_configured_but_instances_behind_starts_a_refresh(self, script):
        """E.g. the provider already switched the ASG's version (PITFALLS 6): instances still run 1."""
        script.group(group("2", ("2", "1")))
        script.history()
        script.start("r-1")
        script.poll(refresh("r-1", "Successful", 100))
        assert script.roll().result == "succeeded"

    def test_refresh_in_progress_is_waited_for_not_doubled(self, script):
        script.group(group("1"))
        script.history(refresh("r-9", "InProgress", 60))
        script.poll(refresh("r-9", "InProgress", 80), refresh("r-9", "Baking", 100), refresh("r-9", "Successful", 100))
        script.group(group("2", ("2", "2")))

        result = script.roll()

        assert result == RolloutResult(ASG, 2, "succeeded", "r-9")
        assert "already InProgress" in script.logs[0]

    def test_waited_refresh_that_rolled_back_is_reported(self, script):
        script.group(group("1"))
        script.history(refresh("r-9", "RollbackInProgress", 10))
        script.poll(refresh("r-9", "RollbackSuccessful", 0, "Health checks failed"))
        with pytest.raises(RolloutError, match="r-9 failed and was rolled back.*Health checks failed"):
            script.roll()

    def test_refresh_started_by_someone_else_between_look_and_start(self, script):
        script.group(group("1"))
        script.history()
        script.stub.add_client_error("start_instance_refresh", "InstanceRefreshInProgress",
                                     "An Instance Refresh is already in progress", 400)
        script.group(group("1"))
        script.history(refresh("r-7", "Pending"))
        script.poll(refresh("r-7", "Successful", 100))
        script.group(group("2", ("2", "2")))
        assert script.roll() == RolloutResult(ASG, 2, "succeeded", "r-7")

    def test_timeout_leaves_the_refresh_running_and_names_it(self, script):
        now = [1000.0]
        script.group(group("1"))
        script.history()
        script.start("r-1")
        script.poll(*[refresh("r-1", "InProgress", p) for p in (0, 10, 20, 30, 40)])

        with pytest.raises(RolloutError) as err:
            script.roll(timeout=60, poll=15, clock=lambda: now[0],
                        sleep=lambda s: now.__setitem__(0, now[0] + s))

        message = str(err.value)
        assert message.startswith(f"{ASG}: timed out after 60s")
        assert "r-1" in message and "still running" in message and "40% complete" in message
        assert now[0] == 1060.0

    def test_mixed_instances_group_keeps_its_policy(self, script):
        script.group(group("1", mixed=True))
        script.history()
        want = json.loads(json.dumps(MIXED))
        want["LaunchTemplate"]["LaunchTemplateSpecification"] = {"LaunchTemplateId": LT, "Version": "2"}
        script.start("r-1", desired={"MixedInstancesPolicy": want})
        script.poll(refresh("r-1", "Successful", 100))
        assert script.roll().result == "succeeded"

    def test_alarms_and_warmup_go_into_the_preferences(self, script):
        script.group(group("1"))
        script.history()
        script.start("r-1", prefs=dict(PREFS, InstanceWarmup=90,
                                       AlarmSpecification={"Alarms": ["fleet-staging-web-health-5xx", "other"]}))
        script.poll(refresh("r-1", "Successful", 100))
        script.roll(alarms=("fleet-staging-web-health-5xx", "other"), warmup=90)

    def test_missing_asg(self, script):
        script.stub.add_response("describe_auto_scaling_groups", {"AutoScalingGroups": []},
                                 {"AutoScalingGroupNames": [ASG]})
        with pytest.raises(RolloutError, match=f"no Auto Scaling group named {ASG}"):
            script.roll()


@pytest.fixture
def pair(aws):
    """staging/web on-demand + spot ASGs on launch template version 1 of 2, a prod pair that must not be
    touched, and alarms for the group and for another group."""
    ec2, asg, cw = boto3.client("ec2"), boto3.client("autoscaling"), boto3.client("cloudwatch")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    data = {"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"}
    lt = ec2.create_launch_template(LaunchTemplateName="web",
                                    LaunchTemplateData=data)["LaunchTemplate"]["LaunchTemplateId"]
    ec2.create_launch_template_version(LaunchTemplateId=lt, LaunchTemplateData=dict(data, InstanceType="t3.small"))
    prod_lt = ec2.create_launch_template(LaunchTemplateName="web-prod",
                                         LaunchTemplateData=data)["LaunchTemplate"]["LaunchTemplateId"]

    def make(name, capacity, stack, template):
        tags = [{"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": k, "Value": v,
                 "PropagateAtLaunch": True}
                for k, v in {"fleet:group": "web", "fleet:stack": stack, "fleet:capacity": capacity}.items()]
        spec = {"LaunchTemplateId": template, "Version": "1"}
        kwargs = {"LaunchTemplate": spec}
        if capacity == "spot":
            kwargs = {"MixedInstancesPolicy": {"LaunchTemplate": {
                "LaunchTemplateSpecification": spec,
                "Overrides": [{"InstanceType": "t3.micro"}, {"InstanceType": "t3a.micro"}]}}}
        asg.create_auto_scaling_group(AutoScalingGroupName=name, MinSize=0, MaxSize=3, DesiredCapacity=1,
                                      VPCZoneIdentifier=subnet, Tags=tags, **kwargs)

    # Created spot first, so ordering by creation or name would be wrong.
    make("web-spot", "spot", "staging", lt)
    make("web-od", "on-demand", "staging", lt)
    make("prod-web-od", "on-demand", "prod", prod_lt)
    for name in ("fleet-staging-web-health-5xx", "fleet-staging-api-health-5xx", "fleet-prod-web-health-5xx",
                 "fleet-staging-web-cpu-burst"):
        cw.put_metric_alarm(AlarmName=name, MetricName="HTTPCode_Target_5XX_Count", Namespace="AWS/ApplicationELB",
                            Statistic="Sum", Period=60, EvaluationPeriods=2, Threshold=10,
                            ComparisonOperator="GreaterThanThreshold")
    return lt


class TestDeploy:
    def record(self, monkeypatch, fail_on=()):
        calls = []

        def fake_roll(asg_name, template_id, version, **kwargs):
            calls.append((asg_name, template_id, version, tuple(kwargs["alarms"])))
            if asg_name in fail_on:
                raise RolloutError(f"{asg_name}: instance refresh r-1 failed and was rolled back: boom")
            return RolloutResult(asg_name, version, "succeeded", "r-1")

        monkeypatch.setattr(rollout, "roll", fake_roll)
        return calls

    def test_on_demand_canary_first_then_spot_at_the_latest_version(self, pair, monkeypatch):
        calls = self.record(monkeypatch)
        results = rollout.deploy("web", "staging", alarms=["extra"], log=lambda m: None)
        assert calls == [
            ("web-od", pair, 2, ("extra", "fleet-staging-web-health-5xx")),
            ("web-spot", pair, 2, ("extra", "fleet-staging-web-health-5xx")),
        ]
        assert [r.asg for r in results] == ["web-od", "web-spot"]

    def test_canary_failure_leaves_spot_alone(self, pair, monkeypatch):
        calls = self.record(monkeypatch, fail_on={"web-od"})
        with pytest.raises(RolloutError, match="web-od: .*rolled back"):
            rollout.deploy("web", "staging", log=lambda m: None)
        assert [c[0] for c in calls] == ["web-od"]

    def test_unknown_group(self, pair, monkeypatch):
        calls = self.record(monkeypatch)
        with pytest.raises(RolloutError, match="no Auto Scaling groups tagged fleet:group=api fleet:stack=staging"):
            rollout.deploy("api", "staging", log=lambda m: None)
        assert calls == []

    def test_discovered_alarms_are_the_groups_only(self, pair):
        cw = boto3.client("cloudwatch")
        assert rollout.discover_alarms(cw, "web", "staging") == ["fleet-staging-web-health-5xx"]


class TestMain:
    def test_prints_one_json_line_last(self, monkeypatch, capsys):
        seen = {}

        def fake_roll(asg_name, template_id, version, **kwargs):
            seen.update(kwargs, asg=asg_name, template=template_id, version=version)
            return RolloutResult(asg_name, version, "no-op")

        monkeypatch.setattr(rollout, "roll", fake_roll)
        code = rollout.main(["--asg", ASG, "--launch-template-id", LT, "--version", "7", "--alarm", "a",
                             "--alarm", "b", "--warmup", "60", "--region", "eu-west-1", "--timeout", "90"])
        out = capsys.readouterr().out.splitlines()
        assert code == 0
        assert json.loads(out[-1]) == {"asg": ASG, "version": 7, "result": "no-op", "refresh_id": None}
        assert (seen["version"], seen["alarms"], seen["warmup"], seen["timeout"]) == (7, ["a", "b"], 60, 90.0)
        assert seen["client"].meta.region_name == "eu-west-1"

    def test_rollout_error_is_one_stderr_line_and_exit_1(self, monkeypatch, capsys):
        def fake_roll(*args, **kwargs):
            raise RolloutError(f"{ASG}: instance refresh r-1 failed and was rolled back to the previous "
                               "launch template version: Alarm x in ALARM")

        monkeypatch.setattr(rollout, "roll", fake_roll)
        code = rollout.main(["--asg", ASG, "--launch-template-id", LT, "--version", "2"])
        captured = capsys.readouterr()
        assert code == 1
        assert captured.out == ""
        assert captured.err.splitlines() == [
            f"rollout failed: {ASG}: instance refresh r-1 failed and was rolled back to the previous "
            "launch template version: Alarm x in ALARM"]

    def test_runs_as_a_module_against_the_moto_server(self, aws):
        """The Command's exact invocation, end to end over HTTP: a missing ASG fails with one line."""
        proc = subprocess.run(
            [sys.executable, "-m", "fleet.ops.rollout", "--asg", "nope", "--launch-template-id", LT, "--version", "2",
             "--endpoint-url", aws],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )
        assert proc.returncode == 1
        assert proc.stdout == ""
        assert proc.stderr.splitlines() == ["rollout failed: no Auto Scaling group named nope"]
