"""One simulation: the group (and its --compare variants) as lanes over one trace, summarized."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fleet.simulate import report
from fleet.simulate.lanes import Lane, lane
from fleet.simulate.market import Market
from fleet.simulate.model import Series, Totals, run
from fleet.simulate.variants import parse
from fleet.spec.model import Group


@dataclass
class Result:
    lanes: list[Lane]
    series: Series
    totals: Totals
    summary: list[dict]


def lanes_for(group: Group, compare: list[str], market: Market) -> list[Lane]:
    out = [lane(group, market, name="as configured")]
    for text in compare:
        label, changed, on_demand = parse(text, group)
        out.append(lane(changed, market, name=label, all_on_demand=on_demand))
    return out


def simulate(lanes: list[Lane], demand: np.ndarray, seed: int) -> Result:
    """`demand` is one trace (all lanes see the same load) or one column per lane."""
    demand = np.asarray(demand, dtype=float)
    if demand.ndim == 1:
        demand = np.repeat(demand[:, None], len(lanes), axis=1)
    series, totals = run(lanes, demand, seed=seed)
    return Result(lanes, series, totals, report.summarize(lanes, series, totals))
