"""LoadBalancer: one internet-facing ALB per stack, in the public subnets.

Its security group admits 80 and 443 from anywhere (and nothing else; egress to each node
group's instances is added by SecurityGroups, on the app port only). With a certificate:
HTTPS on 443 with a TLS 1.3 policy and HTTP 80 -> 443 (301). Without one (staging only):
HTTP forwards. `listener` is the listener the node groups' rules attach to; its default
action answers 404 so only the groups' hosts/paths reach instances.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import pulumi
import pulumi_aws as aws

from components.naming import short_logical_name, stack_tags

TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"  # TLS 1.3, and 1.2 for older clients
WORLD = "0.0.0.0/0"


@dataclass
class LoadBalancerArgs:
    stack: str
    vpc_id: pulumi.Input[str]
    public_subnet_ids: Sequence[pulumi.Input[str]]
    certificate_arn: str | None = None
    deletion_protection: bool = False
    access_logs_bucket: str | None = None
    idle_timeout: int = 60
    tags: dict[str, str] = field(default_factory=dict)


def _not_found() -> aws.lb.ListenerDefaultActionArgs:
    return aws.lb.ListenerDefaultActionArgs(
        type="fixed-response",
        fixed_response=aws.lb.ListenerDefaultActionFixedResponseArgs(
            content_type="text/plain", message_body="not found", status_code="404"))


class LoadBalancer(pulumi.ComponentResource):
    alb: aws.lb.LoadBalancer
    security_group: aws.ec2.SecurityGroup
    listener: aws.lb.Listener
    dns_name: pulumi.Output[str]
    arn_suffix: pulumi.Output[str]

    def __init__(self, name: str, args: LoadBalancerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleet:load_balancer:LoadBalancer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = stack_tags(args.stack, args.tags)

        self.security_group = aws.ec2.SecurityGroup(f"{name}-alb", aws.ec2.SecurityGroupArgs(
            name_prefix=f"fleet-{args.stack}-alb-", vpc_id=args.vpc_id,
            description=f"fleet {args.stack} ALB: 80 and 443 from anywhere",
            tags={**tags, "Name": f"fleet-{args.stack}-alb"}), opts=child)
        self.ingress_rules = []
        for port in (80, 443):  # the ALB is IPv4 (ip_address_type default), so IPv4 rules only
            self.ingress_rules.append(aws.vpc.SecurityGroupIngressRule(
                f"{name}-alb-{port}", aws.vpc.SecurityGroupIngressRuleArgs(
                    security_group_id=self.security_group.id, ip_protocol="tcp", from_port=port, to_port=port,
                    cidr_ipv4=WORLD, description=f"HTTP{'S' if port == 443 else ''} from anywhere", tags=tags),
                opts=child))

        access_logs = None
        if args.access_logs_bucket:
            access_logs = aws.lb.LoadBalancerAccessLogsArgs(
                bucket=args.access_logs_bucket, enabled=True, prefix=f"fleet-{args.stack}")
        # Autonamed: the logical name leaves room for Pulumi's 8-character suffix within 32.
        self.alb = aws.lb.LoadBalancer(short_logical_name(f"fleet-{args.stack}"), aws.lb.LoadBalancerArgs(
            load_balancer_type="application", internal=False, subnets=list(args.public_subnet_ids),
            security_groups=[self.security_group.id], drop_invalid_header_fields=True,
            enable_deletion_protection=args.deletion_protection, idle_timeout=args.idle_timeout,
            access_logs=access_logs, tags=tags), opts=child)

        self.https_listener = None
        if args.certificate_arn:
            self.https_listener = aws.lb.Listener(f"{name}-https", aws.lb.ListenerArgs(
                load_balancer_arn=self.alb.arn, port=443, protocol="HTTPS", ssl_policy=TLS_POLICY,
                certificate_arn=args.certificate_arn, default_actions=[_not_found()], tags=tags), opts=child)
            self.http_listener = aws.lb.Listener(f"{name}-http", aws.lb.ListenerArgs(
                load_balancer_arn=self.alb.arn, port=80, protocol="HTTP", tags=tags,
                default_actions=[aws.lb.ListenerDefaultActionArgs(
                    type="redirect",
                    redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                        protocol="HTTPS", port="443", status_code="HTTP_301"))]), opts=child)
            self.listener = self.https_listener
        else:
            # No certificate: HTTP forwards (through the groups' rules). For staging only.
            self.http_listener = aws.lb.Listener(f"{name}-http", aws.lb.ListenerArgs(
                load_balancer_arn=self.alb.arn, port=80, protocol="HTTP", default_actions=[_not_found()],
                tags=tags), opts=child)
            self.listener = self.http_listener
        self.dns_name = self.alb.dns_name
        self.arn_suffix = self.alb.arn_suffix
        self.register_outputs({
            "dns_name": self.dns_name,
            "arn": self.alb.arn,
            "listener_arn": self.listener.arn,
            "security_group_id": self.security_group.id,
        })
