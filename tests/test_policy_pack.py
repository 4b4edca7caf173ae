"""policy/: the converter (PolicyResource -> fleet resource view) and the stack validators, tested
directly. The pack itself is never started: `__main__.py` only constructs PolicyPack(...) (which
serves), so these tests import `policy.validators` and, for the engine's real message path, feed
an AnalyzeStackRequest to the SDK's analyzer servicer in-process (no gRPC server, no port).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from google.protobuf import struct_pb2
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    PolicyResourceOptions,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import _PolicyAnalyzerServicer
from pulumi_policy.proxy import UNKNOWN_ARRAY_VALUE, UNKNOWN_STRING_VALUE, unknown_checking_proxy

from fleet.plan import guardrails as g
from policy import validators as v

ROOT = Path(__file__).resolve().parent.parent
UNKNOWN = UNKNOWN_STRING_VALUE
TAGS = {"fleet:stack": "staging"}


def urn(type_, name, stack="staging"):
    return f"urn:pulumi:{stack}::fleet::{type_}::{name}"


def res(type_, name, props, parent=None, ignore=(), deps=None, prop_deps=None):
    opts = PolicyResourceOptions(False, list(ignore), None, [], None, [], parent.urn if parent else None)
    r = PolicyResource(type_, unknown_checking_proxy(props), urn(type_, name), name, opts, None, parent, [], {})
    r.dependencies = list(deps or [])
    r.property_dependencies = {k: list(ds) for k, ds in (prop_deps or {}).items()}
    return r


# ---------------------------------------------------------------------------------------- converter

def test_plain_unwraps_proxies_unknowns_nulls_and_numbers():
    props = unknown_checking_proxy({"a": UNKNOWN, "b": None, "c": [1.0, UNKNOWN, {"d": 2.5}], "e": {"f": UNKNOWN}})
    with pytest.raises(Exception):  # noqa: B017 - the SDK's proxy raises on unknowns; plain() must not
        dict(props)
    assert v.plain(props) == {"a": None, "c": [1, None, {"d": 2.5}], "e": {"f": None}}


def test_view_fields_options_parent_and_stack():
    stack_res = res("pulumi:pulumi:Stack", "fleet-staging", {})
    group = res(g.NODE_GROUP, "api", {}, parent=stack_res)
    lt = res(g.LAUNCH_TEMPLATE, "api-lt", {"id": "lt-1"}, parent=group)
    policy_dep = res("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "ssm", {}, parent=group)
    asg = res(g.ASG, "api-spot", {"name": "api-spot-0a1b2c3", "maxSize": 3.0}, parent=group,
              ignore=["desiredCapacity"], deps=[lt, policy_dep], prop_deps={"launchTemplate": [lt]})
    views, stack = v.to_views([stack_res, group, lt, policy_dep, asg])
    assert stack == "staging"
    view = views[-1]
    assert view["type"] == g.ASG and view["name"] == "api-spot" and view["parent"] == "api"
    assert view["urn"] == asg.urn
    assert view["options"] == {"ignoreChanges": ["desiredCapacity"], "dependsOn": ["ssm"], "protect": False,
                               "deleteBeforeReplace": False}
    assert "name" not in view["inputs"] and view["outputs"]["name"] == "api-spot-0a1b2c3"  # autonamed
    assert view["inputs"]["maxSize"] == 3
    assert views[0]["parent"] is None


@pytest.mark.parametrize("type_, logical, props, fixed", [
    (g.ASG, "api-spot", {"name": "api-spot-0a1b2c3"}, False),
    (g.TARGET_GROUP, "12-04-www-long-name", {"name": "12-04-www-lon-9f8e7d6"}, False),  # truncated base
    (g.LAUNCH_TEMPLATE, "api-lt", {"name": "fleet-staging-api-2024", "namePrefix": "fleet-staging-api-"}, False),
    (g.IAM_ROLE, "api-node", {"name": UNKNOWN}, False),
    (g.TARGET_GROUP, "api", {"name": "api"}, True),
    (g.LOAD_BALANCER, "fleet-staging", {"name": "prod-alb"}, True),
    (g.SECURITY_GROUP, "api-node", {"name": "api"}, False),  # not a fixed-name type: name kept as is
])
def test_fixed_names_are_told_from_autonames(type_, logical, props, fixed):
    [view], _ = v.to_views([res(type_, logical, props)])
    if type_ in g.FIXED_NAME_TYPES:
        assert ("name" in view["inputs"]) is fixed
        assert bool(g.no_fixed_names([view], "staging")) is fixed


def test_unknown_links_resolve_through_property_dependencies():
    """A fresh stack in preview: every id is unknown, the links are decidable all the same."""
    alb_sg = res(g.SECURITY_GROUP, "alb-sg", {"id": UNKNOWN})
    node_sg = res(g.SECURITY_GROUP, "node-sg", {"id": UNKNOWN})
    known_sg = res(g.SECURITY_GROUP, "shared", {"id": "sg-shared"})
    lb = res(g.LOAD_BALANCER, "alb", {"securityGroups": UNKNOWN_ARRAY_VALUE}, prop_deps={"securityGroups": [alb_sg]})
    lt = res(g.LAUNCH_TEMPLATE, "lt", {"vpcSecurityGroupIds": [UNKNOWN, "sg-shared"]},
             prop_deps={"vpcSecurityGroupIds": [node_sg, known_sg]})
    rule = res(g.SG_INGRESS, "from-alb", {"securityGroupId": UNKNOWN, "referencedSecurityGroupId": UNKNOWN},
               prop_deps={"securityGroupId": [node_sg], "referencedSecurityGroupId": [alb_sg]})
    ambiguous = res(g.SG_INGRESS, "two", {"securityGroupId": UNKNOWN}, prop_deps={"securityGroupId": [alb_sg, node_sg]})
    asg = res(g.ASG, "asg", {"name": UNKNOWN})
    pol = res(g.ASG_POLICY, "p", {"autoscalingGroupName": UNKNOWN}, prop_deps={"autoscalingGroupName": [asg]})
    views, _ = v.to_views([alb_sg, node_sg, known_sg, lb, lt, rule, ambiguous, asg, pol])
    by = {x["name"]: x for x in views}
    alb_id, node_id = by["alb-sg"]["outputs"]["id"], by["node-sg"]["outputs"]["id"]
    assert alb_id == f"unknown:id:{alb_sg.urn}" and node_id != alb_id
    assert by["alb"]["inputs"]["securityGroups"] == [alb_id]
    assert sorted(by["lt"]["inputs"]["vpcSecurityGroupIds"]) == sorted(["sg-shared", node_id])
    assert by["from-alb"]["inputs"] == {"securityGroupId": node_id, "referencedSecurityGroupId": alb_id}
    assert by["two"]["inputs"]["securityGroupId"] is None  # two candidates: stays unknown
    assert by["p"]["inputs"]["autoscalingGroupName"] == by["asg"]["outputs"]["name"]


def test_policies_one_per_guardrail_mandatory():
    policies = v.policies()
    assert [p.name for p in policies] == [c.policy for c in g.GUARDRAILS]
    assert all(isinstance(p, StackValidationPolicy) and p.enforcement_level == EnforcementLevel.MANDATORY
               for p in policies)


def test_validator_reports_against_the_urn():
    lt = res(g.LAUNCH_TEMPLATE, "api-lt", {"metadataOptions": {"httpTokens": "optional"}})
    reported = []
    policy = next(p for p in v.policies() if p.name == "imdsv2-required")
    policy.validate(StackValidationArgs([lt]), lambda message, urn=None: reported.append((urn, message)))
    assert reported == [(lt.urn, "api-lt: metadataOptions.httpTokens is 'optional'")]


# ------------------------------------------------------------ the engine's message, end to end in-process

def _resource(type_, name, props, parent=None, ignore=(), prop_deps=None):
    struct = struct_pb2.Struct()
    struct.update(props)
    return analyzer_pb2.AnalyzerResource(
        type=type_, name=name, urn=urn(type_, name), properties=struct, parent=urn(*parent) if parent else "",
        options=analyzer_pb2.AnalyzerResourceOptions(ignoreChanges=list(ignore)),
        dependencies=[urn(*d) for ds in (prop_deps or {}).values() for d in ds],
        propertyDependencies={k: analyzer_pb2.AnalyzerPropertyDependencies(urns=[urn(*d) for d in ds])
                              for k, ds in (prop_deps or {}).items()})


def fresh_preview():
    """One http node group as `pulumi preview` sends it for a new stack: ids and versions unknown."""
    alb_sg, node_sg, group = (g.SECURITY_GROUP, "alb-sg"), (g.SECURITY_GROUP, "api-node"), (g.NODE_GROUP, "api")
    asg = (g.ASG, "api-spot")
    gtags = {**TAGS, "fleet:group": "api"}
    world = {"cidrIpv4": "0.0.0.0/0", "ipProtocol": "tcp", "tags": TAGS}
    return [
        _resource("pulumi:pulumi:Stack", "fleet-staging", {}),
        _resource(*group, {}),
        _resource(*alb_sg, {"id": UNKNOWN, "tags": TAGS, "ingress": []}),
        _resource(*node_sg, {"id": UNKNOWN, "tags": gtags}, parent=group),
        _resource(g.LOAD_BALANCER, "fleet-staging", {"name": "fleet-staging-1a2b3c4", "securityGroups": [UNKNOWN],
                                                     "tags": TAGS}, prop_deps={"securityGroups": [alb_sg]}),
        _resource(g.SG_INGRESS, "alb-80", {**world, "securityGroupId": UNKNOWN, "fromPort": 80, "toPort": 80},
                  prop_deps={"securityGroupId": [alb_sg]}),
        _resource(g.SG_INGRESS, "api-ssh", {**world, "securityGroupId": UNKNOWN, "fromPort": 22, "toPort": 22},
                  prop_deps={"securityGroupId": [node_sg]}),
        _resource(g.SG_INGRESS, "api-from-alb", {"securityGroupId": UNKNOWN, "referencedSecurityGroupId": UNKNOWN,
                                                 "ipProtocol": "tcp", "fromPort": 8080, "toPort": 8080, "tags": gtags},
                  parent=group, prop_deps={"securityGroupId": [node_sg], "referencedSecurityGroupId": [alb_sg]}),
        _resource(g.LAUNCH_TEMPLATE, "api-lt", {
            "id": UNKNOWN, "latestVersion": UNKNOWN, "name": "fleet-staging-api-0001",
            "namePrefix": "fleet-staging-api-", "vpcSecurityGroupIds": [UNKNOWN],
            "metadataOptions": {"httpTokens": "required"}, "userData": "I2Nsb3VkLWNvbmZpZwo=",
            "blockDeviceMappings": [{"ebs": {"encrypted": "true"}}], "tags": gtags},
            parent=group, prop_deps={"vpcSecurityGroupIds": [node_sg]}),
        _resource(*asg, {"name": "api-spot-0a1b2c3", "capacityRebalance": True, "targetGroupArns": [UNKNOWN],
                         "mixedInstancesPolicy": {
                             "instancesDistribution": {"onDemandPercentageAboveBaseCapacity": 0},
                             "launchTemplate": {"launchTemplateSpecification": {"version": UNKNOWN},
                                                "overrides": [{"instanceType": t} for t in ("m5.large", "m6i.large",
                                                                                            "m5a.large")]}},
                         "tags": [{"key": k, "value": val, "propagateAtLaunch": True} for k, val in gtags.items()]},
                  parent=group, ignore=["desiredCapacity"], prop_deps={"targetGroupArns": [(g.TARGET_GROUP, "api")]}),
        _resource(g.ASG_POLICY, "api-spot-target-cpu", {"autoscalingGroupName": "api-spot-0a1b2c3"}, parent=group,
                  prop_deps={"autoscalingGroupName": [asg]}),
        _resource(g.TARGET_GROUP, "api", {"arn": UNKNOWN, "name": "api", "deregistrationDelay": "30",
                                          "healthCheck": {"interval": 5}, "tags": gtags}, parent=group),
    ]


def test_analyze_stack_on_a_fresh_preview():
    servicer = _PolicyAnalyzerServicer("fleet-guardrails", "0.1.0", v.policies(), EnforcementLevel.MANDATORY)
    response = servicer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=fresh_preview()), None)
    found = sorted((d.policyName, d.urn.rsplit("::", 1)[1]) for d in response.diagnostics)
    assert found == [("instance-ingress-from-alb-only", "api-ssh"), ("no-fixed-names", "api"),
                     ("no-world-ingress", "api-ssh")], [d.message for d in response.diagnostics]
    assert all(d.enforcementLevel == analyzer_pb2.MANDATORY for d in response.diagnostics)


def test_analyze_stack_sees_ignore_changes():
    resources = fresh_preview()
    spot = next(r for r in resources if r.name == "api-spot")
    del spot.options.ignoreChanges[:]
    servicer = _PolicyAnalyzerServicer("fleet-guardrails", "0.1.0", v.policies(), EnforcementLevel.MANDATORY)
    response = servicer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources), None)
    assert ("asg-ignores-desired-capacity", spot.urn) in {(d.policyName, d.urn) for d in response.diagnostics}


# ---------------------------------------------------------------------------------------- the pack files

def test_pack_files():
    spec = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert spec["runtime"]["name"] == "python" and spec["description"]
    reqs = (ROOT / "policy" / "requirements.txt").read_text()
    assert "pulumi-policy" in reqs
    main = ast.parse((ROOT / "policy" / "__main__.py").read_text())
    calls = [n.value.func.id for n in main.body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
             and isinstance(n.value.func, ast.Name)]
    assert calls == ["PolicyPack"]  # the one module-level call that serves; everything else is in validators
