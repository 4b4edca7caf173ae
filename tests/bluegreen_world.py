"""A blue/green group as AWS holds it, built on the moto server: VPC, ALB, listener, the rule (a plain
forward to slot a, as a stack from before slots has it), two target groups, a launch template with
versions 1 and 2, slot a's pair on version 1 and slot b's pair parked (0), both slots' health alarms
and the stack's rollout table. Shared by tests/test_bluegreen.py and bench/bench_bluegreen.py."""

from __future__ import annotations

from dataclasses import dataclass

import boto3

from fleet.ops import bluegreen as bg
from lambdas.bluegreen import slots as sl

GROUP, STACK = "www", "staging"


@dataclass
class World:
    clients: bg.Clients
    ec2: object
    rule_arn: str
    template_id: str
    target_groups: dict[str, str]
    asgs: dict[str, dict[str, str]]  # slot -> capacity -> name
    alarms: dict[str, list[str]]

    def settings(self, version: int = 2, **kw) -> bg.Settings:
        base = dict(alarms=self.alarms, canary_weight=5, bake_time=60, standby=3600,
                    standby_sizes={"on-demand": 1, "spot": 0}, min_sizes={"on-demand": 1, "spot": 1},
                    max_sizes={"on-demand": 4, "spot": 6}, health_timeout=120)
        base.update(kw)
        return bg.Settings(GROUP, STACK, self.rule_arn, sl.table_name(STACK), self.template_id, version, **base)

    def weights(self) -> dict[str, int]:
        slots = sl.find_slots(self.clients.autoscaling, GROUP, STACK)
        return sl.read_weights(self.clients.elbv2, self.rule_arn, slots)

    def alarm(self, slot: str, state: str = "ALARM") -> None:
        self.clients.cloudwatch.set_alarm_state(AlarmName=self.alarms[slot][0], StateValue=state,
                                                StateReason="test")

    def asg(self, slot: str, capacity: str) -> dict:
        return self.clients.autoscaling.describe_auto_scaling_groups(
            AutoScalingGroupNames=[self.asgs[slot][capacity]])["AutoScalingGroups"][0]


def build(region: str = "us-east-1") -> World:
    c = bg.Clients(*(boto3.client(s, region_name=region)
                     for s in ("autoscaling", "elbv2", "cloudwatch", "dynamodb")))
    ec2 = boto3.client("ec2", region_name=region)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{region}{z}")
               ["Subnet"]["SubnetId"] for i, z in ((1, "a"), (2, "b"))]
    lb = c.elbv2.create_load_balancer(Name="fleet", Subnets=subnets)["LoadBalancers"][0]
    tgs = {s: c.elbv2.create_target_group(Name=f"www-{s}", Protocol="HTTP", Port=8080, VpcId=vpc)
           ["TargetGroups"][0]["TargetGroupArn"] for s in sl.SLOTS}
    listener = c.elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
                                       DefaultActions=[{"Type": "fixed-response",
                                                        "FixedResponseConfig": {"StatusCode": "404"}}])
    rule = c.elbv2.create_rule(ListenerArn=listener["Listeners"][0]["ListenerArn"], Priority=10,
                               Conditions=[{"Field": "path-pattern", "Values": ["/*"]}],
                               Actions=[{"Type": "forward", "TargetGroupArn": tgs["a"]}])["Rules"][0]["RuleArn"]
    lt = ec2.create_launch_template(LaunchTemplateName="www", LaunchTemplateData={
        "ImageId": "ami-12c6146b", "InstanceType": "m5.large"})["LaunchTemplate"]["LaunchTemplateId"]
    ec2.create_launch_template_version(LaunchTemplateId=lt, LaunchTemplateData={
        "ImageId": "ami-12c6146b", "InstanceType": "m5.xlarge"})
    # the program's templates set update_default_version; moto also reports every instance's version as
    # the template's default one, so the ASGs' configured versions are what tells the slots apart here
    ec2.modify_launch_template(LaunchTemplateId=lt, DefaultVersion="2")
    asgs: dict[str, dict[str, str]] = {}
    for slot in sl.SLOTS:
        size = 1 if slot == "a" else 0
        for cap in sl.CAPACITIES:
            name = f"www-{slot}-{cap}" if slot == "b" else f"www-{cap}"
            c.autoscaling.create_auto_scaling_group(
                AutoScalingGroupName=name, MinSize=size, MaxSize=max(size, 0) + (4 if slot == "a" else 0),
                DesiredCapacity=size, LaunchTemplate={"LaunchTemplateId": lt, "Version": "1"},
                VPCZoneIdentifier=",".join(subnets), TargetGroupARNs=[tgs[slot]],
                Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": True} for k, v in (
                    ("fleet:group", GROUP), ("fleet:stack", STACK), ("fleet:slot", slot), ("fleet:capacity", cap))])
            asgs.setdefault(slot, {})[cap] = name
    alarms = {}
    for slot in sl.SLOTS:
        names = [f"fleet-{STACK}-www-health-{'' if slot == 'a' else slot + '-'}{kind}" for kind in ("5xx", "unhealthy")]
        for name in names:
            c.cloudwatch.put_metric_alarm(
                AlarmName=name, Namespace="AWS/ApplicationELB", MetricName="HTTPCode_Target_5XX_Count",
                Statistic="Sum", Period=60, EvaluationPeriods=2, Threshold=10,
                ComparisonOperator="GreaterThanOrEqualToThreshold",
                Tags=[{"Key": "fleet:group", "Value": GROUP}, {"Key": "fleet:stack", "Value": STACK},
                      {"Key": "fleet:slot", "Value": slot}])
        alarms[slot] = names
    c.dynamodb.create_table(TableName=sl.table_name(STACK), BillingMode="PAY_PER_REQUEST",
                            AttributeDefinitions=[{"AttributeName": "group", "AttributeType": "S"}],
                            KeySchema=[{"AttributeName": "group", "KeyType": "HASH"}])
    return World(c, ec2, rule, lt, tgs, asgs, alarms)


class FakeClock(bg.Clock):
    """Simulated time: sleep advances it; `at` runs callbacks when the time passes a mark."""

    def __init__(self, poll: float = 5):
        self.t, self.lines, self.events = 1_000_000.0, [], []
        super().__init__(poll=poll, log=self.lines.append, sleep=self._sleep, now=lambda: self.t)

    def _sleep(self, seconds: float) -> None:
        self.t += max(seconds, 0.001)
        for mark, fn in list(self.events):
            if self.t >= mark:
                self.events.remove((mark, fn))
                fn()

    def at(self, after: float, fn) -> None:
        self.events.append((self.t + after, fn))
