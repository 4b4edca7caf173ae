"""Instances: `instances` one-off EC2 instances for an `autoscale: false` group (seed 001's
instance:create), launched from the group's launch template at its latest version and spread
over the private subnets. A new template version (new AMI, new user data) replaces them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import pulumi
import pulumi_aws as aws

from fleet.spec.model import Group
from fleet.spec.names import slug


@dataclass
class InstancesArgs:
    group: Group
    stack: str
    launch_template_id: pulumi.Input[str]
    launch_template_version: pulumi.Input[int]
    subnet_ids: Sequence[pulumi.Input[str]]
    tags: Mapping[str, str] = field(default_factory=dict)
    after: Sequence[pulumi.Resource] = ()  # what the instances boot from (the group's bundle objects)


class Instances(pulumi.ComponentResource):
    instances: list[aws.ec2.Instance]

    def __init__(self, name: str, args: InstancesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleet:instances:Instances", name, None, opts)
        group = args.group
        if not args.subnet_ids:
            raise ValueError("Instances need at least one subnet")
        version = pulumi.Output.from_input(args.launch_template_version).apply(str)
        self.instances = []
        for i in range(group.instances):
            self.instances.append(aws.ec2.Instance(f"{slug(group.name)}-{i}", aws.ec2.InstanceArgs(
                launch_template=aws.ec2.InstanceLaunchTemplateArgs(id=args.launch_template_id, version=version),
                subnet_id=args.subnet_ids[i % len(args.subnet_ids)],
                tags={**dict(args.tags), "Name": f"fleet-{args.stack}-{group.name}-{i}"}),
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after))))
        self.ids = [inst.id for inst in self.instances]
        self.register_outputs({"ids": self.ids})
