"""AsgPair: seed 004's spot Auto Scaling group and its on-demand fallback, for one node group.

`autoscale.node_min`/`node_max` are the group's total across the pair: the on-demand ASG runs
`on_demand.base` instances (at least 1 for http groups: seed 004's steady state) inside that total,
and the spot ASG takes the rest (node_min - base up to node_max - base). Seed 001's
`node_min: 2, node_max: 2` is 2 instances: 1 on-demand + 1 spot.

Spot ASG: mixed instances policy, 100% spot over 3+ instance types (it never falls back to on-demand),
price-capacity-optimized, capacity rebalance, and headroom (10 % of its share, at least 1) above
its max so a rebalance can launch before it terminates; target tracking may use the
headroom too, so at full load a group can briefly run node_max + headroom. On-demand ASG: the base,
up to `on_demand_max` (default node_max: the fallback may carry the whole group while spot is gone),
tagged `fleet:on-demand-base`; the spot capacity reconciler (components/spot_capacity.py) adds the
spot deficit to its desired capacity and MinSize, and takes it away again when spot recovers.

Both: on `launch_template.latest_version` (refreshes and AWS's rollback need a number), autonamed, private subnets,
`ignore_changes` on desired capacity (3) (and the on-demand MinSize, which the reconciler owns)
plus `extra_ignore_changes`, each ASG after its
`after[capacity]` resources (NodeGroup: the ASG's Rollout, which refreshes the instances before
Pulumi moves the ASG's configuration, see components/rollout.py), target groups only via
`target_group_arns` (4), an explicit
`wait_for_capacity_timeout` (5; "0": the provider does not wait for capacity; NodeGroup's HealthGate
Command waits for node_min's share healthy after the ASGs are created and fails with one line, so
a spot shortage or slow boot fails `pulumi up` without orphaning the ASG),
ELB health checks for http groups with grace = `autoscale.timeout` (28), default instance warmup,
1-minute group metrics, tags fleet:group / fleet:stack / fleet:capacity propagated to instances,
and a termination lifecycle hook with a short heartbeat and CONTINUE (29).

`launch_hook_heartbeat` (groups that converge at boot): a launching lifecycle hook `fleet-launch`
on both ASGs, heartbeat = fleet/spec/readiness.py's `launch_hook_heartbeat` (the launch itself plus
the group's `autoscale.timeout`, clamped to AWS's 30-7200 s), default result ABANDON. An instance
waits in Pending:Wait, outside its target group, until its boot program completes the hook
(CONTINUE once converged, ABANDON on failure); one that never answers is abandoned at the timeout
and replaced. A new ASG starts with it (`initial_lifecycle_hooks`), so its very first instances
wait too. On ASGs that already exist the group's rollout puts or deletes the hook as its first step,
before any instance of the new launch template version starts (components/rollout.py): a Pulumi
`LifecycleHook` resource would change it only after the rollout, too late both ways. Blue/green
slots keep the `LifecycleHook` resource: the new version goes into the idle slot, which is parked
(no instances) while Pulumi changes the hook. `initial_lifecycle_hooks` forces a new ASG when it
changes (fleet/plan/replacements.py), so both ASGs ignore changes to it: turning converge on or off
never replaces an ASG.

`slot` (blue/green groups, fleet/ops/bluegreen.py): the pair is one of the group's two permanent slots,
tagged `fleet:slot`. Slot `a` keeps the names a pair had before slots existed (a stack that switches
to blue/green replaces nothing); slot `b` is named `<group>-b-...` and is created empty (min, desired
and max 0: parked). After creation the blue/green rollout owns a slot's launch template version and
its sizes (it moves a version into the idle slot, sizes it to the live one, parks or shrinks the
standby), so Pulumi ignores those fields on slot ASGs and never resets a rollout's work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import pulumi
import pulumi_aws as aws

from fleet.ops.events import BASE_TAG, CEILING_TAG, OD_MAX_TAG
from fleet.ops.timing import drain_seconds  # the termination hook's heartbeat = the modelled drain
from fleet.render.capacity import (  # noqa: F401 (re-exported: the pair's sizes live in the pure module)
    instance_totals,
    instance_warmup,
    on_demand_base,
    on_demand_capacity,
    pair_ceiling,
    spot_capacity,
    spot_headroom,
    spot_share,
)
from fleet.spec.model import Group
from fleet.spec.names import slug
from fleet.spec.readiness import (
    LAUNCH_HOOK_NAME,  # the boot program completes it
    hook_heartbeat,
)

SPOT, ON_DEMAND = "spot", "on-demand"
GROUP_METRICS = [
    "GroupMinSize", "GroupMaxSize", "GroupDesiredCapacity", "GroupInServiceInstances", "GroupPendingInstances",
    "GroupStandbyInstances", "GroupTerminatingInstances", "GroupTotalInstances",
]
DRAIN_HOOK_NAME = "fleet-drain"


@dataclass
class AsgPairArgs:
    group: Group
    stack: str
    launch_template_id: pulumi.Input[str]
    launch_template_version: pulumi.Input[int]
    subnet_ids: Sequence[pulumi.Input[str]]
    spot_instance_types: Sequence[str]
    target_group_arns: Sequence[pulumi.Input[str]] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    wait_for_capacity_timeout: str = "0"
    extra_ignore_changes: Sequence[str] = ()
    after: Mapping[str, Sequence[pulumi.Resource]] = field(default_factory=dict)
    launch_hook_heartbeat: int | None = None
    slot: str | None = None  # "a" | "b" for blue/green groups (module docstring)


SLOT_TAG = "fleet:slot"
# What the blue/green rollout owns on a slot's ASGs. Nested paths in the engine's camelCase: the Python
# SDK translates only a whole top-level name (min_size -> minSize), so a snake_case path would match nothing.
SLOT_OWNED = ["min_size", "max_size", "launchTemplate.version",
              "mixedInstancesPolicy.launchTemplate.launchTemplateSpecification.version"]


def slot_prefix(gslug: str, slot: str | None) -> str:
    """Logical-name prefix of a pair: slot a (and a pair without slots) keeps today's names."""
    return f"{gslug}-{slot}" if slot not in (None, "a") else gslug


class AsgPair(pulumi.ComponentResource):
    spot: aws.autoscaling.Group
    on_demand: aws.autoscaling.Group
    hooks: dict[str, aws.autoscaling.LifecycleHook]

    def __init__(self, name: str, args: AsgPairArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleet:asg_pair:AsgPair", name, None, opts)
        group = args.group
        if group.autoscale is None:
            raise ValueError(f"group {group.name} has autoscale: false; it gets Instances, not an AsgPair")
        if len(args.spot_instance_types) < 3:
            raise ValueError(f"group {group.name}: the spot ASG needs 3+ instance types")
        gslug = slot_prefix(slug(group.name), args.slot)
        version = pulumi.Output.from_input(args.launch_template_version).apply(str)
        # initial_lifecycle_hooks: set at creation only, a change would replace the ASG (see above)
        ignore = ["desired_capacity", "initial_lifecycle_hooks", *args.extra_ignore_changes]
        launch_hook = None
        if args.launch_hook_heartbeat is not None:
            launch_hook = dict(name=LAUNCH_HOOK_NAME, lifecycle_transition="autoscaling:EC2_INSTANCE_LAUNCHING",
                               heartbeat_timeout=hook_heartbeat(args.launch_hook_heartbeat), default_result="ABANDON")

        def asg_opts(capacity: str) -> pulumi.ResourceOptions:
            # The on-demand MinSize belongs to the spot capacity reconciler once the ASG exists (it is
            # base + the reconciler's extra; the base reaches it through the fleet:on-demand-base tag),
            # so `pulumi up` never resets it and never fights the reconciler. Its MaxSize too: the reconciler
            # keeps it at the room the spot ASG leaves under the pair's ceiling (fleet:pair-ceiling), within
            # the ASG's own maximum (fleet:on-demand-max), so the pair never runs more than the ceiling.
            owned = ["min_size", "max_size"] if capacity == ON_DEMAND else []
            if args.slot is not None:
                owned = [*owned, *(f for f in SLOT_OWNED if f not in owned)]
            return pulumi.ResourceOptions(parent=self, ignore_changes=[*ignore[:1], *owned, *ignore[1:]],
                                          depends_on=list(args.after.get(capacity, ())))
        http = group.http is not None
        common = dict(
            vpc_zone_identifiers=list(args.subnet_ids),
            target_group_arns=list(args.target_group_arns) if http else None,
            health_check_type="ELB" if http else "EC2",
            health_check_grace_period=group.autoscale.timeout,
            default_instance_warmup=instance_warmup(group),
            enabled_metrics=GROUP_METRICS,
            metrics_granularity="1Minute",
            wait_for_capacity_timeout=args.wait_for_capacity_timeout,
            initial_lifecycle_hooks=[aws.autoscaling.GroupInitialLifecycleHookArgs(**launch_hook)]
            if launch_hook else None,
        )

        parked = args.slot == "b"  # created empty; the first blue/green deploy fills it
        lo, desired, hi = (0, 0, 0) if parked else spot_capacity(group)
        self.spot = aws.autoscaling.Group(f"{gslug}-spot", aws.autoscaling.GroupArgs(
            min_size=lo, desired_capacity=desired, max_size=hi,
            capacity_rebalance=True,
            mixed_instances_policy=aws.autoscaling.GroupMixedInstancesPolicyArgs(
                instances_distribution=aws.autoscaling.GroupMixedInstancesPolicyInstancesDistributionArgs(
                    on_demand_base_capacity=0, on_demand_percentage_above_base_capacity=0,
                    spot_allocation_strategy=group.autoscale.spot.allocation_strategy),
                launch_template=aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateArgs(
                    launch_template_specification=(
                        aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateLaunchTemplateSpecificationArgs(
                            launch_template_id=args.launch_template_id, version=version)),
                    overrides=[aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateOverrideArgs(instance_type=t)
                               for t in args.spot_instance_types])),
            tags=self._tags(args, SPOT),
            **common), opts=asg_opts(SPOT))

        lo, desired, hi = (0, 0, 0) if parked else on_demand_capacity(group)
        self.on_demand = aws.autoscaling.Group(f"{gslug}-on-demand", aws.autoscaling.GroupArgs(
            min_size=lo, desired_capacity=desired, max_size=hi,
            launch_template=aws.autoscaling.GroupLaunchTemplateArgs(id=args.launch_template_id, version=version),
            # the spot capacity reconciler reads the base here (it moves MinSize to base + its extra), and the
            # ceiling and own maximum it keeps MaxSize under (the group's, also on a parked slot b)
            tags=self._tags(args, ON_DEMAND) + [
                aws.autoscaling.GroupTagArgs(key=k, value=str(v), propagate_at_launch=False)
                for k, v in ((BASE_TAG, on_demand_capacity(group)[0]), (CEILING_TAG, pair_ceiling(group)),
                             (OD_MAX_TAG, on_demand_capacity(group)[2]))],
            **common), opts=asg_opts(ON_DEMAND))

        self.asgs = {SPOT: self.spot, ON_DEMAND: self.on_demand}
        self.hooks = {}
        for capacity, asg in self.asgs.items():
            self.hooks[capacity] = aws.autoscaling.LifecycleHook(
                f"{gslug}-{capacity}-drain", aws.autoscaling.LifecycleHookArgs(
                    # fixed name: unique within its ASG, and an ASG replacement replaces the hook with it
                    name=DRAIN_HOOK_NAME,
                    autoscaling_group_name=asg.name,
                    lifecycle_transition="autoscaling:EC2_INSTANCE_TERMINATING",
                    heartbeat_timeout=drain_seconds(group),
                    default_result="CONTINUE"), opts=pulumi.ResourceOptions(parent=self))
        # Blue/green slots: an idle slot is parked (no instances) when Pulumi changes the hook, so a
        # resource is early enough there; instance-refresh pairs get it from their rollout (docstring).
        self.launch_hooks: dict[str, aws.autoscaling.LifecycleHook] = {}
        for capacity, asg in self.asgs.items() if launch_hook and args.slot is not None else ():
            self.launch_hooks[capacity] = aws.autoscaling.LifecycleHook(
                f"{gslug}-{capacity}-launch", aws.autoscaling.LifecycleHookArgs(
                    autoscaling_group_name=asg.name, **launch_hook), opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"spot_name": self.spot.name, "on_demand_name": self.on_demand.name})

    @staticmethod
    def _tags(args: AsgPairArgs, capacity: str) -> list[aws.autoscaling.GroupTagArgs]:
        tags = {**dict(args.tags), "fleet:group": args.group.name, "fleet:stack": args.stack,
                "fleet:capacity": capacity, "Name": f"fleet-{args.stack}-{args.group.name}-{capacity}"}
        if args.slot is not None:
            tags[SLOT_TAG] = args.slot
            if args.slot != "a":  # slot a keeps today's Name
                tags["Name"] = f"fleet-{args.stack}-{args.group.name}-{args.slot}-{capacity}"
        return [aws.autoscaling.GroupTagArgs(key=k, value=v, propagate_at_launch=True) for k, v in sorted(tags.items())]
