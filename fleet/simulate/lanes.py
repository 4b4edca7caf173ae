"""One simulated group variant ("lane") as the numbers the model steps, taken from the deployed code.

Nothing here restates a rule: the policies and alarms come from fleet/render/scaling.py (what
components/scaling.py renders), the pair's sizes and ceiling from fleet/render/capacity.py (what
components/asg_pair.py deploys and the reconciler enforces), the time to serve from the timing model
(fleet/ops/timing.py, per readiness mode), the launching hook's heartbeat from fleet/spec/readiness.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fleet.ops import timing
from fleet.render import capacity
from fleet.render.scaling import ON_DEMAND, SPOT, Rules, rules
from fleet.simulate.market import Market
from fleet.spec.model import Group
from fleet.spec.readiness import launch_bound, launch_hook_heartbeat
from fleet.spec.spot_types import spot_instance_types

STEP = 60  # seconds: one CloudWatch period at detailed monitoring, the model's clock


def minutes(seconds: float) -> int:
    """Seconds as whole model steps, rounded up (an instance ready after 61 s serves from minute 2)."""
    return max(1, math.ceil(seconds / STEP))


@dataclass(frozen=True)
class Lane:
    name: str
    group: Group
    rules: dict[str, Rules]  # by capacity
    spot_min: int
    spot_max: int
    od_base: int
    od_max: int
    ceiling: int  # the pair's hard ceiling (node_max + spot headroom)
    in_service_steps: int  # launch -> InService (warm-up starts)
    ready_steps: int  # launch -> healthy in the target group (serving)
    warmup_steps: int  # default instance warm-up after InService
    abandoned: bool  # converging instances miss the launching hook's heartbeat: never serve
    heartbeat_steps: int
    spot_types: tuple[str, ...]
    spot_price: float  # $/h, mean over the spot types (price-capacity-optimized spreads them)
    od_price: float  # $/h of the group's instance_type
    interruption_per_step: float  # probability a running spot instance is warned in one step
    shortage_per_step: float  # probability a spot capacity shortage starts in one step
    shortage_steps: int  # how long one lasts
    all_on_demand: bool  # `market=on-demand`: the spot ASG's instances bought on demand
    spot_start: int | None = None  # spot instances serving at minute 0 (default: spot_min)
    launch_bound: int = 0  # seconds: a launching instance younger than this is arriving, not missing


def lane(group: Group, market: Market, name: str | None = None, all_on_demand: bool = False) -> Lane:
    if group.autoscale is None:
        raise ValueError(f"group {group.name} has autoscale: false: nothing scales, nothing to simulate")
    spot_lo, _, spot_hi = capacity.spot_capacity(group)
    od_lo, _, od_hi = capacity.on_demand_capacity(group)
    in_service_s, ready_s = timing.typical_ready_seconds(group)
    heartbeat = launch_hook_heartbeat(group)  # counted from launch
    # a converging instance completes the launching hook only if launch + its work fit the heartbeat
    abandoned = group.converges and in_service_s > heartbeat
    types = tuple(spot_instance_types(group))
    hazard = market.interruption_per_step(types, STEP)
    return Lane(
        name=name or group.name, group=group, rules={c: rules(group, c) for c in (SPOT, ON_DEMAND)},
        spot_min=spot_lo, spot_max=spot_hi, od_base=od_lo, od_max=od_hi, ceiling=capacity.pair_ceiling(group),
        in_service_steps=minutes(in_service_s), ready_steps=minutes(ready_s),
        warmup_steps=minutes(capacity.instance_warmup(group)), abandoned=abandoned,
        heartbeat_steps=minutes(heartbeat),
        spot_types=types, spot_price=market.spot_price(types), od_price=market.on_demand_price(group.instance_type),
        interruption_per_step=0.0 if all_on_demand else hazard,
        shortage_per_step=0.0 if all_on_demand else market.shortage_per_step(types, STEP),
        shortage_steps=minutes(market.shortage_seconds), all_on_demand=all_on_demand,
        launch_bound=launch_bound(group),
    )
