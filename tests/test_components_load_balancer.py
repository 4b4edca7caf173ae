"""LoadBalancer under mocks: ALB in public subnets, SG 80/443 from anywhere, HTTPS with a TLS 1.3
policy and an HTTP 301 redirect when there is a certificate, HTTP forwarding (staging) without."""

from __future__ import annotations

import pytest

from components.load_balancer import TLS_POLICY, LoadBalancer, LoadBalancerArgs
from components.naming import SHORT_NAME_RE
from tests.pulumi_mocks import run

CERT = "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
LISTENER = "aws:lb/listener:Listener"


def _lb(stack="prod", **kw):
    args = LoadBalancerArgs(stack=stack, vpc_id="vpc-0a1b2c3d",
                            public_subnet_ids=["subnet-00000001", "subnet-00000002"], **kw)
    return run(lambda: (lambda lb: [lb.dns_name, lb.listener.arn, lb.arn_suffix])(LoadBalancer("alb", args)),
               stack=stack)


def test_alb_is_public_in_public_subnets_and_drops_invalid_headers():
    r = _lb(certificate_arn=CERT, deletion_protection=True, access_logs_bucket="logs-bucket")
    (alb,) = r.of_type("aws:lb/loadBalancer:LoadBalancer")
    assert alb.inputs["loadBalancerType"] == "application" and alb.inputs["internal"] is False
    assert alb.inputs["subnets"] == ["subnet-00000001", "subnet-00000002"]
    assert alb.inputs["dropInvalidHeaderFields"] is True
    assert alb.inputs["enableDeletionProtection"] is True
    assert alb.inputs["accessLogs"] == {"bucket": "logs-bucket", "enabled": True, "prefix": "fleet-prod"}
    (sg,) = r.of_type("aws:ec2/securityGroup:SecurityGroup")
    assert alb.inputs["securityGroups"] == [sg.id]
    assert "name" not in alb.inputs and "namePrefix" not in alb.inputs  # autonamed
    assert SHORT_NAME_RE.fullmatch(alb.outputs["name"]) and len(alb.outputs["name"]) <= 32
    assert r.value[0] == alb.outputs["dnsName"]


def test_alb_security_group_admits_80_and_443_from_anywhere_only():
    r = _lb(certificate_arn=CERT)
    (sg,) = r.of_type("aws:ec2/securityGroup:SecurityGroup")
    assert "ingress" not in sg.inputs and "egress" not in sg.inputs  # rules are separate resources only
    rules = r.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert sorted((x.inputs["fromPort"], x.inputs["toPort"], x.inputs["cidrIpv4"]) for x in rules) == [
        (80, 80, "0.0.0.0/0"), (443, 443, "0.0.0.0/0")]
    assert all(x.inputs["securityGroupId"] == sg.id and x.inputs["ipProtocol"] == "tcp" for x in rules)


def test_https_listener_uses_tls13_policy_and_http_redirects_with_301():
    r = _lb(certificate_arn=CERT)
    listeners = {x.inputs["port"]: x for x in r.of_type(LISTENER)}
    assert set(listeners) == {80, 443}
    https = listeners[443].inputs
    assert https["protocol"] == "HTTPS" and https["certificateArn"] == CERT
    assert https["sslPolicy"] == TLS_POLICY and "TLS13" in TLS_POLICY
    assert https["defaultActions"][0]["type"] == "fixed-response"
    assert https["defaultActions"][0]["fixedResponse"]["statusCode"] == "404"
    redirect = listeners[80].inputs["defaultActions"][0]
    assert redirect["type"] == "redirect"
    assert redirect["redirect"] == {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}
    assert r.value[1] == listeners[443].outputs["arn"], "node groups' rules attach to HTTPS"


def test_without_certificate_http_forwards_through_rules_staging_only():
    r = _lb(stack="staging")
    (listener,) = r.of_type(LISTENER)
    assert listener.inputs["port"] == 80 and listener.inputs["protocol"] == "HTTP"
    assert listener.inputs["defaultActions"][0]["type"] == "fixed-response"
    assert r.value[1] == listener.outputs["arn"]
    (alb,) = r.of_type("aws:lb/loadBalancer:LoadBalancer")
    assert alb.inputs["enableDeletionProtection"] is False and "accessLogs" not in alb.inputs


@pytest.mark.parametrize("stack", ["prod", "a-very-long-stack-name-for-previews-of-pr-1234"])
def test_alb_name_fits_32_characters_with_autoname_suffix(stack):
    r = _lb(stack=stack)
    (alb,) = r.of_type("aws:lb/loadBalancer:LoadBalancer")
    assert len(alb.name) <= 24 and SHORT_NAME_RE.fullmatch(alb.outputs["name"]) and len(alb.outputs["name"]) <= 32
