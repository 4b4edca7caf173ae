"""The spot interruption handler against a real moto server over HTTP, called in-process (moto cannot run
Lambda without Docker, PITFALLS 30), and the EventBridge pattern through moto's events API."""

from __future__ import annotations

import ast
import copy
import json
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest

from fleet.ops.events import (
    HANDLED_TAG,
    SAMPLE_REBALANCE_EVENT,
    SAMPLE_SPOT_INTERRUPTION_EVENT,
    SPOT_HANDLER_ACTIONS,
    SPOT_INTERRUPTION_PATTERN,
)
from lambdas.spot_interruption import handler as spot

HANDLER_FILE = Path(spot.__file__)


def warning_for(instance_id: str, event_id: str | None = None) -> dict:
    """The documented sample event with the instance id (and optionally the event id) substituted."""
    event = copy.deepcopy(SAMPLE_SPOT_INTERRUPTION_EVENT)
    event["detail"]["instance-id"] = instance_id
    event["resources"] = [f"arn:aws:ec2:us-east-1:123456789012:instance/{instance_id}"]
    if event_id:
        event["id"] = event_id
    return event


def _asg_tags(name: str, **tags: str) -> list[dict]:
    return [{"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": k, "Value": v, "PropagateAtLaunch": True}
            for k, v in tags.items()]


@pytest.fixture(autouse=True)
def _fresh_container():
    """Each test is a cold Lambda container: no in-memory record of handled instances."""
    spot._SEEN.clear()
    yield
    spot._SEEN.clear()


@pytest.fixture
def fleet(aws, monkeypatch):
    """A VPC, one launch template, the staging/web pair (spot: 2 instances behind a target group;
    on-demand: desired 1, max 3), with FLEET_STACK=staging."""
    monkeypatch.setenv("FLEET_STACK", "staging")
    ec2, asg, elbv2 = boto3.client("ec2"), boto3.client("autoscaling"), boto3.client("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    lt = ec2.create_launch_template(
        LaunchTemplateName="web", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    tg = elbv2.create_target_group(Name="web", Protocol="HTTP", Port=8080, VpcId=vpc,
                                   TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
    ns = SimpleNamespace(ec2=ec2, asg=asg, elbv2=elbv2, subnet=subnet, lt=lt, tg=tg)

    def make_asg(name, *, desired=1, max_size=3, spot_mix=False, target_groups=(), **tags):
        kwargs = dict(AutoScalingGroupName=name, MinSize=0, MaxSize=max_size, DesiredCapacity=desired,
                      VPCZoneIdentifier=subnet, TargetGroupARNs=list(target_groups), Tags=_asg_tags(name, **tags))
        spec = {"LaunchTemplateId": lt, "Version": "1"}
        if spot_mix:
            kwargs["MixedInstancesPolicy"] = {
                "LaunchTemplate": {"LaunchTemplateSpecification": spec,
                                   "Overrides": [{"InstanceType": "t3.micro"}, {"InstanceType": "t3a.micro"}]},
                "InstancesDistribution": {"OnDemandBaseCapacity": 0, "OnDemandPercentageAboveBaseCapacity": 0,
                                          "SpotAllocationStrategy": "price-capacity-optimized"},
            }
        else:
            kwargs["LaunchTemplate"] = spec
        asg.create_auto_scaling_group(**kwargs)
        return name

    ns.make_asg = make_asg
    ns.spot = make_asg("web-spot", desired=2, max_size=6, spot_mix=True, target_groups=[tg],
                       **{"fleet:capacity": "spot", "fleet:stack": "staging", "fleet:group": "web"})
    ns.od = make_asg("web-od", desired=1, max_size=3,
                     **{"fleet:capacity": "on-demand", "fleet:stack": "staging", "fleet:group": "web"})
    return ns


def instances(ns, name: str) -> list[str]:
    group = ns.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    return sorted(i["InstanceId"] for i in group["Instances"])


def desired(ns, name: str) -> int:
    return ns.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]["DesiredCapacity"]


def registered(ns) -> list[str]:
    health = ns.elbv2.describe_target_health(TargetGroupArn=ns.tg)["TargetHealthDescriptions"]
    return sorted(d["Target"]["Id"] for d in health)


def handled_tag(ns, instance_id: str) -> str | None:
    tags = ns.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [instance_id]},
                                         {"Name": "key", "Values": [HANDLED_TAG]}])["Tags"]
    return tags[0]["Value"] if tags else None


def log_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


class TestHandler:
    def test_warning_deregisters_and_bumps_the_on_demand_pair(self, fleet, capsys):
        victim, survivor = instances(fleet, fleet.spot)
        assert registered(fleet) == sorted([victim, survivor])

        result = spot.handler(warning_for(victim), None)

        assert result["action"] == "bumped"
        assert (result["asg"], result["pair"]) == (fleet.spot, fleet.od)
        assert (result["desired_before"], result["desired_after"]) == (1, 2)
        assert result["deregistered_from"] == [fleet.tg]
        assert desired(fleet, fleet.od) == 2
        assert desired(fleet, fleet.spot) == 2
        assert registered(fleet) == [survivor]
        assert handled_tag(fleet, victim) == SAMPLE_SPOT_INTERRUPTION_EVENT["id"]
        assert log_lines(capsys) == [json.loads(json.dumps(result))]

    def test_one_json_log_line_with_the_documented_fields(self, fleet, capsys):
        victim = instances(fleet, fleet.spot)[0]
        spot.handler(warning_for(victim), None)
        (line,) = log_lines(capsys)
        for key in ("action", "instance_id", "asg", "pair", "desired_before", "desired_after", "reason"):
            assert key in line
        assert line["instance_id"] == victim

    def test_every_api_call_is_in_the_iam_list(self, fleet, monkeypatch):
        """The component grants SPOT_HANDLER_ACTIONS; a call missing there would be AccessDenied in AWS."""
        calls = set()
        session = boto3.session.Session()
        session.events.register("before-call", lambda model, **_: calls.add(
            f"{model.service_model.signing_name}:{model.name}"))
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
        spot.handler(warning_for(instances(fleet, fleet.spot)[0]), None)
        spot.handler(warning_for("i-0123456789abcdef0"), None)
        assert "autoscaling:SetDesiredCapacity" in calls and "ec2:DescribeInstances" in calls
        assert calls <= set(SPOT_HANDLER_ACTIONS)

    def test_instance_outside_any_asg_is_ignored(self, fleet):
        loner = fleet.ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                        SubnetId=fleet.subnet)["Instances"][0]["InstanceId"]
        result = spot.handler(warning_for(loner), None)
        assert (result["action"], result["reason"]) == ("ignored", "instance is not in an Auto Scaling group")
        assert desired(fleet, fleet.od) == 1
        assert handled_tag(fleet, loner) is None

    def test_instance_of_an_untagged_asg_is_ignored(self, fleet):
        other = fleet.make_asg("someone-elses", desired=1, target_groups=[fleet.tg])
        victim = instances(fleet, other)[0]
        result = spot.handler(warning_for(victim), None)
        assert result["action"] == "ignored"
        assert desired(fleet, fleet.od) == 1
        assert victim in registered(fleet)
        assert handled_tag(fleet, victim) is None

    def test_another_stacks_asg_is_ignored(self, fleet):
        prod_spot = fleet.make_asg("prod-web-spot", desired=1, target_groups=[fleet.tg],
                                   **{"fleet:capacity": "spot", "fleet:stack": "prod", "fleet:group": "web"})
        prod_od = fleet.make_asg("prod-web-od", desired=1,
                                 **{"fleet:capacity": "on-demand", "fleet:stack": "prod", "fleet:group": "web"})
        victim = instances(fleet, prod_spot)[0]
        result = spot.handler(warning_for(victim), None)
        assert result["action"] == "ignored"
        assert "fleet:stack='prod'" in result["reason"]
        assert desired(fleet, prod_od) == 1 and desired(fleet, fleet.od) == 1
        assert victim in registered(fleet)

    def test_our_on_demand_instance_is_ignored(self, fleet):
        result = spot.handler(warning_for(instances(fleet, fleet.od)[0]), None)
        assert result["action"] == "ignored"
        assert desired(fleet, fleet.od) == 1

    def test_duplicate_event_does_nothing_the_second_time(self, fleet, capsys):
        victim = instances(fleet, fleet.spot)[0]
        assert spot.handler(warning_for(victim), None)["action"] == "bumped"
        spot._SEEN.clear()  # a cold container: only the durable tag can tell

        again = spot.handler(warning_for(victim), None)
        other_id = spot.handler(warning_for(victim, event_id="another-delivery"), None)

        assert again["action"] == other_id["action"] == "duplicate"
        assert HANDLED_TAG in again["reason"]
        assert desired(fleet, fleet.od) == 2
        assert handled_tag(fleet, victim) == SAMPLE_SPOT_INTERRUPTION_EVENT["id"]
        assert [line["action"] for line in log_lines(capsys)] == ["bumped", "duplicate", "duplicate"]

    def test_warm_container_catches_a_duplicate_before_the_tag_is_readable(self, fleet):
        """EC2 tag reads are eventually consistent: simulate the tag not yet visible."""
        victim = instances(fleet, fleet.spot)[0]
        spot.handler(warning_for(victim), None)
        fleet.ec2.delete_tags(Resources=[victim], Tags=[{"Key": HANDLED_TAG}])
        assert spot.handler(warning_for(victim), None)["action"] == "duplicate"
        assert desired(fleet, fleet.od) == 2

    def test_capped_at_max_size(self, fleet):
        fleet.asg.set_desired_capacity(AutoScalingGroupName=fleet.od, DesiredCapacity=3)
        victim = instances(fleet, fleet.spot)[0]
        result = spot.handler(warning_for(victim), None)
        assert result["action"] == "capped"
        assert (result["desired_before"], result["desired_after"]) == (3, 3)
        assert desired(fleet, fleet.od) == 3
        assert victim not in registered(fleet)
        assert handled_tag(fleet, victim) is not None

    def test_bumps_up_to_the_cap_then_stops(self, fleet):
        victims = instances(fleet, fleet.spot)
        fleet.asg.set_desired_capacity(AutoScalingGroupName=fleet.od, DesiredCapacity=2)
        actions = [spot.handler(warning_for(v, event_id=f"e-{v}"), None)["action"] for v in victims]
        assert actions == ["bumped", "capped"]
        assert desired(fleet, fleet.od) == 3

    def test_instance_already_terminated_is_logged_and_ignored(self, fleet, capsys):
        victim = instances(fleet, fleet.spot)[0]
        fleet.asg.terminate_instance_in_auto_scaling_group(InstanceId=victim, ShouldDecrementDesiredCapacity=True)
        result = spot.handler(warning_for(victim), None)
        assert result["action"] == "gone"
        assert desired(fleet, fleet.od) == 1
        assert [line["action"] for line in log_lines(capsys)] == ["gone"]

    def test_instance_that_never_existed_is_logged_and_ignored(self, fleet):
        result = spot.handler(warning_for("i-0123456789abcdef0"), None)
        assert result["action"] == "gone"
        assert "InvalidInstanceID.NotFound" in result["reason"]
        assert desired(fleet, fleet.od) == 1

    def test_no_pair_still_drains_but_does_not_guess(self, fleet):
        fleet.asg.delete_auto_scaling_group(AutoScalingGroupName=fleet.od, ForceDelete=True)
        victim = instances(fleet, fleet.spot)[0]
        result = spot.handler(warning_for(victim), None)
        assert result["action"] == "no-pair"
        assert "found 0" in result["reason"]
        assert victim not in registered(fleet)

    def test_rebalance_recommendation_is_not_acted_on(self, fleet):
        event = copy.deepcopy(SAMPLE_REBALANCE_EVENT)
        event["detail"]["instance-id"] = victim = instances(fleet, fleet.spot)[0]
        result = spot.handler(event, None)
        assert result["action"] == "ignored"
        assert desired(fleet, fleet.od) == 1
        assert victim in registered(fleet)

    def test_without_fleet_stack_it_refuses_to_act(self, fleet, monkeypatch):
        monkeypatch.delenv("FLEET_STACK")
        with pytest.raises(RuntimeError, match="FLEET_STACK"):
            spot.handler(warning_for(instances(fleet, fleet.spot)[0]), None)
        assert desired(fleet, fleet.od) == 1


class TestPackaging:
    def test_handler_imports_only_the_stdlib_and_boto3(self):
        """It ships alone in a FileArchive: importing fleet would fail at run time in Lambda."""
        tree = ast.parse(HANDLER_FILE.read_text())
        roots = {(n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
                 for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                 for a in (n.names if isinstance(n, ast.Import) else [n])}
        assert roots <= {"__future__", "json", "os", "boto3", "botocore"}

    def test_tag_name_agrees_with_fleet_events(self):
        assert spot.HANDLED_TAG == HANDLED_TAG
        assert spot.WARNING == SPOT_INTERRUPTION_PATTERN["detail-type"][0]


class TestEventPattern:
    """moto's TestEventPattern is a stub that returns nothing (moto 5.2: `def test_event_pattern(self): pass`),
    so the pattern is checked the way AWS uses it: a rule on the default bus with an SQS target on the moto
    server, PutEvents of both sample events, and only the warning arrives."""

    def deliveries(self, events: list[dict]) -> list[dict]:
        bridge, sqs = boto3.client("events"), boto3.client("sqs")
        queue = sqs.create_queue(QueueName="spot-warnings")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        bridge.put_rule(Name="spot-warning", EventPattern=json.dumps(SPOT_INTERRUPTION_PATTERN))
        bridge.put_targets(Rule="spot-warning", Targets=[{"Id": "queue", "Arn": arn}])
        out = bridge.put_events(Entries=[
            {"Source": e["source"], "DetailType": e["detail-type"], "Detail": json.dumps(e["detail"]),
             "Resources": e["resources"], "Time": e["time"]} for e in events
        ])
        assert out["FailedEntryCount"] == 0
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    def test_matches_the_warning(self, aws):
        (got,) = self.deliveries([SAMPLE_SPOT_INTERRUPTION_EVENT])
        assert got["detail-type"] == "EC2 Spot Instance Interruption Warning"
        assert got["detail"] == SAMPLE_SPOT_INTERRUPTION_EVENT["detail"]

    def test_does_not_match_the_rebalance_recommendation(self, aws):
        assert self.deliveries([SAMPLE_REBALANCE_EVENT]) == []

    def test_sample_events_have_the_eventbridge_envelope(self):
        for event in (SAMPLE_SPOT_INTERRUPTION_EVENT, SAMPLE_REBALANCE_EVENT):
            assert set(event) == {"version", "id", "detail-type", "source", "account", "time", "region",
                                  "resources", "detail"}
            instance = event["detail"]["instance-id"]
            assert event["resources"] == [f"arn:aws:ec2:us-east-2:123456789012:instance/{instance}"]
