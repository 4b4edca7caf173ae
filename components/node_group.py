"""NodeGroup: everything one node group runs on.

BakedImage -> LaunchTemplate -> (autoscaled) AsgPair [+ TargetGroup + listener rule for http]
+ ScalingPolicies + alarms + Rollouts, or (autoscale: false) Instances; and a Dashboard.

Rollout (autoscaled groups): one `Rollout` per group (`rollout`), a Command triggered by the launch
template's `latest_version` that rolls the pair to that version: the on-demand canary, a soak of
`rollout.bake_time` with the group's `health_alarms` watched (target 5xx, unhealthy hosts; none for
groups without http, where instance health alone gates), then spot; warmup = `autoscale.timeout`.
A failure at any step leaves both ASGs on the previous version. Both ASGs depend on the rollout:
the refreshes move the instances (and, on success, the ASGs) to the new version first, and
Pulumi's update of the ASGs follows; components/rollout.py says why. A `HealthGate` (`health_gate`)
makes `pulumi up` wait, when the ASGs are created, until node_min's share of each is healthy
(components/health_gate.py). With `alerts_topic_arn`, the health and scaling alarms notify it and
`refresh_alerts` sends the pair's failed, cancelled and rolled-back refreshes to it (components/alerts.py).

Blue/green groups (`group.blue_green`: http groups unless `rollout.strategy: refresh`): two slots,
`slots["a"]` (= `asg_pair`, today's names) and `slots["b"]`, each an AsgPair with its own target group
(TargetGroup with `slots=True`), scaling policies per slot, and a `BlueGreenRollout` (`bluegreen`)
instead of the refresh Rollout, run after the slots and the rule exist (components/bluegreen.py). The
health gate covers slot a, the one a new group starts live on.

`asg_pair.spot`, `asg_pair.on_demand`, `launch_template.template`, `alarms` (every alarm of the
group), `health_alarms` and `rollout` are attributes; `asg_extra_ignore_changes` reaches both
ASGs' `ignore_changes`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pulumi
import pulumi_aws as aws

from components.alerts import RefreshAlerts, RefreshAlertsArgs
from components.asg_pair import ON_DEMAND, SPOT, AsgPair, AsgPairArgs, instance_totals
from components.baked_image import BakedImage, BakedImageArgs
from components.bluegreen import BlueGreenRollout, BlueGreenRolloutArgs
from components.dashboard import Dashboard, DashboardArgs
from components.health_gate import HealthGate, HealthGateArgs
from components.instances import Instances, InstancesArgs
from components.launch_template import LaunchBoot, LaunchTemplate, LaunchTemplateArgs
from components.naming import group_tags
from components.rollout import Rollout, RolloutArgs
from components.scaling import ScalingPolicies, ScalingPoliciesArgs
from components.target_group import TargetGroup, TargetGroupArgs
from fleet.ops import timing
from fleet.spec.model import Group
from fleet.spec.names import slug
from fleet.spec.readiness import launch_hook_heartbeat, readiness
from fleet.spec.spot_types import spot_instance_types
from fleet.spec.stack import StackConfig


@dataclass
class NodeGroupArgs:
    group: Group
    stack: StackConfig
    image_hash: str
    project_dir: Path  # the program's directory: its virtualenv runs the image, rollout and gate Commands
    vpc_id: pulumi.Input[str]
    private_subnet_ids: Sequence[pulumi.Input[str]]
    security_group_ids: Sequence[pulumi.Input[str]]
    listener_arn: pulumi.Input[str] | None = None
    load_balancer_arn_suffix: pulumi.Input[str] | None = None
    rule_priority: int | None = None
    asg_extra_ignore_changes: Sequence[str] = ()
    boot: LaunchBoot | None = None  # the group converges at boot: its bundle in the stack's Artifacts
    alerts_topic_arn: pulumi.Input[str] | None = None  # components/alerts.py
    standby: pulumi.Resource | None = None  # the stack's blue/green Standby (its table): the rollout needs it


class NodeGroup(pulumi.ComponentResource):
    image: BakedImage
    launch_template: LaunchTemplate
    asg_pair: AsgPair | None
    target_group: TargetGroup | None
    scaling: ScalingPolicies | None
    instances: Instances | None
    dashboard: Dashboard
    alarms: list[aws.cloudwatch.MetricAlarm]
    health_alarms: list[aws.cloudwatch.MetricAlarm]
    rollout: Rollout | None
    health_gate: HealthGate | None
    refresh_alerts: RefreshAlerts | None
    slots: dict[str, AsgPair]
    bluegreen: BlueGreenRollout | None

    def __init__(self, name: str, args: NodeGroupArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleet:node_group:NodeGroup", name, None, opts)
        group, stack = args.group, args.stack
        gslug = slug(group.name)
        child = pulumi.ResourceOptions(parent=self)
        tags = group_tags(group, stack.name)

        self.image = BakedImage(gslug, BakedImageArgs(
            group=group, image_hash=args.image_hash, stack=stack.name, region=stack.region,
            pin=stack.amis.get(group.name), project_dir=args.project_dir, nodes_file=stack.nodes_file), opts=child)
        self.launch_template = LaunchTemplate(gslug, LaunchTemplateArgs(
            group=group, stack=stack.name, environment=stack.environment or stack.name,
            ami_id=self.image.ami_id, root_device_name=self.image.root_device_name,
            security_group_ids=args.security_group_ids, tags=tags, boot=args.boot), opts=child)
        lt = self.launch_template
        boot_objects = list(args.boot.objects) if args.boot else []  # the bundle it boots from
        self.asg_pair = self.target_group = self.scaling = self.instances = None
        self.alarms, self.health_alarms = [], []
        self.rollout = self.health_gate = self.refresh_alerts = self.bluegreen = None
        self.slots = {}
        blue_green = group.blue_green

        if group.autoscale is None:
            self.instances = Instances(gslug, InstancesArgs(
                group=group, stack=stack.name, launch_template_id=lt.id, launch_template_version=lt.latest_version,
                subnet_ids=args.private_subnet_ids, tags=tags, after=boot_objects), opts=child)
            self.dashboard = Dashboard(gslug, DashboardArgs(
                group=group.name, stack=stack.name, region=stack.region, instance_ids=self.instances.ids), opts=child)
        else:
            if group.http is not None:
                if args.listener_arn is None or args.load_balancer_arn_suffix is None or args.rule_priority is None:
                    raise ValueError(f"group {group.name} has http but no load balancer listener was given")
                self.target_group = TargetGroup(gslug, TargetGroupArgs(
                    group=group, stack=stack.name, vpc_id=args.vpc_id, listener_arn=args.listener_arn,
                    load_balancer_arn_suffix=args.load_balancer_arn_suffix, priority=args.rule_priority,
                    tags=tags, alerts_topic_arn=args.alerts_topic_arn, slots=blue_green), opts=child)
                self.health_alarms = list(self.target_group.health_alarms)
            if not blue_green:
                self.rollout = Rollout(f"{gslug}-rollout", RolloutArgs(
                    group=group, stack=stack.name, launch_template_id=lt.id,
                    launch_template_version=lt.latest_version, region=stack.region, project_dir=args.project_dir,
                    alarm_names=[a.name for a in self.health_alarms],
                    launch_hook_heartbeat=launch_hook_heartbeat(group) if args.boot else None,
                    after=boot_objects), opts=child)
            self.asg_pair = AsgPair(gslug, AsgPairArgs(
                group=group, stack=stack.name, launch_template_id=lt.id, launch_template_version=lt.latest_version,
                subnet_ids=args.private_subnet_ids, spot_instance_types=spot_instance_types(group),
                target_group_arns=[self.target_group.arn] if self.target_group else [],
                tags=tags, extra_ignore_changes=list(args.asg_extra_ignore_changes),
                launch_hook_heartbeat=launch_hook_heartbeat(group) if args.boot else None,
                # both ASGs are updated only after the group's rollout refreshed them (components/rollout.py)
                after={capacity: [self.rollout.command] for capacity in (ON_DEMAND, SPOT)} if self.rollout else {},
                slot="a" if blue_green else None),
                opts=child)
            pair = self.asg_pair
            if blue_green:
                self.slots = {"a": pair, "b": AsgPair(f"{gslug}-b", AsgPairArgs(
                    group=group, stack=stack.name, launch_template_id=lt.id,
                    launch_template_version=lt.latest_version, subnet_ids=args.private_subnet_ids,
                    spot_instance_types=spot_instance_types(group),
                    target_group_arns=[self.target_group.target_groups["b"].arn], tags=tags,
                    extra_ignore_changes=list(args.asg_extra_ignore_changes),
                    launch_hook_heartbeat=launch_hook_heartbeat(group) if args.boot else None, slot="b"), opts=child)}
            self.health_gate = HealthGate(gslug, HealthGateArgs(
                group=group, asg_names=[pair.on_demand.name, pair.spot.name], region=stack.region,
                project_dir=args.project_dir, target_group_arn=self.target_group.arn if self.target_group else None,
                after=[pair, *([self.target_group] if self.target_group else [])]), opts=child)
            self.scaling = ScalingPolicies(gslug, ScalingPoliciesArgs(
                group=group, stack=stack.name,
                asg_names={capacity: asg.name for capacity, asg in self.asg_pair.asgs.items()}, tags=tags,
                alerts_topic_arn=args.alerts_topic_arn), opts=child)
            self.slot_scaling = {}
            if "b" in self.slots:  # scaling policies apply to both slots from the start
                self.slot_scaling["b"] = ScalingPolicies(f"{gslug}-b", ScalingPoliciesArgs(
                    group=group, stack=stack.name,
                    asg_names={capacity: asg.name for capacity, asg in self.slots["b"].asgs.items()}, tags=tags,
                    alerts_topic_arn=args.alerts_topic_arn, slot="b"), opts=child)
            if args.alerts_topic_arn is not None:  # (a blue/green deploy starts no refresh in slot b)
                self.refresh_alerts = RefreshAlerts(gslug, RefreshAlertsArgs(
                    group=group.name, stack=stack.name, asg_names=[pair.on_demand.name, pair.spot.name],
                    topic_arn=args.alerts_topic_arn, tags=tags), opts=child)
            self.alarms = [a for sc in (self.scaling, *self.slot_scaling.values())
                           for kinds in sc.alarms.values() for a in kinds.values()]
            if blue_green:
                tg = self.target_group
                self.bluegreen = BlueGreenRollout(f"{gslug}-bluegreen", BlueGreenRolloutArgs(
                    group=group, stack=stack.name, region=stack.region, project_dir=args.project_dir,
                    rule_arn=tg.listener_rule.arn, launch_template_id=lt.id, launch_template_version=lt.latest_version,
                    target_group_arns=[t.arn for t in tg.target_groups.values()],
                    alarm_names={slot: [a.name for a in alarms] for slot, alarms in tg.slot_alarms.items()},
                    after=[*self.slots.values(), tg, *([args.standby] if args.standby else []), *boot_objects]),
                    opts=child)
            self.alarms += self.health_alarms
            self.dashboard = Dashboard(gslug, DashboardArgs(
                group=group.name, stack=stack.name, region=stack.region,
                asg_names={capacity: asg.name for capacity, asg in self.asg_pair.asgs.items()},
                target_group_arn_suffix=self.target_group.arn_suffix if self.target_group else None,
                load_balancer_arn_suffix=args.load_balancer_arn_suffix if self.target_group else None), opts=child)

        self.outputs = {
            "ami_id": self.image.ami_id,
            "launch_template_id": lt.id,
            "launch_template_version": lt.latest_version,
            "spot_asg_name": self.asg_pair.spot.name if self.asg_pair else None,
            "on_demand_asg_name": self.asg_pair.on_demand.name if self.asg_pair else None,
            # blue/green: both slots, the modelled rollback and the standby's cost (fleet/ops/timing.py)
            "slots": slots_output(group, self.slots, self.target_group) if self.slots else None,
            "target_group_arn": self.target_group.arn if self.target_group else None,
            "instance_ids": self.instances.ids if self.instances else None,
            "health_alarm_names": [a.name for a in self.health_alarms],
            "ready": dataclasses.asdict(readiness(group)),
            # node_min/node_max are totals across the pair; how it splits them (the plan shows it)
            "instances": instance_totals(group) if group.autoscale else None,
        }
        self.register_outputs(self.outputs)


def slots_output(group: Group, slots: dict[str, AsgPair], target_group: TargetGroup) -> dict:
    """What the plan shows of a blue/green group: each slot's ASGs and target group, the rollback model
    and the standby's cost per deploy."""
    r = group.rollout
    return {
        "strategy": "blue_green",
        "slots": {slot: {"spot_asg_name": pair.spot.name, "on_demand_asg_name": pair.on_demand.name,
                         "target_group_arn": target_group.target_groups[slot].arn} for slot, pair in slots.items()},
        "rollback_seconds": timing.bluegreen_rollback_seconds(group),
        "rollback_seconds_after_standby": timing.bluegreen_rollback_seconds(group, standby_scaled=True),
        "refresh_rollback_seconds": timing.rollback_model(group)["soak"],
        "canary_weight": r.canary_weight, "bake_time": r.bake_time, "standby": r.standby,
        "standby_instance_hours": timing.standby_instance_hours(group),
    }
