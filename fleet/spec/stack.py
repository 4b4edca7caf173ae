"""Stack configuration (`Pulumi.<stack>.yaml`): the keys fleet reads, checked and typed.

The same values come from the stack file (CLI, offline plan) or from `pulumi.Config`
(the real program), so both paths go through `stack_from_values`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from fleet.spec.errors import Problem, SpecError, did_you_mean
from fleet.spec.model import frozen_map
from fleet.spec.yamlfile import load_yaml_file

# key (without the `fleet:` namespace) -> (expected python type, description). Pulumi.yaml declares the same.
FLEET_KEYS: dict[str, tuple[type, str]] = {
    "environment": (str, "environment name written into user data and chef attributes (default: the stack name)"),
    "groups": (dict, "per-group overrides of nodes.yaml, merged with the nodes.yaml rules"),
    "amis": (dict, "AMI pins per group: skip the bake (previews, emergency rollback)"),
    "securityGroups": (dict, "existing security group ids for nodes.yaml security group names"),
    "network": (dict, "{vpcId, publicSubnetIds, privateSubnetIds} to adopt, or {cidr, azs} to create a VPC"),
    "certificateArn": (str, "ACM certificate for the HTTPS listener; unset: HTTP only (staging only)"),
    "deletionProtection": (bool, "ALB deletion protection (default: true when the stack is prod)"),
    "accessLogsBucket": (str, "S3 bucket for ALB access logs (optional)"),
    "nodesFile": (str, "path of the nodes file, relative to the project (default nodes.yaml)"),
}
AMI_RE = re.compile(r"^ami-([0-9a-f]{8}|[0-9a-f]{17})$")
SG_RE = re.compile(r"^sg-[0-9a-f]{8,17}$")
SUBNET_RE = re.compile(r"^subnet-[0-9a-f]{8,17}$")
VPC_RE = re.compile(r"^vpc-[0-9a-f]{8,17}$")
CERT_RE = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+$")
REGION_RE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")


@dataclass(frozen=True)
class Network:
    vpc_id: str | None = None
    public_subnet_ids: tuple[str, ...] = ()
    private_subnet_ids: tuple[str, ...] = ()
    cidr: str = "10.0.0.0/16"
    azs: int = 2

    @property
    def create(self) -> bool:
        return self.vpc_id is None


@dataclass(frozen=True)
class StackConfig:
    name: str
    region: str = "us-east-1"
    environment: str = ""
    groups: Mapping[str, Any] = field(default_factory=lambda: frozen_map(None))
    amis: Mapping[str, str] = field(default_factory=lambda: frozen_map(None))
    security_groups: Mapping[str, str] = field(default_factory=lambda: frozen_map(None))
    network: Network = field(default_factory=Network)
    certificate_arn: str | None = None
    deletion_protection: bool = False
    access_logs_bucket: str | None = None
    nodes_file: str = "nodes.yaml"
    file: str = ""


def stack_file(project_dir: Path, stack: str) -> Path:
    return project_dir / f"Pulumi.{stack}.yaml"


def read_stack_values(path: Path) -> tuple[dict[str, Any], Any]:
    """The `config:` mapping of a stack file and its YamlDoc (for line numbers)."""
    doc = load_yaml_file(path)
    data = doc.data or {}
    if not isinstance(data, dict) or not isinstance(data.get("config", {}), dict):
        raise SpecError([Problem(str(path), None, None, "config", "must be a mapping of config keys")])
    return dict(data.get("config") or {}), doc


def _network(raw: dict, problem) -> Network:
    allowed = ("vpcId", "publicSubnetIds", "privateSubnetIds", "cidr", "azs")
    for k in raw:
        if k not in allowed:
            problem(f"fleet:network.{k}", f"unknown key{did_you_mean(k, allowed)}")
    if "vpcId" in raw:
        if not VPC_RE.match(str(raw["vpcId"])):
            problem("fleet:network.vpcId", f"{raw['vpcId']!r} is not a VPC id (vpc-...)")
        for k in ("publicSubnetIds", "privateSubnetIds"):
            ids = raw.get(k)
            if not isinstance(ids, list) or len(ids) < 2 or not all(SUBNET_RE.match(str(i)) for i in ids):
                problem(f"fleet:network.{k}", "needs 2+ subnet ids (subnet-...) in different AZs when adopting a VPC")
        return Network(raw["vpcId"], tuple(raw.get("publicSubnetIds") or ()), tuple(raw.get("privateSubnetIds") or ()))
    cidr, azs = raw.get("cidr", "10.0.0.0/16"), raw.get("azs", 2)
    try:
        net = ipaddress.ip_network(str(cidr))
        if not 16 <= net.prefixlen <= 22:
            problem("fleet:network.cidr", f"{cidr} should be a /16 to /22 for public and private subnets in each AZ")
    except ValueError:
        problem("fleet:network.cidr", f"{cidr!r} is not a CIDR block")
    if not isinstance(azs, int) or isinstance(azs, bool) or not 2 <= azs <= 4:
        problem("fleet:network.azs", f"must be an integer from 2 to 4, got {azs!r}")
    return Network(cidr=str(cidr), azs=azs if isinstance(azs, int) else 2)


def stack_from_values(stack: str, values: Mapping[str, Any], file: str, line_of=lambda key: None) -> StackConfig:
    """Check and type a stack's config values (`aws:region`, `fleet:*`); raise SpecError on problems."""
    problems: list[Problem] = []

    def problem(key: str, msg: str) -> None:
        problems.append(Problem(file, line_of(key.split(".")[0]), None, key, msg))

    fleet_vals: dict[str, Any] = {}
    for key, value in values.items():
        ns, _, name = str(key).partition(":")
        if ns != "fleet":
            continue
        if name not in FLEET_KEYS:
            problem(key, f"unknown config key{did_you_mean(key, [f'fleet:{k}' for k in FLEET_KEYS])}")
            continue
        want = FLEET_KEYS[name][0]
        if not isinstance(value, want) or (want is not bool and isinstance(value, bool)):
            problem(key, f"must be a {want.__name__ if want is not dict else 'mapping'}, not {type(value).__name__}")
            continue
        if value == "" and want is str:
            continue  # Pulumi.yaml's default for optional strings: unset
        fleet_vals[name] = value

    region = values.get("aws:region", "us-east-1")
    if not isinstance(region, str) or not REGION_RE.match(region):
        problem("aws:region", f"{region!r} is not an AWS region like us-east-1")
    for group, ami in (fleet_vals.get("amis") or {}).items():
        if not isinstance(ami, str) or not AMI_RE.match(ami):
            problems.append(Problem(file, line_of("fleet:amis"), str(group), "fleet:amis", f"{ami!r} is not an AMI id"))
    for name, sg in (fleet_vals.get("securityGroups") or {}).items():
        if not isinstance(sg, str) or not SG_RE.match(sg):
            problem(f"fleet:securityGroups.{name}", f"{sg!r} is not a security group id (sg-...)")
    cert = fleet_vals.get("certificateArn")
    if cert is not None and not CERT_RE.match(cert):
        problem("fleet:certificateArn", f"{cert!r} is not an ACM certificate ARN")
    network = _network(fleet_vals.get("network") or {}, problem)
    if problems:
        raise SpecError(problems)
    return StackConfig(
        name=stack,
        region=region,
        environment=fleet_vals.get("environment", stack),
        groups=frozen_map(fleet_vals.get("groups")),
        amis=frozen_map(fleet_vals.get("amis")),
        security_groups=frozen_map(fleet_vals.get("securityGroups")),
        network=network,
        certificate_arn=cert,
        deletion_protection=fleet_vals.get("deletionProtection", stack == "prod"),
        access_logs_bucket=fleet_vals.get("accessLogsBucket"),
        nodes_file=fleet_vals.get("nodesFile", "nodes.yaml"),
        file=file,
    )
