"""Sizes of a blue/green group's slots (pure): what the rollout sets on the ASGs it owns.

The shares are the pair's own (components/asg_pair.py: node_min/node_max are the total, the on-demand
base, at least 1 for http groups, counts inside, spot takes the rest plus rebalance headroom);
tests/test_bluegreen_components.py keeps the two in step. The standby keeps `rollout.standby_min`
instances after its window (default node_min: base on-demand, the rest spot; 0: parked, MaxSize 0).
"""

from __future__ import annotations

from fleet.spec.model import Group

SPOT, ON_DEMAND = "spot", "on-demand"


def slot_sizes(group: Group) -> dict[str, dict[str, int]]:
    """{"min": live slot MinSize, "max": slot MaxSize, "standby": standby size after its window}, per capacity."""
    a = group.autoscale
    base = max(a.on_demand.base, 1)
    spot_lo, spot_hi = max(a.node_min - base, 0), max(a.node_max - base, 0)
    headroom = max(1, -(-spot_hi // 10)) if spot_hi else 0
    keep = a.node_min if group.rollout.standby_min is None else group.rollout.standby_min
    od_keep = min(base, keep)
    return {"min": {ON_DEMAND: base, SPOT: spot_lo},
            "max": {ON_DEMAND: max(a.on_demand_max, base), SPOT: spot_hi + headroom},
            "standby": {ON_DEMAND: od_keep, SPOT: keep - od_keep}}
