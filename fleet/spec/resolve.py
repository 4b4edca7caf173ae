"""A group as `fleet show` prints it: every default that derives from other keys resolved to the
value the program uses, so nothing shows as null that is not absent (pure; no Pulumi, no boto3)."""

from __future__ import annotations

from typing import Any

from fleet.spec.model import Group
from fleet.spec.names import derived_priority
from fleet.spec.spot_types import spot_instance_types
from fleet.spec.stack import StackConfig

DEFAULT_REGION = "us-east-1"  # the region without a stack, as `fleet packer` and `fleet image build` use it


def resolved(group: Group, stack: StackConfig | None) -> dict[str, Any]:
    """`group.to_dict()` with `autoscale.spot.instance_types` (completed from instance_type when fewer than
    3 are written), `autoscale.on_demand.max` (node_max unless set), `http.priority` (the
    hash of the name unless set), `boot.converge` (by builder unless set) and `region` (the stack's,
    else the group's, else us-east-1), `rollout.strategy` (blue_green for http groups) and
    `rollout.standby_min` (node_min) filled in."""
    d = group.to_dict()
    if group.autoscale is not None:
        d["autoscale"]["on_demand"]["max"] = group.autoscale.on_demand_max
        # the spot ASG's types: the written list, or the one derived from this group's instance_type
        d["autoscale"]["spot"]["instance_types"] = spot_instance_types(group)
    if group.http is not None and group.http.priority is None:
        d["http"]["priority"] = derived_priority(group.name)
    if "boot" in d and d["boot"].get("converge") is None:
        d["boot"]["converge"] = group.converges
    d["region"] = stack.region if stack is not None else (group.region or DEFAULT_REGION)
    if d["rollout"].get("strategy") is None:  # blue_green for http groups (fleet/ops/bluegreen.py)
        d["rollout"]["strategy"] = "blue_green" if group.blue_green else "refresh"
    if d["rollout"].get("standby_min") is None and group.autoscale is not None:
        d["rollout"]["standby_min"] = group.autoscale.node_min
    return d
