"""Network: adopt the stack's VPC and subnets, or create a small VPC.

Created VPC: `azs` (2+) availability zones, a public and a private subnet in each, an internet
gateway for the public ones and NAT for the private ones (one NAT gateway per AZ, so losing an
AZ does not cut the others off; `single_nat=True` trades that for cost). Instances live in the
private subnets; only the ALB and the NAT gateways are in the public ones.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.naming import stack_tags
from fleet.spec.stack import Network as NetworkConfig


@dataclass
class NetworkArgs:
    stack: str
    config: NetworkConfig
    single_nat: bool = False
    tags: dict[str, str] = field(default_factory=dict)


def subnet_cidrs(cidr: str, azs: int) -> tuple[list[str], list[str]]:
    """(public, private) CIDRs: the VPC split in 16, public ones first, then private ones."""
    net = ipaddress.ip_network(cidr)
    blocks = list(net.subnets(new_prefix=min(net.prefixlen + 4, 28)))
    return [str(b) for b in blocks[:azs]], [str(b) for b in blocks[azs: 2 * azs]]


class Network(pulumi.ComponentResource):
    """vpc_id, public_subnet_ids and private_subnet_ids (python lists of inputs, one per AZ)."""

    vpc_id: pulumi.Output[str]
    public_subnet_ids: list[pulumi.Input[str]]
    private_subnet_ids: list[pulumi.Input[str]]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleet:network:Network", name, None, opts)
        cfg = args.config
        tags = stack_tags(args.stack, args.tags)
        self.vpc = None
        self.public_subnets: list[aws.ec2.Subnet] = []
        self.private_subnets: list[aws.ec2.Subnet] = []
        self.nat_gateways: list[aws.ec2.NatGateway] = []
        if not cfg.create:
            self.vpc_id = pulumi.Output.from_input(cfg.vpc_id)
            self.public_subnet_ids = list(cfg.public_subnet_ids)
            self.private_subnet_ids = list(cfg.private_subnet_ids)
        else:
            self._create(name, args, tags)
        self.register_outputs({
            "vpc_id": self.vpc_id,
            "public_subnet_ids": self.public_subnet_ids,
            "private_subnet_ids": self.private_subnet_ids,
        })

    def _create(self, name: str, args: NetworkArgs, tags: dict[str, str]) -> None:
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)
        self.vpc = aws.ec2.Vpc(f"{name}-vpc", aws.ec2.VpcArgs(
            cidr_block=cfg.cidr, enable_dns_hostnames=True, enable_dns_support=True,
            tags={**tags, "Name": f"fleet-{args.stack}"}), opts=child)
        self.vpc_id = self.vpc.id
        zones = aws.get_availability_zones_output(
            state="available",
            filters=[aws.GetAvailabilityZonesFilterArgs(name="opt-in-status", values=["opt-in-not-required"])],
            opts=pulumi.InvokeOutputOptions(parent=self))
        public_cidrs, private_cidrs = subnet_cidrs(cfg.cidr, cfg.azs)

        self.internet_gateway = aws.ec2.InternetGateway(f"{name}-igw", aws.ec2.InternetGatewayArgs(
            vpc_id=self.vpc.id, tags={**tags, "Name": f"fleet-{args.stack}"}), opts=child)
        self.public_route_table = aws.ec2.RouteTable(f"{name}-public", aws.ec2.RouteTableArgs(
            vpc_id=self.vpc.id, tags={**tags, "Name": f"fleet-{args.stack}-public"}), opts=child)
        self.public_default_route = aws.ec2.Route(f"{name}-public-default", aws.ec2.RouteArgs(
            route_table_id=self.public_route_table.id, destination_cidr_block="0.0.0.0/0",
            gateway_id=self.internet_gateway.id), opts=child)
        self.private_route_tables: list[aws.ec2.RouteTable] = []
        for i in range(cfg.azs):
            az = zones.names.apply(lambda names, i=i: names[i % len(names)])
            public = aws.ec2.Subnet(f"{name}-public-{i}", aws.ec2.SubnetArgs(
                vpc_id=self.vpc.id, cidr_block=public_cidrs[i], availability_zone=az, map_public_ip_on_launch=False,
                tags={**tags, "Name": f"fleet-{args.stack}-public-{i}", "fleet:tier": "public"}), opts=child)
            private = aws.ec2.Subnet(f"{name}-private-{i}", aws.ec2.SubnetArgs(
                vpc_id=self.vpc.id, cidr_block=private_cidrs[i], availability_zone=az, map_public_ip_on_launch=False,
                tags={**tags, "Name": f"fleet-{args.stack}-private-{i}", "fleet:tier": "private"}), opts=child)
            self.public_subnets.append(public)
            self.private_subnets.append(private)
            aws.ec2.RouteTableAssociation(f"{name}-public-{i}", aws.ec2.RouteTableAssociationArgs(
                subnet_id=public.id, route_table_id=self.public_route_table.id), opts=child)
            if i == 0 or not args.single_nat:
                eip = aws.ec2.Eip(f"{name}-nat-{i}", aws.ec2.EipArgs(
                    domain="vpc", tags={**tags, "Name": f"fleet-{args.stack}-nat-{i}"}), opts=child)
                self.nat_gateways.append(aws.ec2.NatGateway(f"{name}-nat-{i}", aws.ec2.NatGatewayArgs(
                    allocation_id=eip.allocation_id, subnet_id=public.id,
                    tags={**tags, "Name": f"fleet-{args.stack}-nat-{i}"}),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[self.internet_gateway])))
            nat = self.nat_gateways[-1]
            table = aws.ec2.RouteTable(f"{name}-private-{i}", aws.ec2.RouteTableArgs(
                vpc_id=self.vpc.id, tags={**tags, "Name": f"fleet-{args.stack}-private-{i}"}), opts=child)
            aws.ec2.Route(f"{name}-private-{i}-default", aws.ec2.RouteArgs(
                route_table_id=table.id, destination_cidr_block="0.0.0.0/0", nat_gateway_id=nat.id), opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-private-{i}", aws.ec2.RouteTableAssociationArgs(
                subnet_id=private.id, route_table_id=table.id), opts=child)
            self.private_route_tables.append(table)
        self.public_subnet_ids = [s.id for s in self.public_subnets]
        self.private_subnet_ids = [s.id for s in self.private_subnets]
