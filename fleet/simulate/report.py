"""What a run means per lane: cost per day (spot / on-demand), minutes short of capacity, p95 CPU,
idle capacity, scaling activities, interruptions, and the most instances running at once against
node_max and the pair's ceiling."""

from __future__ import annotations

import numpy as np

from fleet.render.scaling import ON_DEMAND, SPOT
from fleet.simulate.lanes import STEP, Lane
from fleet.simulate.model import Series, Totals, cost_per_hour

ROWS = [  # (key, label, format)
    ("cost_per_day", "cost per day ($)", "{:.2f}"),
    ("spot_cost_per_day", "  spot ASG ($)", "{:.2f}"),
    ("on_demand_cost_per_day", "  on-demand ASG ($)", "{:.2f}"),
    ("short_minutes_per_day", "minutes short of capacity / day", "{:.1f}"),
    ("p95_cpu", "p95 CPU (%)", "{:.1f}"),
    ("idle_percent", "idle serving capacity (%)", "{:.1f}"),
    ("scaling_activities", "scaling activities (spot + on-demand)", "{:d}"),
    ("reconciler_writes", "reconciler writes", "{:d}"),
    ("interruptions", "spot interruption warnings", "{:d}"),
    ("failed_spot_launches", "failed spot launches", "{:d}"),
    ("peak_instances", "most instances at once", "{:d}"),
    ("node_max", "node_max", "{:d}"),
    ("ceiling", "pair ceiling (node_max + headroom)", "{:d}"),
]


def summarize(lanes: list[Lane], series: Series, totals: Totals) -> list[dict]:
    steps = series.demand.shape[0]
    days = steps * STEP / 86400
    spot_price, od_price = cost_per_hour(lanes)
    hours = STEP / 3600
    serving = series.serving[SPOT] + series.serving[ON_DEMAND]
    running = series.running[SPOT] + series.running[ON_DEMAND]
    out = []
    for i, ln in enumerate(lanes):
        spot_cost = float(series.running[SPOT][:, i].sum() * hours * spot_price[i]) / days
        od_cost = float(series.running[ON_DEMAND][:, i].sum() * hours * od_price[i]) / days
        d, up = series.demand[:, i], serving[:, i]
        short = d > up + 1e-9
        used = np.minimum(d, up).sum()
        out.append({
            "lane": ln.name, "group": ln.group.name, "days": round(days, 3),
            "cost_per_day": round(spot_cost + od_cost, 4), "spot_cost_per_day": round(spot_cost, 4),
            "on_demand_cost_per_day": round(od_cost, 4),
            "short_minutes": int(short.sum()), "short_minutes_per_day": round(float(short.sum()) / days, 2),
            "short_instance_minutes": round(float(np.maximum(0, d - up).sum()), 2),
            "p95_cpu": round(float(np.percentile(series.cpu[:, i], 95)), 2),
            "idle_percent": round(100 * (1 - used / up.sum()) if up.sum() else 0.0, 2),
            "scaling_activities": int(totals.activities[SPOT][i] + totals.activities[ON_DEMAND][i]),
            "reconciler_writes": int(totals.reconciler_writes[i]), "capped_runs": int(totals.capped[i]),
            "interruptions": int(series.warnings[:, i].sum()),
            "failed_spot_launches": int(series.failed_launches[:, i].sum()),
            "shortage_minutes": int(series.shortage[:, i].sum()),
            "peak_instances": int(running[:, i].max()), "node_max": ln.group.autoscale.node_max,
            "ceiling": ln.ceiling, "ceiling_held": bool(running[:, i].max() <= ln.ceiling),
            "ready_seconds": ln.ready_steps * STEP, "spot_types": list(ln.spot_types),
            "prices_per_hour": {"spot": round(float(spot_price[i]), 5), "on_demand": round(float(od_price[i]), 5)},
        })
    return out


def table(results: list[dict]) -> str:
    """The lanes side by side, one row per figure."""
    width = max(len(label) for _, label, _ in ROWS)
    cols = [r["lane"] for r in results]
    cw = max(12, *(len(c) for c in cols))
    lines = [f"{'':{width}}  " + "  ".join(f"{c:>{cw}}" for c in cols)]
    for key, label, fmt in ROWS:
        lines.append(f"{label:{width}}  " + "  ".join(f"{fmt.format(r[key]):>{cw}}" for r in results))
    return "\n".join(lines)


def markdown(results: list[dict]) -> str:
    head = "| | " + " | ".join(r["lane"] for r in results) + " |"
    sep = "|---|" + "---:|" * len(results)
    rows = [f"| {label.strip()} | " + " | ".join(fmt.format(r[key]) for r in results) + " |"
            for key, label, fmt in ROWS]
    return "\n".join([head, sep, *rows])
