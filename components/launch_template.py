"""LaunchTemplate: how every instance of a group boots.

IMDSv2 required (hop limit 1, or 2 when the group runs containers), an encrypted root (gp3 unless
the group sets volume.type) on the AMI's root device name (else AWS adds a second volume), detailed
monitoring (the scaling alarms use 60-second periods), an instance profile whose role has the
AmazonSSMManagedInstanceCore policy and nothing else, the group's security groups, cloud-init
user data from fleet.render.userdata (names only, nothing secret), `tag_specifications` for
instances and volumes (ASG tags never reach volumes), `update_default_version`,
and `name_prefix` (never a fixed name: a replacement would collide with it). ASGs use `template.latest_version`.

With `boot` (groups that converge at boot), the user data also carries the boot program and its
config (fleet/render/userdata.py), and the role gets exactly what that boot needs and nothing else
(`boot_policy`): `s3:GetObject` on the artifacts bucket's `bundles/` prefix (and the group's chef
package object), and, for autoscaled groups, `autoscaling:CompleteLifecycleAction` on ASGs tagged
with this group and stack (the ASGs are created after the template, so their names cannot be in
the policy; their tags can). Account and partition come from the role's own ARN. The template
depends on that policy, so no instance boots before its role may fetch the bundle.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import pulumi
import pulumi_aws as aws

from components.naming import resource_prefix
from components.partition import aws_managed_policy_arn, stack_partition
from fleet.render.userdata import BootArtifacts, render_user_data
from fleet.spec.model import Group
from fleet.spec.names import slug

SSM_POLICY = "AmazonSSMManagedInstanceCore"  # in the stack's partition (components/partition.py)
EC2_ASSUME_ROLE = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
})


@dataclass
class LaunchBoot:
    """Where a converging group's instances fetch their boot files (the stack's Artifacts)."""

    region: str
    bucket: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    bundle_key: str
    bundle_sha256: str
    chef_package_key: str | None = None
    chef_package_sha256: str | None = None
    # the bucket objects it names (bundle, chef package): what boots from this template waits for them
    objects: Sequence[pulumi.Resource] = ()


def boot_policy(group: Group, stack: str, region: str, partition: str, account: str, bucket_arn: str,
                chef_package_key: str | None = None) -> dict:
    """The instance role's statements for the boot program, and nothing else."""
    objects = [f"{bucket_arn}/bundles/*"] + ([f"{bucket_arn}/{chef_package_key}"] if chef_package_key else [])
    statements = [{"Sid": "ReadBootArtifacts", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": objects}]
    if group.autoscale is not None:
        statements.append({
            "Sid": "CompleteOwnLaunch", "Effect": "Allow", "Action": ["autoscaling:CompleteLifecycleAction"],
            "Resource": f"arn:{partition}:autoscaling:{region}:{account}:autoScalingGroup:*:autoScalingGroupName/*",
            "Condition": {"StringEquals": {
                "aws:ResourceTag/fleet:group": group.name, "autoscaling:ResourceTag/fleet:group": group.name,
                "aws:ResourceTag/fleet:stack": stack, "autoscaling:ResourceTag/fleet:stack": stack}}})
    return {"Version": "2012-10-17", "Statement": statements}


@dataclass
class LaunchTemplateArgs:
    group: Group
    stack: str
    environment: str
    ami_id: pulumi.Input[str]
    root_device_name: pulumi.Input[str]
    security_group_ids: Sequence[pulumi.Input[str]]
    tags: Mapping[str, str] = field(default_factory=dict)
    boot: LaunchBoot | None = None


def hop_limit(group: Group) -> int:
    """IMDS hop limit: 1, or 2 so containers (one more network hop) can reach IMDSv2."""
    return 2 if group.containers else 1


class LaunchTemplate(pulumi.ComponentResource):
    template: aws.ec2.LaunchTemplate
    role: aws.iam.Role
    instance_profile: aws.iam.InstanceProfile
    id: pulumi.Output[str]
    latest_version: pulumi.Output[int]

    def __init__(self, name: str, args: LaunchTemplateArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleet:launch_template:LaunchTemplate", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        group = args.group
        gslug = slug(group.name)
        tags = dict(args.tags)

        boot = args.boot
        what = "SSM and boot" if boot else "SSM only"
        self.role = aws.iam.Role(f"{gslug}-node", aws.iam.RoleArgs(
            assume_role_policy=EC2_ASSUME_ROLE, description=f"fleet {args.stack} {group.name} instances ({what})",
            tags=tags), opts=child)
        self.ssm_policy = aws.iam.RolePolicyAttachment(f"{gslug}-node-ssm", aws.iam.RolePolicyAttachmentArgs(
            role=self.role.name, policy_arn=stack_partition().apply(lambda p: aws_managed_policy_arn(p, SSM_POLICY))),
            opts=child)
        self.instance_profile = aws.iam.InstanceProfile(f"{gslug}-node", aws.iam.InstanceProfileArgs(
            role=self.role.name, tags=tags), opts=child)

        self.boot_policy = None
        after: list[pulumi.Resource] = [self.ssm_policy]
        if boot is None:
            user_data: pulumi.Input[str] = base64.b64encode(
                render_user_data(group, args.stack, args.environment).encode()).decode()
        else:
            def policy(values: list) -> str:
                role_arn, bucket_arn = values
                _, partition, _, _, account = role_arn.split(":")[:5]
                return json.dumps(boot_policy(group, args.stack, boot.region, partition, account, bucket_arn,
                                              boot.chef_package_key))

            self.boot_policy = aws.iam.RolePolicy(f"{gslug}-node-boot", aws.iam.RolePolicyArgs(
                role=self.role.id, policy=pulumi.Output.all(self.role.arn, boot.bucket_arn).apply(policy)),
                opts=child)
            after.append(self.boot_policy)
            after.extend(boot.objects)  # no instance of this template before its bundle is uploaded

            def rendered(bucket: str) -> str:
                files = BootArtifacts(bucket, boot.bundle_key, boot.bundle_sha256, boot.chef_package_key,
                                      boot.chef_package_sha256)
                text = render_user_data(group, args.stack, args.environment, files)
                return base64.b64encode(text.encode()).decode()

            user_data = pulumi.Output.from_input(boot.bucket).apply(rendered)
        instance_tags = {**tags, "Name": f"fleet-{args.stack}-{group.name}"}
        self.template = aws.ec2.LaunchTemplate(f"{gslug}-lt", aws.ec2.LaunchTemplateArgs(
            name_prefix=resource_prefix(args.stack, group.name),
            description=f"fleet {args.stack} {group.name}",
            image_id=args.ami_id,
            instance_type=group.instance_type,
            update_default_version=True,
            iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(arn=self.instance_profile.arn),
            vpc_security_group_ids=list(args.security_group_ids),
            user_data=user_data,
            monitoring=aws.ec2.LaunchTemplateMonitoringArgs(enabled=True),
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled", http_tokens="required",
                http_put_response_hop_limit=hop_limit(group), instance_metadata_tags="enabled"),
            block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name=args.root_device_name,
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_size=group.volume.size, volume_type=group.volume.type, encrypted="true",
                    delete_on_termination="true"))],
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type="instance", tags=instance_tags),
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type="volume", tags=instance_tags),
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type="network-interface", tags=instance_tags),
            ],
            tags=tags,
        ), opts=pulumi.ResourceOptions(parent=self, depends_on=after))
        self.id = self.template.id
        self.latest_version = self.template.latest_version
        self.register_outputs({"id": self.id, "latest_version": self.latest_version,
                               "instance_profile_arn": self.instance_profile.arn})
