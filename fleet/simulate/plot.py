"""`--plot OUT.png`: per lane, load against serving capacity (spot and on-demand stacked, interruption
warnings marked, node_max and the ceiling drawn) and the group's CPU against its target."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fleet.render.scaling import ON_DEMAND, SPOT
from fleet.simulate.lanes import Lane
from fleet.simulate.model import Series


def plot(lanes: list[Lane], series: Series, out: str | Path, title: str = "") -> list[str]:
    """Write the PNG; returns the panel titles (one capacity and one CPU panel per lane)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = series.demand.shape[0]
    hours = np.arange(steps) / 60
    fig, axes = plt.subplots(2 * len(lanes), 1, figsize=(12, 3.2 * 2 * len(lanes)), sharex=True,
                             gridspec_kw={"height_ratios": [2, 1] * len(lanes)}, squeeze=False)
    titles = []
    for i, ln in enumerate(lanes):
        cap, cpu = axes[2 * i][0], axes[2 * i + 1][0]
        spot, od = series.serving[SPOT][:, i], series.serving[ON_DEMAND][:, i]
        cap.stackplot(hours, od, spot, labels=["on-demand serving", "spot serving"],
                      colors=["#4c72b0", "#55a868"], alpha=0.8, step="post")
        running = series.running[SPOT][:, i] + series.running[ON_DEMAND][:, i]
        cap.step(hours, running, where="post", color="#555555", lw=0.8, label="running (billed)")
        cap.plot(hours, series.demand[:, i], color="#c44e52", lw=1.2, label="load (instances at 100 % CPU)")
        cap.axhline(ln.group.autoscale.node_max, color="black", ls="--", lw=0.8, label="node_max")
        cap.axhline(ln.ceiling, color="black", ls=":", lw=0.8, label="pair ceiling")
        warned = np.flatnonzero(series.warnings[:, i])
        if len(warned):
            cap.plot(hours[warned], np.full(len(warned), ln.ceiling + 0.3), "v", color="#dd8452",
                     ms=6, label="spot interruption warning")
        t1 = f"{ln.name}: load vs capacity"
        cap.set_title(t1, loc="left", fontsize=10)
        cap.set_ylabel("instances")
        cap.legend(loc="upper left", fontsize=7, ncol=4)
        cpu.plot(hours, series.cpu[:, i], color="#8172b2", lw=0.8, label="average CPU")
        cpu.axhline(ln.rules[SPOT].target_cpu, color="#55a868", ls="--", lw=0.8, label="spot target")
        cpu.axhline(ln.rules[SPOT].burst_alarm.threshold, color="#c44e52", ls=":", lw=0.8, label="burst alarm")
        cpu.set_ylim(0, 105)
        t2 = f"{ln.name}: CPU %"
        cpu.set_title(t2, loc="left", fontsize=10)
        cpu.legend(loc="upper left", fontsize=7, ncol=3)
        titles += [t1, t2]
    axes[-1][0].set_xlabel("hours")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return titles
