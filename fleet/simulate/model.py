"""The AWS model: every lane (a group, or a variant of one) stepped together, one 60 s step at a time.

Each step, in this order (what AWS does within a minute, as far as the decisions go):
1. instances whose launch + boot + health time ran out start serving; warm-ups end;
2. spot instances warned two minutes ago terminate; new warnings arrive (per-type rates from the
   interruption snapshot), and a warned instance stops serving at once (the reconciler drains it);
3. the load of the minute meets the serving instances of both ASGs (one target group): average CPU,
   and the minute is short when the load needs more than the serving instances give;
4. each ASG's policies, from fleet/render/scaling.py: the burst and scale-in alarms evaluate M of N
   datapoints of `period` s; target tracking scales out after 3 datapoints above target (AWS's
   alarm for 1-minute metrics) to ceil(capacity x CPU / target); step scale-outs count no instance in
   warm-up; the simple scale-in waits its cooldown; desired stays within [min, max]. The alarms watch
   the ASG's own CPUUtilization, so an ASG without instances has no datapoint and never scales out;
5. the spot ASG launches up to desired (its launches fail during a capacity shortage and are retried
   the next step) or terminates down to it (pending instances first);
6. the spot capacity reconciler (lambdas/spot_capacity/reconcile.py: its own `on_demand_room`,
   `spot_deficit` and `plan`) sets the on-demand ASG from the spot ASG's state: MaxSize = the room
   the spot instances leave under the pair's ceiling, desired = CPU-driven part + spot deficit;
7. the on-demand ASG launches or terminates the same way.

Simplifications, on purpose: an instance's CPU is the group's average (the ALB spreads evenly);
booting instances report no CPU; launch and boot times are the typical ones, not drawn at random;
the reconciler runs every step (in AWS: on each event, seconds). Randomness (warnings, shortages)
comes from one numpy Generator seeded by `seed`: the same seed gives the same run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fleet.render.scaling import ON_DEMAND, SPOT, percent_adjustment
from fleet.simulate.lanes import STEP, Lane
from lambdas.spot_capacity import reconcile

TARGET_TRACKING_DATAPOINTS = 3  # AWS's alarm of a target tracking policy on a 1-minute metric: 3 of 3
WARNING_STEPS = 2  # the spot interruption warning comes two minutes ahead
CAPACITIES = (SPOT, ON_DEMAND)


@dataclass
class Series:
    """Per-step values for the report and the plot (arrays of shape (steps, lanes))."""
    demand: np.ndarray
    cpu: np.ndarray
    serving: dict[str, np.ndarray]
    running: dict[str, np.ndarray]  # billed: pending + serving + warned
    desired: dict[str, np.ndarray]
    warnings: np.ndarray
    failed_launches: np.ndarray
    shortage: np.ndarray


@dataclass
class Totals:
    """Per-lane counters (arrays of shape (lanes,))."""
    activities: dict[str, np.ndarray] = field(default_factory=dict)
    reconciler_writes: np.ndarray | None = None
    capped: np.ndarray | None = None


class _Alarm:
    """M-of-N over the CPU history, for the lanes sharing one (period, N, M) shape."""

    def __init__(self, lanes_idx: np.ndarray, period_steps: int, n: int, m: int, thresholds: np.ndarray,
                 above: bool):
        self.idx, self.k, self.n, self.m = lanes_idx, period_steps, n, m
        self.thresholds, self.above = thresholds, above

    def alarm(self, hist: np.ndarray, t: int, filled: int) -> np.ndarray:
        """True per lane of this shape when M of the last N datapoints breach (each the mean of k steps)."""
        span = self.n * self.k
        if filled < span:  # not N datapoints yet: INSUFFICIENT_DATA, no action
            return np.zeros(len(self.idx), dtype=bool)
        h = hist.shape[1]
        cols = (t - np.arange(span)[::-1]) % h
        points = hist[np.ix_(self.idx, cols)].reshape(len(self.idx), self.n, self.k).mean(axis=2)
        breach = points > self.thresholds[:, None] if self.above else points < self.thresholds[:, None]
        return breach.sum(axis=1) >= self.m


def _alarms(lanes: list[Lane], capacity: str, kind: str) -> list[_Alarm]:
    shapes: dict[tuple[int, int, int, bool], list[int]] = {}
    for i, ln in enumerate(lanes):
        a = getattr(ln.rules[capacity], kind)
        if a.period % 60:
            raise ValueError(f"{ln.name}: alarm period {a.period} s is not a multiple of the model's 60 s step")
        shapes.setdefault((a.period // 60, a.evaluation_periods, a.datapoints_to_alarm,
                           a.comparison == "GreaterThanThreshold"), []).append(i)
    out = []
    for (k, n, m, above), idx in shapes.items():
        th = np.array([getattr(lanes[i].rules[capacity], kind).threshold for i in idx], dtype=float)
        out.append(_Alarm(np.array(idx), k, n, m, th, above))
    return out


def _remove_latest(ring: np.ndarray, t: int, count: np.ndarray) -> np.ndarray:
    """Take up to `count` per lane out of a ring of future events, latest first; returns what was taken."""
    r = ring.shape[1]
    left = count.copy()
    taken = np.zeros_like(count)
    for back in range(r - 1, -1, -1):
        if not left.any():
            break
        col = (t + back) % r
        take = np.minimum(left, ring[:, col])
        ring[:, col] -= take
        left -= take
        taken += take
    return taken


def run(lanes: list[Lane], demand: np.ndarray, seed: int = 0,
        scripted_warnings: np.ndarray | None = None) -> tuple[Series, Totals]:
    """Step every lane over `demand` (shape (steps, lanes): instance-equivalents at 100 % CPU).
    `scripted_warnings` (same shape): interruption warnings to deliver on top of the drawn ones."""
    steps, n = demand.shape
    if n != len(lanes):
        raise ValueError("one demand column per lane")
    rng = np.random.default_rng(seed)
    lane_arr = {name: np.array([getattr(ln, name) for ln in lanes]) for name in (
        "spot_min", "spot_max", "od_base", "od_max", "ceiling", "in_service_steps", "ready_steps", "warmup_steps",
        "abandoned", "heartbeat_steps", "interruption_per_step", "shortage_per_step", "shortage_steps")}
    ring = int(max(lane_arr["heartbeat_steps"].max(), lane_arr["ready_steps"].max(),
                   (lane_arr["in_service_steps"] + lane_arr["warmup_steps"]).max())) + 2
    hist_len = max(TARGET_TRACKING_DATAPOINTS, *(
        getattr(ln.rules[c], k).period // 60 * getattr(ln.rules[c], k).evaluation_periods
        for ln in lanes for c in CAPACITIES for k in ("burst_alarm", "scale_in_alarm")))
    alarms = {(c, k): _alarms(lanes, c, k) for c in CAPACITIES for k in ("burst_alarm", "scale_in_alarm")}
    target = {c: np.array([ln.rules[c].target_cpu for ln in lanes], dtype=float) for c in CAPACITIES}
    burst_pct = {c: [ln.rules[c].burst.percent for ln in lanes] for c in CAPACITIES}
    in_pct = {c: [ln.rules[c].scale_in.percent for ln in lanes] for c in CAPACITIES}
    cooldown = {c: np.array([lanes[i].rules[c].scale_in.cooldown // 60 for i in range(n)]) for c in CAPACITIES}

    # shortage windows, drawn up front: a start in a step blocks spot launches for shortage_steps
    starts = rng.random((steps, n)) < lane_arr["shortage_per_step"]
    shortage = np.zeros((steps, n), dtype=bool)
    for j in range(n):
        for s in np.flatnonzero(starts[:, j]):
            shortage[s:s + lane_arr["shortage_steps"][j], j] = True

    zeros = lambda: np.zeros(n, dtype=np.int64)  # noqa: E731
    start = [ln.spot_min if ln.spot_start is None else ln.spot_start for ln in lanes]
    desired = {SPOT: np.array(start, dtype=np.int64),
               ON_DEMAND: lane_arr["od_base"].astype(np.int64).copy()}
    serving = {c: desired[c].copy() for c in CAPACITIES}  # the pair starts at its minimum, in service
    pending = {c: zeros() for c in CAPACITIES}
    arrive = {c: np.zeros((n, ring), dtype=np.int64) for c in CAPACITIES}
    abandon = {c: np.zeros((n, ring), dtype=np.int64) for c in CAPACITIES}
    warm_end = {c: np.zeros((n, ring), dtype=np.int64) for c in CAPACITIES}
    warming = {c: zeros() for c in CAPACITIES}
    warned, leave = zeros(), np.zeros((n, WARNING_STEPS + 1), dtype=np.int64)
    extra = zeros()
    od_min = lane_arr["od_base"].astype(np.int64).copy()
    cool_until = {c: np.full(n, -1, dtype=np.int64) for c in CAPACITIES}
    hist = np.zeros((n, hist_len))
    tt_hist = np.zeros((n, TARGET_TRACKING_DATAPOINTS))
    mins = {SPOT: lane_arr["spot_min"].astype(np.int64), ON_DEMAND: None}
    maxs = {SPOT: lane_arr["spot_max"].astype(np.int64), ON_DEMAND: None}

    series = Series(demand=demand, cpu=np.zeros((steps, n)),
                    serving={c: np.zeros((steps, n), dtype=np.int32) for c in CAPACITIES},
                    running={c: np.zeros((steps, n), dtype=np.int32) for c in CAPACITIES},
                    desired={c: np.zeros((steps, n), dtype=np.int32) for c in CAPACITIES},
                    warnings=np.zeros((steps, n), dtype=np.int32), failed_launches=np.zeros((steps, n), dtype=np.int32),
                    shortage=shortage)
    totals = Totals(activities={c: zeros() for c in CAPACITIES}, reconciler_writes=zeros(), capped=zeros())
    p_warn = lane_arr["interruption_per_step"]
    lane_idx = np.arange(n)

    def _scale(c: str, t: int) -> None:
        """The ASG launches up to desired (spot: not during a shortage) or terminates down to it."""
        total = serving[c] + pending[c] + (warned if c == SPOT else 0)
        launch = np.maximum(0, desired[c] - total)
        if c == SPOT:
            blocked = shortage[t] & (launch > 0)
            series.failed_launches[t] = np.where(blocked, launch, 0)
            launch = np.where(blocked, 0, launch)
        if launch.any():
            for i in lane_idx[launch > 0]:
                k = int(launch[i])
                if lane_arr["abandoned"][i]:
                    abandon[c][i, (t + lane_arr["heartbeat_steps"][i]) % ring] += k
                else:
                    arrive[c][i, (t + lane_arr["ready_steps"][i]) % ring] += k
                    warm_end[c][i, (t + lane_arr["in_service_steps"][i] + lane_arr["warmup_steps"][i]) % ring] += k
                    warming[c][i] += k
            pending[c] += launch
        cut = np.maximum(0, total - desired[c])
        if cut.any():
            gone = _remove_latest(abandon[c], t, cut)
            gone += _remove_latest(arrive[c], t, cut - gone)
            pending[c] -= gone
            serving[c] -= np.minimum(serving[c], cut - gone)
            warming[c] -= _remove_latest(warm_end[c], t, np.minimum(warming[c], cut))
        series.serving[c][t] = serving[c]
        series.running[c][t] = serving[c] + pending[c] + (warned if c == SPOT else 0)
        series.desired[c][t] = desired[c]

    def _launched(i: int, t: int) -> list[int]:
        """Launch times (steps) of lane i's pending spot instances, read back from their rings."""
        out = []
        rings = ((arrive[SPOT], lane_arr["ready_steps"][i]), (abandon[SPOT], lane_arr["heartbeat_steps"][i]))
        for ring_, delay in rings:
            for k in range(1, ring):
                out += [t + k - int(delay)] * int(ring_[i, (t + k) % ring])
        return out

    def _deficit(i: int, t: int) -> int:
        """The reconciler's own spot_deficit over lane i's spot instances as the ASG lists them (serving,
        pending with their launch times, warned), at the model's clock, with the group's launch bound: a
        launching instance younger than it is arriving, not missing."""
        def spot(name: str, state: str, launched: int | None = None) -> reconcile.SpotInstance:
            return reconcile.SpotInstance(name, state, reconcile.HEALTHY,
                                          launched_at=None if launched is None else launched * STEP)
        instances = ([spot(f"s{k}", reconcile.SERVING_STATE) for k in range(int(serving[SPOT][i]))]
                     + [spot(f"p{k}", "Pending", at) for k, at in enumerate(_launched(i, t))]
                     + [spot(f"w{k}", reconcile.SERVING_STATE) for k in range(int(warned[i]))])
        return reconcile.spot_deficit(desired=int(desired[SPOT][i]), instances=instances,
                                      warned=[f"w{k}" for k in range(int(warned[i]))],
                                      now=t * STEP, launch_bound=lanes[i].launch_bound)

    def _room(spot_running: np.ndarray) -> np.ndarray:
        """The on-demand MaxSize the reconciler writes (its own on_demand_room), recomputed where spot moved."""
        room = last_room.copy()
        for i in np.flatnonzero(spot_running != last_spot):
            room[i] = reconcile.on_demand_room(int(lane_arr["ceiling"][i]), int(spot_running[i]),
                                               int(lane_arr["od_base"][i]), int(lane_arr["od_max"][i]))
        last_room[:], last_spot[:] = room, spot_running
        return room

    last_spot = np.full(n, -1, dtype=np.int64)
    last_room = lane_arr["od_max"].astype(np.int64).copy()
    od_max_now = _room(desired[SPOT].copy())

    for t in range(steps):
        # 1. arrivals, abandoned launches, warm-ups ending
        for c in CAPACITIES:
            col = t % ring
            got, lost = arrive[c][:, col], abandon[c][:, col]
            serving[c] += got
            pending[c] -= got + lost
            arrive[c][:, col] = 0
            abandon[c][:, col] = 0
            warming[c] -= warm_end[c][:, col]
            warm_end[c][:, col] = 0
        # 2. warned spot instances leave; new warnings
        col = t % (WARNING_STEPS + 1)
        warned -= leave[:, col]
        leave[:, col] = 0
        hit = rng.binomial(serving[SPOT], p_warn) if p_warn.any() else np.zeros(n, dtype=np.int64)
        if scripted_warnings is not None:
            hit = np.minimum(serving[SPOT], hit + scripted_warnings[t])
        if hit.any():
            serving[SPOT] -= hit
            warned += hit
            leave[:, (t + WARNING_STEPS) % (WARNING_STEPS + 1)] += hit
            series.warnings[t] = hit
        # 3. load against serving capacity
        up = serving[SPOT] + serving[ON_DEMAND]
        d = demand[t]
        with np.errstate(divide="ignore", invalid="ignore"):
            cpu = np.where(up > 0, np.minimum(100.0, 100.0 * d / np.maximum(up, 1)), np.where(d > 0, 100.0, 0.0))
        series.cpu[t] = cpu
        hist[:, t % hist_len] = cpu
        tt_hist[:, t % TARGET_TRACKING_DATAPOINTS] = cpu
        filled = t + 1
        mins[ON_DEMAND], maxs[ON_DEMAND] = od_min, od_max_now
        # 4. each ASG's policies
        for c in CAPACITIES:
            settled = np.maximum(0, serving[c] - np.maximum(0, warming[c] - pending[c]))  # not in warm-up
            # the alarms watch this ASG's own CPUUtilization: an ASG without instances has no datapoint
            has_data = (serving[c] + pending[c] + (warned if c == SPOT else 0)) > 0
            new = desired[c].copy()
            if filled >= TARGET_TRACKING_DATAPOINTS:
                above = (tt_hist > target[c][:, None]).all(axis=1) & (settled > 0)
                if above.any():
                    want = np.ceil(settled * cpu / target[c] - 1e-9).astype(np.int64)
                    new = np.where(above, np.maximum(new, want), new)
            for alarm in alarms[(c, "burst_alarm")]:
                on = alarm.alarm(hist, t, filled) & has_data[alarm.idx]
                for j, i in enumerate(alarm.idx):
                    if on[j]:
                        base = int(settled[i])
                        new[i] = max(new[i], base + percent_adjustment(base, burst_pct[c][i]))
            for alarm in alarms[(c, "scale_in_alarm")]:
                on = alarm.alarm(hist, t, filled) & (cool_until[c][alarm.idx] <= t) & has_data[alarm.idx]
                for j, i in enumerate(alarm.idx):
                    if on[j] and new[i] == desired[c][i]:  # no scale-out this step
                        new[i] = desired[c][i] + percent_adjustment(int(desired[c][i]), in_pct[c][i])
                        cool_until[c][i] = t + cooldown[c][i]
            new = np.clip(new, mins[c], np.maximum(maxs[c], mins[c]))
            totals.activities[c] += new != desired[c]
            desired[c] = new
        # 5. the spot ASG launches up to desired (failing during a shortage) or terminates down to it
        _scale(SPOT, t)
        # 6. the reconciler, with its own functions, where it could change anything (its launch events)
        spot_running = serving[SPOT] + pending[SPOT] + warned
        room = _room(spot_running)
        maybe = (desired[SPOT] > serving[SPOT]) | (extra > 0) | (desired[ON_DEMAND] > room) | (room != od_max_now)
        for i in lane_idx[maybe]:
            deficit = _deficit(i, t)
            od = reconcile.OnDemand(desired=int(desired[ON_DEMAND][i]), max_size=int(room[i]),
                                    base=int(lane_arr["od_base"][i]), extra=int(extra[i]))
            p = reconcile.plan(deficit, od)
            if (p.desired, p.min_size) != (od.desired, int(od_min[i])) or room[i] != od_max_now[i]:
                totals.reconciler_writes[i] += 1
            desired[ON_DEMAND][i], od_min[i], extra[i] = p.desired, p.min_size, p.extra
            totals.capped[i] += p.capped
        od_max_now = room
        # 7. the on-demand ASG launches or terminates
        _scale(ON_DEMAND, t)
    return series, totals


def cost_per_hour(lanes: list[Lane]) -> tuple[np.ndarray, np.ndarray]:
    """($/h of one spot-ASG instance, $/h of one on-demand instance) per lane."""
    spot = np.array([ln.od_price if ln.all_on_demand else ln.spot_price for ln in lanes])
    return spot, np.array([ln.od_price for ln in lanes])

