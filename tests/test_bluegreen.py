"""Blue/green rollout and rollback (fleet/ops/bluegreen.py, lambdas/bluegreen) against the moto server:
moto keeps weighted forward actions (ModifyRule / DescribeRules round-trip the weights), registers ASG
instances in their target groups and runs conditional DynamoDB writes; the lock race uses botocore's
Stubber, since moto's server does not apply conditional writes atomically across concurrent requests."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from fleet.ops import bluegreen as bg
from lambdas.bluegreen import handler as fn
from lambdas.bluegreen import slots as sl
from tests.bluegreen_world import GROUP, STACK, FakeClock, build


@pytest.fixture
def world(aws):
    return build()


def _count(client, operation: str) -> list:
    calls: list = []
    client.meta.events.register(f"provide-client-params.*.{operation}", lambda params, **kw: calls.append(params))
    return calls


def test_whole_deploy_canary_then_all_to_the_new_slot(world):
    k, seen = FakeClock(), []
    k.at(30, lambda: seen.append(world.weights()))  # in the middle of the 60 s soak
    result = bg.deploy(world.settings(), world.clients, k)
    assert (result.result, result.live, result.weights) == ("deployed", "b", {"a": 0, "b": 100})
    assert seen == [{"a": 95, "b": 5}]
    assert world.weights() == {"a": 0, "b": 100}
    for cap in sl.CAPACITIES:
        new, old = world.asg("b", cap), world.asg("a", cap)
        assert new["LaunchTemplate"]["Version"] == "2" and new["DesiredCapacity"] == old["DesiredCapacity"] == 1
        assert all(i["LaunchTemplate"]["Version"] == "2" for i in new["Instances"])
        assert old["LaunchTemplate"]["Version"] == "1" and old["MinSize"] == old["DesiredCapacity"]  # standby pinned
    record = sl.Lock(world.clients.dynamodb, sl.table_name(STACK), STACK, GROUP).record()
    assert record["standby_slot"] == "a" and record["standby_until"] == int(k.t) + 3600
    assert record["rule_arn"] == world.rule_arn
    # the same version again: nothing moves
    assert bg.deploy(world.settings(), world.clients, FakeClock()).result == "no-op"
    assert world.weights() == {"a": 0, "b": 100}


def test_failed_health_wait_leaves_the_live_slot_untouched(world):
    k = FakeClock()
    tg_b = world.target_groups["b"]

    def never_healthy(**kw):  # slot b's new instances never pass the health check
        found = world.clients.elbv2.describe_target_health(TargetGroupArn=tg_b)["TargetHealthDescriptions"]
        if found:
            world.clients.elbv2.deregister_targets(TargetGroupArn=tg_b, Targets=[t["Target"] for t in found])
    world.clients.autoscaling.meta.events.register("after-call.auto-scaling.UpdateAutoScalingGroup", never_healthy)
    with pytest.raises(bg.BlueGreenError, match=r"step health: slot b not healthy.*live slot a untouched"):
        bg.deploy(world.settings(health_timeout=60), world.clients, k)
    assert world.weights() == {"a": 100, "b": 0}
    for cap in sl.CAPACITIES:
        assert world.asg("a", cap)["LaunchTemplate"]["Version"] == "1"
        assert world.asg("a", cap)["DesiredCapacity"] == 1
    assert world.asg("b", "spot")["DesiredCapacity"] == 0 and world.asg("b", "on-demand")["DesiredCapacity"] == 1


def test_alarm_in_the_soak_goes_back_in_one_write(world):
    k = FakeClock()
    writes = _count(world.clients.elbv2, "ModifyRule")
    k.at(20, lambda: world.alarm("b"))
    with pytest.raises(bg.BlueGreenError, match=r"step soak: .*health-b-5xx in ALARM; traffic back on slot a"):
        bg.deploy(world.settings(), world.clients, k)
    assert world.weights() == {"a": 100, "b": 0}
    # the plain forward rewritten to both slots, the canary, and the one write back
    assert [{t["TargetGroupArn"][-16:]: t["Weight"] for t in w["Actions"][0]["ForwardConfig"]["TargetGroups"]}
            for w in writes][-1] == {world.target_groups["a"][-16:]: 100, world.target_groups["b"][-16:]: 0}
    assert len(writes) == 2  # canary, then back (the rule already had slot a at 100 as a plain forward)


def test_manual_rollback_is_one_rule_write(world):
    bg.deploy(world.settings(), world.clients, FakeClock())
    writes = _count(world.clients.elbv2, "ModifyRule")
    scaling = _count(world.clients.autoscaling, "UpdateAutoScalingGroup")
    result = bg.rollback(GROUP, STACK, world.clients, FakeClock())
    assert (result.result, result.live) == ("rolled-back", "a")
    assert world.weights() == {"a": 100, "b": 0}
    assert len(writes) == 1 and scaling == []


def _alarm_event(world, slot: str) -> dict:
    alarm = world.clients.cloudwatch.describe_alarms(AlarmNames=[world.alarms[slot][0]])["MetricAlarms"][0]
    return {"detail-type": fn.ALARM_EVENT, "source": "aws.cloudwatch", "resources": [alarm["AlarmArn"]],
            "detail": {"alarmName": alarm["AlarmName"], "state": {"value": "ALARM"}}}


def test_alarm_during_standby_flips_back_with_no_one_watching(world, monkeypatch):
    k = FakeClock()
    bg.deploy(world.settings(), world.clients, k)
    monkeypatch.setenv("FLEET_STACK", STACK)
    monkeypatch.setenv("FLEET_ROLLOUT_TABLE", sl.table_name(STACK))
    # the standby's own alarm (no traffic) does nothing
    assert fn.handler(_alarm_event(world, "a"), None, now=lambda: k.t + 60)["action"] == "ignored"
    out = fn.handler(_alarm_event(world, "b"), None, now=lambda: k.t + 60)
    assert out["action"] == "rolled-back" and world.weights() == {"a": 100, "b": 0}
    # after the window nothing flips: deploy again, alarm after the standby ended
    bg.deploy(world.settings(), world.clients, k)
    assert world.weights() == {"a": 0, "b": 100}
    late = fn.handler(_alarm_event(world, "b"), None, now=lambda: k.t + 3601)
    assert late["action"] == "ignored" and world.weights() == {"a": 0, "b": 100}


def test_standby_scaled_down_after_the_window_then_rollback_scales_it_up(world, monkeypatch):
    k = FakeClock()
    bg.deploy(world.settings(), world.clients, k)
    monkeypatch.setenv("FLEET_STACK", STACK)
    monkeypatch.setenv("FLEET_ROLLOUT_TABLE", sl.table_name(STACK))
    assert fn.handler({"detail-type": fn.SCHEDULED}, None, now=lambda: k.t + 60)["decisions"] == []
    # live slot b grows meanwhile (scaling policies)
    world.clients.autoscaling.set_desired_capacity(AutoScalingGroupName=world.asgs["b"]["spot"], DesiredCapacity=3)
    done = fn.handler({"detail-type": fn.SCHEDULED}, None, now=lambda: k.t + 3601)["decisions"]
    assert [d["action"] for d in done] == ["scaled-down"]
    assert world.asg("a", "spot")["DesiredCapacity"] == 0 and world.asg("a", "on-demand")["DesiredCapacity"] == 1
    result = bg.rollback(GROUP, STACK, world.clients, FakeClock())
    assert result.live == "a" and world.weights() == {"a": 100, "b": 0}
    spot = world.asg("a", "spot")
    assert spot["DesiredCapacity"] == 3 and spot["MinSize"] == 3  # sized like the bad slot, min pinned


def test_two_rollouts_race_one_waits():
    """Stubber: the second rollout's conditional write fails while the first holds the lock; it polls
    and takes the lock once the first released it."""
    dynamodb = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(dynamodb)
    want = {"TableName": "fleet-staging-rollouts", "Key": {"group": {"S": "staging/www"}},
            "UpdateExpression": "SET lock_owner = :me, lock_expires = :exp",
            "ConditionExpression": "attribute_not_exists(lock_owner) OR lock_expires < :now OR lock_owner = :me",
            "ExpressionAttributeValues": {":me": {"S": "second"}, ":exp": {"N": "1003600"},
                                          ":now": {"N": "1000000"}}}
    stub.add_client_error("update_item", "ConditionalCheckFailedException", expected_params=want)
    want2 = {**want, "ExpressionAttributeValues": {":me": {"S": "second"}, ":exp": {"N": "1003605"},
                                                   ":now": {"N": "1000005"}}}
    stub.add_response("update_item", {}, expected_params=want2)
    k = FakeClock()
    clients = bg.Clients(None, None, None, dynamodb)
    s = bg.Settings(GROUP, STACK, "rule", "fleet-staging-rollouts", "lt", 2)
    with stub:
        lock = sl.Lock(dynamodb, s.table, STACK, GROUP, ttl=3600, owner="second", clock=k.now)
        original = sl.Lock
        try:
            sl.Lock = lambda *a, **kw: lock  # the lock `locked` makes is this one
            got = bg.locked(s, clients, k)
        finally:
            sl.Lock = original
    stub.assert_no_pending_responses()
    assert got is lock and k.t == 1_000_005
    assert any("holds the lock; waiting" in line for line in k.lines)


def test_crash_mid_canary_then_a_new_rollout_converges(world, monkeypatch):
    k = FakeClock()

    def crash():
        raise SystemExit("killed")
    k.at(10, crash)
    monkeypatch.setattr(sl.Lock, "release", lambda self: None)  # the process died: nothing released
    with pytest.raises(SystemExit):
        bg.deploy(world.settings(lock_timeout=300), world.clients, k)
    monkeypatch.undo()
    assert world.weights() == {"a": 95, "b": 5}
    k2 = FakeClock()
    k2.t = k.t
    # the dead run's lock lasts as long as its whole deploy could (health 120 s + soak 60 s + 600 s)
    result = bg.deploy(world.settings(lock_timeout=900), world.clients, k2)
    assert k2.t >= 1_000_000 + 780  # the dead lock was taken at the first run's start
    # it waited for the dead holder's lock to expire, put 100/0 back on a, and deployed again
    assert any("waiting" in line for line in k2.lines)
    assert any("writing 100/0 on live slot a first" in line for line in k2.lines)
    assert result.result == "deployed" and world.weights() == {"a": 0, "b": 100}


def test_weight_that_landed_wrong_is_put_right(world):
    """A weight of 0 that landed as 1 (a known provider issue) is written back to 0 by the next run."""
    slots = sl.find_slots(world.clients.autoscaling, GROUP, STACK)
    sl.write_weights(world.clients.elbv2, world.rule_arn, slots, {"a": 100, "b": 1})
    world.ec2.modify_launch_template(LaunchTemplateId=world.template_id, DefaultVersion="1")  # moto: see the world
    s = world.settings(version=1)
    assert bg.deploy(s, world.clients, FakeClock()).result == "no-op"
    assert world.weights() == {"a": 100, "b": 0}


def test_spot_reconciler_takes_each_slot_on_its_own_and_leaves_a_parked_one(world, monkeypatch):
    from lambdas.spot_capacity import handler as capacity

    world.clients.dynamodb.create_table(TableName="capacity", BillingMode="PAY_PER_REQUEST",
                                        AttributeDefinitions=[{"AttributeName": "group", "AttributeType": "S"}],
                                        KeySchema=[{"AttributeName": "group", "KeyType": "HASH"}])
    monkeypatch.setenv("FLEET_STACK", STACK)
    monkeypatch.setenv("FLEET_CAPACITY_TABLE", "capacity")
    out = capacity.handler({"detail-type": capacity.SCHEDULED, "source": "aws.events", "id": "1"}, None)
    actions = {(d["group"], d.get("slot")): d["action"] for d in out["decisions"]}
    # without the slot filter both slots' ASGs would make "no-pair" (two spot ASGs for one group)
    assert actions[(GROUP, "b")] == "parked" and actions[(GROUP, "a")] == "unchanged"
    assert world.asg("b", "on-demand")["DesiredCapacity"] == 0  # the base did not launch into the parked slot
    bg.deploy(world.settings(), world.clients, FakeClock())  # slot b live, slot a on standby at full size
    out = capacity.handler({"detail-type": capacity.SCHEDULED, "source": "aws.events", "id": "2"}, None)
    assert {(d["group"], d.get("slot")): d["action"] for d in out["decisions"]} == {
        (GROUP, "a"): "unchanged", (GROUP, "b"): "unchanged"}


def test_the_plans_rollback_model_counts_the_calls_the_code_makes(world, monkeypatch):
    """fleet/ops/timing.py's CALLS_TO_FLIP (what the plan's rollback seconds are made of) is what a manual
    rollback and the standby function really call before and including the write."""
    from fleet.ops import timing

    k = FakeClock()
    bg.deploy(world.settings(), world.clients, k)
    ops: list[str] = []
    for client in vars(world.clients).values():
        client.meta.events.register("before-call", lambda model, **kw: ops.append(model.name))
    bg.rollback(GROUP, STACK, world.clients, FakeClock())
    assert ops.index("ModifyRule") + 1 == timing.CALLS_TO_FLIP
    bg.deploy(world.settings(), world.clients, k)  # b live again, a on standby
    event = _alarm_event(world, "b")
    ops.clear()
    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register("before-call", lambda model, **kw: ops.append(model.name))
    monkeypatch.setenv("FLEET_STACK", STACK)
    monkeypatch.setenv("FLEET_ROLLOUT_TABLE", sl.table_name(STACK))
    assert fn.handler(event, None, now=lambda: k.t + 60)["action"] == "rolled-back"
    assert ops.index("ModifyRule") + 1 == timing.CALLS_TO_FLIP


CLI_NODES = """\
__base__: {instance_type: m5.large, source_ami: ami-12345678}
www:
  autoscale: {node_min: 2, node_max: 6}
  http: {port: 8080, hosts: [www.example.com]}
jobs: {autoscale: {node_min: 1, node_max: 2}}
"""


def test_fleet_rollback_and_deploy_through_the_cli(world, tmp_path, capsys):
    import json

    from fleet.cli import main

    (tmp_path / "nodes.yaml").write_text(CLI_NODES)
    (tmp_path / "Pulumi.staging.yaml").write_text("config: {}\n")
    endpoint = world.clients.elbv2.meta.endpoint_url
    # no rollout recorded yet: `pulumi up` first, one line
    assert main(["--project", str(tmp_path), "rollback", "www", "--stack", STACK, "--endpoint-url", endpoint]) == 1
    assert "no rollout recorded" in capsys.readouterr().err
    bg.deploy(world.settings(), world.clients, FakeClock())  # slot b live on version 2 (the latest)
    argv = ["--project", str(tmp_path), "deploy", "www", "--stack", STACK, "--endpoint-url", endpoint]
    assert main(argv) == 0 and json.loads(capsys.readouterr().out)["result"] == "no-op"
    assert main(["--project", str(tmp_path), "rollback", "www", "--stack", STACK, "--endpoint-url", endpoint]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["result"], out["live"], out["weights"]) == ("rolled-back", "a", {"a": 100, "b": 0})
    assert world.weights() == {"a": 100, "b": 0}
    # a refresh group has no slots to go back to: bad input, one line, exit 2
    assert main(["--project", str(tmp_path), "rollback", "jobs", "--stack", STACK]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and "jobs" in err[-1] and "rollout.strategy" in err[-1]


def test_rollback_to_a_shrunk_standby_moves_weight_with_its_healthy_targets(world, monkeypatch):
    k = FakeClock()
    bg.deploy(world.settings(), world.clients, k)
    world.clients.autoscaling.set_desired_capacity(AutoScalingGroupName=world.asgs["b"]["spot"], DesiredCapacity=3)
    monkeypatch.setenv("FLEET_STACK", STACK)
    monkeypatch.setenv("FLEET_ROLLOUT_TABLE", sl.table_name(STACK))
    fn.handler({"detail-type": fn.SCHEDULED}, None, now=lambda: k.t + 3601)  # standby a shrinks to 1
    elbv2, tg_a = world.clients.elbv2, world.target_groups["a"]
    held: list = []

    def running(targets: list) -> list:
        ids = [t["Id"] for t in targets]
        found = world.ec2.describe_instances(InstanceIds=ids)["Reservations"] if ids else []
        up = {i["InstanceId"] for r in found for i in r["Instances"] if i["State"]["Name"] == "running"}
        return [t for t in targets if t["Id"] in up]

    def booting(**kw):  # after slot a is scaled up, its new instances get healthy one every 20 s
        every = [t["Target"] for t in elbv2.describe_target_health(TargetGroupArn=tg_a)["TargetHealthDescriptions"]]
        targets = running(every)
        gone = [t for t in every if t not in targets]  # moto keeps terminated instances registered; AWS does not
        drop = gone + [t for t in targets[1:] if t not in held]
        if drop:
            elbv2.deregister_targets(TargetGroupArn=tg_a, Targets=drop)
        held.extend(t for t in targets[1:] if t not in held)
    world.clients.autoscaling.meta.events.register("after-call.auto-scaling.UpdateAutoScalingGroup", booting)
    k2 = FakeClock()
    for i in range(1, 4):
        k2.at(20 * i, lambda: elbv2.register_targets(TargetGroupArn=tg_a, Targets=[held.pop(0)]))
    writes = _count(world.clients.elbv2, "ModifyRule")
    result = bg.rollback(GROUP, STACK, world.clients, k2)
    shares = [{t["TargetGroupArn"]: t["Weight"] for t in w["Actions"][0]["ForwardConfig"]["TargetGroups"]}[tg_a]
              for w in writes]
    assert shares == [25, 50, 75, 100] and result.live == "a"  # 4 wanted: 1 healthy at once, then one by one
    assert world.weights() == {"a": 100, "b": 0} and k2.t >= 1_000_060  # after the third boot


def test_the_idle_spot_asg_keeps_its_mixed_instances_policy():
    """Stubber (moto's UpdateAutoScalingGroup drops a mixed instances policy it is not sent): the idle spot
    ASG gets the version inside its whole policy, instance types and allocation strategy kept."""
    autoscaling = boto3.client("autoscaling", region_name="us-east-1", aws_access_key_id="x",
                               aws_secret_access_key="x")
    overrides = [{"InstanceType": t} for t in ("m5.large", "m5a.large", "m6i.large")]
    asg = {"AutoScalingGroupName": "www-b-spot", "MaxSize": 0, "MixedInstancesPolicy": {
        "LaunchTemplate": {"LaunchTemplateSpecification": {"LaunchTemplateId": "lt-1", "Version": "1"},
                           "Overrides": overrides},
        "InstancesDistribution": {"OnDemandPercentageAboveBaseCapacity": 0, "SpotInstancePools": 2,
                                  "SpotAllocationStrategy": "price-capacity-optimized"}}}
    stub = Stubber(autoscaling)
    stub.add_response("update_auto_scaling_group", {}, expected_params={
        "AutoScalingGroupName": "www-b-spot", "MinSize": 3, "DesiredCapacity": 3, "MaxSize": 7,
        "MixedInstancesPolicy": {
            "LaunchTemplate": {"LaunchTemplateSpecification": {"LaunchTemplateId": "lt-1", "Version": "2"},
                               "Overrides": overrides},
            "InstancesDistribution": {"OnDemandPercentageAboveBaseCapacity": 0,
                                      "SpotAllocationStrategy": "price-capacity-optimized"}}})
    with stub:
        bg._configure(bg.Clients(autoscaling, None, None, None), asg, "lt-1", 2, 3, 7)
    stub.assert_no_pending_responses()
