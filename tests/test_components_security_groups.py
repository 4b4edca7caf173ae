"""SecurityGroups under mocks: named groups pinned or created (members reach each other), one
instance SG per node group that admits the app port from the ALB SG only, rules as separate
SecurityGroupIngressRule/EgressRule resources, never inline."""

from __future__ import annotations

import pytest

from components.security_groups import SecurityGroups, SecurityGroupsArgs
from tests.pulumi_mocks import http_group, run, worker_group

SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
ALB_SG = "sg-0a1b2c3d4e5f6a1b0"


def _run(existing=None, alb=ALB_SG):
    groups = {"web": http_group("web", security_groups=["internal", "www"]),
              "12_04-bee": worker_group("12_04-bee", security_groups=["internal", "bee", "internal"])}
    holder = {}

    def program():
        sgs = holder["sgs"] = SecurityGroups("security-groups", SecurityGroupsArgs(
            stack="prod", vpc_id="vpc-0a1b2c3d", groups=groups, existing=existing or {}, alb_security_group_id=alb))
        return {g: sgs.ids_for(g) for g in groups}
    return run(program), holder["sgs"]


def test_pinned_names_are_used_and_not_created():
    r, _ = _run(existing={"internal": "sg-0a1b2c3d4e5f60721"})
    created = {x.inputs["tags"].get("fleet:security-group") for x in r.of_type(SG)} - {None}
    assert created == {"www", "bee"}
    assert r.value["web"][1] == "sg-0a1b2c3d4e5f60721"
    assert r.value["12_04-bee"][1] == "sg-0a1b2c3d4e5f60721"
    assert len(r.value["12_04-bee"]) == 3, "duplicate names (inherited lists append) are used once"


def test_created_named_groups_let_members_reach_each_other():
    r, _ = _run()
    named = {x.inputs["tags"]["fleet:security-group"]: x for x in r.of_type(SG)
             if "fleet:security-group" in x.inputs["tags"]}
    assert set(named) == {"internal", "www", "bee"}
    for sg in named.values():
        (rule,) = [x for x in r.of_type(INGRESS) if x.inputs["securityGroupId"] == sg.id]
        assert rule.inputs["referencedSecurityGroupId"] == sg.id and rule.inputs["ipProtocol"] == "-1"
        assert "cidrIpv4" not in rule.inputs and "cidrIpv6" not in rule.inputs


def test_instance_sg_admits_only_the_app_port_from_the_alb():
    r, sgs = _run()
    assert set(sgs.instance) == {"web", "12_04-bee"}
    ids = {x.name: x.id for x in r.of_type(SG)}
    web_id, bee_id = ids["web-node"], ids["12-04-bee-node"]
    web_in = [x for x in r.of_type(INGRESS) if x.inputs["securityGroupId"] == web_id]
    assert [(x.inputs["referencedSecurityGroupId"], x.inputs["fromPort"], x.inputs["toPort"], x.inputs["ipProtocol"])
            for x in web_in] == [(ALB_SG, 8080, 8080, "tcp")]
    assert not [x for x in r.of_type(INGRESS) if x.inputs["securityGroupId"] == bee_id], "workers admit nothing"
    alb_out = [x for x in r.of_type(EGRESS) if x.inputs["securityGroupId"] == ALB_SG]
    assert [(x.inputs["referencedSecurityGroupId"], x.inputs["fromPort"]) for x in alb_out] == [(web_id, 8080)]
    assert r.value["web"][0] == web_id and r.value["12_04-bee"][0] == bee_id


def test_no_rule_admits_the_world_and_no_inline_rules():
    r, _ = _run()
    for rule in r.of_type(INGRESS):
        assert rule.inputs.get("cidrIpv4") != "0.0.0.0/0" and rule.inputs.get("cidrIpv6") != "::/0"
    for sg in r.of_type(SG):
        assert "ingress" not in sg.inputs and "egress" not in sg.inputs
        assert "name" not in sg.inputs and sg.inputs["namePrefix"].startswith("fleet-prod-")
        assert sg.inputs["vpcId"] == "vpc-0a1b2c3d"
    assert all(x.parent_type == "fleet:security_groups:SecurityGroups" for x in r.resources if x.custom)


def test_http_group_without_alb_is_refused():
    with pytest.raises(ValueError, match="no ALB security group"):
        _run(alb=None)
