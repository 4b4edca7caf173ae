"""The scaling rules of one ASG of a group's pair, as plain values (pure: no Pulumi, no boto3).

components/scaling.py renders these into the deployed policies and CloudWatch alarms, and
fleet/simulate replays load against the very same values, so a threshold has one definition: a
change in nodes.yaml moves the plan and the simulation together.

Per ASG (spot with the group's thresholds, on-demand with the higher `scaling.on_demand` ones, so
the fallback scales later than spot):
- target tracking on average CPU with scale-in disabled (the slow simple policy owns scale-in);
- step scale-out: +burst.add_percent % while CPU > burst cpu for burst.periods x burst.period s;
- simple scale-in: -scale_in.remove_percent % while CPU < scale_in.cpu for scale_in.periods x
  scale_in.period s, then scale_in.cooldown s before the next scaling activity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fleet.spec.model import Group

SPOT, ON_DEMAND = "spot", "on-demand"
CAPACITIES = (SPOT, ON_DEMAND)
ABOVE, BELOW = "GreaterThanThreshold", "LessThanThreshold"


@dataclass(frozen=True)
class Alarm:
    """A CloudWatch alarm on the ASG's average CPUUtilization (namespace AWS/EC2)."""
    threshold: float
    comparison: str  # ABOVE | BELOW
    period: int  # seconds
    evaluation_periods: int  # N
    datapoints_to_alarm: int  # M: ALARM when M of the last N breach (deployed: unset, which AWS reads as N)

    def breaches(self, value: float) -> bool:
        return value > self.threshold if self.comparison == ABOVE else value < self.threshold


@dataclass(frozen=True)
class PercentPolicy:
    """A PercentChangeInCapacity policy (step with one step, or simple)."""
    policy_type: str  # StepScaling | SimpleScaling
    percent: int  # signed: + scale-out, - scale-in
    min_adjustment_magnitude: int = 1
    cooldown: int | None = None  # simple policies: seconds before the next scaling activity


@dataclass(frozen=True)
class Rules:
    capacity: str
    target_cpu: float  # target tracking on ASGAverageCPUUtilization
    disable_scale_in: bool
    burst: PercentPolicy
    burst_alarm: Alarm
    scale_in: PercentPolicy
    scale_in_alarm: Alarm


def rules(group: Group, capacity: str) -> Rules:
    """The policies and alarms of one ASG of the pair (`capacity`: spot | on-demand)."""
    s = group.scaling
    target_cpu, burst_cpu = ((s.on_demand.target_cpu, s.on_demand.burst_cpu) if capacity == ON_DEMAND
                             else (s.target_cpu, s.burst.cpu))
    return Rules(
        capacity=capacity, target_cpu=target_cpu, disable_scale_in=True,
        burst=PercentPolicy("StepScaling", s.burst.add_percent),
        burst_alarm=Alarm(burst_cpu, ABOVE, s.burst.period, s.burst.periods, s.burst.periods),
        scale_in=PercentPolicy("SimpleScaling", -s.scale_in.remove_percent, cooldown=s.scale_in.cooldown),
        scale_in_alarm=Alarm(s.scale_in.cpu, BELOW, s.scale_in.period, s.scale_in.periods, s.scale_in.periods),
    )


def percent_adjustment(current: int, percent: int, min_magnitude: int = 1) -> int:
    """Auto Scaling's PercentChangeInCapacity: current x percent / 100, magnitudes above 1 rounded down
    (toward zero), at least `min_magnitude`."""
    raw = current * percent / 100
    magnitude = max(min_magnitude, math.floor(abs(raw)))
    return magnitude if percent > 0 else -magnitude
