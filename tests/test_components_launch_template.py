"""LaunchTemplate under mocks: IMDSv2 required with the right hop limit, encrypted root volume on
the AMI's root device, SSM-only instance profile, tag_specifications for instances and volumes,
update_default_version, name_prefix, user data from the renderer."""

from __future__ import annotations

import base64
import json

import pulumi

from components.launch_template import LaunchTemplate, LaunchTemplateArgs
from fleet.render.userdata import render_user_data
from tests.pulumi_mocks import group, http_group, run, use_mocks

LT = "aws:ec2/launchTemplate:LaunchTemplate"


def _lt(g, root="/dev/sda1"):
    return LaunchTemplate(g.name, LaunchTemplateArgs(
        group=g, stack="prod", environment="production", ami_id="ami-0123456789abcdef0", root_device_name=root,
        security_group_ids=["sg-00000001", "sg-00000002"], tags={"fleet:group": g.name, "team": "platform"}))


def _run(g, root="/dev/sda1"):
    r = run(lambda: (lambda lt: [lt.id, lt.latest_version])(_lt(g, root)), stack="prod")
    (template,) = r.of_type(LT)
    return r, template


def test_imdsv2_is_required_with_hop_limit_1():
    _, lt = _run(http_group("web"))
    md = lt.inputs["metadataOptions"]
    assert md["httpTokens"] == "required" and md["httpEndpoint"] == "enabled"
    assert md["httpPutResponseHopLimit"] == 1


def test_containers_get_hop_limit_2():
    _, lt = _run(http_group("web", containers=True))
    assert lt.inputs["metadataOptions"]["httpPutResponseHopLimit"] == 2
    assert lt.inputs["metadataOptions"]["httpTokens"] == "required"


def test_root_volume_is_encrypted_gp3_on_the_amis_root_device():
    _, lt = _run(group("web", volume={"size": 40}), root="/dev/xvda")
    (bdm,) = lt.inputs["blockDeviceMappings"]
    assert bdm["deviceName"] == "/dev/xvda"
    assert bdm["ebs"] == {"encrypted": "true", "volumeType": "gp3", "volumeSize": 40, "deleteOnTermination": "true"}


def test_instance_profile_role_has_only_the_ssm_policy():
    r, lt = _run(group("web"))
    (role,) = r.of_type("aws:iam/role:Role")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"] == [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                   "Action": "sts:AssumeRole"}]
    assert "inlinePolicies" not in role.inputs and "managedPolicyArns" not in role.inputs
    (attachment,) = r.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert attachment.inputs["policyArn"] == "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
    assert not r.of_type("aws:iam/rolePolicy:RolePolicy")
    (profile,) = r.of_type("aws:iam/instanceProfile:InstanceProfile")
    assert profile.inputs["role"] == role.outputs["name"]
    assert lt.inputs["iamInstanceProfile"] == {"arn": profile.outputs["arn"]}
    assert role.name == "web-node" and "name" not in role.inputs  # autonamed


def test_tags_reach_instances_and_volumes_and_the_template_is_versioned_by_prefix():
    r, lt = _run(group("web"))
    specs = {s["resourceType"]: s["tags"] for s in lt.inputs["tagSpecifications"]}
    assert {"instance", "volume"} <= set(specs)
    for tags in specs.values():
        assert tags["fleet:group"] == "web" and tags["team"] == "platform" and tags["Name"] == "fleet-prod-web"
    assert lt.inputs["updateDefaultVersion"] is True
    assert lt.inputs["namePrefix"] == "fleet-prod-web-" and "name" not in lt.inputs
    assert lt.inputs["monitoring"] == {"enabled": True}
    assert lt.inputs["vpcSecurityGroupIds"] == ["sg-00000001", "sg-00000002"]
    assert lt.inputs["imageId"] == "ami-0123456789abcdef0" and lt.inputs["instanceType"] == "m5.large"
    assert r.value == [lt.id, 1]  # latest_version comes back as an int


def test_user_data_is_the_rendered_cloud_init():
    g = http_group("web")
    _, lt = _run(g)
    assert base64.b64decode(lt.inputs["userData"]).decode() == render_user_data(g, "prod", "production")


@pulumi.runtime.test
def test_runtime_test_style_outputs_are_checked():
    """The `@pulumi.runtime.test` idiom on a fresh engine: the returned Output is awaited."""
    use_mocks(stack="prod")
    lt = _lt(http_group("web", containers=True))

    def check(values):
        version, options = values
        assert version == 1 and isinstance(version, int)
        assert options["http_tokens"] == "required" and options["http_put_response_hop_limit"] == 2
    return pulumi.Output.all(lt.latest_version, lt.template.metadata_options.apply(
        lambda m: {"http_tokens": m.http_tokens, "http_put_response_hop_limit": m.http_put_response_hop_limit}
    )).apply(check)
