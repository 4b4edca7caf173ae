"""fleet simulate's speed: 14 days at 1-minute steps (20,160 steps) for one group, and for 100 groups
stepped together (one lane each, their own load), in CPU seconds of this process.

    .venv/bin/python bench/bench_simulate.py [--days 14] [--groups 100] [--repeat 3]

Goal: 100 groups x 14 days in under 10 CPU-seconds. Prints one markdown row per size (median of the
repeats); bench/RESULTS.md "fleet simulate" holds the figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from fleet.simulate import traces  # noqa: E402
from fleet.simulate.lanes import lane  # noqa: E402
from fleet.simulate.market import Market  # noqa: E402
from fleet.simulate.run import simulate  # noqa: E402
from fleet.spec.load import load_fleet  # noqa: E402


def lanes_and_load(groups: int, days: int):
    """`groups` lanes cycling through the project's autoscaled groups, each with its own diurnal load
    (peak between 40 % and 100 % of what node_max serves at the target CPU, its own noise)."""
    fleet = load_fleet(ROOT / "nodes.yaml", project_dir=ROOT, check_files=False)
    autoscaled = [g for g in fleet.groups.values() if g.autoscale is not None]
    market = Market.load()
    lanes, loads = [], []
    for i in range(groups):
        g = autoscaled[i % len(autoscaled)]
        lanes.append(lane(g, market, name=f"{g.name}-{i}"))
        peak = g.autoscale.node_max * g.scaling.target_cpu / 100 * (0.4 + 0.6 * (i % 10) / 9)
        loads.append(traces.synthetic("diurnal", days, peak, seed=i))
    return lanes, np.stack(loads, axis=1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=14)
    p.add_argument("--groups", type=int, default=100)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    print("| groups | days | steps | CPU s (median) | CPU s per group-day | interruptions | peak <= ceiling |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for n in (1, args.groups):
        lanes, load = lanes_and_load(n, args.days)
        cpu = []
        for _ in range(args.repeat):
            t0 = time.process_time()
            r = simulate(lanes, load, seed=1)
            cpu.append(time.process_time() - t0)
        med = statistics.median(cpu)
        warned = sum(s["interruptions"] for s in r.summary)
        held = all(s["ceiling_held"] for s in r.summary)
        print(f"| {n} | {args.days} | {load.shape[0]} | {med:.2f} | {med / (n * args.days):.4f} | {warned} | {held} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
