"""The spot capacity reconciler's decision, as a pure function (no boto3): what the on-demand ASG of a
group should be, given what its spot ASG has and what the reconciler itself added last time.

The on-demand ASG's desired capacity has two parts, kept apart by a record the reconciler owns:

    desired = cpu_part + extra        MinSize = base + extra

- `extra` is the capacity the reconciler added for missing spot instances. It is recorded outside
  the ASG (the handler keeps it in the stack's DynamoDB table) and also shows as MinSize - base.
- `cpu_part` is everything else: the base plus whatever the on-demand ASG's scaling policies added.
  The reconciler recomputes it each run as `desired - recorded extra` and never changes it.

Why the two never fight:
- Scaling policies only move `desired`; a scale-out raises `cpu_part`, which the next run keeps.
- The simple scale-in policy cannot remove an extra instance: Auto Scaling never takes desired below
  MinSize, and MinSize = base + extra. So `desired - extra >= base` always holds, and the scale-in
  only ever removes CPU-driven capacity.
- The reconciler's output depends only on the spot ASG's state and `cpu_part`: with spot unchanged a
  second run writes exactly what the first wrote (a fixpoint), so there is no back and forth.
- Extra capacity lowers the on-demand CPU, so it never triggers a policy scale-out; when the extra
  goes (decay) the policies see the real load again.

The spot deficit counts spot instances that are not serving: warned (an interruption warning was
received and the instance is still in the group) plus the gap between the spot ASG's desired
capacity and its InService, healthy, unwarned instances (failed launches leave no instance at all).
An instance that is still launching (Pending, Pending:Wait, Pending:Proceed) and younger than its
launch bound (the launch itself + the group's `autoscale.timeout`) is arriving, not missing: every
spot scale-out and every first launch would otherwise launch as many on-demand instances too. Past
the bound (a launch that never gets healthy) it is missing like any other. An arriving instance never
raises the on-demand part, but it does not lower what is already there until it serves
(`deficit_to_cover`): the replacement of a reclaimed instance is arriving too, and letting the extra
go then would leave the group short while it boots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

SERVING_STATE = "InService"
HEALTHY = "Healthy"
LAUNCHING_STATES = frozenset({"Pending", "Pending:Wait", "Pending:Proceed"})


@dataclass(frozen=True)
class SpotInstance:
    instance_id: str
    lifecycle_state: str
    health_status: str
    launched_at: float | None = None  # epoch seconds (EC2's LaunchTime); None: unknown


def arriving(instances: Iterable[SpotInstance], warned: Iterable[str], *, now: float | None = None,
             launch_bound: float | None = None) -> set[str]:
    """Unwarned instances still launching and younger than `launch_bound` seconds at `now`: not serving
    yet, not missing either. Without `now` and `launch_bound` (or a launch time) none is arriving."""
    if now is None or launch_bound is None:
        return set()
    warned = set(warned)
    return {i.instance_id for i in instances
            if i.lifecycle_state in LAUNCHING_STATES and i.instance_id not in warned
            and i.launched_at is not None and now - i.launched_at < launch_bound}


def spot_deficit(desired: int, instances: Iterable[SpotInstance], warned: Iterable[str], *,
                 now: float | None = None, launch_bound: float | None = None) -> int:
    """Spot instances missing from the spot ASG's desired capacity: desired - serving, unwarned ones -
    arriving ones (see `arriving`; without `now` and `launch_bound` every launching instance is missing)."""
    instances, warned = list(instances), set(warned)
    serving = {i.instance_id for i in instances
               if i.lifecycle_state == SERVING_STATE and i.health_status == HEALTHY and i.instance_id not in warned}
    coming = arriving(instances, warned, now=now, launch_bound=launch_bound)
    return max(0, desired - len(serving) - len(coming))


def deficit_to_cover(desired: int, instances: Iterable[SpotInstance], warned: Iterable[str], *, extra: int,
                     now: float | None = None, launch_bound: float | None = None) -> int:
    """The deficit the on-demand ASG covers: arriving instances never raise it (a scale-out or a first
    launch launches no on-demand instance), but they do not take away what is already there either (the
    replacement of a reclaimed instance is not serving yet): between the deficit with and without
    them, as close to the recorded `extra` as that allows."""
    instances, warned = list(instances), set(warned)
    strict = spot_deficit(desired, instances, warned)
    return min(strict, max(extra, spot_deficit(desired, instances, warned, now=now, launch_bound=launch_bound)))


@dataclass(frozen=True)
class OnDemand:
    """The on-demand ASG as read, with the reconciler's own record of what it added (`extra`)."""
    desired: int
    max_size: int
    base: int
    extra: int


@dataclass(frozen=True)
class Plan:
    cpu_part: int
    deficit: int
    extra: int
    desired: int
    min_size: int
    capped: bool  # the deficit did not fit under max_size

    @property
    def unmet(self) -> int:
        return self.deficit - self.extra


def on_demand_room(ceiling: int | None, spot_instances: int, base: int, max_size: int) -> int:
    """The on-demand ASG's MaxSize under the pair's ceiling (node_max + the spot headroom): what the spot
    ASG's instances leave (every instance it has, pending and warned ones too: they run), never below
    the base nor above the on-demand ASG's own maximum. `ceiling` None: no ceiling, the own maximum.

    With it as MaxSize, a policy's scale-out stops at the room and `plan` trims the CPU-driven part to
    it, so the pair never runs more than the ceiling; a missing spot instance (a failed launch) leaves
    its room to the fallback."""
    if ceiling is None:
        return max_size
    return max(base, min(max_size, ceiling - spot_instances))


def plan(deficit: int, od: OnDemand) -> Plan:
    """On-demand desired = CPU-driven part + spot deficit, capped at max_size; MinSize = base + extra.

    The CPU-driven part is never below the base (a scale-in can reach MinSize, never below) nor above
    max_size; the extra is whatever of the deficit fits between it and max_size.
    """
    cpu_part = min(max(od.base, od.desired - od.extra), max(od.max_size, od.base))
    extra = max(0, min(deficit, od.max_size - cpu_part))
    return Plan(cpu_part=cpu_part, deficit=deficit, extra=extra, desired=cpu_part + extra,
                min_size=od.base + extra, capped=deficit > extra)
