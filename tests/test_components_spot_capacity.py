"""SpotCapacity under mocks: the three kinds of rules (warning, the stack's spot ASG events, schedule),
each with a target and an invoke permission; the Lambda's code as exactly its files, by content; no
reserved concurrency; the state table; the dead-letter wiring; a least-privilege role whose actions are
exactly the handler's (fleet.ops.events.SPOT_CAPACITY_ACTIONS) plus its logs and its DLQ; a capped alarm
per group; fleet:stack on everything taggable."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import sys

import pulumi
import pytest
from pulumi.runtime import rpc

from components import spot_capacity as sc
from components.spot_capacity import HANDLER_DIR, HANDLER_FILES, SpotCapacity, SpotCapacityArgs, handler_archive
from fleet.ops.events import (
    METRIC_NAMESPACE,
    RECONCILE_SCHEDULE,
    SPOT_CAPACITY_ACTIONS,
    SPOT_INTERRUPTION_PATTERN,
    WARNED_TAG,
    asg_events_pattern,
)
from fleet.plan.guardrails import TAGGABLE, check_all
from lambdas.spot_capacity import handler as capacity_handler
from tests.pulumi_mocks import ACCOUNT, ROOT, Registered, Run, run

RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
FUNCTION = "aws:lambda/function:Function"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
PERMISSION = "aws:lambda/permission:Permission"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
TABLE = "aws:dynamodb/table:Table"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
INVOKE_CONFIG = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"
TG_ARNS = [f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}:targetgroup/www-1234567/0123456789abcdef",
           f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}:targetgroup/api-7654321/fedcba9876543210"]
SPOT_ASGS = {"www": "www-spot-1234567", "jobs": "jobs-spot-7654321"}
LOG_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}
TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:fleet-prod-alerts"


def _capacity(stack="prod", target_group_arns=TG_ARNS, spot_asg_names=SPOT_ASGS, alarm_actions=(TOPIC,)) -> Run:
    def program():
        s = SpotCapacity("spot-capacity", SpotCapacityArgs(
            stack=stack, region="us-east-1", spot_asg_names=dict(spot_asg_names),
            target_group_arns=list(target_group_arns), alarm_actions=list(alarm_actions)))
        return s.function.name
    return run(program, stack=stack)


@pytest.fixture(scope="module")
def prod() -> Run:
    return _capacity()


def one(r: Run, typ: str) -> Registered:
    (x,) = r.of_type(typ)
    return x


def rules(r: Run) -> dict[str, Registered]:
    return {x.name.rsplit("-spot-", 1)[1]: x for x in r.of_type(RULE)}


def statements(r: Run) -> list[dict]:
    return [st for p in r.of_type(ROLE_POLICY) for st in json.loads(p.inputs["policy"])["Statement"]]


def by_action(r: Run) -> dict[str, dict]:
    out = {}
    for st in statements(r):
        for action in st["Action"]:
            assert action not in out, f"{action} granted twice"
            out[action] = st
    return out


def test_three_kinds_of_rules_each_invoking_the_function(prod):
    got = rules(prod)
    assert set(got) == {"warning", "asg-0", "schedule"}
    assert json.loads(got["warning"].inputs["eventPattern"]) == SPOT_INTERRUPTION_PATTERN
    assert json.loads(got["asg-0"].inputs["eventPattern"]) == asg_events_pattern(list(SPOT_ASGS.values()))
    assert got["schedule"].inputs["scheduleExpression"] == RECONCILE_SCHEDULE == "rate(5 minutes)"
    fn = one(prod, FUNCTION)
    targets = {t.inputs["rule"]: t for t in prod.of_type(TARGET)}
    perms = {p.inputs["sourceArn"]: p for p in prod.of_type(PERMISSION)}
    assert set(targets) == {r.outputs["name"] for r in got.values()}
    assert set(perms) == {r.outputs["arn"] for r in got.values()}
    for t in targets.values():
        assert t.inputs["arn"] == fn.outputs["arn"]
    for p in perms.values():
        assert p.inputs == {"action": "lambda:InvokeFunction", "function": fn.outputs["name"],
                            "principal": "events.amazonaws.com", "sourceArn": p.inputs["sourceArn"]}
        assert p.name in {d for t in targets.values() for d in t.options["dependsOn"]}


def test_many_groups_are_split_over_rules_that_fit_eventbridges_limit():
    many = {f"g{i:02d}": f"g{i:02d}-spot-{i:07d}" for i in range(45)}
    r = _capacity(spot_asg_names=many)
    asg_rules = {k: v for k, v in rules(r).items() if k.startswith("asg-")}
    assert set(asg_rules) == {"asg-0", "asg-1", "asg-2"}
    names = [n for v in asg_rules.values()
             for n in json.loads(v.inputs["eventPattern"])["detail"]["AutoScalingGroupName"]]
    assert sorted(names) == sorted(many.values())
    assert all(len(v.inputs["eventPattern"]) <= 2048 for v in asg_rules.values())
    assert len(r.of_type(TARGET)) == len(r.of_type(PERMISSION)) == 5
    assert len(r.of_type(ALARM)) == 45


def test_function_has_no_reserved_concurrency(prod):
    fn = one(prod, FUNCTION)
    assert "reservedConcurrentExecutions" not in fn.inputs, "the lease makes overlap safe"
    assert fn.inputs["runtime"] == "python3.12" and fn.inputs["handler"] == "handler.handler"
    assert fn.inputs["timeout"] < capacity_handler.LEASE_SECONDS, "a lease must outlive its holder"
    assert capacity_handler.WAIT_SECONDS < fn.inputs["timeout"]
    assert fn.inputs["memorySize"] <= 256
    assert fn.inputs["environment"] == {"variables": {
        "FLEET_STACK": "prod", "FLEET_CAPACITY_TABLE": one(prod, TABLE).outputs["name"]}}
    assert fn.inputs["role"] == one(prod, ROLE).outputs["arn"]
    assert "name" not in fn.inputs, "autonamed"
    assert fn.parent_type == "fleet:spot_capacity:SpotCapacity"


def _serialized(archive) -> dict:
    """What the SDK sends the engine for the archive (its own loop: asyncio.run would unset the one
    the mocks use)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(rpc.serialize_property(archive, [], "code"))
    finally:
        loop.close()


class TestCode:
    def test_code_is_exactly_the_handlers_files_by_content(self, prod):
        code = one(prod, FUNCTION).inputs["code"]
        assert isinstance(code, pulumi.AssetArchive)
        assert set(code.assets) == set(HANDLER_FILES) == {"handler.py", "reconcile.py"}
        for name, asset in code.assets.items():
            assert isinstance(asset, pulumi.StringAsset)
            assert asset.text == (HANDLER_DIR / name).read_text()

    def test_no_path_of_the_checkout_reaches_the_engine(self, prod):
        """what the engine hashes and stores holds no absolute path."""
        text = json.dumps(_serialized(one(prod, FUNCTION).inputs["code"]))
        assert str(ROOT) not in text and "/" + ROOT.name + "/" not in text
        assert '"path"' not in text

    def test_two_clones_and_a_pycache_give_the_same_code(self, tmp_path):
        """neither where the checkout is nor what else sits in the directory counts."""
        a, b = tmp_path / "clone-a" / "spot_capacity", tmp_path / "elsewhere" / "b" / "spot_capacity"
        shutil.copytree(HANDLER_DIR, a)
        shutil.copytree(HANDLER_DIR, b)
        (b / "__pycache__").mkdir(exist_ok=True)
        (b / "__pycache__" / "handler.cpython-312.pyc").write_bytes(b"\x00compiled")
        (b / "notes.txt~").write_text("editor backup")
        assert _serialized(handler_archive(a)) == _serialized(handler_archive(b)) == _serialized(handler_archive())

    def test_the_archive_runs_as_lambda_loads_it(self, tmp_path, monkeypatch):
        """Lambda puts the archive's root on sys.path and imports `handler` as a top-level module."""
        for name, asset in handler_archive().assets.items():
            (tmp_path / name).write_text(asset.text)
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setattr(sys, "modules", dict(sys.modules))
        spec = importlib.util.spec_from_file_location("handler", tmp_path / "handler.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["handler"] = module
        spec.loader.exec_module(module)
        assert callable(module.handler) and module.reconcile.__file__ == str(tmp_path / "reconcile.py")


def test_state_table(prod):
    table = one(prod, TABLE)
    assert table.inputs["billingMode"] == "PAY_PER_REQUEST"
    assert table.inputs["hashKey"] == "group"
    assert table.inputs["attributes"] == [{"name": "group", "type": "S"}]
    assert "name" not in table.inputs, "autonamed"


def test_log_group_is_the_functions_with_a_retention(prod):
    fn, logs = one(prod, FUNCTION), one(prod, LOG_GROUP)
    assert logs.inputs["name"] == f"/aws/lambda/{fn.outputs['name']}"
    assert 1 <= logs.inputs["retentionInDays"] <= 365
    for target in prod.of_type(TARGET):
        assert logs.name in target.options["dependsOn"]


def test_dead_letter_queue_wiring(prod):
    queue, fn = one(prod, QUEUE), one(prod, FUNCTION)
    assert queue.inputs["sqsManagedSseEnabled"] is True
    assert queue.inputs["messageRetentionSeconds"] == 14 * 24 * 3600
    for target in prod.of_type(TARGET):
        assert target.inputs["deadLetterConfig"] == {"arn": queue.outputs["arn"]}
        retry = target.inputs["retryPolicy"]
        assert retry["maximumRetryAttempts"] >= 1 and 60 <= retry["maximumEventAgeInSeconds"] <= 3600
    assert fn.inputs["deadLetterConfig"] == {"targetArn": queue.outputs["arn"]}
    config = one(prod, INVOKE_CONFIG)
    assert config.inputs["functionName"] == fn.outputs["name"] and config.inputs["maximumRetryAttempts"] <= 2
    qp = one(prod, QUEUE_POLICY)
    (st,) = json.loads(qp.inputs["policy"])["Statement"]
    assert st["Principal"] == {"Service": "events.amazonaws.com"} and st["Action"] == "sqs:SendMessage"
    assert st["Condition"] == {"ArnEquals": {"aws:SourceArn": sorted(r.outputs["arn"] for r in prod.of_type(RULE))}}


def test_role_trusts_lambda_only(prod):
    (st,) = json.loads(one(prod, ROLE).inputs["assumeRolePolicy"])["Statement"]
    assert st == {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    assert {p.inputs["role"] for p in prod.of_type(ROLE_POLICY)} == {one(prod, ROLE).id}


def test_actions_are_exactly_the_handlers_plus_its_logs_and_dlq(prod):
    granted = by_action(prod)
    assert set(granted) == set(SPOT_CAPACITY_ACTIONS) | LOG_ACTIONS | {"sqs:SendMessage"}
    for st in statements(prod):
        assert st["Effect"] == "Allow" and isinstance(st["Action"], list)
        for action in st["Action"]:
            assert "*" not in action, f"wildcard action {action}"


def test_each_action_is_scoped(prod):
    granted = by_action(prod)
    for action, st in granted.items():
        unscoped = action.split(":")[1].startswith("Describe") or action == "cloudwatch:PutMetricData"
        assert (st["Resource"] == "*") == unscoped, action
    assert granted["cloudwatch:PutMetricData"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": METRIC_NAMESPACE}}
    st = granted["autoscaling:UpdateAutoScalingGroup"]
    assert st["Resource"] == f"arn:aws:autoscaling:us-east-1:{ACCOUNT}:autoScalingGroup:*:autoScalingGroupName/*"
    assert st["Condition"] == {"StringEquals": {
        "aws:ResourceTag/fleet:stack": "prod", "autoscaling:ResourceTag/fleet:stack": "prod",
        "aws:ResourceTag/fleet:capacity": "on-demand", "autoscaling:ResourceTag/fleet:capacity": "on-demand"}}
    st = granted["ec2:CreateTags"]
    assert st["Resource"] == f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/*"
    assert st["Condition"] == {"StringEquals": {"aws:ResourceTag/fleet:stack": "prod"},
                               "ForAllValues:StringEquals": {"aws:TagKeys": [WARNED_TAG]}}
    assert granted["dynamodb:UpdateItem"]["Resource"] == one(prod, TABLE).outputs["arn"]
    assert sorted(granted["elasticloadbalancing:DeregisterTargets"]["Resource"]) == sorted(TG_ARNS)
    log_arn = one(prod, LOG_GROUP).outputs["arn"]
    for action in LOG_ACTIONS:
        assert granted[action]["Resource"] == f"{log_arn}:*"
    assert granted["sqs:SendMessage"]["Resource"] == one(prod, QUEUE).outputs["arn"]


def test_without_target_groups_there_is_nothing_to_deregister_from():
    granted = by_action(_capacity(target_group_arns=[]))
    assert "elasticloadbalancing:DeregisterTargets" not in granted


def test_a_capped_alarm_per_group_notifying_the_topic(prod):
    alarms = {a.inputs["dimensions"]["Group"]: a for a in prod.of_type(ALARM)}
    assert set(alarms) == set(SPOT_ASGS)
    for group, alarm in alarms.items():
        i = alarm.inputs
        assert (i["namespace"], i["metricName"], i["statistic"]) == (METRIC_NAMESPACE, "Capped", "Maximum")
        assert i["dimensions"] == {"Stack": "prod", "Group": group}
        assert (i["threshold"], i["comparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
        assert i["period"] == sc.CAPPED_PERIOD and i["treatMissingData"] == "notBreaching"
        assert i["alarmActions"] == [TOPIC] and i["okActions"] == [TOPIC]
        assert alarm.name.startswith(f"fleet-prod-{group}-spot-capped") and "-health-" not in alarm.name
        assert i["tags"]["fleet:group"] == group


def test_everything_taggable_carries_the_stack_and_passes_the_guardrails(prod):
    taggable = [x for x in prod.resources if x.type in TAGGABLE]
    assert {x.type for x in taggable} == {RULE, FUNCTION, LOG_GROUP, QUEUE, ROLE, TABLE, ALARM}
    for x in taggable:
        assert x.inputs["tags"]["fleet:stack"] == "prod", x.type
    assert check_all(prod.views(), "prod") == []
    component = one(prod, "fleet:spot_capacity:SpotCapacity")
    assert {x.urn for x in prod.descendants(component)} == {x.urn for x in prod.resources} - {component.urn}
    assert set(prod.component_outputs[component.urn]) == {
        "function_name", "table_name", "dead_letter_queue_url", "log_group_name"}


def test_long_stack_names_keep_aws_names_within_limits():
    r = _capacity(stack="a-very-long-stack-name-for-a-feature-branch-preview-environment")
    assert len(one(r, FUNCTION).outputs["name"]) <= 64
    assert len(one(r, ROLE).outputs["name"]) <= 64
    assert all(len(x.outputs["name"]) <= 64 for x in r.of_type(RULE))
