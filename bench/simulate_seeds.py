"""The two comparisons README "Simulating a group" shows, reproduced with fleet simulate's model.

1. The spot/on-demand pair vs the same fleet all on demand, on a telephony business day (the write-up
   that introduced the pair and its policies claims 79 % lower AWS costs from spot).
2. Baked vs converging at boot vs bootstrapping from a vanilla image under a flash crowd (the disk
   image write-up: 10-15 minutes to in service before, about 45 s baked, and a 30 % CPU target
   before that could rise to 50 % once baked).

Prints both tables (markdown) and writes their plots:
    .venv/bin/python bench/simulate_seeds.py [--seed N] [--out docs/simulate]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fleet.simulate import report, traces  # noqa: E402
from fleet.simulate.market import Market  # noqa: E402
from fleet.simulate.plot import plot  # noqa: E402
from fleet.simulate.run import lanes_for, simulate  # noqa: E402
from fleet.spec.model import build_group  # noqa: E402

# The pair as the write-up runs it: m4.large web servers, one on-demand instance at steady state and
# spot above it; the policies are fleet's defaults, which are that write-up's.
PAIR_GROUP = {
    "instance_type": "m4.large", "source_ami": "ami-0123456789abcdef0",
    "autoscale": {"node_min": 2, "node_max": 24, "timeout": 180,
                  "spot": {"instance_types": ["m4.large", "m5.large", "m5a.large"]}},
    "http": {"port": 80, "paths": ["/*"]},
}
PAIR_PEAK = 8.0  # instances at 100 % CPU at the busiest minute: 16 at the 50 % target

# A web group with a baked image, fleet's defaults otherwise.
BOOT_GROUP = {
    "instance_type": "m5.large", "source_ami": "ami-0123456789abcdef0",
    "autoscale": {"node_min": 2, "node_max": 20, "timeout": 180,
                  "spot": {"instance_types": ["m5.large", "m5a.large", "m6i.large"]}},
    "http": {"port": 80, "paths": ["/*"]},
}
BOOT_PEAK = 8.0
BOOT_VARIANTS = [
    "boot.converge=true",
    # the whole role at boot; the launching hook must outlast it (autoscale.timeout)
    "image.builder=ami,boot.converge=true,run_list=['recipe[app]'],autoscale.timeout=900",
    # ... and the CPU target such a fleet ran at, to have room while instances boot
    "image.builder=ami,boot.converge=true,run_list=['recipe[app]'],autoscale.timeout=900,"
    "scaling.target_cpu=30,scaling.scale_in.cpu=15",
]


def pair_vs_on_demand(market: Market, seed: int, out: Path | None, days: int = 1) -> list[dict]:
    group = build_group("web", PAIR_GROUP)
    variants = lanes_for(group, ["market=on-demand"], market)
    lanes = [dataclasses.replace(ln, name=name) for ln, name in zip(variants, ["pair", "all on-demand"], strict=True)]
    demand = traces.synthetic("business-day", days, PAIR_PEAK, seed)
    r = simulate(lanes, demand, seed)
    if out is not None:
        plot(lanes, r.series, out / "pair-vs-on-demand.png", title=f"pair vs all on-demand, business day, seed {seed}")
    return r.summary


def baked_vs_converge(market: Market, seed: int, out: Path) -> list[dict]:
    group = build_group("web", BOOT_GROUP)
    names = ["baked", "converge at boot", "vanilla", "vanilla, 30 % target"]
    lanes = [dataclasses.replace(ln, name=name) for ln, name in zip(lanes_for(group, BOOT_VARIANTS, market), names,
                                                                     strict=True)]
    demand = traces.synthetic("flash", 1, BOOT_PEAK, seed)
    r = simulate(lanes, demand, seed)
    plot(lanes, r.series, out / "baked-vs-converge.png",
         title=f"baked vs converge vs vanilla, flash crowd at 10:00, seed {seed}")
    return r.summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=4)
    p.add_argument("--out", default=str(ROOT / "docs" / "simulate"))
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    market = Market.load()
    pair = pair_vs_on_demand(market, args.seed, out)
    print(f"## pair vs all on-demand (business day, seed {args.seed})\n")
    print(report.markdown(pair))
    cut = 1 - pair[0]["cost_per_day"] / pair[1]["cost_per_day"]
    print(f"\ncost cut by the pair: {100 * cut:.0f} %\n")
    long = pair_vs_on_demand(market, args.seed, None, days=14)
    p14, o14 = long
    print(f"over 14 business days: pair {p14['cost_per_day']:.2f} $/day vs {o14['cost_per_day']:.2f} "
          f"({100 * (1 - p14['cost_per_day'] / o14['cost_per_day']):.0f} % cut), {p14['interruptions']} interruption "
          f"warnings, {p14['failed_spot_launches']} failed spot launches, {p14['short_minutes']} minutes short "
          f"(all on-demand: {o14['short_minutes']}), most instances at once {p14['peak_instances']}\n")
    boot = baked_vs_converge(market, args.seed, out)
    print(f"## baked vs converge vs vanilla (flash crowd, seed {args.seed})\n")
    print(report.markdown(boot))
    print("\nready (launch -> serving, s): " + ", ".join(f"{b['lane']}: {b['ready_seconds']}" for b in boot))
    print(f"\nplots: {out / 'pair-vs-on-demand.png'}, {out / 'baked-vs-converge.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
