"""SpotInterruption under mocks: the rule's pattern, the Lambda (python3.12, the handler directory as a
FileArchive, FLEET_STACK, reserved concurrency 1), its log group, the dead-letter wiring (EventBridge
target and the function's async failures), the invoke permission, and a least-privilege role whose
actions are exactly the handler's (fleet.ops.events.SPOT_HANDLER_ACTIONS) plus its logs and its DLQ, each
scoped, no `*` action anywhere; fleet:stack on everything taggable."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pulumi
import pytest

from components.spot_interruption import HANDLER_DIR, SpotInterruption, SpotInterruptionArgs
from fleet.ops.events import (
    HANDLED_TAG,
    SAMPLE_REBALANCE_EVENT,
    SAMPLE_SPOT_INTERRUPTION_EVENT,
    SPOT_HANDLER_ACTIONS,
    SPOT_INTERRUPTION_PATTERN,
)
from fleet.plan.guardrails import TAGGABLE, check_all
from tests.pulumi_mocks import ACCOUNT, Registered, Run, run

RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
FUNCTION = "aws:lambda/function:Function"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
PERMISSION = "aws:lambda/permission:Permission"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
INVOKE_CONFIG = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"
TG_ARNS = [f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}:targetgroup/www-1234567/0123456789abcdef",
           f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}:targetgroup/api-7654321/fedcba9876543210"]
LOG_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}


def _spot(stack="prod", target_group_arns=TG_ARNS) -> Run:
    def program():
        si = SpotInterruption("spot-interruption", SpotInterruptionArgs(
            stack=stack, region="us-east-1", target_group_arns=list(target_group_arns)))
        return si.function.name
    return run(program, stack=stack)


@pytest.fixture(scope="module")
def prod() -> Run:
    return _spot()


def one(r: Run, typ: str) -> Registered:
    (x,) = r.of_type(typ)
    return x


def statements(r: Run) -> list[dict]:
    return [st for p in r.of_type(ROLE_POLICY) for st in json.loads(p.inputs["policy"])["Statement"]]


def by_action(r: Run) -> dict[str, dict]:
    out = {}
    for st in statements(r):
        for action in st["Action"]:
            assert action not in out, f"{action} granted twice"
            out[action] = st
    return out


def _matches(pattern: dict, event: dict) -> bool:
    """EventBridge's matching for a pattern of top-level exact-value lists (what ours is)."""
    return all(event.get(key) in values for key, values in pattern.items())


def test_rule_fires_on_the_interruption_warning_only(prod):
    rule = one(prod, RULE)
    pattern = json.loads(rule.inputs["eventPattern"])
    assert pattern == SPOT_INTERRUPTION_PATTERN
    assert pattern == {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]}
    assert _matches(pattern, SAMPLE_SPOT_INTERRUPTION_EVENT) and not _matches(pattern, SAMPLE_REBALANCE_EVENT)
    target = one(prod, TARGET)
    assert target.inputs["rule"] == rule.outputs["name"] and target.inputs["arn"] == one(prod, FUNCTION).outputs["arn"]


def test_function_runs_the_handler_one_at_a_time(prod):
    fn = one(prod, FUNCTION)
    assert fn.inputs["runtime"] == "python3.12" and fn.inputs["handler"] == "handler.handler"
    assert fn.inputs["reservedConcurrentExecutions"] == 1, "the once-per-instance guarantee relies on it"
    assert 30 <= fn.inputs["timeout"] < 120, "within the two-minute warning"
    assert fn.inputs["memorySize"] <= 256
    assert fn.inputs["environment"] == {"variables": {"FLEET_STACK": "prod"}}
    assert fn.inputs["role"] == one(prod, ROLE).outputs["arn"]
    assert "name" not in fn.inputs, "autonamed"
    assert fn.parent_type == "fleet:spot_interruption:SpotInterruption"


def test_code_is_the_handler_directory_as_a_file_archive(prod):
    code = one(prod, FUNCTION).inputs["code"]
    assert isinstance(code, pulumi.FileArchive)
    path = Path(code.path)
    assert path == HANDLER_DIR and path.is_dir() and (path / "handler.py").is_file()
    assert path == Path(__file__).resolve().parent.parent / "lambdas" / "spot_interruption"
    # "handler.handler" names a module at the archive's root and a function in it
    spec = importlib.util.spec_from_file_location("archived_handler", path / "handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.handler) and module.HANDLED_TAG == HANDLED_TAG


def test_log_group_is_the_functions_with_a_retention(prod):
    fn, logs = one(prod, FUNCTION), one(prod, LOG_GROUP)
    assert logs.inputs["name"] == f"/aws/lambda/{fn.outputs['name']}"
    assert 1 <= logs.inputs["retentionInDays"] <= 365
    # nothing invokes the function before its log group exists (Lambda would create an unmanaged one)
    assert logs.name in one(prod, TARGET).options["dependsOn"]


def test_dead_letter_queue_wiring(prod):
    queue, target, fn = one(prod, QUEUE), one(prod, TARGET), one(prod, FUNCTION)
    assert queue.inputs["sqsManagedSseEnabled"] is True
    assert queue.inputs["messageRetentionSeconds"] == 14 * 24 * 3600
    assert target.inputs["deadLetterConfig"] == {"arn": queue.outputs["arn"]}
    retry = target.inputs["retryPolicy"]
    assert retry["maximumRetryAttempts"] >= 1 and 60 <= retry["maximumEventAgeInSeconds"] <= 3600
    assert fn.inputs["deadLetterConfig"] == {"targetArn": queue.outputs["arn"]}, "async failures of the function"
    config = one(prod, INVOKE_CONFIG)
    assert config.inputs["functionName"] == fn.outputs["name"] and config.inputs["maximumRetryAttempts"] <= 2
    # EventBridge may send to the queue for this rule only
    qp = one(prod, QUEUE_POLICY)
    assert qp.inputs["queueUrl"] == queue.id
    (st,) = json.loads(qp.inputs["policy"])["Statement"]
    assert st["Principal"] == {"Service": "events.amazonaws.com"} and st["Action"] == "sqs:SendMessage"
    assert st["Resource"] == queue.outputs["arn"]
    assert st["Condition"] == {"ArnEquals": {"aws:SourceArn": one(prod, RULE).outputs["arn"]}}
    assert qp.name in target.options["dependsOn"]


def test_only_this_rule_may_invoke_the_function(prod):
    perm, fn, rule = one(prod, PERMISSION), one(prod, FUNCTION), one(prod, RULE)
    assert perm.inputs == {"action": "lambda:InvokeFunction", "function": fn.outputs["name"],
                           "principal": "events.amazonaws.com", "sourceArn": rule.outputs["arn"]}
    assert perm.name in one(prod, TARGET).options["dependsOn"]


def test_role_trusts_lambda_only(prod):
    doc = json.loads(one(prod, ROLE).inputs["assumeRolePolicy"])
    (st,) = doc["Statement"]
    assert st == {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    assert "name" not in one(prod, ROLE).inputs and not one(prod, ROLE).inputs.get("managedPolicyArns")
    assert {p.inputs["role"] for p in prod.of_type(ROLE_POLICY)} == {one(prod, ROLE).id}


def test_actions_are_exactly_the_handlers_plus_its_logs_and_dlq(prod):
    granted = by_action(prod)
    assert set(granted) == set(SPOT_HANDLER_ACTIONS) | LOG_ACTIONS | {"sqs:SendMessage"}
    for st in statements(prod):
        assert st["Effect"] == "Allow"
        assert isinstance(st["Action"], list)
        for action in st["Action"]:
            assert "*" not in action, f"wildcard action {action}"


def test_each_action_is_scoped(prod):
    granted = by_action(prod)
    # Describe* do not support resource-level permissions: "*" for them, and for nothing else
    for action, st in granted.items():
        describe = action.split(":")[1].startswith("Describe")
        assert (st["Resource"] == "*") == describe, action
        assert describe or "Condition" in st or "*" not in json.dumps(st["Resource"]).replace(":*", ""), action

    st = granted["autoscaling:SetDesiredCapacity"]
    assert st["Resource"] == f"arn:aws:autoscaling:us-east-1:{ACCOUNT}:autoScalingGroup:*:autoScalingGroupName/*"
    assert st["Condition"] == {"StringEquals": {
        "aws:ResourceTag/fleet:stack": "prod", "autoscaling:ResourceTag/fleet:stack": "prod",
        "aws:ResourceTag/fleet:capacity": "on-demand", "autoscaling:ResourceTag/fleet:capacity": "on-demand"}}

    st = granted["ec2:CreateTags"]
    assert st["Resource"] == f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/*"
    assert st["Condition"]["ForAllValues:StringEquals"] == {"aws:TagKeys": [HANDLED_TAG]}
    assert st["Condition"]["StringEquals"] == {"aws:ResourceTag/fleet:stack": "prod"}

    assert sorted(granted["elasticloadbalancing:DeregisterTargets"]["Resource"]) == sorted(TG_ARNS)

    log_arn = one(prod, LOG_GROUP).outputs["arn"]
    for action in LOG_ACTIONS:
        assert granted[action]["Resource"] == f"{log_arn}:*"
    assert granted["sqs:SendMessage"]["Resource"] == one(prod, QUEUE).outputs["arn"]


def test_function_waits_for_its_dlq_permission_and_the_target_for_the_rest(prod):
    """Lambda checks sqs:SendMessage when a DLQ is configured; the main policy names the log group,
    which is named after the function, so it comes after it, and the target after the policy."""
    policies = {("sqs:SendMessage" in p.inputs["policy"]): p for p in prod.of_type(ROLE_POLICY)}
    assert len(policies) == 2
    assert policies[True].name in one(prod, FUNCTION).options["dependsOn"]
    assert policies[False].name in one(prod, TARGET).options["dependsOn"]
    assert "sqs:" not in policies[False].inputs["policy"]


def test_without_target_groups_there_is_nothing_to_deregister_from():
    r = _spot(target_group_arns=[])
    granted = by_action(r)
    assert "elasticloadbalancing:DeregisterTargets" not in granted
    assert set(granted) == (set(SPOT_HANDLER_ACTIONS) - {"elasticloadbalancing:DeregisterTargets"}) | LOG_ACTIONS | {
        "sqs:SendMessage"}


def test_everything_taggable_carries_the_stack_and_passes_the_guardrails(prod):
    taggable = [x for x in prod.resources if x.type in TAGGABLE]
    assert {x.type for x in taggable} == {RULE, FUNCTION, LOG_GROUP, QUEUE, ROLE}
    for x in taggable:
        assert x.inputs["tags"]["fleet:stack"] == "prod", x.type
    assert check_all(prod.views(), "prod") == []
    component = one(prod, "fleet:spot_interruption:SpotInterruption")
    assert {x.urn for x in prod.descendants(component)} == {x.urn for x in prod.resources} - {component.urn}
    assert set(prod.component_outputs[component.urn]) == {
        "function_name", "rule_arn", "dead_letter_queue_url", "log_group_name"}


def test_long_stack_names_keep_aws_names_within_limits():
    r = _spot(stack="a-very-long-stack-name-for-a-feature-branch-preview-environment")
    assert len(one(r, FUNCTION).outputs["name"]) <= 64
    assert len(one(r, ROLE).outputs["name"]) <= 64
    assert len(one(r, RULE).outputs["name"]) <= 64
    assert one(r, FUNCTION).inputs["environment"]["variables"]["FLEET_STACK"].endswith("preview-environment")
