"""Benchmark: one day of one group's spot/on-demand pair, with N interruption warnings and a window
in which spot launches fail (InsufficientInstanceCapacity), under the old bump-only handler and under
the spot capacity reconciler. Reports on-demand instance-hours and minutes below the needed capacity.

A minute-by-minute replay (pure functions, no AWS). Both runs see the same trace: the needed capacity
(diurnal), the same warnings (same instances), the same failed launches, and the same on-demand scaling
policies (target tracking out at 75 % CPU, seed 004's simple scale-in below 30 % for 10 minutes with a
300 s cooldown). They differ only in what touches the on-demand ASG:
- old: +1 desired per warning, capped at on_demand.max (the removed lambdas/spot_interruption logic);
- reconciler: lambdas/spot_capacity/reconcile.py's spot_deficit + plan, run on every event (warning,
  launch successful/unsuccessful, terminate) and every 5 minutes, with MinSize = base + extra;
  "launching = arriving" is what the handler does (deficit_to_cover with the clock): a spot instance
  still launching within its bound (BOUND minutes) raises nothing, and holds what is already there.

Model: spot desired = needed - base (what spot target tracking asks for); a warned instance is drained
at once and gone 2 minutes later; the spot ASG relaunches what is missing every minute (each launch
fails inside the shortage window); every instance serves `BOOT` minutes after its launch; CPU = 50 %
x needed / serving (the load a serving fleet at 50 % would carry). Not a test: run
`python bench/bench_spot_capacity.py` (prints the table that bench/RESULTS.md holds).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lambdas.spot_capacity.reconcile import (  # noqa: E402
    OnDemand,
    SpotInstance,
    deficit_to_cover,
    plan,
    spot_deficit,
)

DAY = 24 * 60
BOOT = 4            # minutes from launch to serving (both capacities)
BOUND = 6           # minutes: a launch's bound (launch 1.5 + autoscale.timeout 4.5), above BOOT
WARNING = 2         # minutes from the warning to the reclaim
SCHEDULE = 5        # the reconciler's schedule
BASE, OD_MAX = 1, 6
SCALE_IN = (30.0, 10, 5, 0.10)     # cpu %, minutes below, cooldown minutes, remove fraction (min 1)
SCALE_OUT = (75.0, 3, 3)           # cpu %, minutes above, cooldown minutes: +1


def needed(t: int) -> int:
    """Diurnal demand in instances: 5 at night, 11 at the afternoon peak."""
    return round(8 - 3 * math.cos(2 * math.pi * (t - 180) / DAY))


@dataclass
class Instance:
    id: int
    launched: int
    warned: int | None = None
    gone: int | None = None

    def serving(self, t: int) -> bool:
        return self.launched + BOOT <= t and self.warned is None


@dataclass
class Trace:
    interruptions: list[int]  # minutes with a warning for one serving spot instance
    shortage: range           # minutes in which spot launches fail
    seed: int


@dataclass
class Result:
    od_instance_minutes: int = 0
    minutes_below: int = 0
    minutes_below_in_shortage: int = 0
    instance_minutes_short: int = 0
    max_od: int = 0
    events: int = 0


@dataclass
class OnDemandAsg:
    desired: int = BASE
    min_size: int = BASE
    instances: list[Instance] = field(default_factory=list)
    low: int = 0
    high: int = 0
    cooldown_until: int = 0


def run(trace: Trace, mode: str, spare: int = 0) -> Result:
    """Replay the day; `spare` on-demand instances above the base (on_demand.base = BASE + spare, spot
    still asked for needed - BASE) buy headroom for the reconciler."""
    rng = random.Random(trace.seed)
    base = BASE + spare
    next_id = iter(range(10**9))
    spot: list[Instance] = [Instance(next(next_id), -BOOT) for _ in range(needed(0) - BASE)]
    od = OnDemandAsg(desired=base, min_size=base, instances=[Instance(next(next_id), -BOOT) for _ in range(base)])
    extra = 0
    out = Result()
    warnings = sorted(trace.interruptions)
    for t in range(DAY):
        need = needed(t)
        spot_desired = need - BASE
        event = False
        # EC2: warnings and reclaims
        for _ in range(warnings.count(t)):
            candidates = [i for i in spot if i.serving(t)]
            if candidates:
                victim = rng.choice(candidates)
                victim.warned, victim.gone = t, t + WARNING
                event = True
                if mode == "old":
                    od.desired = min(OD_MAX, od.desired + 1)
        leaving = [i for i in spot if i.gone == t]
        spot = [i for i in spot if i.gone != t]
        event |= bool(leaving)
        # the spot ASG: relaunch what is missing (fails in the shortage), scale in what is too much
        if len(spot) < spot_desired:
            event = True  # launch successful / unsuccessful
            if t not in trace.shortage:
                spot += [Instance(next(next_id), t) for _ in range(spot_desired - len(spot))]
        elif len(spot) > spot_desired:
            spot.sort(key=lambda i: (i.warned is None, -i.launched))
            spot = spot[len(spot) - spot_desired:]
        # the reconciler
        if mode in ("reconciler", "arriving") and (event or t % SCHEDULE == 0):
            out.events += 1
            states = [SpotInstance(str(i.id), "InService" if i.launched + BOOT <= t else "Pending", "Healthy",
                                   launched_at=i.launched) for i in spot]
            warned = [str(i.id) for i in spot if i.warned is not None]
            if mode == "arriving":
                deficit = deficit_to_cover(spot_desired, states, warned, extra=extra, now=t, launch_bound=BOUND)
            else:
                deficit = spot_deficit(spot_desired, states, warned)
            p = plan(deficit, OnDemand(desired=od.desired, max_size=OD_MAX, base=base, extra=extra))
            od.desired, od.min_size, extra = p.desired, p.min_size, p.extra
        # the on-demand ASG's own policies on its CPU (Auto Scaling keeps desired within MinSize..MaxSize)
        serving = sum(i.serving(t) for i in spot) + sum(i.serving(t) for i in od.instances)
        cpu = 100.0 * 0.5 * need / max(serving, 1)
        od.low = od.low + 1 if cpu < SCALE_IN[0] else 0
        od.high = od.high + 1 if cpu > SCALE_OUT[0] else 0
        if t >= od.cooldown_until:
            if od.high >= SCALE_OUT[1] and od.desired < OD_MAX:
                od.desired += 1
                od.cooldown_until, od.high = t + SCALE_OUT[2], 0
            elif od.low >= SCALE_IN[1] and od.desired > od.min_size:
                od.desired = max(od.min_size, od.desired - max(1, round(od.desired * SCALE_IN[3])))
                od.cooldown_until, od.low = t + SCALE_IN[2], 0
        # the on-demand ASG converges on its desired capacity
        if len(od.instances) < od.desired:
            od.instances += [Instance(next(next_id), t) for _ in range(od.desired - len(od.instances))]
        elif len(od.instances) > od.desired:
            od.instances.sort(key=lambda i: -i.launched)
            od.instances = od.instances[len(od.instances) - od.desired:]
        # account
        serving = sum(i.serving(t) for i in spot) + sum(i.serving(t) for i in od.instances)
        out.od_instance_minutes += len(od.instances)
        out.max_od = max(out.max_od, len(od.instances))
        if serving < need:
            out.minutes_below += 1
            out.minutes_below_in_shortage += t in trace.shortage
            out.instance_minutes_short += need - serving
    return out


def trace_for(n: int, seed: int, shortage: range) -> Trace:
    rng = random.Random(seed)
    return Trace(sorted(rng.randrange(30, DAY - 30) for _ in range(n)), shortage, seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20, help="traces per row (medians reported)")
    args = ap.parse_args()
    shortage = range(10 * 60, 12 * 60)  # 10:00-12:00, while demand rises: no spot capacity
    print(f"needed capacity {min(map(needed, range(DAY)))}..{max(map(needed, range(DAY)))} instances, "
          f"on_demand base {BASE} max {OD_MAX}, boot {BOOT} min, shortage 10:00-12:00, "
          f"{args.seeds} traces per row (median; min-max)\n")
    print("| interruptions | handler | on-demand instance-hours | minutes below needed | of them in the shortage "
          "| instance-minutes short | peak on-demand |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for n in (0, 4, 12, 24, 48):
        for label, mode, spare in (("old", "old", 0), ("reconciler", "reconciler", 0),
                                   ("reconciler, launching = arriving", "arriving", 0),
                                   ("reconciler, base + 1 spare", "reconciler", 1)):
            results = [run(trace_for(n, seed, shortage), mode, spare) for seed in range(args.seeds)]

            def med(f, results=results):
                values = sorted(f(r) for r in results)
                return values[len(values) // 2], values[0], values[-1]
            hours = med(lambda r: r.od_instance_minutes / 60)
            below = med(lambda r: r.minutes_below)
            in_shortage = med(lambda r: r.minutes_below_in_shortage)
            short = med(lambda r: r.instance_minutes_short)
            peak = med(lambda r: r.max_od)
            print(f"| {n} | {label} | {hours[0]:.1f} ({hours[1]:.1f}-{hours[2]:.1f}) "
                  f"| {below[0]} ({below[1]}-{below[2]}) "
                  f"| {in_shortage[0]} ({in_shortage[1]}-{in_shortage[2]}) | {short[0]} ({short[1]}-{short[2]}) "
                  f"| {peak[0]} |")


if __name__ == "__main__":
    main()
