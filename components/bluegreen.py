"""Blue/green for http groups: the per-group rollout Command and the per-stack standby machinery.

`BlueGreenRollout` (one per blue/green group): a `pulumi_command.local.Command` running
`.venv/bin/python -m fleet.ops.bluegreen --group G --stack S --rule-arn R --launch-template-id ID
--version N ...` (fleet/ops/bluegreen.py: new version into the idle slot at the live slot's size,
health wait, canary weight + soak with both slots' health alarms watched, 100/0, standby). Unlike the
refresh Rollout it runs AFTER the slots and the rule exist (`depends_on` them): Pulumi never moves a
slot's launch template version or sizes (components/asg_pair.py ignores them on slot ASGs), so there
is nothing to order before. `triggers` = the launch template version (a new one deploys), the slots'
target group ARNs (a replaced target group is written into the rule by the next run, before Pulumi
deletes the old one) and the group's sizes (a node_min/node_max edit reaches the slots). A re-run at
an unchanged version converges the rule (100/0 on the live slot) and changes nothing else.

`Standby` (one per stack with blue/green groups):
- the rollout table (DynamoDB, fixed name `fleet-<stack>-rollouts`, lambdas/bluegreen/slots.py): the
  per-group lock and standby record, found by name by `fleet rollback` and the function;
- the standby function (lambdas/bluegreen/handler.py, exactly its two files): invoked by an EventBridge
  rule on the state changes to ALARM of the stack's slot health alarms (it flips back when the live
  slot alarms during the standby window: no one has to watch), and by a 5-minute schedule (it scales
  standbys down once their window ended);
- its role: read ASGs, alarm tags and rules; ModifyRule on this stack's listener rules;
  UpdateAutoScalingGroup on ASGs tagged with this stack; the table's items; its log group.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import pulumi
import pulumi_aws as aws
import pulumi_command as command

from components.naming import stack_tags
from components.project_python import python_module_command
from fleet.ops import timing
from fleet.spec.model import Group
from fleet.spec.names import health_alarm_prefix, slug
from fleet.spec.slots import slot_sizes

HANDLER_DIR = Path(__file__).resolve().parent.parent / "lambdas" / "bluegreen"
HANDLER_FILES = ("handler.py", "slots.py")
SCHEDULE = "rate(5 minutes)"
TIMEOUT = 120  # seconds: one flip is a few calls; a scale-down pass over every group of the stack
LOG_RETENTION_DAYS = 30


def table_name(stack: str) -> str:
    """Same as lambdas/bluegreen/slots.table_name (the program does not import the function's code)."""
    return f"fleet-{stack}-rollouts"


def bluegreen_command_line(project_dir: Path, group: Group, stack: str, rule_arn: str, template_id: str,
                           version: int | float | str, alarms: Mapping[str, Sequence[str]],
                           region: str | None = None) -> str:
    """`.venv/bin/python -m fleet.ops.bluegreen ...` with every value shell-quoted."""
    sizes = slot_sizes(group)
    argv = ["--group", group.name, "--stack", stack, "--rule-arn", rule_arn, "--table", table_name(stack),
            "--launch-template-id", template_id, "--version", str(int(float(version)))]
    for slot, names in sorted(alarms.items()):
        argv += [a for name in names for a in ("--alarm", f"{slot}={name}")]
    r = group.rollout
    argv += ["--canary-weight", str(r.canary_weight), "--bake-time", str(r.bake_time), "--standby", str(r.standby)]
    for flag, key in (("--standby-size", "standby"), ("--min-size", "min"), ("--max-size", "max")):
        argv += [a for cap, n in sorted(sizes[key].items()) for a in (flag, f"{cap}={n}")]
    argv += ["--health-timeout", str(timing.gate_timeout(group))]
    if region:
        argv += ["--region", region]
    return python_module_command(project_dir, "fleet.ops.bluegreen", argv)


@dataclass
class BlueGreenRolloutArgs:
    group: Group
    stack: str
    region: str
    project_dir: Path
    rule_arn: pulumi.Input[str]
    launch_template_id: pulumi.Input[str]
    launch_template_version: pulumi.Input[int]
    target_group_arns: Sequence[pulumi.Input[str]]
    alarm_names: Mapping[str, Sequence[pulumi.Input[str]]]  # slot -> its health alarms
    after: Sequence[pulumi.Resource] = ()


class BlueGreenRollout(pulumi.ComponentResource):
    command: command.local.Command

    def __init__(self, name: str, args: BlueGreenRolloutArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleet:bluegreen:BlueGreenRollout", name, None, opts)
        group = args.group
        slots = sorted(args.alarm_names)
        flat = [(s, a) for s in slots for a in args.alarm_names[s]]

        def line(values: list) -> str:
            rule_arn, template_id, version, *names = values
            alarms: dict[str, list[str]] = {}
            for (slot, _), alarm in zip(flat, names, strict=True):
                alarms.setdefault(slot, []).append(alarm)
            return bluegreen_command_line(args.project_dir, group, args.stack, rule_arn, template_id, version,
                                          alarms, region=args.region)

        create = pulumi.Output.all(args.rule_arn, args.launch_template_id, args.launch_template_version,
                                   *[a for _, a in flat]).apply(line)
        self.command = command.local.Command(f"{name}-deploy", command.local.CommandArgs(
            create=create,
            triggers=[args.launch_template_version, *args.target_group_arns, json.dumps(slot_sizes(group))],
            add_previous_output_in_env=False,  # its output never comes back as environment variables
        ), opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)))
        self.register_outputs({"create": create})


def standby_policy(stack: str, region: str, partition: str, account: str, table_arn: str,
                   log_group_arn: str) -> dict:
    arn = f"arn:{partition}"
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "Read", "Effect": "Allow", "Resource": "*",  # Describe*/ListTags* take no resource scope
         "Action": ["autoscaling:DescribeAutoScalingGroups", "elasticloadbalancing:DescribeRules",
                    "elasticloadbalancing:DescribeTargetHealth", "cloudwatch:ListTagsForResource"]},
        {"Sid": "Flip", "Effect": "Allow", "Action": ["elasticloadbalancing:ModifyRule"],
         "Resource": f"{arn}:elasticloadbalancing:{region}:{account}:listener-rule/app/*",
         "Condition": {"StringEquals": {"aws:ResourceTag/fleet:stack": stack}}},
        {"Sid": "ShrinkStandby", "Effect": "Allow", "Action": ["autoscaling:UpdateAutoScalingGroup"],
         "Resource": f"{arn}:autoscaling:{region}:{account}:autoScalingGroup:*:autoScalingGroupName/*",
         "Condition": {"StringEquals": {"aws:ResourceTag/fleet:stack": stack,
                                        "autoscaling:ResourceTag/fleet:stack": stack}}},
        {"Sid": "LockAndRecord", "Effect": "Allow", "Resource": table_arn,
         "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Scan"]},
        {"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": f"{log_group_arn}:*"},
    ]}


def alarm_pattern(stack: str, groups: Sequence[str]) -> dict:
    """The slot health alarms of these groups entering ALARM (their names start with the group's
    health alarm prefix, fleet.spec.names.health_alarm_prefix)."""
    return {"source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"],
            "detail": {"alarmName": [{"prefix": health_alarm_prefix(g, stack)} for g in sorted(groups)],
                       "state": {"value": ["ALARM"]}}}


def handler_archive(directory: Path = HANDLER_DIR) -> pulumi.AssetArchive:
    return pulumi.AssetArchive({name: pulumi.StringAsset((directory / name).read_text(encoding="utf-8"))
                                for name in HANDLER_FILES})


@dataclass
class StandbyArgs:
    stack: str
    region: str
    groups: Sequence[str]  # the stack's blue/green groups
    tags: Mapping[str, str] = field(default_factory=dict)


class Standby(pulumi.ComponentResource):
    table: aws.dynamodb.Table
    function: aws.lambda_.Function

    def __init__(self, name: str, args: StandbyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleet:bluegreen:Standby", name, None, opts)
        stack, tags = args.stack, stack_tags(args.stack, args.tags)
        base = f"fleet-{slug(stack)[:30].strip('-')}-standby"

        def child(*depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=list(depends_on))

        self.table = aws.dynamodb.Table(f"{base}-table", aws.dynamodb.TableArgs(
            name=table_name(stack), billing_mode="PAY_PER_REQUEST", hash_key="group",
            attributes=[aws.dynamodb.TableAttributeArgs(name="group", type="S")], tags=tags), opts=child())
        self.role = aws.iam.Role(f"{base}-role", aws.iam.RoleArgs(
            description=f"fleet {stack}: blue/green standby function (Lambda)",
            assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
            tags=tags), opts=child())
        self.function = aws.lambda_.Function(f"{base}-function", aws.lambda_.FunctionArgs(
            description=f"fleet {stack}: flips a blue/green group back to its standby on a live-slot alarm; "
                        "scales standbys down after their window",
            runtime="python3.12", handler="handler.handler", code=handler_archive(), role=self.role.arn,
            timeout=TIMEOUT, memory_size=128,
            environment=aws.lambda_.FunctionEnvironmentArgs(variables={
                "FLEET_STACK": stack, "FLEET_ROLLOUT_TABLE": self.table.name}), tags=tags), opts=child())
        self.log_group = aws.cloudwatch.LogGroup(f"{base}-logs", aws.cloudwatch.LogGroupArgs(
            name=self.function.name.apply(lambda n: f"/aws/lambda/{n}"), retention_in_days=LOG_RETENTION_DAYS,
            tags=tags), opts=child())
        region = args.region
        self.policy = aws.iam.RolePolicy(f"{base}-policy", aws.iam.RolePolicyArgs(
            role=self.role.id,
            policy=pulumi.Output.all(self.role.arn, self.table.arn, self.log_group.arn).apply(
                lambda v: json.dumps(standby_policy(stack, region, v[0].split(":")[1], v[0].split(":")[4],
                                                    v[1], v[2])))), opts=child())
        self.rules = {
            "alarm": aws.cloudwatch.EventRule(f"{base}-alarm", aws.cloudwatch.EventRuleArgs(
                description=f"fleet {stack}: a blue/green slot's health alarm -> standby function (rollback)",
                event_pattern=json.dumps(alarm_pattern(stack, args.groups)), tags=tags), opts=child()),
            "schedule": aws.cloudwatch.EventRule(f"{base}-schedule", aws.cloudwatch.EventRuleArgs(
                description=f"fleet {stack}: scale blue/green standbys down after their window",
                schedule_expression=SCHEDULE, tags=tags), opts=child()),
        }
        self.targets: dict[str, aws.cloudwatch.EventTarget] = {}
        for key, rule in self.rules.items():
            permission = aws.lambda_.Permission(f"{base}-invoke-{key}", aws.lambda_.PermissionArgs(
                action="lambda:InvokeFunction", function=self.function.name, principal="events.amazonaws.com",
                source_arn=rule.arn), opts=child())
            self.targets[key] = aws.cloudwatch.EventTarget(f"{base}-target-{key}", aws.cloudwatch.EventTargetArgs(
                rule=rule.name, arn=self.function.arn), opts=child(permission, self.policy, self.log_group))
        self.register_outputs({"table_name": self.table.name, "function_name": self.function.name})
