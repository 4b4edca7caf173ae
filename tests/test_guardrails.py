"""fleet.plan.guardrails: each guardrail on passing and failing resource sets, unknown links included.

A case is (guardrail, resources, stack, names of the resources expected in violation); an empty
list is a passing set. `good_fleet()` is one node group as the components build it: every guardrail
passes on it, on staging and on prod.
"""

from __future__ import annotations

import ast
import base64
import copy
import json
from pathlib import Path

import pytest

from fleet.plan import guardrails as g

ALB_SG, NODE_SG, SHARED_SG = "sg-alb", "sg-node", "sg-shared"
TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/api/1"
STACK = {"fleet:stack": "prod"}
GROUP = {"fleet:stack": "prod", "fleet:group": "api"}


def r(type_, name, inputs=None, outputs=None, parent=None, **options):
    return {"type": type_, "name": name, "parent": parent, "inputs": inputs or {}, "outputs": outputs or {},
            "options": {"ignoreChanges": [], "dependsOn": [], "protect": False, "deleteBeforeReplace": False,
                        **options}}


def with_inputs(res, **inputs):
    return {**res, "inputs": {**res["inputs"], **inputs}}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def lt(name="api-lt", sgs=(NODE_SG, SHARED_SG), **inputs):
    base = {"namePrefix": "fleet-prod-api-", "vpcSecurityGroupIds": list(sgs),
            "metadataOptions": {"httpTokens": "required"}, "userData": b64("#cloud-config\n"),
            "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "true", "volumeType": "gp3"}}],
            "tags": GROUP}
    return r(g.LAUNCH_TEMPLATE, name, {**base, **inputs}, {"id": "lt-1"}, parent="api-launch-template")


def spot_asg(name="api-spot", ignore=("desiredCapacity",), **inputs):
    base = {"capacityRebalance": True, "targetGroupArns": [TG_ARN],
            "mixedInstancesPolicy": {
                "instancesDistribution": {"onDemandPercentageAboveBaseCapacity": 0},
                "launchTemplate": {"launchTemplateSpecification": {"launchTemplateId": "lt-1", "version": "3"},
                                   "overrides": [{"instanceType": t} for t in ("m5.large", "m6i.large", "m5a.large")]}},
            "tags": [{"key": k, "value": v, "propagateAtLaunch": True} for k, v in GROUP.items()]}
    return r(g.ASG, name, {**base, **inputs}, {"name": f"{name}-abc1234"}, parent="api-asgs",
             ignoreChanges=list(ignore))


def od_asg(name="api-on-demand", **inputs):
    base = {"launchTemplate": {"id": "lt-1", "version": "3"}, "targetGroupArns": [TG_ARN],
            "tags": [{"key": k, "value": v, "propagateAtLaunch": True} for k, v in GROUP.items()]}
    return r(g.ASG, name, {**base, **inputs}, {"name": f"{name}-abc1234"}, parent="api-asgs",
             ignoreChanges=["desired_capacity"])


def policy(name, target):
    return r(g.ASG_POLICY, name, {"autoscalingGroupName": target}, parent="api-scaling")


def sg(name, sg_id, tags=STACK, **inputs):
    return r(g.SECURITY_GROUP, name, {"namePrefix": "fleet-", "tags": tags, **inputs}, {"id": sg_id},
             parent="security-groups")


def ingress(name, sg_id, tags=STACK, **inputs):
    return r(g.SG_INGRESS, name, {"securityGroupId": sg_id, "ipProtocol": "tcp", "tags": tags, **inputs},
             parent="security-groups")


def alb(sgs=(ALB_SG,)):
    return r(g.LOAD_BALANCER, "fleet-prod", {"securityGroups": list(sgs), "tags": STACK}, parent="alb")


def tg(**inputs):
    base = {"deregistrationDelay": 30, "healthCheck": {"interval": 5, "path": "/health"}, "tags": GROUP}
    return r(g.TARGET_GROUP, "api", {**base, **inputs}, {"arn": TG_ARN}, parent="api-http")


def listener(name, **inputs):
    return r(g.LISTENER, name, {"tags": STACK, **inputs}, parent="alb")


HTTPS = {"protocol": "HTTPS", "port": 443, "sslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06"}
REDIRECT = {"protocol": "HTTP", "port": 80,
            "defaultActions": [{"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443"}}]}


def good_fleet():
    return [
        r("fleet:load_balancer:LoadBalancer", "alb"), r("fleet:security_groups:SecurityGroups", "security-groups"),
        r(g.NODE_GROUP, "api"), r("fleet:launch_template:LaunchTemplate", "api-launch-template", parent="api"),
        r("fleet:asg_pair:AsgPair", "api-asgs", parent="api"), r("fleet:scaling:Scaling", "api-scaling", parent="api"),
        r("fleet:target_group:TargetGroup", "api-http", parent="api"),
        sg("alb-sg", ALB_SG), alb(),
        ingress("alb-80", ALB_SG, cidrIpv4="0.0.0.0/0", fromPort=80, toPort=80),
        ingress("alb-443", ALB_SG, cidrIpv4="0.0.0.0/0", fromPort=443, toPort=443),
        sg("api-node", NODE_SG, tags=GROUP),
        ingress("api-from-alb", NODE_SG, tags=GROUP, referencedSecurityGroupId=ALB_SG, fromPort=8080, toPort=8080),
        sg("internal-shared", SHARED_SG),
        ingress("internal-members", SHARED_SG, referencedSecurityGroupId=SHARED_SG, ipProtocol="-1"),
        r(g.SG_EGRESS, "api-egress", {"securityGroupId": NODE_SG, "cidrIpv4": "0.0.0.0/0", "tags": GROUP}),
        lt(), spot_asg(), od_asg(),
        policy("api-spot-target-cpu", "api-spot-abc1234"), policy("api-on-demand-burst", "api-on-demand-abc1234"),
        tg(), listener("alb-https", **HTTPS), listener("alb-http", **REDIRECT),
        r(g.IAM_ROLE, "api-node", {"assumeRolePolicy": "{}", "tags": GROUP}, parent="api-launch-template"),
        r(g.IAM_ROLE_POLICY_ATTACHMENT, "api-node-ssm",
          {"policyArn": "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"}, parent="api-launch-template"),
        r(g.INSTANCE_PROFILE, "api-node", {"tags": GROUP}, parent="api-launch-template"),
    ]


def doc(action="*", resource="*", effect="Allow"):
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": effect, "Action": action,
                                                               "Resource": resource}]})


SKIP = g.SKIP_ZERO_BLOCKS_FLAG


def image_build(create: str) -> list[dict]:
    return [r("fleet:baked_image:BakedImage", "api-image-component", parent="api"),
            r(g.COMMAND, "api-image", {"create": create}, parent="api-image-component")]


WORLD_SSH = ingress("ssh", NODE_SG, cidrIpv4="0.0.0.0/0", fromPort=22, toPort=22)

CASES = [
    # imdsv2-required
    ("imdsv2_required", [lt()], "staging", []),
    ("imdsv2_required", [lt(metadataOptions={"httpTokens": "optional"})], "staging", ["api-lt"]),
    ("imdsv2_required", [lt(metadataOptions={})], "staging", ["api-lt"]),
    ("imdsv2_required", [lt(metadataOptions={"httpTokens": None})], "staging", ["api-lt"]),  # unknown: fail closed
    ("imdsv2_required", [r(g.INSTANCE, "i", {"launchTemplate": {"id": "lt-1", "version": "3"}})], "staging", []),
    ("imdsv2_required", [r(g.INSTANCE, "i", {"ami": "ami-1"})], "staging", ["i"]),
    # ebs-encrypted
    ("ebs_encrypted", [lt(), r(g.VOLUME, "v", {"encrypted": True}),
                       r(g.INSTANCE, "i", {"rootBlockDevice": {"encrypted": True}})], "staging", []),
    ("ebs_encrypted", [lt(blockDeviceMappings=[{"ebs": {"encrypted": "false"}}])], "staging", ["api-lt"]),
    ("ebs_encrypted", [lt(blockDeviceMappings=[])], "staging", ["api-lt"]),
    ("ebs_encrypted", [r(g.VOLUME, "v", {}), r(g.INSTANCE, "i", {"ebsBlockDevices": [{"encrypted": False}],
                                                                 "rootBlockDevice": {"encrypted": True}})],
     "staging", ["i", "v"]),
    # asg-explicit-version
    ("asg_explicit_version", [spot_asg(), od_asg()], "staging", []),
    ("asg_explicit_version", [od_asg(launchTemplate={"id": "lt-1", "version": None})], "staging", []),  # unknown
    ("asg_explicit_version", [od_asg(launchTemplate={"id": "lt-1", "version": "$Latest"})], "staging",
     ["api-on-demand"]),
    ("asg_explicit_version", [od_asg(launchTemplate={"id": "lt-1"})], "staging", ["api-on-demand"]),
    ("asg_explicit_version", [spot_asg(mixedInstancesPolicy={"launchTemplate": {"launchTemplateSpecification": {
        "launchTemplateId": "lt-1", "version": "$Default"}}})], "staging", ["api-spot"]),
    # asg-ignores-desired-capacity
    ("asg_ignores_desired_capacity", [spot_asg(), policy("p", "api-spot-abc1234")], "staging", []),
    ("asg_ignores_desired_capacity", [spot_asg(ignore=()), policy("p", "api-spot-abc1234")], "staging",
     ["api-spot"]),
    ("asg_ignores_desired_capacity", [spot_asg(ignore=()), od_asg()], "staging", []),  # no policy, no rule
    ("asg_ignores_desired_capacity", [spot_asg(ignore=()), od_asg(), policy("p", None)], "staging",
     ["api-spot"]),  # unknown target: every ASG may be driven
    ("asg_ignores_desired_capacity", [{**spot_asg(ignore=()), "outputs": {}}, od_asg(), policy("p", "x-1")],
     "staging", ["api-spot"]),  # unknown ASG name: it may be the target
    ("asg_ignores_desired_capacity", [spot_asg(ignore=()), policy("p", "external-asg")], "staging", []),
    # target-groups-via-asg
    ("target_groups_via_asg", [spot_asg(), r(g.ASG_ATTACHMENT, "a", {"elb": "classic"})], "staging", []),
    ("target_groups_via_asg", [spot_asg(), r(g.ASG_ATTACHMENT, "a", {"lbTargetGroupArn": TG_ARN})], "staging",
     ["a"]),
    ("target_groups_via_asg", [spot_asg(), r(g.TG_ATTACHMENT, "t", {"targetGroupArn": TG_ARN})], "staging", ["t"]),
    ("target_groups_via_asg", [spot_asg(), r(g.TG_ATTACHMENT, "t", {"targetGroupArn": "arn:other"})], "staging", []),
    ("target_groups_via_asg", [spot_asg(), r(g.TG_ATTACHMENT, "t", {"targetGroupArn": None})], "staging", ["t"]),
    ("target_groups_via_asg", [spot_asg(targetGroupArns=None), r(g.TG_ATTACHMENT, "t", {"targetGroupArn": "a"})],
     "staging", ["t"]),
    ("target_groups_via_asg", [od_asg(targetGroupArns=[]), r(g.TG_ATTACHMENT, "t", {"targetGroupArn": None})],
     "staging", []),
    # no-fixed-names
    ("no_fixed_names", [lt(), spot_asg(), tg(), alb()], "staging", []),
    ("no_fixed_names", [with_inputs(od_asg(), name="fixed"), tg(name="api")], "staging", ["api", "api-on-demand"]),
    ("no_fixed_names", [r(g.IAM_ROLE, "role", {"name": "fixed"}), r(g.SECURITY_GROUP, "sg", {"name": "ok"})],
     "staging", ["role"]),
    # no-world-ingress
    ("no_world_ingress", [alb(), ingress("w", ALB_SG, cidrIpv6="::/0", fromPort=443, toPort=443)], "staging", []),
    ("no_world_ingress", [alb(), WORLD_SSH], "staging", ["ssh"]),
    ("no_world_ingress", [alb(), ingress("w", ALB_SG, cidrIpv4="0.0.0.0/0", fromPort=0, toPort=65535)], "staging",
     ["w"]),
    ("no_world_ingress", [alb(), ingress("w", ALB_SG, cidrIpv4="0.0.0.0/0", ipProtocol="-1")], "staging", ["w"]),
    ("no_world_ingress", [alb(), ingress("w", None, cidrIpv4="0.0.0.0/0", fromPort=80, toPort=80)], "staging",
     ["w"]),  # unknown target group: the ALB exception cannot be proven
    ("no_world_ingress", [alb(sgs=[None]), ingress("w", ALB_SG, cidrIpv4="0.0.0.0/0", fromPort=80, toPort=80)],
     "staging", ["w"]),
    ("no_world_ingress", [ingress("w", NODE_SG, cidrIpv4=None)], "staging", []),  # unknown CIDR is computed
    ("no_world_ingress", [sg("s", NODE_SG, ingress=[{"protocol": "tcp", "fromPort": 22, "toPort": 22,
                                                     "cidrBlocks": ["0.0.0.0/0"]}])], "staging", ["s"]),
    ("no_world_ingress", [r(g.SG_RULE, "rule", {"type": "ingress", "securityGroupId": NODE_SG, "protocol": "tcp",
                                                "fromPort": 80, "toPort": 80, "ipv6CidrBlocks": ["::/0"]})],
     "staging", ["rule"]),
    ("no_world_ingress", [r(g.SG_RULE, "rule", {"type": "egress", "securityGroupId": NODE_SG,
                                                "cidrBlocks": ["0.0.0.0/0"]})], "staging", []),
    # instance-ingress-from-alb-only
    ("instance_ingress_from_alb_only", good_fleet(), "staging", []),
    ("instance_ingress_from_alb_only", [alb(), lt(), WORLD_SSH], "staging", ["ssh"]),
    ("instance_ingress_from_alb_only", [alb(), lt(), ingress("x", NODE_SG, referencedSecurityGroupId="sg-other")],
     "staging", ["x"]),
    ("instance_ingress_from_alb_only", [alb(), lt(), ingress("x", NODE_SG, prefixListId="pl-1")], "staging", ["x"]),
    ("instance_ingress_from_alb_only", [alb(), lt(), ingress("x", NODE_SG, referencedSecurityGroupId=None)],
     "staging", ["x"]),
    ("instance_ingress_from_alb_only", [alb(), lt(), ingress("x", None, referencedSecurityGroupId=ALB_SG)],
     "staging", ["x"]),
    ("instance_ingress_from_alb_only", [alb(), lt(sgs=[NODE_SG, None])], "staging", ["api-lt"]),
    ("instance_ingress_from_alb_only", [alb(), lt(vpcSecurityGroupIds=[], networkInterfaces=[
        {"securityGroups": [NODE_SG]}]), ingress("x", NODE_SG, cidrIpv4="10.0.0.0/8")], "staging", ["x"]),
    ("instance_ingress_from_alb_only", [alb(), r(g.INSTANCE, "i", {"vpcSecurityGroupIds": [NODE_SG]}),
                                        sg("s", NODE_SG, ingress=[{"self": True}])], "staging", []),
    ("instance_ingress_from_alb_only", [alb(), ingress("alb-80", ALB_SG, cidrIpv4="0.0.0.0/0")], "staging", []),
    # prod-https
    ("prod_https", [listener("h", **HTTPS), listener("r", **REDIRECT)], "prod", []),
    ("prod_https", [listener("h", protocol="HTTP")], "staging", []),
    ("prod_https", [listener("h", protocol="HTTP", defaultActions=[{"type": "forward"}])], "prod", ["h", "h"]),
    ("prod_https", [listener("h", **{**HTTPS, "sslPolicy": "ELBSecurityPolicy-2016-08"})], "prod", ["h"]),
    ("prod_https", [listener("h", protocol="HTTPS")], "prod", ["h"]),
    ("prod_https", [listener("r", **REDIRECT)], "prod", ["r"]),  # a redirect alone: no HTTPS listener
    # deregistration-delay
    ("deregistration_delay", [tg(), tg(deregistrationDelay="60")], "staging", []),
    ("deregistration_delay", [tg(deregistrationDelay=300)], "staging", ["api"]),
    ("deregistration_delay", [tg(deregistrationDelay=0)], "staging", ["api"]),
    ("deregistration_delay", [r(g.TARGET_GROUP, "unset", {})], "staging", ["unset"]),
    ("deregistration_delay", [tg(deregistrationDelay=None)], "staging", ["api"]),
    # health-check-interval
    ("health_check_interval", [tg(), tg(healthCheck={"interval": "10"})], "staging", []),
    ("health_check_interval", [tg(healthCheck={"interval": 30})], "staging", ["api"]),
    ("health_check_interval", [tg(healthCheck={"path": "/"})], "staging", ["api"]),
    ("health_check_interval", [r(g.TARGET_GROUP, "unset", {})], "staging", ["unset"]),
    ("health_check_interval", [tg(healthCheck={"enabled": False, "interval": 5})], "staging", ["api"]),
    # spot-diversified
    ("spot_diversified", [spot_asg(), od_asg()], "staging", []),
    ("spot_diversified", [spot_asg(capacityRebalance=False)], "staging", ["api-spot"]),
    ("spot_diversified", [spot_asg(mixedInstancesPolicy={
        "instancesDistribution": {"onDemandPercentageAboveBaseCapacity": "0"},
        "launchTemplate": {"overrides": [{"instanceType": "m5.large"}, {"instanceType": "m5.large"}]}})],
     "staging", ["api-spot"]),
    ("spot_diversified", [spot_asg(capacityRebalance=False, mixedInstancesPolicy={
        "instancesDistribution": {"onDemandPercentageAboveBaseCapacity": 100}, "launchTemplate": {}})], "staging", []),
    # iam-no-admin
    ("iam_no_admin", [r(g.IAM_POLICY, "p", {"policy": doc("ec2:Describe*")}),
                      r(g.IAM_ROLE_POLICY, "rp", {"policy": json.loads(doc("*", "arn:aws:s3:::b"))}),
                      r(g.IAM_POLICY, "deny", {"policy": doc(effect="Deny")}),
                      r(g.IAM_POLICY, "unknown", {"policy": None})], "staging", []),
    ("iam_no_admin", [r(g.IAM_POLICY, "p", {"policy": doc()}),
                      r(g.IAM_ROLE_POLICY, "rp", {"policy": doc(["s3:GetObject", "*"], ["*"])}),
                      r(g.IAM_POLICY, "bad-json", {"policy": "{"})], "staging", ["bad-json", "p", "rp"]),
    ("iam_no_admin", [r(g.IAM_ROLE, "role", {"inlinePolicies": [{"name": "x", "policy": doc()}]}),
                      r(g.IAM_ROLE, "role2", {"managedPolicyArns": ["arn:aws:iam::aws:policy/PowerUserAccess"]}),
                      r(g.IAM_ROLE_POLICY_ATTACHMENT, "att",
                        {"policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"})],
     "staging", ["att", "role", "role2"]),
    # user-data-no-secrets
    ("user_data_no_secrets", [lt(userData=b64('TOKEN=$(curl -X PUT http://169.254.169.254/latest/api/token)\n'
                                             'password=""\nsecret_name: app/db\n')),
                              r(g.INSTANCE, "i", {"userData": "#!/bin/sh\necho hi\n"}),
                              r(g.INSTANCE, "j", {"userData": None})], "staging", []),
    ("user_data_no_secrets", [lt(userData=b64("export AWS_ACCESS_KEY_ID=AKIAABCDEFGHIJKLMNOP\n"))], "staging",
     ["api-lt"]),
    ("user_data_no_secrets", [r(g.INSTANCE, "i", {"userData": "DB_PASSWORD=hunter2\n"})], "staging", ["i"]),
    ("user_data_no_secrets", [r(g.INSTANCE, "i", {"userData": b64("-----BEGIN RSA PRIVATE KEY-----\n")})],
     "staging", ["i"]),
    ("user_data_no_secrets", [r(g.INSTANCE, "i", {"userDataBase64": b64('{"api_token": "abc"}')})], "staging", ["i"]),
    ("user_data_no_secrets", [lt(userData=b64("chpasswd:\n  Secret: 's3cr3t'\n"))], "staging", ["api-lt"]),
    # fleet-tags
    ("fleet_tags", good_fleet(), "prod", []),
    ("fleet_tags", [r(g.NODE_GROUP, "api"), r("fleet:x:Y", "inner", parent="api"),
                    r(g.TARGET_GROUP, "tg", {"tags": STACK}, parent="inner"),
                    r(g.LISTENER, "l", {"tags": {}}), r(g.SG_RULE, "untaggable", {})], "prod", ["l", "tg"]),
    ("fleet_tags", [r(g.NODE_GROUP, "api"), r("fleet:asg_pair:AsgPair", "api-asgs", parent="api"),
                    spot_asg(tags=[{"key": "fleet:stack", "value": "prod"}])], "prod", ["api-spot"]),
    ("fleet_tags", [spot_asg(tags=[{"key": "fleet:stack", "value": "prod"}])], "prod", []),  # not in a group
    ("fleet_tags", [r(g.TARGET_GROUP, "tg", {"tags": {"fleet:stack": "staging"}})], "prod", ["tg"]),
    ("fleet_tags", [r(g.TARGET_GROUP, "tg", {"tags": None})], "prod", ["tg"]),
    ("fleet_tags", [r(g.TARGET_GROUP, "tg", {}, {"tagsAll": STACK})], "prod", []),  # provider default tags
    # raw-upload-every-block: skipping zero blocks is refused where the group's volume is encrypted
    ("raw_upload_every_block", good_fleet() + image_build("python -m image_builds.build api"), "prod", []),
    ("raw_upload_every_block", good_fleet() + image_build(f"python -m image_builds.build api {SKIP}"), "prod",
     ["api-image"]),
    ("raw_upload_every_block", [r(g.NODE_GROUP, "api"), *image_build(f"build api {SKIP}"),
                                r("fleet:launch_template:LaunchTemplate", "api-launch-template", parent="api"),
                                lt(blockDeviceMappings=None)], "prod", ["api-image"]),  # unknown: refused
    ("raw_upload_every_block", [r(g.NODE_GROUP, "api"), *image_build(f"build api {SKIP}"),
                                r("fleet:launch_template:LaunchTemplate", "api-launch-template", parent="api"),
                                lt(blockDeviceMappings=[{"deviceName": "/dev/xvda", "ebs": {"encrypted": "false"}}])],
     "prod", []),  # an unencrypted volume (no fleet group has one today) may skip
    ("raw_upload_every_block", [*image_build(f"build api {SKIP}")], "prod", ["api-image"]),  # no template: refused
    # command-no-previous-output: the previous run's output is never fed back as environment variables
    ("command_no_previous_output", [r(g.COMMAND, "c", {"create": "x", "addPreviousOutputInEnv": False})], "prod", []),
    ("command_no_previous_output", [r(g.COMMAND, "c", {"create": "x"})], "prod", ["c"]),  # the default: true
    ("command_no_previous_output", [r(g.COMMAND, "c", {"addPreviousOutputInEnv": True}),
                                    r(g.COMMAND, "d", {"addPreviousOutputInEnv": None})], "prod", ["c", "d"]),
]


@pytest.mark.parametrize("name, resources, stack, expected", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_guardrail(name, resources, stack, expected):
    check = getattr(g, name)
    violations = check(resources, stack)
    assert sorted(v["resource"] for v in violations) == sorted(expected), violations
    for v in violations:
        assert set(v) == {"policy", "resource", "message"} and v["policy"] == check.policy and v["message"]


def test_every_guardrail_has_passing_and_failing_cases():
    covered = {(c[0], bool(c[3])) for c in CASES}
    for check in g.GUARDRAILS:
        assert (check.__name__, False) in covered and (check.__name__, True) in covered, check.policy


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_good_fleet_passes_everything(stack):
    resources = good_fleet()
    if stack == "staging":
        for res in resources:
            for field in ("tags",):
                if isinstance(res["inputs"].get(field), dict):
                    res["inputs"][field] = {**res["inputs"][field], "fleet:stack": "staging"}
                elif isinstance(res["inputs"].get(field), list):
                    res["inputs"][field] = [{**t, "value": "staging"} if t["key"] == "fleet:stack" else t
                                            for t in res["inputs"][field]]
    assert g.check_all(resources, stack) == []


def test_check_all_is_sorted_and_stable():
    resources = [WORLD_SSH, alb(), lt(metadataOptions={}), spot_asg(ignore=()), policy("p", None)]
    first = g.check_all(copy.deepcopy(resources), "prod")
    assert first == g.check_all(list(reversed(copy.deepcopy(resources))), "prod")
    order = [c.policy for c in g.GUARDRAILS]
    assert [order.index(v["policy"]) for v in first] == sorted(order.index(v["policy"]) for v in first)


def test_registry():
    ids = [c.policy for c in g.GUARDRAILS]
    assert len(ids) == len(set(ids)) == 17
    assert all(c.description and callable(c.findings) for c in g.GUARDRAILS)
    res, message = g.imdsv2_required.findings([lt(metadataOptions={})], "prod")[0]
    assert res["name"] == "api-lt" and "httpTokens" in message


def test_secret_values_are_never_echoed():
    [v] = g.user_data_no_secrets([r(g.INSTANCE, "i", {"userData": "password=hunter2 AKIAABCDEFGHIJKLMNOP"})], "x")
    assert "hunter2" not in v["message"] and "AKIAABCDEFGHIJKLMNOP" not in v["message"]


def test_pure_module():
    """No Pulumi, no boto3: fleet plan and the policy pack both import it."""
    tree = ast.parse(Path(g.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"pulumi", "pulumi_aws", "boto3", "botocore"}
