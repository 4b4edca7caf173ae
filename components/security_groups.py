"""SecurityGroups: the named groups of nodes.yaml, and one instance security group per node group.

Named groups (`security_groups: [internal, www]`) resolve to the ids pinned in
`fleet:securityGroups`, or are created here; members of a created group may reach each other
(one self-referencing ingress rule). Each node group also gets its own instance security group:
it admits the group's app port from the ALB's security group only (nothing from 0.0.0.0/0) and
allows all egress (instances reach AWS APIs and package mirrors through NAT). The ALB's egress to
each http group is the app port to that instance security group only.

Rules are `aws.vpc.SecurityGroupIngressRule` / `EgressRule` resources, never inline rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import pulumi
import pulumi_aws as aws

from components.naming import group_tags, resource_prefix, stack_tags
from fleet.spec.model import Group
from fleet.spec.names import name_prefix, slug


@dataclass
class SecurityGroupsArgs:
    stack: str
    vpc_id: pulumi.Input[str]
    groups: Mapping[str, Group]
    existing: Mapping[str, str] = field(default_factory=dict)  # fleet:securityGroups (name -> sg id)
    alb_security_group_id: pulumi.Input[str] | None = None
    tags: dict[str, str] = field(default_factory=dict)


class SecurityGroups(pulumi.ComponentResource):
    """`named[name]` (sg id), `created[name]`, `instance[group]` (SecurityGroup), `ids_for(group)`."""

    def __init__(self, name: str, args: SecurityGroupsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleet:security_groups:SecurityGroups", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = stack_tags(args.stack, args.tags)
        self.named: dict[str, pulumi.Input[str]] = {}
        self.created: dict[str, aws.ec2.SecurityGroup] = {}
        self.member_rules: dict[str, aws.vpc.SecurityGroupIngressRule] = {}
        wanted = sorted({sg for g in args.groups.values() for sg in g.security_groups})
        for sg_name in wanted:
            if sg_name in args.existing:
                self.named[sg_name] = args.existing[sg_name]
                continue
            sg = aws.ec2.SecurityGroup(f"{slug(sg_name)}-shared", aws.ec2.SecurityGroupArgs(
                name_prefix=name_prefix("fleet", slug(args.stack), slug(sg_name)), vpc_id=args.vpc_id,
                description=f"fleet {args.stack} {sg_name}: members reach each other",
                tags={**tags, "Name": f"fleet-{args.stack}-{sg_name}", "fleet:security-group": sg_name}), opts=child)
            self.member_rules[sg_name] = aws.vpc.SecurityGroupIngressRule(
                f"{slug(sg_name)}-shared-members", aws.vpc.SecurityGroupIngressRuleArgs(
                    security_group_id=sg.id, referenced_security_group_id=sg.id, ip_protocol="-1",
                    description=f"members of {sg_name}", tags=tags), opts=child)
            self.created[sg_name] = sg
            self.named[sg_name] = sg.id

        self.instance: dict[str, aws.ec2.SecurityGroup] = {}
        self.app_ingress: dict[str, aws.vpc.SecurityGroupIngressRule] = {}
        self.alb_egress: dict[str, aws.vpc.SecurityGroupEgressRule] = {}
        self.egress: dict[str, aws.vpc.SecurityGroupEgressRule] = {}
        self._groups = dict(args.groups)
        for gname, group in args.groups.items():
            gslug = slug(gname)
            gtags = group_tags(group, args.stack)
            sg = aws.ec2.SecurityGroup(f"{gslug}-node", aws.ec2.SecurityGroupArgs(
                name_prefix=resource_prefix(args.stack, gname), vpc_id=args.vpc_id,
                description=f"fleet {args.stack} {gname} instances",
                tags={**gtags, "Name": f"fleet-{args.stack}-{gname}"}), opts=child)
            self.instance[gname] = sg
            self.egress[gname] = aws.vpc.SecurityGroupEgressRule(
                f"{gslug}-node-egress", aws.vpc.SecurityGroupEgressRuleArgs(
                    security_group_id=sg.id, ip_protocol="-1", cidr_ipv4="0.0.0.0/0",
                    description="outbound (AWS APIs, packages) through NAT", tags=gtags), opts=child)
            if group.http is None:
                continue
            if args.alb_security_group_id is None:
                raise ValueError(f"group {gname} has http but no ALB security group was given")
            port = group.http.port
            self.app_ingress[gname] = aws.vpc.SecurityGroupIngressRule(
                f"{gslug}-node-from-alb", aws.vpc.SecurityGroupIngressRuleArgs(
                    security_group_id=sg.id, referenced_security_group_id=args.alb_security_group_id,
                    ip_protocol="tcp", from_port=port, to_port=port, description=f"app port {port} from the ALB",
                    tags=gtags), opts=child)
            self.alb_egress[gname] = aws.vpc.SecurityGroupEgressRule(
                f"alb-to-{gslug}", aws.vpc.SecurityGroupEgressRuleArgs(
                    security_group_id=args.alb_security_group_id, referenced_security_group_id=sg.id,
                    ip_protocol="tcp", from_port=port, to_port=port, description=f"to {gname} on {port}",
                    tags=gtags), opts=child)
        self.register_outputs({
            "named": self.named,
            "instance": {g: sg.id for g, sg in self.instance.items()},
        })

    def ids_for(self, group: str) -> list[pulumi.Input[str]]:
        """Security group ids of a node group's instances: its own, then its named groups."""
        g = self._groups[group]
        return [self.instance[group].id, *(self.named[n] for n in dict.fromkeys(g.security_groups))]
