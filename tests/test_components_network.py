"""Network under mocks: adopting a VPC registers nothing; creating one builds 2+ AZs of public and
private subnets, an internet gateway for public and NAT for private subnets."""

from __future__ import annotations

import ipaddress

from components.network import Network, NetworkArgs, subnet_cidrs
from fleet.spec.stack import Network as NetworkConfig
from tests.pulumi_mocks import run

SUBNET = "aws:ec2/subnet:Subnet"
ROUTE = "aws:ec2/route:Route"


def test_adopting_a_vpc_registers_only_the_component_and_passes_ids_through():
    cfg = NetworkConfig("vpc-0a1b2c3d", ("subnet-00000001", "subnet-00000002"), ("subnet-00000011", "subnet-00000012"))
    r = run(lambda: (lambda n: [n.vpc_id, n.public_subnet_ids, n.private_subnet_ids])(
        Network("network", NetworkArgs(stack="prod", config=cfg))))
    assert [x.type for x in r.resources] == ["fleet:network:Network"]
    assert r.value == ["vpc-0a1b2c3d", ["subnet-00000001", "subnet-00000002"], ["subnet-00000011", "subnet-00000012"]]
    assert not r.calls, "adopting must not look anything up"


def _created(azs=2, single_nat=False):
    cfg = NetworkConfig(cidr="10.20.0.0/16", azs=azs)
    holder = {}

    def program():
        net = holder["net"] = Network("network", NetworkArgs(stack="staging", config=cfg, single_nat=single_nat))
        return [net.vpc_id, net.private_subnet_ids]
    return run(program, stack="staging"), holder["net"]


def test_created_vpc_has_public_and_private_subnets_in_distinct_azs():
    r, net = _created(azs=3)
    vpc = r.of_type("aws:ec2/vpc:Vpc")
    assert len(vpc) == 1 and vpc[0].inputs["cidrBlock"] == "10.20.0.0/16"
    assert vpc[0].inputs["enableDnsHostnames"] is True
    subnets = r.of_type(SUBNET)
    public = [s for s in subnets if s.inputs["tags"]["fleet:tier"] == "public"]
    private = [s for s in subnets if s.inputs["tags"]["fleet:tier"] == "private"]
    assert len(public) == len(private) == 3
    assert len({s.inputs["availabilityZone"] for s in public}) == 3
    assert {s.inputs["availabilityZone"] for s in public} == {s.inputs["availabilityZone"] for s in private}
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in subnets)
    blocks = [ipaddress.ip_network(s.inputs["cidrBlock"]) for s in subnets]
    assert all(b.subnet_of(ipaddress.ip_network("10.20.0.0/16")) for b in blocks)
    assert not any(a.overlaps(b) for i, a in enumerate(blocks) for b in blocks[i + 1:])
    assert all(s.parent_type == "fleet:network:Network" for s in r.resources if s.type != "fleet:network:Network")
    assert [t for t, _ in r.calls] == ["aws:index/getAvailabilityZones:getAvailabilityZones"]
    # registrations arrive concurrently: order by logical name (network-private-0, -1, -2)
    assert r.value[1] == [s.id for s in sorted(private, key=lambda s: s.name)]
    assert r.value[0] == vpc[0].id and all(s.inputs["vpcId"] == vpc[0].id for s in subnets)


def test_private_subnets_route_through_a_nat_gateway_per_az_public_through_the_igw():
    r, _ = _created(azs=2)
    nats = r.of_type("aws:ec2/natGateway:NatGateway")
    assert len(nats) == 2
    public_ids = {s.id for s in r.of_type(SUBNET) if s.inputs["tags"]["fleet:tier"] == "public"}
    assert {n.inputs["subnetId"] for n in nats} == public_ids
    routes = r.of_type(ROUTE)
    to_nat = [x for x in routes if x.inputs.get("natGatewayId")]
    to_igw = [x for x in routes if x.inputs.get("gatewayId")]
    assert len(to_nat) == 2 and len(to_igw) == 1
    assert all(x.inputs["destinationCidrBlock"] == "0.0.0.0/0" for x in routes)
    assert len(r.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")) == 4
    assert all(e.inputs["domain"] == "vpc" for e in r.of_type("aws:ec2/eip:Eip"))


def test_single_nat_option_shares_one_gateway():
    r, _ = _created(azs=3, single_nat=True)
    assert len(r.of_type("aws:ec2/natGateway:NatGateway")) == 1
    assert len([x for x in r.of_type(ROUTE) if x.inputs.get("natGatewayId")]) == 3


def test_subnet_cidrs_split_the_vpc_without_overlap():
    public, private = subnet_cidrs("10.0.0.0/22", 4)
    nets = [ipaddress.ip_network(c) for c in public + private]
    assert len(nets) == 8 and all(n.prefixlen == 26 for n in nets)
    assert len({n.network_address for n in nets}) == 8
