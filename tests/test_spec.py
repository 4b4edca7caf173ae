"""Loading the fleet: inheritance, defaults, stack overrides, the seed-001 example."""

import dataclasses
from pathlib import Path

import pytest

from fleet.render.role import render_role
from fleet.spec.errors import SpecError
from fleet.spec.load import load_fleet
from fleet.spec.model import Burst, Group, HealthCheck, ScaleIn, Scaling

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "tests" / "fixtures" / "seed001.yaml"


def test_seed_001_bee_merged_as_the_seed_describes():
    bee = load_fleet(SEED).groups["12_04-bee"]
    assert bee.instance_type == "m1.large"
    assert bee.source_ami == "ami-1ebb2077"
    assert bee.security_groups == ("external", "internal", "bee")
    assert dict(bee.default_attributes) == {"environment": "production", "key": "value", "other_key": "value"}
    assert (bee.autoscale.timeout, bee.autoscale.node_min, bee.autoscale.node_max) == (120, 2, 2)


def test_seed_001_bee_role():
    role = render_role(load_fleet(SEED).groups["12_04-bee"])
    assert role == {
        "name": "role-12_04-bee",
        "chef_type": "role",
        "json_class": "Chef::Role",
        "description": "12_04-bee-ec2 instance, responsible for worker processes",
        "override_attributes": {},
        "default_attributes": {"environment": "production", "key": "value", "other_key": "value"},
        "run_list": [  # base run_list, group run_list, then post_run_list
            "recipe[seatgeek::base-server]",
            "recipe[seatgeek::collect-services]",
            "recipe[seatgeek::decommission-services]",
            "recipe[seatgeek-service::api-workers]",
            "recipe[seatgeek-service::cronq-workers]",
            "recipe[seatgeek-service::djjob]",
            "recipe[seatgeek::notify-services]",
            "recipe[sudo]",
        ],
    }


def test_seed_001_www_inherits_autoscale_false():
    www = load_fleet(SEED).groups["12_04-www"]
    assert www.autoscale is None and www.instances == 1
    assert www.instance_type == "m3.xlarge"


def test_every_default_is_filled_in():
    api = load_fleet(ROOT / "nodes.yaml").groups["api"]
    assert api.scaling == Scaling(target_cpu=45, burst=Burst(85, 2, 60, 20), scale_in=ScaleIn(30, 10, 60, 10, 300))
    assert api.scaling.on_demand.target_cpu == 75 and api.scaling.on_demand.burst_cpu == 95
    assert api.http.health_check == HealthCheck(path="/status", interval=5, timeout=2, healthy_threshold=2,
                                                unhealthy_threshold=2, matcher="200-399")
    assert api.http.deregistration_delay == 30 and api.http.slow_start == 30
    assert api.volume.size == 20 and api.volume.type == "gp3"
    assert api.autoscale.on_demand.base == 1 and api.autoscale.on_demand_max == api.autoscale.node_max


def test_nested_defaults_are_completed_field_by_field(tmp_path):
    f = tmp_path / "nodes.yaml"
    f.write_text("g:\n  instance_type: m5.large\n  source_ami: ami-12345678\n  scaling: {burst: {cpu: 90}}\n")
    g = load_fleet(f).groups["g"]
    assert g.scaling.burst == Burst(cpu=90, periods=2, period=60, add_percent=20)
    assert g.scaling.target_cpu == 50


def test_groups_are_frozen():
    g = load_fleet(ROOT / "nodes.yaml").groups["api"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.instance_type = "m5.large"  # type: ignore[misc]
    with pytest.raises(TypeError):
        g.tags["x"] = "y"  # type: ignore[index]
    assert isinstance(g, Group)


def test_staging_overrides_change_staging_only():
    plain = load_fleet(ROOT / "nodes.yaml").groups["12_04-www"]
    staging = load_fleet(ROOT / "nodes.yaml", "staging").groups["12_04-www"]
    prod = load_fleet(ROOT / "nodes.yaml", "prod").groups["12_04-www"]
    assert (staging.autoscale.node_min, staging.autoscale.node_max) == (1, 3)
    assert staging.autoscale.timeout == plain.autoscale.timeout == 180  # level-1 merge keeps the rest
    assert staging.autoscale.on_demand == plain.autoscale.on_demand
    assert prod == plain


def test_stack_override_lists_append_and_dicts_merge(tmp_path):
    (tmp_path / "nodes.yaml").write_text(
        "__base__: {source_ami: ami-12345678, security_groups: [a]}\n"
        "g: {instance_type: m5.large, security_groups: [b], tags: {x: '1'}}\n")
    (tmp_path / "Pulumi.s.yaml").write_text(
        "config:\n  fleet:groups:\n    g: {security_groups: [c], tags: {y: '2'}, instance_type: m5.xlarge}\n")
    g = load_fleet(tmp_path / "nodes.yaml", "s").groups["g"]
    assert g.security_groups == ("a", "b", "c")
    assert dict(g.tags) == {"x": "1", "y": "2"}
    assert g.instance_type == "m5.xlarge"


def test_stack_values_given_directly_match_the_file():
    from_file = load_fleet(ROOT / "nodes.yaml", "staging")
    values = {"aws:region": "us-east-1", "fleet:environment": "staging", "fleet:awsEndpoint": "http://127.0.0.1:5000",
              "fleet:network": {"cidr": "10.20.0.0/16", "azs": 2},
              "fleet:groups": {"12_04-www": {"autoscale": {"node_min": 1, "node_max": 3}},
                               "12_04-bee": {"autoscale": {"node_min": 1, "node_max": 2}},
                               "api": {"autoscale": {"node_min": 1, "node_max": 3}}}}
    direct = load_fleet(ROOT / "nodes.yaml", "staging", values)
    assert direct.groups == from_file.groups
    assert direct.stack.network == from_file.stack.network


def test_prod_stack_config():
    st = load_fleet(ROOT / "nodes.yaml", "prod").stack
    assert st.deletion_protection and st.certificate_arn.startswith("arn:aws:acm:")
    assert not st.network.create and len(st.network.private_subnet_ids) == 2
    assert st.security_groups == {"internal": "sg-0a1b2c3d4e5f60721"}


def test_problems_from_several_groups_are_all_reported(tmp_path):
    f = tmp_path / "nodes.yaml"
    f.write_text("__base__: {source_ami: ami-12345678}\n"
                 "a: {instance_type: m5.larg}\n"
                 "b: {instance_type: m5.large, autoscale: {node_min: 3, node_max: 1}}\n"
                 "c: {instance_typ: m5.large}\n")
    with pytest.raises(SpecError) as exc:
        load_fleet(f)
    text = str(exc.value)
    assert "group 'a': key 'instance_type': unknown EC2 instance type 'm5.larg' (did you mean 'm5.large'?)" in text
    assert "group 'b': key 'autoscale.node_min'" in text
    assert "group 'c': key 'instance_typ': unknown key (did you mean 'instance_type'?)" in text


@pytest.mark.parametrize("value, ok", [
    ("arn:aws:sns:us-east-1:123456789012:fleet-alerts", True),
    ("arn:aws-us-gov:sns:us-gov-west-1:123456789012:ops_pager", True),
    ("arn:aws:sns:us-east-1:123456789012:alerts.fifo", False),
    ("fleet-alerts", False),
])
def test_alerts_topic_arn(value, ok):
    from fleet.spec.stack import stack_from_values

    values = {"aws:region": "us-east-1", "fleet:alertsTopicArn": value}
    if ok:
        assert stack_from_values("staging", values, "Pulumi.staging.yaml").alerts_topic_arn == value
    else:
        with pytest.raises(SpecError) as exc:
            stack_from_values("staging", values, "Pulumi.staging.yaml")
        (problem,) = exc.value.problems
        assert str(problem).startswith("Pulumi.staging.yaml") and "fleet:alertsTopicArn" in str(problem)
        assert "not a standard SNS topic ARN" in str(problem)
    unset = stack_from_values("staging", {"fleet:alertsTopicArn": ""}, "Pulumi.staging.yaml")
    assert unset.alerts_topic_arn is None
