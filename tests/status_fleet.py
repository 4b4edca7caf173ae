"""A deployed-looking fleet made with boto3 against the moto server, tagged the way the program tags it:
a project (nodes.yaml + stack file) and, per group, an AMI tagged with the group's image hash, a launch
template, the spot ASG (mixed instances policy) and the on-demand ASG tagged fleet:group / fleet:stack /
fleet:capacity, a target group behind the stack's ALB listener rule for http groups, and the spot
reconciler's table. Used by tests/test_status.py and bench/bench_status.py."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import boto3

from fleet.image_hash import hash_groups
from fleet.spec.load import load_fleet

ROOT = Path(__file__).resolve().parent.parent
STACK = "staging"
SPOT_TYPES = ["m5.large", "m5a.large", "m6i.large"]


def write_project(directory: Path, groups: dict[str, bool], extra_nodes: str = "") -> Path:
    """A project whose nodes.yaml has `groups` (name -> http?), all autoscaled, node_min 2."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Pulumi.yaml", directory / "Pulumi.yaml")
    lines = ["__base__:", "  instance_type: m5.large", "  source_ami: ami-12345678", "  image: {builder: packer}",
             f"  autoscale: {{node_min: 2, node_max: 4, spot: {{instance_types: [{', '.join(SPOT_TYPES)}]}}}}"]
    for i, (name, http) in enumerate(groups.items()):
        lines.append(f"{name}:")
        lines.append(f"  description: group {i}")
        if http:
            lines.append(f"  http: {{port: 8080, health_check: /health, paths: ['/{name}/*'], priority: {i + 1}}}")
    (directory / "nodes.yaml").write_text("\n".join(lines) + "\n" + extra_nodes)
    (directory / f"Pulumi.{STACK}.yaml").write_text("config:\n  aws:region: us-east-1\n")
    return directory


def declared_hashes(project: Path) -> dict[str, str]:
    """The image hash per group, as the build would tag the group's AMI."""
    fleet = load_fleet(project / "nodes.yaml", STACK, project_dir=project)
    return hash_groups(fleet.groups, project)


@dataclass
class Deployed:
    ami: dict[str, str] = field(default_factory=dict)          # group -> AMI
    template: dict[str, str] = field(default_factory=dict)     # group -> launch template id
    asgs: dict[str, dict[str, str]] = field(default_factory=dict)  # group -> capacity (+slot) -> ASG name
    target_group: dict[str, str] = field(default_factory=dict)  # group -> target group ARN
    listener: str | None = None
    table: str | None = None


class FleetMaker:
    """Creates the stack's resources on the moto server, one group at a time."""

    def __init__(self, endpoint: str, stack: str = STACK):
        kw = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        self.ec2, self.autoscaling = boto3.client("ec2", **kw), boto3.client("autoscaling", **kw)
        self.elbv2, self.dynamodb = boto3.client("elbv2", **kw), boto3.client("dynamodb", **kw)
        self.stack, self.out = stack, Deployed()
        vpc = self.ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
        self.vpc = vpc
        self.subnets = [s["SubnetId"] for s in self.ec2.describe_subnets(
            Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]][:2]
        self.images: dict[str, str] = {}

    def stack_tags(self, **extra: str) -> list[dict]:
        return [{"Key": k, "Value": v} for k, v in {"fleet:stack": self.stack, **extra}.items()]

    def ami(self, image_hash: str) -> str:
        """One AMI per image hash (groups with the same inputs share it, as the build does)."""
        if image_hash not in self.images:
            ami = self.ec2.register_image(Name=f"fleet-{image_hash[:12]}", RootDeviceName="/dev/xvda",
                                          BlockDeviceMappings=[{"DeviceName": "/dev/xvda",
                                                                "Ebs": {"VolumeSize": 8}}])["ImageId"]
            self.ec2.create_tags(Resources=[ami], Tags=[{"Key": "fleet:image-hash", "Value": image_hash}])
            self.images[image_hash] = ami
        return self.images[image_hash]

    def load_balancer(self) -> str:
        if self.out.listener is None:
            lb = self.elbv2.create_load_balancer(Name=f"fleet-{self.stack}", Subnets=self.subnets,
                                                 Tags=self.stack_tags())["LoadBalancers"][0]["LoadBalancerArn"]
            self.out.listener = self.elbv2.create_listener(
                LoadBalancerArn=lb, Protocol="HTTP", Port=80,
                DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}],
            )["Listeners"][0]["ListenerArn"]
        return self.out.listener

    def target_group(self, group: str, slot: str | None = None) -> str:
        tags = {"fleet:group": group, **({"fleet:slot": slot} if slot else {})}
        return self.elbv2.create_target_group(
            Name=f"{group[:20]}-{slot or 'x'}", Protocol="HTTP", Port=8080, VpcId=self.vpc,
            HealthCheckPath="/health",
            Tags=self.stack_tags(**tags))["TargetGroups"][0]["TargetGroupArn"]

    def rule(self, priority: int, path: str, weights: dict[str, int]) -> None:
        self.elbv2.create_rule(ListenerArn=self.load_balancer(), Priority=priority,
                               Conditions=[{"Field": "path-pattern", "Values": [path]}],
                               Actions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": [
                                   {"TargetGroupArn": arn, "Weight": w} for arn, w in weights.items()]}}])

    def template(self, group: str, ami: str) -> str:
        lt = self.ec2.create_launch_template(
            LaunchTemplateName=f"{self.stack}-{group}-lt",
            LaunchTemplateData={"ImageId": ami, "InstanceType": "m5.large"},
            TagSpecifications=[{"ResourceType": "launch-template", "Tags": self.stack_tags(**{"fleet:group": group})}],
        )["LaunchTemplate"]["LaunchTemplateId"]
        self.out.template[group] = lt
        return lt

    def new_version(self, group: str, ami: str) -> int:
        """A new launch template version with another image (what `pulumi up` does before the rollout)."""
        return self.ec2.create_launch_template_version(
            LaunchTemplateId=self.out.template[group], SourceVersion="1",
            LaunchTemplateData={"ImageId": ami})["LaunchTemplateVersion"]["VersionNumber"]

    def asg(self, group: str, capacity: str, template: str, version: str = "1", desired: int = 1,
            target_groups: list[str] = (), slot: str | None = None) -> str:
        name = f"fleet-{self.stack}-{group}-{capacity}{f'-{slot}' if slot else ''}"
        spec = {"LaunchTemplateId": template, "Version": version}
        placement = ({"MixedInstancesPolicy": {
            "LaunchTemplate": {"LaunchTemplateSpecification": spec,
                               "Overrides": [{"InstanceType": t} for t in SPOT_TYPES]},
            "InstancesDistribution": {"OnDemandBaseCapacity": 0, "OnDemandPercentageAboveBaseCapacity": 0,
                                      "SpotAllocationStrategy": "price-capacity-optimized"}}}
            if capacity == "spot" else {"LaunchTemplate": spec})
        tags = {"fleet:group": group, "fleet:stack": self.stack, "fleet:capacity": capacity,
                **({"fleet:slot": slot} if slot else {})}
        self.autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name, MinSize=1, MaxSize=4, DesiredCapacity=desired,
            VPCZoneIdentifier=",".join(self.subnets), TargetGroupARNs=list(target_groups),
            Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": True, "ResourceId": name,
                   "ResourceType": "auto-scaling-group"} for k, v in tags.items()], **placement)
        self.out.asgs.setdefault(group, {})[capacity + (f"-{slot}" if slot else "")] = name
        return name

    def group(self, name: str, image_hash: str, *, http: bool = False, priority: int = 1) -> None:
        """A group as `pulumi up` leaves it: both ASGs on version 1 of its template, one instance each."""
        ami = self.ami(image_hash)
        self.out.ami[name] = ami
        lt = self.template(name, ami)
        tgs = []
        if http:
            tg = self.target_group(name)
            self.out.target_group[name] = tg
            self.rule(priority, f"/{name}/*", {tg: 1})
            tgs = [tg]
        for capacity in ("on-demand", "spot"):
            self.asg(name, capacity, lt, target_groups=tgs)

    def reconciler_table(self, records: dict[str, dict]) -> str:
        """The reconciler's table (its items keyed `<stack>/<group>`)."""
        name = f"fleet-{self.stack}-capacity"
        self.dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                                   AttributeDefinitions=[{"AttributeName": "group", "AttributeType": "S"}],
                                   KeySchema=[{"AttributeName": "group", "KeyType": "HASH"}], Tags=self.stack_tags())
        for group, item in records.items():
            self.dynamodb.put_item(TableName=name, Item={"group": {"S": f"{self.stack}/{group}"}, **item})
        self.out.table = name
        return name

    def instances_of(self, asg: str) -> list[str]:
        found = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg])["AutoScalingGroups"]
        return [i["InstanceId"] for i in found[0]["Instances"]]
