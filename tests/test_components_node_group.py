"""NodeGroup under mocks: the composition per kind of group (http, worker, one-off), children as
attributes, every resource inside the group's component tree, and the hooks the rollout needs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from components.node_group import NodeGroup, NodeGroupArgs
from fleet.spec.stack import StackConfig
from tests.pulumi_mocks import group, http_group, run, worker_group

PROJECT = Path(__file__).resolve().parent.parent  # the real project: its Pulumi.yaml names the venv

STACK = StackConfig(name="prod", region="us-east-1", environment="production", amis={"pinned": "ami-0aaaabbbbccccdddd"})
SUBNETS = ["subnet-00000011", "subnet-00000012"]


def _node(g, stack=STACK, **kw):
    holder = {}

    def program():
        node = holder["node"] = NodeGroup(g.name, NodeGroupArgs(
            group=g, stack=stack, image_hash="ab" * 32, project_dir=PROJECT, vpc_id="vpc-0a1b2c3d",
            private_subnet_ids=SUBNETS, security_group_ids=["sg-00000001"],
            listener_arn="arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/x/1/2" if g.http else None,
            load_balancer_arn_suffix="app/x/1" if g.http else None, rule_priority=1000 if g.http else None, **kw))
        return node.outputs
    r = run(program, stack=stack.name)
    return r, holder["node"], Counter(x.type for x in r.resources)


def test_http_group_composition():
    # the refresh strategy's composition (blue/green: tests/test_bluegreen_components.py)
    r, node, n = _node(http_group("12_04-www", rollout={"strategy": "refresh"}))
    assert n["fleet:node_group:NodeGroup"] == 1
    for token in ("baked_image:BakedImage", "launch_template:LaunchTemplate", "asg_pair:AsgPair",
                  "target_group:TargetGroup", "scaling:ScalingPolicies", "dashboard:Dashboard"):
        assert n[f"fleet:{token}"] == 1, token
    assert n["command:local:Command"] == 3 and n["fleet:rollout:Rollout"] == 1  # image build, rollout, health gate
    assert n["fleet:health_gate:HealthGate"] == 1
    assert n["aws:autoscaling/group:Group"] == 2 and n["aws:autoscaling/lifecycleHook:LifecycleHook"] == 2
    assert n["aws:lb/targetGroup:TargetGroup"] == 1 and n["aws:lb/listenerRule:ListenerRule"] == 1
    assert n["aws:autoscaling/policy:Policy"] == 6 and n["aws:cloudwatch/metricAlarm:MetricAlarm"] == 6
    assert n["aws:ec2/instance:Instance"] == 0
    assert node.asg_pair.spot is not None and node.asg_pair.on_demand is not None
    assert node.launch_template.template is not None and len(node.alarms) == 6 and len(node.health_alarms) == 2
    out = r.value
    assert out["target_group_arn"].startswith("arn:aws:elasticloadbalancing:")
    assert out["spot_asg_name"].startswith("12-04-www-spot-") and out["launch_template_version"] == 1
    assert len(out["health_alarm_names"]) == 2


def test_every_resource_lives_under_the_node_group():
    r, _, _ = _node(http_group("web"))
    (root,) = r.of_type("fleet:node_group:NodeGroup")
    assert root.parent is None
    assert {x.urn for x in r.descendants(root)} == {x.urn for x in r.resources} - {root.urn}


def test_worker_group_has_no_target_group_and_no_health_alarms():
    r, node, n = _node(worker_group("12_04-bee"))
    assert n["fleet:target_group:TargetGroup"] == 0 and n["aws:lb/targetGroup:TargetGroup"] == 0
    assert n["aws:autoscaling/group:Group"] == 2 and node.health_alarms == [] and len(node.alarms) == 4
    assert r.value["target_group_arn"] is None


def test_one_off_group_gets_instances_from_the_launch_template():
    g = group("12_04-cron", instances=3, image={"builder": "ami"})
    r, node, n = _node(g)
    assert n["aws:autoscaling/group:Group"] == 0 and n["aws:autoscaling/policy:Policy"] == 0
    assert n["command:local:Command"] == 0
    instances = r.of_type("aws:ec2/instance:Instance")
    (lt,) = r.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    assert len(instances) == 3
    assert all(i.inputs["launchTemplate"] == {"id": lt.id, "version": "1"} for i in instances)
    assert sorted(i.inputs["subnetId"] for i in instances) == sorted([SUBNETS[0], SUBNETS[1], SUBNETS[0]])
    assert node.asg_pair is None and len(r.value["instance_ids"]) == 3
    assert n["fleet:dashboard:Dashboard"] == 1


def test_stack_pin_replaces_the_build():
    r, node, n = _node(http_group("pinned"))
    assert n["command:local:Command"] == 2, "no image build, only the rollout and the health gate"
    assert r.value["ami_id"] == "ami-0aaaabbbbccccdddd"
    (lt,) = r.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    assert lt.inputs["imageId"] == "ami-0aaaabbbbccccdddd"


def test_rollout_hook_extra_ignore_changes_reach_both_asgs():
    r, _, _ = _node(worker_group("jobs"), asg_extra_ignore_changes=["launch_template", "mixed_instances_policy"])
    for asg in r.of_type("aws:autoscaling/group:Group"):
        assert {"desiredCapacity", "launchTemplate", "mixedInstancesPolicy"} <= set(asg.options["ignoreChanges"])


def test_http_group_without_listener_is_refused():
    g = http_group("web")
    with pytest.raises(ValueError, match="no load balancer listener"):
        run(lambda: NodeGroup("web", NodeGroupArgs(group=g, stack=STACK, image_hash="x", project_dir=Path("."),
                                                   vpc_id="vpc-1", private_subnet_ids=SUBNETS,
                                                   security_group_ids=[])))
