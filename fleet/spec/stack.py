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

from fleet.spec.endpoints import is_aws_endpoint
from fleet.spec.errors import Problem, SpecError, did_you_mean, quote
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
    "portChanges": (dict, "{GROUP: NEW_PORT}: acknowledge an http.port change whose instances already serve NEW_PORT"),
    "alertsTopicArn": (str, "SNS topic for alarms and failed rollouts; unset: the stack creates an encrypted one"),
    "awsEndpoint": (str, "a local AWS API (a moto server) this sandbox stack targets; unset: AWS itself"),
}
AMI_RE = re.compile(r"^ami-([0-9a-f]{8}|[0-9a-f]{17})$")
SG_RE = re.compile(r"^sg-[0-9a-f]{8,17}$")
SUBNET_RE = re.compile(r"^subnet-[0-9a-f]{8,17}$")
VPC_RE = re.compile(r"^vpc-[0-9a-f]{8,17}$")
CERT_RE = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+$")
# Standard topics only: CloudWatch alarm actions cannot publish to FIFO topics.
SNS_TOPIC_RE = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")
REGION_RE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
# S3 bucket names (general purpose): 3-63 of a-z 0-9 . -, letter or digit at both ends, no '..',
# not an IP address, none of the reserved prefixes and suffixes.
BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
BUCKET_RESERVED = re.compile(r"\.\.|^\d+\.\d+\.\d+\.\d+\Z|^(xn--|sthree-|amzn-s3-demo-)"
                             r"|(-s3alias|--ol-s3|\.mrap|--x-s3)\Z")
# Every pattern above is used with fullmatch: `$` alone would accept a trailing newline.


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
    port_changes: Mapping[str, int] = field(default_factory=lambda: frozen_map(None))
    alerts_topic_arn: str | None = None
    aws_endpoint: str | None = None  # a sandbox stack's local AWS API (fleet:awsEndpoint); None: AWS
    file: str = ""

    @property
    def targets_aws(self) -> bool:
        """A stack deploys to AWS unless it declares a local endpoint: only then may its base images
        come from lock entries resolved against a local API."""
        return self.aws_endpoint is None or is_aws_endpoint(self.aws_endpoint)


# Top-level keys of a Pulumi stack file (Pulumi's ProjectStack); fleet reads `config`.
STACK_FILE_KEYS = ("config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment")


def stack_file(project_dir: Path, stack: str) -> Path:
    return project_dir / f"Pulumi.{stack}.yaml"


def stack_label(path: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(group, key) of a key path in a stack file: groups only under `config: fleet:groups:`."""
    if len(path) >= 3 and path[:2] == ("config", "fleet:groups"):
        return path[2], ".".join(path[3:]) or None
    return None, ".".join(path[1:] if path[:1] == ("config",) and len(path) > 1 else path) or None


def read_stack_values(path: Path) -> tuple[dict[str, Any], Any]:
    """The `config:` mapping of a stack file and its YamlDoc (for line numbers)."""
    doc = load_yaml_file(path, label=stack_label)
    data = doc.data or {}
    if not isinstance(data, dict) or not isinstance(data.get("config", {}) or {}, dict):
        raise SpecError([Problem(str(path), None, None, "config", "must be a mapping of config keys")])
    unknown = [k for k in data if k not in STACK_FILE_KEYS]
    if unknown:  # a misspelled `config:` would otherwise leave the stack on every default
        raise SpecError([Problem(str(path), doc.line_of((k,)), None, k,
                                 f"unknown top-level key{did_you_mean(k, STACK_FILE_KEYS)}: "
                                 f"a stack file holds {', '.join(STACK_FILE_KEYS)}") for k in unknown])
    return dict(data.get("config") or {}), doc


def _ids(raw: dict, key: str, problem) -> tuple[str, ...]:
    """A list of subnet ids (2+, distinct), else a problem and ()."""
    ids = raw.get(key)
    if not isinstance(ids, list) or len(ids) < 2 or not all(isinstance(i, str) and SUBNET_RE.fullmatch(i)
                                                              for i in ids):
        problem(f"fleet:network.{key}", "needs 2+ subnet ids (subnet-...) in different AZs when adopting a VPC")
        return ()
    dups = sorted({i for i in ids if ids.count(i) > 1})
    if dups:
        problem(f"fleet:network.{key}", f"lists {', '.join(dups)} more than once")
    return tuple(ids)


def _network(raw: dict, problem) -> Network:
    """Adopt (vpcId + subnet ids) or create (cidr, azs): one or the other, checked."""
    adopt, create = ("vpcId", "publicSubnetIds", "privateSubnetIds"), ("cidr", "azs")
    for k in raw:
        if k not in (*adopt, *create):
            problem(f"fleet:network.{k}", f"unknown key{did_you_mean(str(k), (*adopt, *create))}")
    if any(k in raw for k in adopt):
        both = [k for k in create if k in raw]
        if both:
            problem(f"fleet:network.{both[0]}", "adopting a VPC (vpcId, subnet ids) and creating one "
                    f"({', '.join(both)}) at once: keep one")
        if "vpcId" not in raw:
            problem("fleet:network.vpcId", "is required with subnet ids (the VPC they belong to)")
        elif not isinstance(raw["vpcId"], str) or not VPC_RE.fullmatch(raw["vpcId"]):
            problem("fleet:network.vpcId", f"{quote(raw['vpcId'])} is not a VPC id (vpc-...)")
        public, private = _ids(raw, "publicSubnetIds", problem), _ids(raw, "privateSubnetIds", problem)
        shared = sorted(set(public) & set(private))
        if shared:
            problem("fleet:network.privateSubnetIds", f"{', '.join(shared)} also listed as public")
        return Network(str(raw.get("vpcId")), public, private)
    cidr, azs = raw.get("cidr", "10.0.0.0/16"), raw.get("azs", 2)
    try:
        if not isinstance(cidr, str):
            raise ValueError(cidr)
        net = ipaddress.ip_network(cidr)
        if net.version != 4:
            problem("fleet:network.cidr", f"{cidr} is IPv6: a VPC's primary block is IPv4 (a /16 to /22)")
        elif not 16 <= net.prefixlen <= 22:
            problem("fleet:network.cidr", f"{cidr} should be a /16 to /22 (AWS allows /16 at most; "
                    "public and private subnets in each AZ need /22 at least)")
    except ValueError:
        problem("fleet:network.cidr", f"{quote(cidr)} is not a CIDR block")
    if not isinstance(azs, int) or isinstance(azs, bool) or not 2 <= azs <= 4:
        problem("fleet:network.azs", f"must be an integer from 2 to 4, got {quote(azs)}")
    return Network(cidr=str(cidr), azs=azs if isinstance(azs, int) else 2)


def bucket_name_problem(name: str) -> str | None:
    """Why `name` is not a valid S3 bucket name, or None."""
    if not BUCKET_RE.fullmatch(name) or BUCKET_RESERVED.search(name):
        return (f"{quote(name)} is not a valid S3 bucket name (3-63 of a-z, 0-9, '.', '-', a letter or digit "
                "at both ends, no '..', not an IP address)")
    return None


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
            problem(str(key), f"unknown config key{did_you_mean(str(key), [f'fleet:{k}' for k in FLEET_KEYS])}")
            continue
        want = FLEET_KEYS[name][0]
        if not isinstance(value, want) or (want is not bool and isinstance(value, bool)):
            problem(key, f"must be a {want.__name__ if want is not dict else 'mapping'}, not {type(value).__name__}")
            continue
        if value == "" and want is str:
            continue  # Pulumi.yaml's default for optional strings: unset
        fleet_vals[name] = value

    region = values.get("aws:region", "us-east-1")
    if not isinstance(region, str) or not REGION_RE.fullmatch(region):
        problem("aws:region", f"{quote(region)} is not an AWS region like us-east-1")
    for group, ami in (fleet_vals.get("amis") or {}).items():
        if not isinstance(ami, str) or not AMI_RE.fullmatch(ami):
            problems.append(Problem(file, line_of("fleet:amis"), str(group), "fleet:amis",
                                    f"{quote(ami)} is not an AMI id"))
    for name, sg in (fleet_vals.get("securityGroups") or {}).items():
        if not isinstance(sg, str) or not SG_RE.fullmatch(sg):
            problem(f"fleet:securityGroups.{name}", f"{quote(sg)} is not a security group id (sg-...)")
    cert = fleet_vals.get("certificateArn")
    if cert is not None and not CERT_RE.fullmatch(cert):
        problem("fleet:certificateArn", f"{quote(cert)} is not an ACM certificate ARN")
    elif cert is not None and isinstance(region, str) and cert.split(":")[3] != region:
        problem("fleet:certificateArn", f"certificate is in {cert.split(':')[3]}, the stack in {region}: "
                "an ALB only uses certificates of its own region")
    bucket = fleet_vals.get("accessLogsBucket")
    if bucket is not None and bucket_name_problem(bucket):
        problem("fleet:accessLogsBucket", bucket_name_problem(bucket))
    for group, port in (fleet_vals.get("portChanges") or {}).items():
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            problems.append(Problem(file, line_of("fleet:portChanges"), str(group), "fleet:portChanges",
                                    f"{port!r} is not a port (1-65535)"))
    topic = fleet_vals.get("alertsTopicArn")
    if topic is not None and not SNS_TOPIC_RE.fullmatch(topic):
        problem("fleet:alertsTopicArn",
                f"{quote(topic)} is not a standard SNS topic ARN (arn:PARTITION:sns:REGION:ACCOUNT:NAME)")
    endpoint = fleet_vals.get("awsEndpoint")
    if endpoint is not None and not re.fullmatch(r"https?://[^\s/]+/?", endpoint):
        problem("fleet:awsEndpoint", f"{quote(endpoint)} is not an endpoint URL like http://127.0.0.1:5000")
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
        port_changes=frozen_map(fleet_vals.get("portChanges")),
        alerts_topic_arn=topic,
        aws_endpoint=endpoint,
        file=file,
    )
