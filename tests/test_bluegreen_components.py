"""Blue/green under Pulumi mocks: two slots per http group with today's names kept for slot a, the
weighted listener rule Pulumi never writes again, slot ASGs that leave version and sizes to the
rollout, the rollout Command after the slots, the stack's standby machinery, and the plan lines."""

from __future__ import annotations

import json
import shlex
from collections import Counter
from pathlib import Path

import pytest

from components.asg_pair import on_demand_capacity, spot_capacity
from components.bluegreen import alarm_pattern, standby_policy
from components.node_group import NodeGroup, NodeGroupArgs
from fleet.ops import bluegreen as bg
from fleet.ops import timing
from fleet.plan.cli import _slots
from fleet.spec.slots import slot_sizes
from fleet.spec.stack import StackConfig
from tests.pulumi_mocks import http_group, run

PROJECT = Path(__file__).resolve().parent.parent
STACK = StackConfig(name="prod", region="us-east-1", environment="production")
ASG = "aws:autoscaling/group:Group"


def _node(g):
    holder = {}

    def program():
        node = holder["node"] = NodeGroup(g.name, NodeGroupArgs(
            group=g, stack=STACK, image_hash="ab" * 32, project_dir=PROJECT, vpc_id="vpc-0a1b2c3d",
            private_subnet_ids=["subnet-1", "subnet-2"], security_group_ids=["sg-1"],
            listener_arn="arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/x/1/2",
            load_balancer_arn_suffix="app/x/1", rule_priority=1000))
        return node.outputs
    r = run(program, stack=STACK.name)
    return r, holder["node"]


@pytest.fixture(scope="module")
def www():
    return _node(http_group("www"))


def _tags(asg) -> dict:
    return {t["key"]: t["value"] for t in asg.inputs["tags"]}


def test_http_groups_are_blue_green_by_default_and_refresh_on_request():
    assert http_group("www").blue_green and not http_group("www", rollout={"strategy": "refresh"}).blue_green


def test_two_slots_slot_a_keeps_todays_names(www):
    r, node = www
    n = Counter(x.type for x in r.resources)
    assert n[ASG] == 4 and n["aws:lb/targetGroup:TargetGroup"] == 2 and n["aws:lb/listenerRule:ListenerRule"] == 1
    assert n["fleet:rollout:Rollout"] == 0 and n["fleet:bluegreen:BlueGreenRollout"] == 1
    names = {x.name: _tags(x)["fleet:slot"] for x in r.of_type(ASG)}
    # slot a: the names a pair had before slots (no replacement for existing stacks); slot b: new names
    assert names == {"www-spot": "a", "www-on-demand": "a", "www-b-spot": "b", "www-b-on-demand": "b"}
    assert sorted(x.name for x in r.of_type("aws:lb/targetGroup:TargetGroup")) == ["www", "www-b"]
    # slot b starts parked; slot a at its node_min share
    sizes = {x.name: (x.inputs["minSize"], x.inputs["desiredCapacity"], x.inputs["maxSize"]) for x in r.of_type(ASG)}
    assert sizes["www-b-spot"] == sizes["www-b-on-demand"] == (0, 0, 0)
    assert sizes["www-spot"] == spot_capacity(http_group("www"))
    # scaling policies on both slots, each slot ASG in its own target group
    assert len(r.of_type("aws:autoscaling/policy:Policy")) == 12
    tg = {x.name: x.outputs["arn"] for x in r.of_type("aws:lb/targetGroup:TargetGroup")}
    assert {x.name: x.inputs["targetGroupArns"] for x in r.of_type(ASG)}["www-b-spot"] == [tg["www-b"]]


def test_slot_asgs_leave_version_and_sizes_to_the_rollout(www):
    r, _ = www
    for asg in r.of_type(ASG):
        ignored = set(asg.options["ignoreChanges"])
        assert {"desiredCapacity", "minSize", "maxSize", "launchTemplate.version",
                "mixedInstancesPolicy.launchTemplate.launchTemplateSpecification.version"} <= ignored, asg.name
        assert asg.options["dependsOn"] == []  # no refresh Command before them


def test_rule_forwards_to_both_slots_and_pulumi_never_writes_its_action_again(www):
    r, _ = www
    (rule,) = r.of_type("aws:lb/listenerRule:ListenerRule")
    assert rule.options["ignoreChanges"] == ["actions"]
    (action,) = rule.inputs["actions"]
    tg = {x.name: x.outputs["arn"] for x in r.of_type("aws:lb/targetGroup:TargetGroup")}
    assert [(t["arn"], t["weight"]) for t in action["forward"]["targetGroups"]] == [(tg["www"], 100), (tg["www-b"], 0)]
    assert action["forward"]["stickiness"]["enabled"] is False


def test_slot_alarms_carry_their_slot(www):
    r, node = www
    by_slot = {s: [a for a in r.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
                   if a.inputs.get("tags", {}).get("fleet:slot") == s] for s in "ab"}
    assert [len(v) for v in by_slot.values()] == [2, 2]
    assert sorted(a.name for a in by_slot["b"]) == ["fleet-prod-www-health-b-5xx",
                                                    "fleet-prod-www-health-b-unhealthy-hosts"]


def test_rollout_command_runs_after_the_slots_and_parses(www, monkeypatch):
    r, _ = www
    (cmd,) = [c for c in r.of_type("command:local:Command") if c.name == "www-bluegreen-deploy"]
    assert len(cmd.options["dependsOn"]) >= 3  # both slots and the target group component
    assert cmd.inputs["triggers"][0] == 1  # the launch template version
    argv = shlex.split(cmd.inputs["create"])
    assert argv[:3] == [".venv/bin/python", "-m", "fleet.ops.bluegreen"]
    seen = {}
    monkeypatch.setattr(bg, "deploy", lambda s, c, k: seen.setdefault("s", s) and bg.Result("www", "no-op", "a", {}))
    monkeypatch.setattr(bg.Clients, "make", classmethod(lambda cls, *a: None))
    assert bg.main(argv[3:]) == 0
    s = seen["s"]
    assert (s.group, s.stack, s.version, s.canary_weight, s.standby) == ("www", "prod", 1, 5, 3600)
    assert sorted(s.alarms) == ["a", "b"] and all(len(v) == 2 for v in s.alarms.values())
    assert s.standby_sizes == slot_sizes(http_group("www"))["standby"] == {"on-demand": 1, "spot": 1}


def test_slot_sizes_match_the_pairs_shares():
    for g in (http_group("www"), http_group("w", autoscale={"node_min": 5, "node_max": 30, "on_demand": {"base": 2}})):
        sizes = slot_sizes(g)
        lo, _, hi = spot_capacity(g)
        od_lo, _, od_hi = on_demand_capacity(g)
        assert (sizes["min"]["spot"], sizes["max"]["spot"], sizes["min"]["on-demand"], sizes["max"]["on-demand"]) \
            == (lo, hi, od_lo, od_hi)
    assert slot_sizes(http_group("www", rollout={"standby_min": 0}))["standby"] == {"on-demand": 0, "spot": 0}


def test_plan_shows_both_slots_rollback_in_seconds_and_the_standby_cost(www):
    r, _ = www
    out = r.value["slots"]
    assert sorted(out["slots"]) == ["a", "b"]
    assert out["rollback_seconds"] <= 10 < out["refresh_rollback_seconds"]
    text = "\n".join(_slots(out))
    assert "slot a: ASGs www-on-demand-" in text and "slot b: ASGs www-b-on-demand-" in text
    assert f"rollback: {out['rollback_seconds']} s to 0 % on the bad slot" in text
    hours = timing.standby_instance_hours(http_group("www"))
    assert f"standby cost: {hours['at_node_min']}-{hours['at_node_max']} instance-hours" in text


def test_standby_function_is_wired_to_the_alarm_prefixes_and_scoped_to_the_stack():
    pattern = alarm_pattern("prod", ["www"])
    assert pattern["detail"]["alarmName"] == [{"prefix": "fleet-prod-www-health-"}]
    assert pattern["detail"]["state"] == {"value": ["ALARM"]}
    policy = standby_policy("prod", "us-east-1", "aws", "123456789012", "arn:table", "arn:logs")
    flip = next(s for s in policy["Statement"] if s["Sid"] == "Flip")
    assert flip["Action"] == ["elasticloadbalancing:ModifyRule"]
    assert flip["Condition"] == {"StringEquals": {"aws:ResourceTag/fleet:stack": "prod"}}


def test_a_blue_green_group_without_http_is_refused():
    from fleet.spec.rules import check_merged
    found = dict(check_merged({"instance_type": "m5.large", "source_ami": "ami-1",
                               "autoscale": {"node_min": 1, "node_max": 2}, "rollout": {"strategy": "blue_green"}}))
    assert "blue_green needs http" in found["rollout.strategy"]


def test_the_function_ships_exactly_its_two_files_and_runs_flat(tmp_path, monkeypatch):
    """Lambda unpacks the archive flat: handler.py must find slots.py as a top-level module."""
    import importlib
    import sys

    from components.bluegreen import HANDLER_FILES, handler_archive

    archive = handler_archive()
    assert sorted(archive.assets) == sorted(HANDLER_FILES) == ["handler.py", "slots.py"]
    for name, asset in archive.assets.items():
        (tmp_path / name).write_text(asset.text)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("handler", "slots"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    flat = importlib.import_module("handler")
    assert flat.sl.__file__ == str(tmp_path / "slots.py")
    monkeypatch.setenv("FLEET_STACK", "prod")
    monkeypatch.setenv("FLEET_ROLLOUT_TABLE", "fleet-prod-rollouts")
    assert flat.handler({"detail-type": "something else"}, None)["action"] == "ignored"


def test_the_stack_gets_one_standby_for_its_blue_green_groups():
    from tests.pulumi_mocks import run_program

    r = run_program("staging")
    (standby,) = r.of_type("fleet:bluegreen:Standby")
    (table,) = r.children(standby, "aws:dynamodb/table:Table")
    (function,) = r.children(standby, "aws:lambda/function:Function")
    assert table.inputs["name"] == "fleet-staging-rollouts"
    assert function.inputs["environment"]["variables"] == {"FLEET_STACK": "staging",
                                                           "FLEET_ROLLOUT_TABLE": "fleet-staging-rollouts"}
    rules = {x.name: x for x in r.children(standby, "aws:cloudwatch/eventRule:EventRule")}
    pattern = json.loads(rules["fleet-staging-standby-alarm"].inputs["eventPattern"])
    assert pattern == alarm_pattern("staging", ["12_04-www", "api"])
    assert rules["fleet-staging-standby-schedule"].inputs["scheduleExpression"] == "rate(5 minutes)"
    assert len(r.children(standby, "aws:cloudwatch/eventTarget:EventTarget")) == 2


def test_the_alarm_rule_matches_a_slot_alarms_state_change_on_moto(aws):
    """As EventBridge uses the pattern (moto's TestEventPattern answers nothing): a rule on the default bus
    with an SQS target, PutEvents of alarm state changes; only the group's slot alarms entering ALARM arrive
    (prefix matching on the name, so slot b's and the autonamed suffixes match too)."""
    import boto3

    bridge, sqs = boto3.client("events"), boto3.client("sqs")
    queue = sqs.create_queue(QueueName="standby")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bridge.put_rule(Name="standby", EventPattern=json.dumps(alarm_pattern("prod", ["www"])))
    bridge.put_targets(Rule="standby", Targets=[{"Id": "queue", "Arn": arn}])
    sent = [("fleet-prod-www-health-b-5xx-1a2b", "ALARM"), ("fleet-prod-www-health-5xx-9c8d", "ALARM"),
            ("fleet-prod-www-health-5xx-9c8d", "OK"), ("fleet-prod-api-health-5xx-1", "ALARM")]
    out = bridge.put_events(Entries=[
        {"Source": "aws.cloudwatch", "DetailType": "CloudWatch Alarm State Change",
         "Resources": [f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"],
         "Detail": json.dumps({"alarmName": name, "state": {"value": state}, "previousState": {"value": "OK"}})}
        for name, state in sent])
    assert out["FailedEntryCount"] == 0
    got = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages")
        if not messages:
            break
        got += [json.loads(m["Body"])["detail"]["alarmName"] for m in messages]
        sqs.delete_message_batch(QueueUrl=queue, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
    assert sorted(got) == ["fleet-prod-www-health-5xx-9c8d", "fleet-prod-www-health-b-5xx-1a2b"]


def test_the_program_and_the_function_name_the_same_table():
    from components.bluegreen import table_name
    from lambdas.bluegreen import slots

    assert table_name("prod") == slots.table_name("prod") == "fleet-prod-rollouts"
