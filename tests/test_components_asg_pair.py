"""AsgPair under mocks: the spot ASG (100% spot over 3+ types, price-capacity-optimized, capacity
rebalance, headroom) and the on-demand ASG (base, on_demand_max), both on the launch template's
latest version, autonamed, ignore_changes on desired capacity, tagged, with a drain hook."""

from __future__ import annotations

import pytest

from components.asg_pair import AsgPair, AsgPairArgs, on_demand_capacity, spot_capacity
from fleet.ops.timing import drain_seconds
from fleet.spec.instance_types import known_instance_types
from fleet.spec.spot_types import derived_types, spot_instance_types
from tests.pulumi_mocks import group, http_group, run, worker_group

ASG = "aws:autoscaling/group:Group"
HOOK = "aws:autoscaling/lifecycleHook:LifecycleHook"
SUBNETS = ["subnet-00000011", "subnet-00000012"]
TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-1234567/0123456789abcdef"


def _pair(g, extra=(), tg=True):
    def program():
        pair = AsgPair(g.name, AsgPairArgs(
            group=g, stack="prod", launch_template_id="lt-0123456789abcdef0", launch_template_version=3,
            subnet_ids=SUBNETS, spot_instance_types=spot_instance_types(g),
            target_group_arns=[TG_ARN] if g.http and tg else [], tags={"fleet:group": g.name, "team": "platform"},
            extra_ignore_changes=extra))
        return [pair.spot.name, pair.on_demand.name]
    r = run(program, stack="prod")
    asgs = {x.inputs["tags"][0]["value"]: x for x in r.of_type(ASG)}  # sorted tags: Name first
    tags = {name: {t["key"]: t for t in x.inputs["tags"]} for name, x in asgs.items()}
    spot = next(x for n, x in asgs.items() if tags[n]["fleet:capacity"]["value"] == "spot")
    od = next(x for n, x in asgs.items() if tags[n]["fleet:capacity"]["value"] == "on-demand")
    return r, spot, od


def test_both_asgs_use_the_latest_version_and_ignore_desired_capacity():
    r, spot, od = _pair(http_group("web"), extra=["launch_template"])
    spec = spot.inputs["mixedInstancesPolicy"]["launchTemplate"]["launchTemplateSpecification"]
    assert spec == {"launchTemplateId": "lt-0123456789abcdef0", "version": "3"}
    assert od.inputs["launchTemplate"] == {"id": "lt-0123456789abcdef0", "version": "3"}
    for asg in (spot, od):
        assert "desiredCapacity" in asg.options["ignoreChanges"]
        assert "launchTemplate" in asg.options["ignoreChanges"], "extra ignore_changes reach both ASGs"
        assert "name" not in asg.inputs and "namePrefix" not in asg.inputs
        assert asg.inputs["vpcZoneIdentifiers"] == SUBNETS
        assert asg.inputs["waitForCapacityTimeout"] == "0"
        assert asg.parent_type == "fleet:asg_pair:AsgPair"
    assert r.value == [spot.outputs["name"], od.outputs["name"]]


def test_spot_asg_is_all_spot_over_three_plus_types_with_rebalance_and_headroom():
    _, spot, _ = _pair(http_group("web", autoscale={"node_min": 2, "node_max": 12, "timeout": 180}))
    dist = spot.inputs["mixedInstancesPolicy"]["instancesDistribution"]
    assert dist["onDemandBaseCapacity"] == 0 and dist["onDemandPercentageAboveBaseCapacity"] == 0
    assert dist["spotAllocationStrategy"] == "price-capacity-optimized"
    types = [o["instanceType"] for o in spot.inputs["mixedInstancesPolicy"]["launchTemplate"]["overrides"]]
    assert len(types) >= 3 and len(set(types)) == len(types) and types[0] == "m5.large"
    assert set(types) <= known_instance_types()
    assert spot.inputs["capacityRebalance"] is True
    # node_min/node_max are the total: the on-demand base (1 for http) counts inside, spot takes the rest
    assert (spot.inputs["minSize"], spot.inputs["desiredCapacity"]) == (1, 1)
    assert spot.inputs["maxSize"] == 13 > 12 - 1, "headroom above spot's share for rebalancing"


def test_on_demand_asg_keeps_its_base_and_caps_at_on_demand_max():
    _, _, od = _pair(http_group("web", autoscale={"node_min": 2, "node_max": 12, "on_demand": {"base": 0, "max": 4}}))
    assert (od.inputs["minSize"], od.inputs["desiredCapacity"], od.inputs["maxSize"]) == (1, 1, 4)
    assert "mixedInstancesPolicy" not in od.inputs and "capacityRebalance" not in od.inputs
    _, _, od = _pair(worker_group("jobs", autoscale={"node_min": 1, "node_max": 4, "on_demand": {"base": 0}}))
    assert (od.inputs["minSize"], od.inputs["maxSize"]) == (0, 4)


def test_http_groups_use_elb_health_checks_and_attach_only_via_target_group_arns():
    r, spot, od = _pair(http_group("web", autoscale={"node_min": 2, "node_max": 6, "timeout": 150}))
    for asg in (spot, od):
        assert asg.inputs["healthCheckType"] == "ELB"
        assert asg.inputs["healthCheckGracePeriod"] == 150 and asg.inputs["defaultInstanceWarmup"] == 150
        assert asg.inputs["targetGroupArns"] == [TG_ARN]
        assert "GroupInServiceInstances" in asg.inputs["enabledMetrics"]
        assert asg.inputs["metricsGranularity"] == "1Minute"
    assert not [x for x in r.resources if "attachment" in x.type.lower()]


def test_workers_use_ec2_health_checks_and_no_target_groups():
    _, spot, od = _pair(worker_group("jobs"))
    for asg in (spot, od):
        assert asg.inputs["healthCheckType"] == "EC2" and "targetGroupArns" not in asg.inputs


def test_tags_are_propagated_and_name_the_capacity():
    _, spot, od = _pair(http_group("12_04-www"))
    for asg, capacity in ((spot, "spot"), (od, "on-demand")):
        tags = {t["key"]: t for t in asg.inputs["tags"]}
        assert tags["fleet:group"]["value"] == "12_04-www" and tags["fleet:stack"]["value"] == "prod"
        assert tags["fleet:capacity"]["value"] == capacity and tags["team"]["value"] == "platform"
        assert all(t["propagateAtLaunch"] is True for k, t in tags.items() if k not in RECONCILER_TAGS)
    base = {t["key"]: t for t in od.inputs["tags"]}["fleet:on-demand-base"]
    assert base == {"key": "fleet:on-demand-base", "value": "1", "propagateAtLaunch": False}, \
        "the reconciler's base, on the ASG only"


RECONCILER_TAGS = ("fleet:on-demand-base", "fleet:pair-ceiling", "fleet:on-demand-max")


def test_the_on_demand_asg_carries_the_pair_ceiling_and_leaves_its_max_size_to_the_reconciler():
    # node_max 2: spot max 1 + 1 headroom, on-demand max 2: 4 together, the ceiling is 3
    g = http_group("12_04-bee", autoscale={"node_min": 2, "node_max": 2})
    _, spot, od = _pair(g)
    tags = {t["key"]: t for t in od.inputs["tags"]}
    assert (spot.inputs["maxSize"], od.inputs["maxSize"]) == (2, 2)
    assert tags["fleet:pair-ceiling"]["value"] == "3" and tags["fleet:on-demand-max"]["value"] == "2"
    assert all(not tags[k]["propagateAtLaunch"] for k in RECONCILER_TAGS)
    assert "maxSize" in od.options["ignoreChanges"] and "maxSize" not in spot.options["ignoreChanges"]


def test_termination_hook_drains_briefly_then_continues():
    g = http_group("web", http={"port": 8080, "hosts": ["a.example.com"], "deregistration_delay": 45})
    r, spot, od = _pair(g)
    hooks = r.of_type(HOOK)
    assert len(hooks) == 2
    assert {h.inputs["autoscalingGroupName"] for h in hooks} == {spot.outputs["name"], od.outputs["name"]}
    for h in hooks:
        assert h.inputs["lifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
        assert h.inputs["defaultResult"] == "CONTINUE"
        assert h.inputs["heartbeatTimeout"] == 45 < 3600
    assert drain_seconds(worker_group("jobs")) == 60
    assert drain_seconds(http_group("w", http={"port": 1, "paths": ["/"], "deregistration_delay": 5})) == 30


def test_termination_hook_heartbeat_is_never_below_aws_minimum():
    """A deregistration delay under 30 s still gets AWS's least heartbeat (PutLifecycleHook refuses less),
    and the rollout's timing model drains for the same 30 s."""
    from fleet.ops import timing

    g = http_group("web", http={"port": 8080, "hosts": ["a.example.com"], "deregistration_delay": 5})
    r, _, _ = _pair(g)
    assert {h.inputs["heartbeatTimeout"] for h in r.of_type(HOOK)} == {30}
    assert timing.replace_seconds(g) == timing.boot_seconds(g) + 30


def test_one_off_groups_and_thin_spot_lists_are_refused():
    with pytest.raises(ValueError, match="autoscale: false"):
        _pair(group("cron"))
    g = worker_group("jobs")
    with pytest.raises(ValueError, match="3\\+ instance types"):
        run(lambda: AsgPair("jobs", AsgPairArgs(group=g, stack="prod", launch_template_id="lt-1",
                                                launch_template_version=1, subnet_ids=SUBNETS,
                                                spot_instance_types=["m5.large", "m5a.large"])))


def test_capacity_helpers_follow_seed_004():
    g = http_group("web", autoscale={"node_min": 1, "node_max": 2})
    assert spot_capacity(g) == (0, 0, 2)  # the total 1-2 minus the on-demand base 1, + 1 headroom
    assert on_demand_capacity(g) == (1, 1, 2)
    big = worker_group("w", autoscale={"node_min": 10, "node_max": 40})
    assert spot_capacity(big) == (9, 9, 43)  # 39 + 10 % headroom


@pytest.mark.parametrize("instance_type", ["m5.large", "c6i.large", "t3.medium", "m5.xlarge", "r5.2xlarge"])
def test_spot_types_are_derived_from_the_instance_type_family(instance_type):
    types = spot_instance_types(worker_group("w", instance_type=instance_type))
    assert types[0] == instance_type and len(types) >= 3 and set(types) <= known_instance_types()
    size = instance_type.split(".")[1]
    assert all(t.split(".")[1] == size for t in types)
    assert not any("g" in t.split(".")[0][2:] or "d" in t.split(".")[0][2:] for t in types), "x86, no local disk"


def test_listed_spot_types_are_kept_and_short_lists_completed():
    listed = ["m5.large", "m5a.large", "m6i.large", "m6a.large"]
    assert spot_instance_types(worker_group("w", autoscale={"spot": {"instance_types": listed}})) == listed
    two = spot_instance_types(worker_group("w", autoscale={"spot": {"instance_types": ["m6a.large", "m5.large"]}}))
    assert two[:2] == ["m6a.large", "m5.large"] and len(two) == 4
    assert derived_types("c7g.large", "arm64")[1].startswith(("c7g", "c8g", "c6g"))
