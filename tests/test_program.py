"""The whole program (`__main__.py` via runpy, as the Pulumi CLI runs it) under mocks, for both
stacks with their own config: counts per group, the ASG pairs, ignore_changes, no world-open
instance, valid AWS names, staging-only overrides, bad input -> no resource, URN stability."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter

import pytest
import yaml

from components.naming import SHORT_NAME_RE
from fleet.ops.rollout import health_alarm_prefix
from tests.pulumi_mocks import ROOT, Registered, Run, run_program, stack_config

ASG = "aws:autoscaling/group:Group"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
TG = "aws:lb/targetGroup:TargetGroup"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
ROLLOUT = "fleet:rollout:Rollout"
BLUEGREEN = "fleet:bluegreen:BlueGreenRollout"
GROUPS = ["12_04-bee", "12_04-www", "api", "12_04-cron"]
SLUGS = {"12_04-bee": "12-04-bee", "12_04-www": "12-04-www", "api": "api", "12_04-cron": "12-04-cron"}


@pytest.fixture(scope="module")
def staging() -> Run:
    return run_program("staging")


@pytest.fixture(scope="module")
def prod() -> Run:
    return run_program("prod")


@pytest.fixture(params=["staging", "prod"])
def stack_run(request, staging, prod) -> tuple[str, Run]:
    return request.param, {"staging": staging, "prod": prod}[request.param]


def node_of(r: Run, group: str) -> Registered:
    return r.named(SLUGS[group], "fleet:node_group:NodeGroup")


def counts(r: Run, group: str) -> Counter:
    return Counter(x.type for x in r.descendants(node_of(r, group)))


def asgs_of(r: Run, group: str, slot: str = "a") -> dict[str, Registered]:
    """The group's pair (a blue/green group's pair in `slot`)."""
    out = {}
    for asg in [x for x in r.descendants(node_of(r, group)) if x.type == ASG]:
        tags = {t["key"]: t["value"] for t in asg.inputs["tags"]}
        if tags.get("fleet:slot", slot) == slot:
            out[tags["fleet:capacity"]] = asg
    return out


def test_both_stacks_evaluate_without_warnings(stack_run):
    _, r = stack_run
    assert r.error is None
    assert r.warnings() == []
    urns = [x.urn for x in r.resources]
    assert len(urns) == len(set(urns)), "duplicate URNs (the mock engine would not notice)"


def test_resource_counts_per_group(stack_run):
    _, r = stack_run
    worker, www, api, cron = (counts(r, g) for g in GROUPS)
    for c in (worker, www, api):
        slots = 1 if c is worker else 2  # http groups deploy blue/green: two slots, each an ASG pair
        # the drain hooks; api's launching hooks too, since a blue/green slot keeps them as resources
        hooks = (4 if c is api else 2) * slots
        assert c[ASG] == 2 * slots and c["aws:autoscaling/lifecycleHook:LifecycleHook"] == hooks
        assert c["aws:iam/rolePolicy:RolePolicy"] == (1 if c is api else 0), "the boot's own statements"
        assert c["aws:autoscaling/policy:Policy"] == 6 * slots and c[LT] == 1
        assert c["command:local:Command"] == 3, "image build, one rollout, one health gate"
        assert (c[ROLLOUT], c[BLUEGREEN]) == ((1, 0) if c is worker else (0, 1))
        assert c["aws:iam/role:Role"] == 1 and c["aws:iam/rolePolicyAttachment:RolePolicyAttachment"] == 1
        assert c["aws:cloudwatch/dashboard:Dashboard"] == 1 and c["aws:ec2/instance:Instance"] == 0
    assert worker[TG] == 0 and worker[ALARM] == 4
    for c in (www, api):
        assert c[TG] == 2 and c["aws:lb/listenerRule:ListenerRule"] == 1 and c[ALARM] == 12
    assert cron[ASG] == 0 and cron["aws:ec2/instance:Instance"] == 1 and cron[LT] == 1
    assert cron["command:local:Command"] == 0, "builder ami: nothing to bake, no ASG to roll"
    assert cron["aws:iam/rolePolicy:RolePolicy"] == 1 and cron["aws:autoscaling/lifecycleHook:LifecycleHook"] == 0
    assert len(r.of_type("fleet:node_group:NodeGroup")) == 4
    assert len(r.of_type("aws:lb/loadBalancer:LoadBalancer")) == 1


def test_shared_infrastructure_per_stack(staging, prod):
    assert len(staging.of_type("aws:ec2/vpc:Vpc")) == 1 and len(staging.of_type("aws:ec2/subnet:Subnet")) == 4
    assert len(staging.of_type("aws:ec2/natGateway:NatGateway")) == 2
    assert not prod.of_type("aws:ec2/vpc:Vpc") and not prod.of_type("aws:ec2/subnet:Subnet")
    (s_listener,) = staging.of_type("aws:lb/listener:Listener")
    assert s_listener.inputs["protocol"] == "HTTP"
    assert sorted(x.inputs["protocol"] for x in prod.of_type("aws:lb/listener:Listener")) == ["HTTP", "HTTPS"]
    assert prod.of_type("aws:lb/loadBalancer:LoadBalancer")[0].inputs["enableDeletionProtection"] is True
    assert staging.of_type("aws:lb/loadBalancer:LoadBalancer")[0].inputs["enableDeletionProtection"] is False
    prod_subnets = stack_config("prod")["fleet:network"]["privateSubnetIds"]
    assert all(a.inputs["vpcZoneIdentifiers"] == prod_subnets for a in prod.of_type(ASG))
    assert "internal" not in {x.inputs["tags"].get("fleet:security-group") for x in prod.of_type(SG)}, "pinned in prod"
    assert "internal" in {x.inputs["tags"].get("fleet:security-group") for x in staging.of_type(SG)}


def test_asg_pairs_are_tagged_and_on_their_templates_latest_version(stack_run):
    stack, r = stack_run
    for g in ("12_04-bee", "12_04-www", "api"):
        (lt,) = [x for x in r.descendants(node_of(r, g)) if x.type == LT]
        pair = asgs_of(r, g)
        assert set(pair) == {"spot", "on-demand"}
        spec = pair["spot"].inputs["mixedInstancesPolicy"]["launchTemplate"]["launchTemplateSpecification"]
        assert spec == {"launchTemplateId": lt.id, "version": str(lt.outputs["latestVersion"])}
        assert pair["on-demand"].inputs["launchTemplate"] == {"id": lt.id, "version": str(lt.outputs["latestVersion"])}
        for capacity, asg in pair.items():
            tags = {t["key"]: t for t in asg.inputs["tags"]}
            assert tags["fleet:group"]["value"] == g and tags["fleet:stack"]["value"] == stack
            assert tags["fleet:capacity"]["value"] == capacity and tags["fleet:capacity"]["propagateAtLaunch"]
            assert "desiredCapacity" in asg.options["ignoreChanges"]
        dist = pair["spot"].inputs["mixedInstancesPolicy"]["instancesDistribution"]
        assert dist["onDemandPercentageAboveBaseCapacity"] == 0
        assert len(pair["spot"].inputs["mixedInstancesPolicy"]["launchTemplate"]["overrides"]) >= 3
        assert pair["spot"].inputs["maxSize"] > pair["spot"].inputs["desiredCapacity"]


def test_every_asg_ignores_desired_capacity(stack_run):
    _, r = stack_run
    assert len(r.of_type(ASG)) == 10
    assert all("desiredCapacity" in a.options["ignoreChanges"] for a in r.of_type(ASG))


def test_no_security_group_admits_the_world_to_an_instance(stack_run):
    _, r = stack_run
    alb_sg = [x for x in r.of_type(SG) if x.parent_type == "fleet:load_balancer:LoadBalancer"]
    (alb_sg,) = alb_sg
    instance_sgs = set()
    for lt in r.of_type(LT):
        instance_sgs |= set(lt.inputs["vpcSecurityGroupIds"])
        assert alb_sg.id not in lt.inputs["vpcSecurityGroupIds"]
    for rule in r.of_type(INGRESS):
        world = rule.inputs.get("cidrIpv4") == "0.0.0.0/0" or rule.inputs.get("cidrIpv6") == "::/0"
        if rule.inputs["securityGroupId"] in instance_sgs:
            assert not world and "cidrIpv4" not in rule.inputs and "cidrIpv6" not in rule.inputs
            assert rule.inputs["referencedSecurityGroupId"] in (alb_sg.id, rule.inputs["securityGroupId"])
        elif world:
            assert rule.inputs["securityGroupId"] == alb_sg.id and rule.inputs["fromPort"] in (80, 443)
    for sg in r.of_type(SG):
        assert "ingress" not in sg.inputs and "egress" not in sg.inputs


# AWS naming rules for what the program names (explicitly, by prefix, or through Pulumi autonaming)
NAME_RULES = {
    TG: (SHORT_NAME_RE, 32),
    "aws:lb/loadBalancer:LoadBalancer": (SHORT_NAME_RE, 32),
    ASG: (re.compile(r"^[\x21-\x7e]+$"), 255),
    LT: (re.compile(r"^[A-Za-z0-9().\-/_]{3,128}$"), 128),
    SG: (re.compile(r"^[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]+$"), 255),
    "aws:iam/role:Role": (re.compile(r"^[\w+=,.@-]+$"), 64),
    "aws:iam/instanceProfile:InstanceProfile": (re.compile(r"^[\w+=,.@-]+$"), 128),
    ALARM: (re.compile(r"^[\x20-\x7e]+$"), 255),
    "aws:autoscaling/policy:Policy": (re.compile(r"^[\x21-\x7e]+$"), 255),
    "aws:autoscaling/lifecycleHook:LifecycleHook": (re.compile(r"^[A-Za-z0-9\-_/]+$"), 255),
}


def test_every_derived_aws_name_is_valid(stack_run):
    _, r = stack_run
    seen = Counter()
    for typ, (pattern, limit) in NAME_RULES.items():
        for x in r.of_type(typ):
            name = x.outputs["name"]
            assert len(name) <= limit and pattern.match(name), (typ, name)
            seen[typ] += 1
    assert seen[TG] == 4 and seen[ASG] == 10
    for dash in r.of_type("aws:cloudwatch/dashboard:Dashboard"):
        assert re.match(r"^[A-Za-z0-9_-]{1,255}$", dash.inputs["dashboardName"])
    for sg in r.of_type(SG):
        assert len(sg.inputs["namePrefix"]) <= 255 - 26
    for cmd in r.of_type("command:local:Command"):
        if cmd.parent_type == "fleet:baked_image:BakedImage":
            assert "12_04" in cmd.inputs["create"] or "api" in cmd.inputs["create"]  # group names, as the CLI wants


def test_staging_overrides_change_staging_only(staging, prod):
    sizes = {}
    for name, r in (("staging", staging), ("prod", prod)):
        sizes[name] = {(g, c): (a.inputs["minSize"], a.inputs["maxSize"])
                       for g in ("12_04-bee", "12_04-www", "api") for c, a in asgs_of(r, g).items()}
    nodes = yaml.safe_load((ROOT / "nodes.yaml").read_text())
    for g in ("12_04-bee", "12_04-www", "api"):
        auto = nodes[g]["autoscale"]
        # node_min/node_max are the pair's total: the on-demand base counts inside, spot takes the rest
        (lo, hi), (od_lo, _) = sizes["prod"][(g, "spot")], sizes["prod"][(g, "on-demand")]
        assert lo + od_lo == auto["node_min"] and hi + od_lo > auto["node_max"], "prod uses nodes.yaml as written"
        override = stack_config("staging")["fleet:groups"][g]["autoscale"]
        (lo, hi), (od_lo, _) = sizes["staging"][(g, "spot")], sizes["staging"][(g, "on-demand")]
        assert lo + od_lo == override["node_min"]
        assert override["node_max"] < hi + od_lo <= override["node_max"] + 1
    # everything the overrides do not name is the same in both stacks
    for g in ("12_04-bee", "12_04-www", "api"):
        for c in ("spot", "on-demand"):
            a, b = asgs_of(staging, g)[c].inputs, asgs_of(prod, g)[c].inputs
            for key in ("healthCheckGracePeriod", "healthCheckType", "defaultInstanceWarmup", "capacityRebalance"):
                assert a.get(key) == b.get(key), (g, c, key)
            if c == "spot":
                assert a["mixedInstancesPolicy"]["launchTemplate"]["overrides"] == \
                    b["mixedInstancesPolicy"]["launchTemplate"]["overrides"]


def test_without_its_overrides_staging_sizes_equal_prod(prod):
    cfg = stack_config("staging")
    del cfg["fleet:groups"]
    plain = run_program("staging", cfg)
    for g in ("12_04-bee", "12_04-www", "api"):
        for c in ("spot", "on-demand"):
            a, b = asgs_of(plain, g)[c].inputs, asgs_of(prod, g)[c].inputs
            for key in ("minSize", "maxSize", "desiredCapacity"):
                assert a[key] == b[key], (g, c, key)


def test_stack_outputs(stack_run):
    _, r = stack_run
    (alb,) = r.of_type("aws:lb/loadBalancer:LoadBalancer")
    assert r.outputs["alb_dns_name"] == alb.outputs["dnsName"]
    assert set(r.outputs["groups"]) == set(GROUPS)
    for g in ("12_04-bee", "12_04-www", "api"):
        out, pair = r.outputs["groups"][g], asgs_of(r, g)
        assert out["spot_asg_name"] == pair["spot"].outputs["name"]
        assert out["on_demand_asg_name"] == pair["on-demand"].outputs["name"]
        (lt,) = [x for x in r.descendants(node_of(r, g)) if x.type == LT]
        assert out["launch_template_id"] == lt.id and lt.inputs["imageId"] == out["ami_id"]
        assert out["ami_id"].startswith("ami-")
    for g in ("12_04-www", "api"):
        (tg,) = [x for x in r.descendants(node_of(r, g)) if x.type == TG and x.name == SLUGS[g]]  # slot a's
        assert r.outputs["groups"][g]["target_group_arn"] == tg.outputs["arn"]
        names = r.outputs["groups"][g]["health_alarm_names"]
        assert len(names) == 4 and all(n.startswith(health_alarm_prefix(g, _stack(r))) for n in names)
    assert len(r.outputs["groups"]["12_04-cron"]["instance_ids"]) == 1


def _stack(r: Run) -> str:
    return r.resources[0].urn.split("::")[0].split(":")[-1]


def test_listener_rule_priorities_are_distinct_and_stable(staging, prod):
    def priorities(r):
        return {x.parent_name: x.inputs["priority"] for x in r.of_type("aws:lb/listenerRule:ListenerRule")}
    assert priorities(staging) == priorities(prod)
    assert len(set(priorities(staging).values())) == 2


def test_locked_filters_need_no_ami_lookup_in_the_whole_program():
    cfg = stack_config("staging")
    cfg["fleet:groups"]["12_04-bee"]["image"] = {"builder": "ami"}  # now two groups share the Ubuntu filter
    r = run_program("staging", cfg)
    assert [t for t, _ in r.calls].count("aws:ec2/getAmi:getAmi") == 0
    assert r.outputs["groups"]["12_04-bee"]["ami_id"] == r.outputs["groups"]["12_04-cron"]["ami_id"]
    assert r.outputs["groups"]["12_04-cron"]["ami_id"] == json.loads(
        (ROOT / "nodes.lock.json").read_text())["images"]["us-east-1"][
        "099720109477/ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"]["ami_id"]


def _bad(cfg) -> Run:
    r = run_program("staging", cfg, raise_errors=False)
    assert r.error is not None and type(r.error).__name__ == "RunError"
    assert r.resources == [], "bad input must register no resource"
    return r


def test_bad_stack_override_registers_nothing_and_names_each_problem():
    cfg = stack_config("staging")
    cfg["fleet:groups"] = {"12_04-www": {"autoscale": {"node_mni": 1}}, "api": {"instance_type": "m5.lrage"}}
    r = _bad(cfg)
    errors = [m for level, m in r.logs if level == "ERROR"]
    assert errors == [
        "Pulumi.staging.yaml: group '12_04-www': key 'autoscale.node_mni': unknown key (did you mean 'node_min'?)",
        "Pulumi.staging.yaml: group 'api': key 'instance_type': unknown EC2 instance type 'm5.lrage' "
        "(did you mean 'm5.large'?)",
    ]
    assert "2 problem(s)" in str(r.error) and "\n" not in str(r.error)


def test_bad_nodes_file_registers_nothing(tmp_path):
    text = (ROOT / "nodes.yaml").read_text().replace("node_max: 12", "node_max: 1")  # 12_04-www: min 2 > max 1
    bad = tmp_path / "nodes.yaml"
    bad.write_text(text)
    shutil.copy(ROOT / "nodes.lock.json", tmp_path / "nodes.lock.json")
    cfg = stack_config("prod")
    cfg["fleet:nodesFile"] = str(bad)
    r = _bad(cfg)
    (error,) = [m for level, m in r.logs if level == "ERROR"]
    assert error.startswith(f"{bad}:") and "group '12_04-www'" in error and "node_min" in error


def test_malformed_config_values_are_one_line_each():
    cfg = stack_config("staging")
    cfg["fleet:groups"] = "{not json"
    cfg["fleet:deletionProtection"] = "maybe"
    r = _bad(cfg)
    errors = sorted(m for level, m in r.logs if level == "ERROR")
    assert errors == ["Pulumi.staging.yaml: key 'fleet:deletionProtection': must be a bool, not str",
                      "Pulumi.staging.yaml: key 'fleet:groups': must be a mapping, not str"]


def test_misspelled_config_key_is_reported():
    cfg = stack_config("prod")
    cfg["fleet:certficateArn"] = cfg.pop("fleet:certificateArn")
    r = _bad(cfg)
    assert any("fleet:certficateArn" in m and "did you mean" in m for level, m in r.logs if level == "ERROR")


# -- URN stability: what aliases would have to cover --------------------------------

def _group_urns(r: Run, group: str) -> set[str]:
    return {x.urn for x in r.descendants(node_of(r, group))} | {node_of(r, group).urn}


def test_every_resource_is_inside_a_fleet_component(stack_run):
    _, r = stack_run
    for x in r.resources:
        if x.parent is None:
            assert x.type.startswith("fleet:"), f"{x.type} {x.name} registered at the root"
        else:
            assert x.parent_type.startswith("fleet:")
    # pulumi-aws adds type aliases of its own (aws:elasticloadbalancingv2/... -> aws:lb/...); ours would
    # name a parent or a name. First release: nothing moved, so none.
    ours = [(x.name, a) for x in r.resources for a in x.options["aliases"]
            if not (isinstance(a, dict) and set(a.get("spec", {})) <= {"type", "parentUrn"}
                    and not a["spec"].get("parentUrn"))]
    assert ours == []
    components = [x for x in r.resources if not x.custom]
    assert {x.urn for x in components} <= set(r.component_outputs), "every component registers its outputs"


def test_removing_a_group_moves_nothing_else(tmp_path, staging):
    nodes = yaml.safe_load((ROOT / "nodes.yaml").read_text())
    del nodes["api"]
    smaller = tmp_path / "nodes.yaml"
    smaller.write_text(yaml.safe_dump(nodes, sort_keys=False))
    shutil.copy(ROOT / "nodes.lock.json", tmp_path / "nodes.lock.json")
    cfg = stack_config("staging")
    del cfg["fleet:groups"]["api"]
    cfg["fleet:nodesFile"] = str(smaller)
    r = run_program("staging", cfg)
    for g in ("12_04-bee", "12_04-www", "12_04-cron"):
        assert _group_urns(r, g) == _group_urns(staging, g)
    rules = "aws:lb/listenerRule:ListenerRule"
    assert [x.inputs["priority"] for x in r.of_type(rules)] == [
        x.inputs["priority"] for x in staging.of_type(rules) if x.parent_name == "12-04-www"]


def test_group_urns_are_the_same_in_both_stacks(staging, prod):
    def shape(r, g):  # alarm logical names carry the stack (their AWS names need it): mask it
        return {u.split("::", 2)[2].replace(f"fleet-{_stack(r)}-", "fleet-<stack>-") for u in _group_urns(r, g)}
    for g in GROUPS:
        assert shape(staging, g) == shape(prod, g)


def test_no_python_warnings_from_our_code():
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_program("prod")
    ours = [w for w in caught if any(part in w.filename for part in ("/components/", "/fleet/", "__main__.py"))]
    assert ours == []


def test_both_stacks_pass_the_guardrails(stack_run):
    from fleet.plan.guardrails import check_all

    stack, r = stack_run
    assert check_all(r.views(), stack) == []


def test_a_group_without_three_spot_types_is_refused_before_anything_is_registered():
    cfg = stack_config("staging")
    cfg["fleet:groups"]["api"]["instance_type"] = "x1.16xlarge"  # no x86 neighbours of the same size
    r = _bad(cfg)
    (error,) = [m for level, m in r.logs if level == "ERROR"]
    assert "group 'api'" in error and "autoscale.spot.instance_types" in error and "3+" in error


# -- operations: rollouts per ASG, one spot interruption handler per stack ----------------

def test_every_autoscaled_group_rolls_its_pair_once(stack_run):
    stack, r = stack_run
    for g in ("12_04-www", "api"):  # http groups: blue/green (tests/test_bluegreen_components.py)
        (cmd,) = [x for x in r.descendants(node_of(r, g)) if x.parent_type == BLUEGREEN]
        assert cmd.inputs["create"].startswith(".venv/bin/python -m fleet.ops.bluegreen ")
        assert not [x for x in r.descendants(node_of(r, g)) if x.type == ROLLOUT]
    for g in ("12_04-bee",):
        (lt,) = [x for x in r.descendants(node_of(r, g)) if x.type == LT]
        pair = asgs_of(r, g)
        (cmd,) = [x for x in r.descendants(node_of(r, g)) if x.parent_type == ROLLOUT]
        assert cmd.inputs["triggers"] == [lt.outputs["latestVersion"]]
        line = cmd.inputs["create"]
        assert line.startswith(".venv/bin/python -m fleet.ops.rollout ")
        assert f"--group {g} --stack {stack} --launch-template-id {lt.id} --version 1" in line
        assert "--capacity" not in line and "--bake-time 300" in line
        assert f"--region {stack_config(stack).get('aws:region', 'us-east-1')}" in line
        for name in r.outputs["groups"][g]["health_alarm_names"]:
            assert f"--alarm {name}" in line
        for capacity in ("spot", "on-demand"):
            # initialLifecycleHooks: set at creation only (a change would replace the ASG)
            assert pair[capacity].options["ignoreChanges"] == ["desiredCapacity"] + (
                ["minSize", "maxSize"] if capacity == "on-demand" else []) + ["initialLifecycleHooks"]
            assert cmd.name in pair[capacity].options["dependsOn"]  # the refreshes run before the ASG updates
    assert not [x for x in r.descendants(node_of(r, "12_04-cron")) if x.type == ROLLOUT]


def test_one_spot_capacity_reconciler_per_stack(stack_run):
    stack, r = stack_run
    (sc,) = r.of_type("fleet:spot_capacity:SpotCapacity")
    assert sc.parent is None
    (fn,) = r.children(sc, "aws:lambda/function:Function")
    (table,) = r.children(sc, "aws:dynamodb/table:Table")
    assert fn.parent == sc.urn and fn.inputs["environment"]["variables"] == {
        "FLEET_STACK": stack, "FLEET_CAPACITY_TABLE": table.outputs["name"]}
    (policy,) = [p for p in r.children(sc, "aws:iam/rolePolicy:RolePolicy") if "Drain" in p.inputs["policy"]]
    drain = next(st for st in json.loads(policy.inputs["policy"])["Statement"] if st["Sid"] == "Drain")
    assert sorted(drain["Resource"]) == sorted(x.outputs["arn"] for x in r.of_type(TG)), "the stack's target groups"
    spot_names = sorted([g["spot_asg_name"] for g in r.outputs["groups"].values() if g["spot_asg_name"]]
                        + [g["slots"]["slots"]["b"]["spot_asg_name"] for g in r.outputs["groups"].values()
                           if g["slots"]])
    (rule,) = [x for x in r.children(sc, "aws:cloudwatch/eventRule:EventRule") if x.name.endswith("-asg-0")]
    assert json.loads(rule.inputs["eventPattern"])["detail"]["AutoScalingGroupName"] == spot_names
    capped = [a for a in r.children(sc, "aws:cloudwatch/metricAlarm:MetricAlarm")]
    assert sorted(a.inputs["dimensions"]["Group"] for a in capped) == sorted(
        g for g, v in r.outputs["groups"].items() if v["spot_asg_name"])
    assert set(r.outputs["spot_capacity"]) == {"function_name", "table_name", "dead_letter_queue_url",
                                               "log_group_name"}
    for asg in r.of_type("aws:autoscaling/group:Group"):
        tags = {t["key"]: t for t in asg.inputs["tags"]}
        if tags["fleet:capacity"]["value"] == "on-demand" and tags.get("fleet:slot", {}).get("value") != "b":
            base = str(int(asg.inputs["minSize"]))  # slot b starts parked at 0; its base is slot a's
            assert tags["fleet:on-demand-base"] == {"key": "fleet:on-demand-base", "value": base,
                                                    "propagateAtLaunch": False}


def test_no_spot_capacity_reconciler_without_autoscaled_groups(tmp_path):
    nodes = yaml.safe_load((ROOT / "nodes.yaml").read_text())
    only = tmp_path / "nodes.yaml"
    kept = {k: v for k, v in nodes.items() if k in ("__base__", "12_04-cron")}
    only.write_text(yaml.safe_dump(kept, sort_keys=False))
    shutil.copy(ROOT / "nodes.lock.json", tmp_path / "nodes.lock.json")
    cfg = stack_config("staging")
    del cfg["fleet:groups"]
    cfg["fleet:nodesFile"] = str(only)
    r = run_program("staging", cfg)
    assert not r.of_type("fleet:spot_capacity:SpotCapacity") and "spot_capacity" not in r.outputs
    assert not r.of_type(ROLLOUT)
