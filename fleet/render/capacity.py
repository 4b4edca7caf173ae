"""The sizes of a group's spot/on-demand pair (pure: components/asg_pair.py deploys them, the spot
capacity reconciler enforces the ceiling, fleet/simulate replays both).

`autoscale.node_min`/`node_max` are the group's total across the pair: the on-demand ASG runs
`on_demand.base` instances inside that total, the spot ASG takes the rest, plus rebalance headroom
(capacity rebalancing launches before it terminates). Each ASG's own maximum alone would let the pair
run spot max + on-demand max together; the pair's ceiling (`pair_ceiling`: node_max + the spot
headroom) is what the two may run at once: the spot ASG's maximum is ceiling - base, and the spot
capacity reconciler keeps the on-demand ASG's MaxSize at the room the spot ASG's instances leave
(lambdas/spot_capacity/reconcile.py `on_demand_room`).
"""

from __future__ import annotations

from fleet.spec.model import Group


def on_demand_base(group: Group) -> int:
    """The on-demand ASG's steady size: `on_demand.base`, at least 1 for http groups (seed 004)."""
    a = group.autoscale
    return max(a.on_demand.base, 1) if group.http else a.on_demand.base


def spot_share(group: Group) -> tuple[int, int]:
    """(min, max) of the spot ASG's share: node_min/node_max are the group's total, the base counts inside."""
    a, base = group.autoscale, on_demand_base(group)
    return max(a.node_min - base, 0), max(a.node_max - base, 0)


def spot_headroom(group: Group) -> int:
    """Spot max above its share, so capacity rebalancing can launch before it terminates:
    10 % of the share, at least 1 (none when spot has no share)."""
    share = spot_share(group)[1]
    return max(1, -(-share // 10)) if share else 0


def spot_capacity(group: Group) -> tuple[int, int, int]:
    """(min, initial desired, max) of the spot ASG: its share of the total, max + headroom."""
    lo, hi = spot_share(group)
    return lo, lo, hi + spot_headroom(group)


def on_demand_capacity(group: Group) -> tuple[int, int, int]:
    """(min, initial desired, max) of the on-demand ASG: the base, up to on_demand_max (default node_max:
    the fallback may carry the whole group while spot is gone)."""
    base = on_demand_base(group)
    return base, base, max(group.autoscale.on_demand_max, base)


def instance_totals(group: Group) -> dict[str, int]:
    """What the plan shows per autoscaled group: the totals and how the pair splits them."""
    a = group.autoscale
    lo, hi = spot_share(group)
    return {"node_min": a.node_min, "node_max": a.node_max, "on_demand_base": on_demand_base(group),
            "spot_min": lo, "spot_max": hi, "spot_headroom": spot_headroom(group)}


def pair_ceiling(group: Group) -> int:
    """Most instances the pair may run at once: node_max plus the spot ASG's rebalance headroom."""
    return group.autoscale.node_max + spot_headroom(group)


def instance_warmup(group: Group) -> int:
    """Both ASGs' default instance warm-up: the group's time to healthy (`autoscale.timeout`); an
    instance in warm-up does not count toward the capacity a scale-out starts from."""
    return group.autoscale.timeout
