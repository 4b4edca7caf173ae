"""Group names up to 128 characters: every AWS name derived from a group stays valid for its resource
type (shortened with a stable hash, never refused), two groups never derive the same AWS name, and
today's short names (so their URNs) do not change."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from components.naming import alarm_prefix, resource_prefix, short_logical_name
from fleet.ops.rollout import health_alarm_prefix
from fleet.plan.engine import plan_result
from fleet.render.packer import bake_files, render_packer
from fleet.spec.load import load_fleet
from fleet.spec.names import fit, slug
from fleet.spec.rules import check_group_name, slug_collisions

SEED_STYLE = "customer_facing_frontend_web_servers_v2"
LONGEST = "a" + "b_c-" * 31 + "xyz"  # 128 characters
assert len(LONGEST) == 128

# AWS limits (and Pulumi's autoname suffix: logical name + "-" + 7 characters)
AUTONAME = 8
LIMITS = {  # resource type -> (max length of the AWS name, allowed characters)
    "aws:lb/targetGroup:TargetGroup": (32, r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"),
    "aws:lb/loadBalancer:LoadBalancer": (32, r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"),
    "aws:iam/role:Role": (64, r"[\w+=,.@-]+"),
    "aws:iam/instanceProfile:InstanceProfile": (128, r"[\w+=,.@-]+"),
    "aws:ec2/launchTemplate:LaunchTemplate": (128, r"[a-zA-Z0-9().\-/_]+"),
    "aws:ec2/securityGroup:SecurityGroup": (255, r"[\x20-\x7e]+"),
    "aws:autoscaling/group:Group": (255, r"[\x20-\x7e]+"),
    "aws:autoscaling/policy:Policy": (255, r"[\x20-\x7e]+"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": (255, r"[\x20-\x7e]+"),
}


def generated_names(n: int = 300, seed: int = 9) -> list[str]:
    """Valid, distinct group names of every length, many sharing long heads (the hard case)."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789_-"
    heads = ["".join(rng.choice("abcdefghij") for _ in range(60)) for _ in range(5)]
    names: list[str] = [SEED_STYLE, LONGEST]
    while len(names) < n:
        length = rng.randint(1, 128)
        head = rng.choice(heads)[: rng.randint(0, min(60, length - 1))] if rng.random() < 0.5 else ""
        tail = "".join(rng.choice(alphabet) for _ in range(length - len(head)))
        name = (head + tail)[:length]
        if check_group_name(name) is None and name not in names and not list(slug_collisions([*names, name])):
            names.append(name)
    return names


def test_short_names_are_unchanged():
    for name in ("12_04-www", "api", "12_04-bee", "a" * 24):
        assert slug(name) == name.replace("_", "-")
    assert short_logical_name("12_04-www") == "12-04-www"
    assert resource_prefix("staging", "12_04-www") == "fleet-staging-12-04-www-"
    assert alarm_prefix("prod", "api") == "fleet-prod-api-"
    assert health_alarm_prefix("api", "prod") == "fleet-prod-api-health-"


def test_long_names_are_accepted_and_longer_ones_named():
    assert check_group_name(SEED_STYLE) is None
    assert check_group_name(LONGEST) is None
    assert "longer than 128" in check_group_name(LONGEST + "x")


def test_fit_is_stable_and_keeps_the_head():
    assert slug(SEED_STYLE) == "customer-facing-frontend-web-servers-v2"  # 39 characters: unchanged
    assert len(slug(LONGEST)) == 51 and slug(LONGEST).startswith("ab-c-b-c")
    assert re.fullmatch(r"ab(-c-b){10}-[0-9a-f]{8}", slug(LONGEST)), slug(LONGEST)
    assert short_logical_name(SEED_STYLE) == "customer-facing-" + short_logical_name(SEED_STYLE)[-8:]
    assert fit("abc", 24) == "abc" and fit("x" * 30, 24) == fit("x" * 30, 24) != fit("x" * 31, 24)


def test_a_few_hundred_generated_names_derive_valid_distinct_aws_names():
    names = generated_names()
    assert len(names) >= 250
    assert not list(slug_collisions(names))
    derived = {
        "target group (autonamed)": (lambda n: short_logical_name(n) + "-abcdefg", 32),
        "iam role (autonamed)": (lambda n: f"{slug(n)}-node-abcdefg", 64),
        "instance profile (autonamed)": (lambda n: f"{slug(n)}-node-abcdefg", 128),
        "launch template (name_prefix + 26)": (lambda n: resource_prefix("staging", n) + "x" * 26, 128),
        "security group name_prefix": (lambda n: resource_prefix("staging", n), 100),
        "asg (autonamed)": (lambda n: f"{slug(n)}-on-demand-abcdefg", 255),
        "health alarm (autonamed)": (lambda n: health_alarm_prefix(n, "staging") + "unhealthy-hosts-abcdefg", 255),
        "scaling alarm (autonamed)": (lambda n: alarm_prefix("staging", n) + "on-demand-cpu-high-abcdefg", 255),
        "dashboard": (lambda n: f"fleet-staging-{slug(n)}", 255),
        "ami name": (lambda n: f"fleet-{slug(n)}-{'0' * 12}-1700000000", 128),
    }
    for what, (derive, limit) in derived.items():
        values = [derive(n) for n in names]
        assert len(set(values)) == len(values), f"{what}: two groups derive one name"
        too_long = [v for v in values if len(v) > limit]
        assert not too_long, f"{what}: longer than {limit}: {too_long[:2]}"
    assert all(re.fullmatch(LIMITS["aws:lb/targetGroup:TargetGroup"][1], short_logical_name(n) + "-abcdefg")
               for n in names)


def test_health_alarm_discovery_stays_unambiguous():
    """`fleet deploy` finds a group's health alarms by prefix: no other group's alarms may share it."""
    names = generated_names(200)
    prefixes = {n: health_alarm_prefix(n, "s") for n in names}
    for n in names:
        for other in names:
            if other != n:
                assert not (health_alarm_prefix(other, "s") + "5xx").startswith(prefixes[n]), (n, other)


@pytest.fixture(scope="module")
def long_plan(tmp_path_factory):
    project = tmp_path_factory.mktemp("long-names")
    (project / "nodes.yaml").write_text(
        "__base__: {instance_type: m5.large, source_ami: ami-12345678}\n"
        f"{SEED_STYLE}:\n  autoscale: {{node_min: 1, node_max: 2}}\n  http: {{port: 80, hosts: [a.example.com]}}\n"
        f"{SEED_STYLE[:-1]}3:\n  autoscale: {{node_min: 1, node_max: 2}}\n  http: {{port: 80, paths: [/b]}}\n"
        f"{LONGEST}:\n  autoscale: {{node_min: 1, node_max: 2}}\n  http: {{port: 80, paths: [/c]}}\n"
        f"{LONGEST[:-1]}q:\n  autoscale: false\n")
    (project / "Pulumi.staging.yaml").write_text("config: {}\n")
    return plan_result(project, "staging"), project


def test_plan_with_long_group_names_registers_valid_aws_names(long_plan):
    result, _ = long_plan
    assert result.data["violations"] == []
    checked = 0
    for r in result.run.resources:
        if r.type not in LIMITS:
            continue
        limit, chars = LIMITS[r.type]
        name = str(r.outputs.get("name"))
        assert len(name) <= limit and re.fullmatch(chars, name), (r.type, r.name, name)
        if r.type == "aws:ec2/securityGroup:SecurityGroup":
            assert len(r.inputs["namePrefix"]) <= 100
        checked += 1
    assert checked > 40
    names = [(r.type, str(r.outputs.get("name"))) for r in result.run.resources if r.type in LIMITS]
    assert len(set(names)) == len(names), "two resources of one type with one AWS name"
    dashboards = [r.inputs["dashboardName"] for r in result.run.resources
                  if r.type == "aws:cloudwatch/dashboard:Dashboard"]
    assert len(dashboards) == 4 and all(len(d) <= 255 and re.fullmatch(r"[A-Za-z0-9_-]+", d) for d in dashboards)


def test_packer_ami_name_fits(long_plan):
    _, project = long_plan
    fleet = load_fleet(Path(project) / "nodes.yaml")
    for group in fleet.groups.values():
        template = render_packer(group, region="us-east-1", image_hash="f" * 64, bake=bake_files(group, Path(project)))
        ami_name = template["builders"][0]["ami_name"].replace("{{timestamp}}", "1700000000")
        assert len(ami_name) <= 128
