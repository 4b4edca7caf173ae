"""The spot capacity reconciler against a real moto server over HTTP, called in-process (moto cannot run
Lambda without Docker): sequences of events on real ASGs, concurrency from many threads,
the lease and its crash record, metrics, IAM coverage; and the EventBridge patterns through moto's
events API (a real rule with an SQS target: moto's TestEventPattern is a no-op)."""

from __future__ import annotations

import ast
import copy
import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from fleet.ops import events as contract
from fleet.ops.events import (
    BASE_TAG,
    CEILING_TAG,
    OD_MAX_TAG,
    SPOT_CAPACITY_ACTIONS,
    SPOT_INTERRUPTION_PATTERN,
    WARNED_TAG,
    asg_events_pattern_json,
)
from lambdas.spot_capacity import handler as capacity
from lambdas.spot_capacity import reconcile
from tests.aws_sample_events import (
    SAMPLE_ASG_EVENTS,
    SAMPLE_REBALANCE_EVENT,
    SAMPLE_SCHEDULED_EVENT,
    SAMPLE_SPOT_INTERRUPTION_EVENT,
)

HANDLER_DIR = Path(capacity.__file__).parent


def warning_for(instance_id: str, event_id: str = "warning-1") -> dict:
    event = copy.deepcopy(SAMPLE_SPOT_INTERRUPTION_EVENT)
    event["detail"]["instance-id"] = instance_id
    event["resources"] = [f"arn:aws:ec2:us-east-1:123456789012:instance/{instance_id}"]
    event["id"] = event_id
    return event


def asg_event(detail_type: str, asg_name: str, message: str | None = None) -> dict:
    event = copy.deepcopy(SAMPLE_ASG_EVENTS[detail_type])
    event["detail"]["AutoScalingGroupName"] = asg_name
    if message is not None:
        event["detail"]["StatusMessage"] = message
    return event


def schedule() -> dict:
    return copy.deepcopy(SAMPLE_SCHEDULED_EVENT)


def _asg_tags(name: str, tags: dict, propagate: bool = True) -> list[dict]:
    return [{"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": k, "Value": v,
             "PropagateAtLaunch": propagate} for k, v in tags.items()]


@pytest.fixture
def fleet(aws, monkeypatch):
    """The staging/web pair as AsgPair makes it: spot ASG (2 instances, behind a target group, mixed
    instances) and on-demand ASG (base 1 = MinSize = desired, max 3, tagged with its base); the stack's
    capacity table; FLEET_STACK and FLEET_CAPACITY_TABLE set."""
    monkeypatch.setenv("FLEET_STACK", "staging")
    monkeypatch.setenv("FLEET_CAPACITY_TABLE", "fleet-staging-capacity")
    boto3.client("dynamodb").create_table(
        TableName="fleet-staging-capacity", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "group", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "group", "KeyType": "HASH"}])
    ec2, asg, elbv2 = boto3.client("ec2"), boto3.client("autoscaling"), boto3.client("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    tg = elbv2.create_target_group(Name="web", Protocol="HTTP", Port=8080, VpcId=vpc,
                                   TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
    ns = SimpleNamespace(ec2=ec2, asg=asg, elbv2=elbv2, subnet=subnet, tg=tg)

    def template(name):
        return ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={
            "ImageId": "ami-12c6146b", "InstanceType": "t3.micro"})["LaunchTemplate"]["LaunchTemplateId"]

    def make_pair(group, *, stack="staging", spot=2, spot_max=6, base=1, od_max=3, target_groups=()):
        tags = {"fleet:stack": stack, "fleet:group": group}
        spot_name, od_name = f"{stack}-{group}-spot", f"{stack}-{group}-od"
        lt = template(f"{stack}-{group}")
        asg.create_auto_scaling_group(
            AutoScalingGroupName=spot_name, MinSize=0, MaxSize=spot_max, DesiredCapacity=spot,
            VPCZoneIdentifier=subnet, TargetGroupARNs=list(target_groups),
            Tags=_asg_tags(spot_name, {**tags, "fleet:capacity": "spot"}),
            MixedInstancesPolicy={
                "LaunchTemplate": {"LaunchTemplateSpecification": {"LaunchTemplateId": lt, "Version": "1"},
                                   "Overrides": [{"InstanceType": "t3.micro"}, {"InstanceType": "t3a.micro"},
                                                 {"InstanceType": "t2.micro"}]},
                "InstancesDistribution": {"OnDemandBaseCapacity": 0, "OnDemandPercentageAboveBaseCapacity": 0,
                                          "SpotAllocationStrategy": "price-capacity-optimized"}})
        asg.create_auto_scaling_group(
            AutoScalingGroupName=od_name, MinSize=base, MaxSize=od_max, DesiredCapacity=base,
            VPCZoneIdentifier=subnet, LaunchTemplate={"LaunchTemplateId": template(f"{stack}-{group}-od"),
                                                      "Version": "1"},
            Tags=_asg_tags(od_name, {**tags, "fleet:capacity": "on-demand"})
            + _asg_tags(od_name, {BASE_TAG: str(base)}, propagate=False))
        return SimpleNamespace(spot=spot_name, od=od_name, lt=lt)

    ns.make_pair = make_pair
    web = make_pair("web", target_groups=[tg])
    ns.spot, ns.od, ns.spot_lt = web.spot, web.od, web.lt
    return ns


def group_of(ns, name: str) -> dict:
    return ns.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]


def instances(ns, name: str) -> list[str]:
    return sorted(i["InstanceId"] for i in group_of(ns, name)["Instances"])


def od_state(ns, name: str | None = None) -> tuple[int, int]:
    """(desired, MinSize) of the on-demand ASG."""
    g = group_of(ns, name or ns.od)
    return g["DesiredCapacity"], g["MinSize"]


def registered(ns) -> list[str]:
    health = ns.elbv2.describe_target_health(TargetGroupArn=ns.tg)["TargetHealthDescriptions"]
    return sorted(d["Target"]["Id"] for d in health)


def reclaim(ns, instance_id: str) -> None:
    """EC2 takes the spot instance back: it leaves the ASG, which launches a replacement (moto: at once,
    InService)."""
    ns.asg.terminate_instance_in_auto_scaling_group(InstanceId=instance_id, ShouldDecrementDesiredCapacity=False)


def fail_spot_launches(ns, desired: int, have: int = 2) -> None:
    """Raise the spot ASG's desired capacity while its launches fail. moto has no capacity model, so the
    launches are made to fail the only way moto knows: the launch template is gone. What the ASG is left
    with is what InsufficientInstanceCapacity leaves in AWS: desired above the instances it has."""
    ns.ec2.delete_launch_template(LaunchTemplateId=ns.spot_lt)
    once = boto3.client("autoscaling", config=Config(retries={"total_max_attempts": 1}))
    with pytest.raises((ClientError, ResponseParserError)):  # moto answers with a bare 500
        once.update_auto_scaling_group(AutoScalingGroupName=ns.spot, DesiredCapacity=desired)
    g = group_of(ns, ns.spot)
    assert (g["DesiredCapacity"], len(g["Instances"])) == (desired, have)


def lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def decision(result: dict) -> dict:
    (d,) = result["decisions"]
    return d


class TestSequences:
    def test_warning_drains_and_raises_on_demand_by_one(self, fleet, capsys):
        victim, survivor = instances(fleet, fleet.spot)
        d = decision(capacity.handler(warning_for(victim), None))
        assert d["action"] == "raised" and (d["deficit"], d["extra"], d["cpu_part"]) == (1, 1, 1)
        assert od_state(fleet) == (2, 2), "desired = CPU part 1 + extra 1; MinSize = base 1 + extra 1"
        assert registered(fleet) == [survivor], "drained from the target group at once"
        assert d["drained_from"] == [fleet.tg] and d["warned"] == [victim]
        assert lines(capsys) == [json.loads(json.dumps(d))]

    def test_the_decision_is_recorded_with_the_extra(self, fleet):
        """`fleet status` shows the reconciler's last decision from its table: the run writes it with the extra."""
        victim = instances(fleet, fleet.spot)[0]
        capacity.handler(warning_for(victim), None)
        item = boto3.client("dynamodb").get_item(TableName="fleet-staging-capacity",
                                                 Key={"group": {"S": "staging/web"}})["Item"]
        last = item["last_decision"]["M"]
        assert item["extra"] == {"N": "1"}
        assert (last["action"], last["deficit"], last["desired"]) == ({"S": "raised"}, {"N": "1"}, {"N": "2"})
        assert last["at"]["S"].endswith("Z") and "lease_owner" not in item

    def test_replacement_in_service_brings_on_demand_back_to_base(self, fleet):
        victim = instances(fleet, fleet.spot)[0]
        capacity.handler(warning_for(victim), None)
        reclaim(fleet, victim)
        assert victim not in instances(fleet, fleet.spot) and len(instances(fleet, fleet.spot)) == 2
        d = decision(capacity.handler(asg_event("EC2 Instance Launch Successful", fleet.spot), None))
        assert d["action"] == "lowered" and (d["deficit"], d["extra"]) == (0, 0)
        assert od_state(fleet) == (1, 1)

    def test_two_warnings_one_recovery_leaves_one_extra(self, fleet):
        a, b = instances(fleet, fleet.spot)
        capacity.handler(warning_for(a, "w-a"), None)
        capacity.handler(warning_for(b, "w-b"), None)
        assert od_state(fleet) == (3, 3)
        reclaim(fleet, a)
        d = decision(capacity.handler(asg_event("EC2 Instance Launch Successful", fleet.spot), None))
        assert (d["deficit"], d["extra"]) == (1, 1)
        assert od_state(fleet) == (2, 2)

    def test_terminate_event_keeps_counting_the_gap_until_the_replacement_serves(self, fleet):
        victim = instances(fleet, fleet.spot)[0]
        capacity.handler(warning_for(victim), None)
        fleet.asg.set_instance_health(InstanceId=victim, HealthStatus="Unhealthy")
        d = decision(capacity.handler(asg_event("EC2 Instance Terminate Successful", fleet.spot), None))
        assert (d["action"], d["deficit"]) == ("unchanged", 1)
        assert od_state(fleet) == (2, 2)

    def test_launch_unsuccessful_raises_by_the_deficit(self, fleet):
        fail_spot_launches(fleet, desired=4)
        d = decision(capacity.handler(asg_event(
            "EC2 Instance Launch Unsuccessful", fleet.spot,
            "We currently do not have sufficient t3.micro capacity in the Availability Zone you requested "
            "(us-east-1a). Launching EC2 instance failed. (InsufficientInstanceCapacity)"), None))
        assert d["action"] == "raised" and (d["deficit"], d["extra"]) == (2, 2)
        assert "InsufficientInstanceCapacity" in d["cause"]
        assert od_state(fleet) == (3, 3)

    def test_capped_at_the_on_demand_max(self, fleet):
        fail_spot_launches(fleet, desired=6)  # 4 missing, room for 2 under max 3
        d = decision(capacity.handler(asg_event("EC2 Instance Launch Unsuccessful", fleet.spot), None))
        assert d["action"] == "capped" and d["capped"] is True
        assert (d["deficit"], d["extra"], d["unmet"]) == (4, 2, 2)
        assert od_state(fleet) == (3, 3)

    def test_cpu_driven_scale_out_survives_the_decay(self, fleet):
        victim = instances(fleet, fleet.spot)[0]
        capacity.handler(warning_for(victim), None)
        assert od_state(fleet) == (2, 2)
        # the on-demand ASG's own burst policy adds one (a real policy, executed on the moto server)
        fleet.asg.put_scaling_policy(AutoScalingGroupName=fleet.od, PolicyName="burst", PolicyType="SimpleScaling",
                                     AdjustmentType="ChangeInCapacity", ScalingAdjustment=1)
        fleet.asg.execute_policy(AutoScalingGroupName=fleet.od, PolicyName="burst")
        assert od_state(fleet) == (3, 2)
        reclaim(fleet, victim)
        d = decision(capacity.handler(asg_event("EC2 Instance Launch Successful", fleet.spot), None))
        assert (d["cpu_part"], d["extra"]) == (2, 0)
        assert od_state(fleet) == (2, 1), "the extra went, the policy's instance stayed"

    def test_a_lost_event_is_repaired_by_the_schedule(self, fleet):
        victim = instances(fleet, fleet.spot)[0]
        capacity.handler(warning_for(victim), None)
        reclaim(fleet, victim)  # ... and the Launch Successful event never arrives
        assert od_state(fleet) == (2, 2)
        (d,) = capacity.handler(schedule(), None)["decisions"]
        assert (d["group"], d["action"], d["trigger"]) == ("web", "lowered", "Scheduled Event")
        assert od_state(fleet) == (1, 1)

    def test_the_schedule_catches_a_failure_no_event_reported(self, fleet):
        fail_spot_launches(fleet, desired=3)
        capacity.handler(schedule(), None)
        assert od_state(fleet) == (2, 2)

    def test_schedule_reconciles_every_group_of_the_stack_and_no_other(self, fleet):
        api = fleet.make_pair("api", spot=1)
        prod = fleet.make_pair("web", stack="prod", spot=1)
        fleet.asg.set_instance_health(InstanceId=instances(fleet, api.spot)[0], HealthStatus="Unhealthy")
        fleet.asg.set_instance_health(InstanceId=instances(fleet, prod.spot)[0], HealthStatus="Unhealthy")
        decisions = capacity.handler(schedule(), None)["decisions"]
        assert sorted((d["group"], d["action"]) for d in decisions) == [("api", "raised"), ("web", "unchanged")]
        assert od_state(fleet, api.od) == (2, 2) and od_state(fleet, prod.od) == (1, 1)

    def test_runs_are_idempotent(self, fleet):
        victim = instances(fleet, fleet.spot)[0]
        first = decision(capacity.handler(warning_for(victim), None))
        again = decision(capacity.handler(warning_for(victim, "redelivered"), None))
        later = capacity.handler(schedule(), None)["decisions"][0]
        assert first["desired_after"] == again["desired_after"] == later["desired_after"] == 2
        assert again["action"] == later["action"] == "unchanged"
        assert od_state(fleet) == (2, 2)


class TestIgnored:
    def test_an_instance_outside_any_asg_is_ignored(self, fleet, capsys):
        loner = fleet.ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                        SubnetId=fleet.subnet)["Instances"][0]["InstanceId"]
        d = decision(capacity.handler(warning_for(loner), None))
        assert (d["action"], d["reason"]) == ("ignored", "instance is not in an Auto Scaling group")
        assert od_state(fleet) == (1, 1)
        assert not fleet.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [loner]},
                                                    {"Name": "key", "Values": [WARNED_TAG]}])["Tags"]
        assert [line["action"] for line in lines(capsys)] == ["ignored"]

    def test_another_stacks_and_untagged_asgs_are_ignored(self, fleet):
        prod = fleet.make_pair("web", stack="prod", target_groups=[fleet.tg])
        victim = instances(fleet, prod.spot)[0]
        d = decision(capacity.handler(warning_for(victim), None))
        assert d["action"] == "ignored" and "fleet:stack='prod'" in d["reason"]
        assert victim in registered(fleet), "not drained: not ours"
        assert decision(capacity.handler(asg_event("EC2 Instance Launch Successful", prod.spot), None))[
            "action"] == "ignored"
        assert od_state(fleet, prod.od) == (1, 1) and od_state(fleet) == (1, 1)

    def test_our_on_demand_instance_is_ignored(self, fleet):
        d = decision(capacity.handler(warning_for(instances(fleet, fleet.od)[0]), None))
        assert d["action"] == "ignored" and "fleet:capacity='on-demand'" in d["reason"]
        assert od_state(fleet) == (1, 1)

    def test_other_events_are_ignored(self, fleet):
        rebalance = copy.deepcopy(SAMPLE_REBALANCE_EVENT)
        rebalance["detail"]["instance-id"] = instances(fleet, fleet.spot)[0]
        for event in (rebalance, asg_event("EC2 Instance Terminate Unsuccessful", fleet.spot)):
            assert decision(capacity.handler(event, None))["action"] == "ignored"
        assert od_state(fleet) == (1, 1)

    def test_without_its_environment_it_refuses_to_act(self, fleet, monkeypatch):
        monkeypatch.delenv("FLEET_CAPACITY_TABLE")
        with pytest.raises(RuntimeError, match="FLEET_CAPACITY_TABLE"):
            capacity.handler(warning_for(instances(fleet, fleet.spot)[0]), None)
        assert od_state(fleet) == (1, 1)

    def test_a_group_without_its_pair_is_reported_not_guessed(self, fleet):
        fleet.asg.delete_auto_scaling_group(AutoScalingGroupName=fleet.od, ForceDelete=True)
        victim = instances(fleet, fleet.spot)[0]
        d = decision(capacity.handler(warning_for(victim), None))
        assert d["action"] == "no-pair" and "found 1 and 0" in d["reason"]
        assert victim not in registered(fleet), "drained all the same"


class _Serialized:
    """A boto3 client whose calls run one at a time (across threads): DynamoDB's atomic conditional write."""

    _lock = threading.Lock()

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            with self._lock:
                return attr(*args, **kwargs)
        return call


class TestConcurrency:
    """No reserved concurrency: many invocations at once must give exactly the level's answer."""

    @pytest.fixture(autouse=True)
    def _patient_lease(self, monkeypatch):
        # Twenty runs take the group's lease one after another. On Lambda a run that waits longer than
        # WAIT_SECONDS fails and is retried; here a loaded machine must not turn that into a failure,
        # since these tests are about the final capacity being exact, not about the wait bound
        # (test_a_held_lease_makes_an_event_wait_then_fail_for_a_retry covers that).
        monkeypatch.setattr(capacity, "WAIT_SECONDS", 600)
        # moto's threaded server checks a conditional write's condition and applies the write without a
        # lock, so two concurrent UpdateItems can both pass `attribute_not_exists(lease_owner)` (seen
        # here: a holder's next write then fails its `lease_owner = :me` check). DynamoDB applies a
        # conditional write atomically; serializing the DynamoDB requests (only those: the Auto Scaling
        # and EC2 calls still run concurrently) gives the test that guarantee back.
        real = capacity._client
        monkeypatch.setattr(capacity, "_client", lambda s: _Serialized(real(s)) if s == "dynamodb" else real(s))

    def run_all(self, events: list[dict]) -> list:
        results, errors = [None] * len(events), []
        barrier = threading.Barrier(len(events))

        def invoke(i):
            barrier.wait()
            try:
                results[i] = capacity.handler(events[i], None)
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                errors.append(e)
        threads = [threading.Thread(target=invoke, args=(i,)) for i in range(len(events))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        return results

    def test_twenty_deliveries_of_the_same_warning(self, fleet):
        victim = instances(fleet, fleet.spot)[0]
        results = self.run_all([warning_for(victim, f"delivery-{i}") for i in range(20)])
        assert od_state(fleet) == (2, 2)
        actions = sorted(decision(r)["action"] for r in results)
        assert actions == ["raised"] + ["unchanged"] * 19

    def test_twenty_warnings_for_twenty_instances_of_one_group(self, fleet):
        fleet.asg.update_auto_scaling_group(AutoScalingGroupName=fleet.spot, MaxSize=24, DesiredCapacity=20)
        fleet.asg.update_auto_scaling_group(AutoScalingGroupName=fleet.od, MaxSize=30)
        victims = instances(fleet, fleet.spot)
        assert len(victims) == 20
        self.run_all([warning_for(v, f"w-{v}") for v in victims])
        assert od_state(fleet) == (21, 21)
        assert capacity.handler(schedule(), None)["decisions"][0]["action"] == "unchanged"

    def test_a_cpu_part_above_base_survives_concurrent_runs(self, fleet):
        fleet.asg.update_auto_scaling_group(AutoScalingGroupName=fleet.spot, MaxSize=12, DesiredCapacity=10)
        fleet.asg.update_auto_scaling_group(AutoScalingGroupName=fleet.od, MaxSize=20, DesiredCapacity=3)
        victims = instances(fleet, fleet.spot)
        self.run_all([warning_for(v, f"w-{v}") for v in victims] + [schedule() for _ in range(5)])
        assert od_state(fleet) == (13, 11), "CPU part 3 + 10 warned; MinSize = base 1 + 10"


class TestLease:
    def test_a_held_lease_makes_an_event_wait_then_fail_for_a_retry(self, fleet, monkeypatch):
        monkeypatch.setattr(capacity, "WAIT_SECONDS", 0.3)
        holder = capacity.Lease("fleet-staging-capacity", "staging/web")
        holder.acquire()
        victim = instances(fleet, fleet.spot)[0]
        with pytest.raises(capacity.LeaseBusy):
            capacity.handler(warning_for(victim), None)
        assert od_state(fleet) == (1, 1)
        holder.release()
        assert decision(capacity.handler(warning_for(victim), None))["action"] == "raised"  # Lambda's retry

    def test_the_schedule_skips_a_busy_group_and_does_the_others(self, fleet, monkeypatch):
        monkeypatch.setattr(capacity, "WAIT_SECONDS", 0.3)
        api = fleet.make_pair("api", spot=1)
        fleet.asg.set_instance_health(InstanceId=instances(fleet, api.spot)[0], HealthStatus="Unhealthy")
        capacity.Lease("fleet-staging-capacity", "staging/web").acquire()
        decisions = {d["group"]: d["action"] for d in capacity.handler(schedule(), None)["decisions"]}
        assert decisions == {"api": "raised", "web": "busy"}
        assert od_state(fleet, api.od) == (2, 2)

    def test_an_expired_lease_of_a_crashed_holder_is_taken_over(self, fleet, monkeypatch):
        monkeypatch.setattr(capacity, "LEASE_SECONDS", -1)  # the crashed holder's lease has run out
        capacity.Lease("fleet-staging-capacity", "staging/web").acquire()
        monkeypatch.setattr(capacity, "LEASE_SECONDS", 90)
        assert decision(capacity.handler(warning_for(instances(fleet, fleet.spot)[0]), None))["action"] == "raised"

    def test_a_crash_after_the_asg_write_is_resolved_by_the_next_run(self, fleet, monkeypatch):
        """The record said extra 0 but the ASG got extra 1: the next run must not take it for CPU."""
        def crash(self, *_):
            raise TimeoutError("Lambda timed out")
        commit = capacity.Lease.commit
        monkeypatch.setattr(capacity.Lease, "commit", crash)
        victim = instances(fleet, fleet.spot)[0]
        with pytest.raises(TimeoutError):
            capacity.handler(warning_for(victim), None)
        assert od_state(fleet) == (2, 2)
        monkeypatch.setattr(capacity.Lease, "commit", commit)
        reclaim(fleet, victim)
        d = capacity.handler(schedule(), None)["decisions"][0]
        assert (d["extra_before"], d["cpu_part"], d["extra"]) == (1, 1, 0)
        assert od_state(fleet) == (1, 1)

    def test_a_crash_before_the_asg_write_is_resolved_by_the_next_run(self, fleet, monkeypatch):
        def crash(**kwargs):
            raise TimeoutError("Lambda timed out")
        real = capacity._client

        def client(service):
            c = real(service)
            if service == "autoscaling":
                c.update_auto_scaling_group = crash
            return c
        monkeypatch.setattr(capacity, "_client", client)
        with pytest.raises(TimeoutError):
            capacity.handler(warning_for(instances(fleet, fleet.spot)[0]), None)
        monkeypatch.setattr(capacity, "_client", real)
        d = capacity.handler(schedule(), None)["decisions"][0]
        assert (d["extra_before"], d["cpu_part"], d["extra"]) == (0, 1, 1)
        assert od_state(fleet) == (2, 2)


    def test_a_lost_record_is_rebuilt_from_min_size(self, fleet):
        """A new or replaced table: MinSize - base is the extra, so it still decays."""
        capacity.handler(warning_for(instances(fleet, fleet.spot)[0]), None)
        boto3.client("dynamodb").delete_item(TableName="fleet-staging-capacity", Key={"group": {"S": "staging/web"}})
        fleet.asg.update_auto_scaling_group(AutoScalingGroupName=fleet.od, DesiredCapacity=3)  # + a policy's one
        reclaim(fleet, instances(fleet, fleet.spot)[0])
        d = capacity.handler(schedule(), None)["decisions"][0]
        assert (d["extra_before"], d["cpu_part"], d["extra"]) == (1, 2, 0)
        assert od_state(fleet) == (2, 1)


class TestMetricsAndLogs:
    def test_metrics_per_group(self, fleet):
        fail_spot_launches(fleet, desired=6)
        capacity.handler(schedule(), None)
        cw = boto3.client("cloudwatch")
        dims = [{"Name": "Stack", "Value": "staging"}, {"Name": "Group", "Value": "web"}]
        got = {}
        for name in contract.METRIC_NAMES:
            points = cw.get_metric_statistics(
                Namespace=contract.METRIC_NAMESPACE, MetricName=name, Dimensions=dims, Statistics=["Maximum"],
                StartTime=time.time() - 600, EndTime=time.time() + 600, Period=60)["Datapoints"]
            got[name] = max(p["Maximum"] for p in points)
        assert got == {"SpotDeficit": 4.0, "OnDemandExtra": 2.0, "Capped": 1.0}

    def test_one_json_line_per_decision_with_the_numbers(self, fleet, capsys):
        fleet.make_pair("api", spot=1)
        decisions = capacity.handler(schedule(), None)["decisions"]
        logged = lines(capsys)
        assert logged == json.loads(json.dumps(decisions)) and len(logged) == 2
        for line in logged:
            for key in ("action", "group", "deficit", "cpu_part", "extra", "desired_before", "desired_after",
                        "min_size", "capped", "reason", "stack", "trigger"):
                assert key in line

    def test_every_api_call_is_in_the_iam_list(self, fleet, monkeypatch):
        calls = set()
        session = boto3.session.Session()
        session.events.register("before-call", lambda model, **_: calls.add(
            f"{model.service_model.signing_name}:{model.name}"))
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
        capacity.handler(warning_for(instances(fleet, fleet.spot)[0]), None)
        capacity.handler(warning_for("i-0123456789abcdef0"), None)
        capacity.handler(schedule(), None)
        calls = {c.replace("monitoring:", "cloudwatch:") for c in calls}
        assert {"autoscaling:UpdateAutoScalingGroup", "dynamodb:UpdateItem", "cloudwatch:PutMetricData",
                "ec2:CreateTags", "elasticloadbalancing:DeregisterTargets"} <= calls
        assert calls <= set(SPOT_CAPACITY_ACTIONS)


class TestContract:
    def test_handler_imports_only_the_stdlib_boto3_and_its_sibling(self):
        """It ships alone (handler.py + reconcile.py): importing fleet would fail in Lambda."""
        roots = set()
        for path in HANDLER_DIR.glob("*.py"):
            for n in ast.walk(ast.parse(path.read_text())):
                if isinstance(n, ast.ImportFrom):
                    roots.add("." if n.level else n.module.split(".")[0])
                elif isinstance(n, ast.Import):
                    roots.update(a.name.split(".")[0] for a in n.names)
        assert roots <= {"__future__", ".", "reconcile", "json", "os", "random", "re", "time", "uuid", "dataclasses",
                         "typing", "boto3", "botocore"}

    def test_the_handler_agrees_with_fleet_ops_events(self):
        assert capacity.WARNING == SPOT_INTERRUPTION_PATTERN["detail-type"][0]
        assert capacity.ASG_EVENTS == contract.ASG_DETAIL_TYPES
        assert capacity.SCHEDULED == SAMPLE_SCHEDULED_EVENT["detail-type"]
        assert (capacity.WARNED_TAG, capacity.BASE_TAG) == (WARNED_TAG, BASE_TAG)
        assert (capacity.NAMESPACE, capacity.METRICS) == (contract.METRIC_NAMESPACE, contract.METRIC_NAMES)

    def test_the_pure_decision_module_is_the_one_the_handler_uses(self):
        assert capacity.reconcile is reconcile


class TestEventPatterns:
    """moto's TestEventPattern is a stub, so each pattern is checked the way AWS uses it: a rule on the
    default bus with an SQS target on the moto server, PutEvents of AWS's sample events, and exactly the
    expected ones arrive."""

    def deliveries(self, pattern: str, events: list[dict]) -> list[dict]:
        bridge, sqs = boto3.client("events"), boto3.client("sqs")
        queue = sqs.create_queue(QueueName="spot-capacity")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        bridge.put_rule(Name="spot-capacity", EventPattern=pattern)
        bridge.put_targets(Rule="spot-capacity", Targets=[{"Id": "queue", "Arn": arn}])
        entries = [{"Source": e["source"], "DetailType": e["detail-type"], "Detail": json.dumps(e["detail"]),
                    "Resources": e["resources"], "Time": e["time"]} for e in events]
        for i in range(0, len(entries), 10):  # PutEvents takes 10 at a time
            assert bridge.put_events(Entries=entries[i:i + 10])["FailedEntryCount"] == 0
        got = []
        while True:
            batch = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
            if not batch:
                return got
            got += [json.loads(m["Body"]) for m in batch]
            sqs.delete_message_batch(QueueUrl=queue, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])

    def everything(self, asg_name: str) -> list[dict]:
        out = [copy.deepcopy(SAMPLE_SPOT_INTERRUPTION_EVENT), copy.deepcopy(SAMPLE_REBALANCE_EVENT),
               copy.deepcopy(SAMPLE_SCHEDULED_EVENT)]
        for detail_type in SAMPLE_ASG_EVENTS:
            for name in (asg_name, "someone-elses-asg", "staging-web-on-demand-1234567"):
                out.append(asg_event(detail_type, name))
        return out

    def test_warning_pattern_matches_the_warning_only(self, aws):
        got = self.deliveries(json.dumps(SPOT_INTERRUPTION_PATTERN), self.everything("staging-web-spot-1234567"))
        assert [e["detail-type"] for e in got] == ["EC2 Spot Instance Interruption Warning"]

    def test_asg_pattern_matches_the_three_events_of_our_spot_asgs_only(self, aws):
        ours = ["staging-web-spot-1234567", "staging-api-spot-7654321"]
        got = self.deliveries(asg_events_pattern_json(ours), self.everything(ours[0]) + [
            asg_event("EC2 Instance Launch Unsuccessful", ours[1])])
        assert sorted((e["detail-type"], e["detail"]["AutoScalingGroupName"]) for e in got) == [
            ("EC2 Instance Launch Successful", ours[0]),
            ("EC2 Instance Launch Unsuccessful", ours[1]),
            ("EC2 Instance Launch Unsuccessful", ours[0]),
            ("EC2 Instance Terminate Successful", ours[0]),
        ]

    def test_sample_events_are_awss(self):
        """The samples are the documented ones (envelope, detail keys): a typo would test nothing."""
        for event in [SAMPLE_SPOT_INTERRUPTION_EVENT, SAMPLE_REBALANCE_EVENT, SAMPLE_SCHEDULED_EVENT,
                      *SAMPLE_ASG_EVENTS.values()]:
            assert set(event) == {"version", "id", "detail-type", "source", "account", "time", "region",
                                  "resources", "detail"}
        for detail_type, event in SAMPLE_ASG_EVENTS.items():
            assert event["detail-type"] == detail_type and event["source"] == "aws.autoscaling"
            keys = {"StatusCode", "AutoScalingGroupName", "ActivityId", "Details", "RequestId", "StatusMessage",
                    "EndTime", "EC2InstanceId", "StartTime", "Cause"}
            assert set(event["detail"]) == keys | ({"Description"} if "Successful" in detail_type else set())

    def test_twenty_long_names_fit_one_rule(self):
        names = [f"{'g' * 24}-{i:02d}-spot-abcdefg" for i in range(contract.ASG_NAMES_PER_RULE)]
        assert len(asg_events_pattern_json(names)) <= contract.EVENT_PATTERN_LIMIT
        with pytest.raises(ValueError, match="over EventBridge"):
            asg_events_pattern_json([n * 3 for n in names])


def test_pair_ceiling_caps_the_on_demand_asg_at_the_room_spot_leaves(fleet):
    """node_max 2 (base 1, spot share 1 + headroom 1 = spot max 2, on-demand max 2): the two maxima add
    up to 4, the pair's ceiling is 3. With 2 spot instances running, the reconciler keeps the on-demand
    ASG's MaxSize (and a policy's scale-out) at 1; when spot shrinks, the room comes back."""
    bee = fleet.make_pair("bee", spot=2, spot_max=2, base=1, od_max=2)
    fleet.asg.create_or_update_tags(Tags=_asg_tags(bee.od, {CEILING_TAG: "3", OD_MAX_TAG: "2"}, propagate=False))
    fleet.asg.update_auto_scaling_group(AutoScalingGroupName=bee.od, DesiredCapacity=2)  # the policy's scale-out
    capacity.handler(schedule(), None)
    g = group_of(fleet, bee.od)
    assert (g["DesiredCapacity"], g["MinSize"], g["MaxSize"]) == (1, 1, 1)
    assert len(group_of(fleet, bee.spot)["Instances"]) + g["DesiredCapacity"] <= 3
    fleet.asg.update_auto_scaling_group(AutoScalingGroupName=bee.spot, DesiredCapacity=1)  # spot scales in
    capacity.handler(schedule(), None)
    assert group_of(fleet, bee.od)["MaxSize"] == 2


def test_pair_ceiling_leaves_room_for_the_spot_deficit(fleet):
    """A spot launch that fails leaves no instance: the room it would have used is the fallback's."""
    bee = fleet.make_pair("bee", spot=1, spot_max=2, base=1, od_max=2)
    fleet.asg.create_or_update_tags(Tags=_asg_tags(bee.od, {CEILING_TAG: "3", OD_MAX_TAG: "2"}, propagate=False))
    fail_spot_launches(SimpleNamespace(ec2=fleet.ec2, asg=fleet.asg, spot=bee.spot, spot_lt=bee.lt), 2, have=1)
    capacity.handler(schedule(), None)
    g = group_of(fleet, bee.od)
    assert g["MaxSize"] == 2 and g["DesiredCapacity"] == 2  # one spot instance missing -> one on-demand extra


class TestMalformedEvents:
    """Lambda retries an event whose run raises, then sends it to the dead-letter queue: a malformed event
    must be logged as ignored, with nothing done (no drain, no tag, no capacity change)."""

    def malformed(self, victim: str, spot: str) -> dict[str, object]:
        out: dict[str, object] = {"a list": [warning_for(victim)], "a string": WARNING_TYPE, "null": None,
                                  "a number": 5}

        def mutate(name: str, make, change) -> None:
            event = make()
            change(event)
            out[name] = event

        def warning():
            return warning_for(victim)

        def launch():
            return asg_event("EC2 Instance Launch Successful", spot)

        def failed():
            return asg_event("EC2 Instance Launch Unsuccessful", spot)

        mutate("detail-type a list", warning, lambda e: e.update({"detail-type": [WARNING_TYPE]}))
        mutate("detail-type a number", launch, lambda e: e.update({"detail-type": 7}))
        mutate("warning detail a string", warning, lambda e: e.update(detail=victim))
        mutate("warning detail a list", warning, lambda e: e.update(detail=[e["detail"]]))
        mutate("instance-id missing", warning, lambda e: e["detail"].pop("instance-id"))
        mutate("instance-id a list", warning, lambda e: e["detail"].update({"instance-id": [victim]}))
        mutate("instance-id an object", warning, lambda e: e["detail"].update({"instance-id": {"id": victim}}))
        mutate("instance-id empty", warning, lambda e: e["detail"].update({"instance-id": ""}))
        mutate("instance-id a path", warning, lambda e: e["detail"].update({"instance-id": "../../etc"}))
        mutate("instance-id with a newline", warning, lambda e: e["detail"].update({"instance-id": victim + "\n"}))
        mutate("instance-id too long", warning, lambda e: e["detail"].update({"instance-id": victim * 10}))
        mutate("time an object", warning, lambda e: e.update(time={"at": "now"}))
        mutate("time a number", warning, lambda e: e.update(time=1700000000))
        mutate("time too long for a tag", warning, lambda e: e.update(time=e["time"] * 30))
        mutate("time not a time", warning, lambda e: e.update(time="yesterday"))
        mutate("ASG detail a list", launch, lambda e: e.update(detail=[e["detail"]]))
        mutate("ASG detail a string", failed, lambda e: e.update(detail=spot))
        mutate("ASG name missing", launch, lambda e: e["detail"].pop("AutoScalingGroupName"))
        mutate("ASG name a number", launch, lambda e: e["detail"].update(AutoScalingGroupName=12))
        mutate("ASG name a list", failed, lambda e: e["detail"].update(AutoScalingGroupName=[spot]))
        mutate("ASG name empty", failed, lambda e: e["detail"].update(AutoScalingGroupName=""))
        mutate("ASG name too long", launch, lambda e: e["detail"].update(AutoScalingGroupName="a" * 256))
        mutate("ASG name a control character", launch,
               lambda e: e["detail"].update(AutoScalingGroupName=spot + "\x1b[2J"))
        mutate("schedule detail a list", schedule, lambda e: e.update(detail=[]))
        mutate("schedule source a list", schedule, lambda e: e.update(source=["aws.events"]))
        return out

    def test_every_malformed_event_is_ignored_and_nothing_is_done(self, fleet, capsys):
        victim = instances(fleet, fleet.spot)[0]
        events = self.malformed(victim, fleet.spot)
        assert len(events) == 29
        for name, event in events.items():
            d = decision(capacity.handler(event, None))
            assert d["action"] == "ignored" and d["reason"].startswith("malformed event: "), (name, d)
        assert [line["action"] for line in lines(capsys)] == ["ignored"] * len(events)
        assert od_state(fleet) == (1, 1)
        assert victim in registered(fleet)
        assert not fleet.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [victim]},
                                                    {"Name": "key", "Values": [WARNED_TAG]}])["Tags"]

    def test_the_instance_is_tagged_before_it_is_drained(self, fleet, monkeypatch):
        """Tagging fails (a retry will come): the instance must still be serving, not drained and uncounted."""
        real = capacity._client

        def client(service):
            c = real(service)
            if service == "ec2":
                def refuse(**kwargs):
                    raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "no"}}, "CreateTags")
                c.create_tags = refuse
            return c
        monkeypatch.setattr(capacity, "_client", client)
        victim = instances(fleet, fleet.spot)[0]
        with pytest.raises(ClientError):
            capacity.handler(warning_for(victim), None)
        assert victim in registered(fleet), "not drained before it was tagged"
        monkeypatch.setattr(capacity, "_client", real)
        assert decision(capacity.handler(warning_for(victim), None))["action"] == "raised"  # Lambda's retry
        assert victim not in registered(fleet)


WARNING_TYPE = SAMPLE_SPOT_INTERRUPTION_EVENT["detail-type"]


@pytest.fixture
def launching(monkeypatch):
    """Instance ids that Auto Scaling still reports as Pending:Wait (their launching hook holds them).
    moto has no lifecycle hook in effect (every instance is InService at once: the first test below
    shows it), so this rewrites only that field of moto's real DescribeAutoScalingGroups answer."""
    ids: set[str] = set()
    real = capacity._client

    def pending(parsed, **_):
        for g in parsed.get("AutoScalingGroups", []):
            for i in g.get("Instances", []):
                if i["InstanceId"] in ids:
                    i["LifecycleState"] = "Pending:Wait"

    def client(service):
        c = real(service)
        if service == "autoscaling":
            c.meta.events.register("after-call.auto-scaling.DescribeAutoScalingGroups", pending)
        return c
    monkeypatch.setattr(capacity, "_client", client)
    return ids


class TestLaunchSequence:
    """A spot instance still launching is arriving, not missing, until launch + timeout has passed."""

    GRACE = 300  # the spot ASG's health check grace period = the group's autoscale.timeout

    @pytest.fixture(autouse=True)
    def _grace(self, fleet):
        fleet.asg.update_auto_scaling_group(AutoScalingGroupName=fleet.spot, HealthCheckGracePeriod=self.GRACE)

    def test_moto_puts_launching_instances_in_service_at_once(self, fleet):
        fleet.asg.put_lifecycle_hook(AutoScalingGroupName=fleet.spot, LifecycleHookName="fleet-launch",
                                     LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING", HeartbeatTimeout=390)
        fleet.asg.update_auto_scaling_group(AutoScalingGroupName=fleet.spot, DesiredCapacity=3)
        assert {i["LifecycleState"] for i in group_of(fleet, fleet.spot)["Instances"]} == {"InService"}

    def test_first_launch_does_not_launch_on_demand_too(self, fleet, launching):
        new = fleet.make_pair("new", spot=2)
        fleet.asg.update_auto_scaling_group(AutoScalingGroupName=new.spot, HealthCheckGracePeriod=self.GRACE)
        launching.update(instances(fleet, new.spot))
        decisions = {d["group"]: d for d in capacity.handler(schedule(), None)["decisions"]}
        d = decisions["new"]
        assert (d["action"], d["deficit"], d["arriving"]) == ("unchanged", 0, instances(fleet, new.spot))
        assert d["launch_bound"] == capacity.LAUNCH_SECONDS + self.GRACE
        assert od_state(fleet, new.od) == (1, 1)

    def test_scale_out_does_not_launch_on_demand_too(self, fleet, launching):
        before = instances(fleet, fleet.spot)
        fleet.asg.update_auto_scaling_group(AutoScalingGroupName=fleet.spot, DesiredCapacity=4)
        launching.update(set(instances(fleet, fleet.spot)) - set(before))
        assert len(launching) == 2
        d = decision(capacity.handler(asg_event("EC2 Instance Launch Successful", fleet.spot), None))
        assert (d["action"], d["deficit"], len(d["arriving"])) == ("unchanged", 0, 2)
        launching.clear()  # they converged and went InService
        d = decision(capacity.handler(asg_event("EC2 Instance Launch Successful", fleet.spot), None))
        assert (d["action"], d["deficit"], d["arriving"]) == ("unchanged", 0, [])
        assert od_state(fleet) == (1, 1)

    def test_a_launch_that_never_gets_healthy_is_missing_past_its_bound(self, fleet, launching, monkeypatch):
        before = instances(fleet, fleet.spot)
        fleet.asg.update_auto_scaling_group(AutoScalingGroupName=fleet.spot, DesiredCapacity=3)
        (stuck,) = set(instances(fleet, fleet.spot)) - set(before)
        launching.add(stuck)
        bound = capacity.LAUNCH_SECONDS + self.GRACE
        assert capacity.handler(schedule(), None)["decisions"][0]["action"] == "unchanged"
        monkeypatch.setattr(capacity, "_now", lambda: time.time() + bound - 5)
        assert capacity.handler(schedule(), None)["decisions"][0]["action"] == "unchanged"
        monkeypatch.setattr(capacity, "_now", lambda: time.time() + bound + 5)
        d = capacity.handler(schedule(), None)["decisions"][0]
        assert (d["action"], d["deficit"], d["arriving"]) == ("raised", 1, [])
        assert od_state(fleet) == (2, 2)

    def test_a_replacement_on_its_way_keeps_the_extra_until_it_serves(self, fleet, launching):
        victim = instances(fleet, fleet.spot)[0]
        capacity.handler(warning_for(victim), None)
        assert od_state(fleet) == (2, 2)
        before = set(instances(fleet, fleet.spot))
        reclaim(fleet, victim)
        (replacement,) = set(instances(fleet, fleet.spot)) - before
        launching.add(replacement)
        d = decision(capacity.handler(asg_event("EC2 Instance Launch Successful", fleet.spot), None))
        assert (d["action"], d["arriving"], d["extra"]) == ("unchanged", [replacement], 1)
        assert od_state(fleet) == (2, 2), "not short while the replacement boots"
        launching.clear()
        assert decision(capacity.handler(schedule(), None))["action"] == "lowered"
        assert od_state(fleet) == (1, 1)

    def test_the_launch_seconds_agree_with_the_hook_heartbeat_model(self):
        from fleet.spec.readiness import LAUNCH_SECONDS

        assert capacity.LAUNCH_SECONDS == LAUNCH_SECONDS


class _Context:
    """What the handler uses of Lambda's context object: the time left."""

    def __init__(self, seconds: float):
        self.until = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self.until - time.monotonic()) * 1000)


class TestBoundedRuns:
    def test_100_groups_with_busy_leases_finish_within_the_function_timeout(self, fleet):
        """Every lease held (by runs for those groups): the scheduled run tries each once, it does not wait
        WAIT_SECONDS per group (100 x 40 s against a 60 s timeout)."""
        from components.spot_capacity import TIMEOUT

        assert capacity.FUNCTION_TIMEOUT == TIMEOUT
        lt = fleet.ec2.create_launch_template(LaunchTemplateName="many", LaunchTemplateData={
            "ImageId": "ami-12c6146b", "InstanceType": "t3.micro"})["LaunchTemplate"]["LaunchTemplateId"]
        groups = ["web"] + [f"g{i:03d}" for i in range(99)]
        for g in groups[1:]:
            name = f"staging-{g}-spot"
            fleet.asg.create_auto_scaling_group(
                AutoScalingGroupName=name, MinSize=0, MaxSize=2, DesiredCapacity=0, VPCZoneIdentifier=fleet.subnet,
                LaunchTemplate={"LaunchTemplateId": lt, "Version": "1"},
                Tags=_asg_tags(name, {"fleet:stack": "staging", "fleet:group": g, "fleet:capacity": "spot"}))
        for g in groups:
            capacity.Lease("fleet-staging-capacity", f"staging/{g}").acquire()
        result, started = {}, time.monotonic()
        run = threading.Thread(target=lambda: result.update(capacity.handler(schedule(), _Context(TIMEOUT))),
                               daemon=True)
        run.start()
        run.join(TIMEOUT)
        took = time.monotonic() - started
        assert not run.is_alive(), f"still running after the function's {TIMEOUT} s timeout"
        assert sorted(d["group"] for d in result["decisions"]) == sorted(groups)
        assert {d["action"] for d in result["decisions"]} == {"busy"}
        assert took < TIMEOUT - capacity.MARGIN, took

    def test_no_group_starts_without_its_margin(self, fleet):
        fail_spot_launches(fleet, desired=4)  # a deficit it would act on
        (d,) = capacity.handler(schedule(), _Context(capacity.MARGIN))["decisions"]
        assert d["action"] == "deferred" and od_state(fleet) == (1, 1)
        (d,) = capacity.handler(schedule(), _Context(capacity.MARGIN + 30))["decisions"]
        assert d["action"] == "raised" and od_state(fleet) == (3, 3)

    def test_an_event_waits_for_a_lease_only_while_the_invocation_has_time(self, fleet):
        capacity.Lease("fleet-staging-capacity", "staging/web").acquire()
        started = time.monotonic()
        with pytest.raises(capacity.LeaseBusy):
            capacity.handler(warning_for(instances(fleet, fleet.spot)[0]), _Context(capacity.MARGIN + 1))
        assert time.monotonic() - started < 5, "not WAIT_SECONDS: the invocation would time out first"
