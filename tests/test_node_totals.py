"""node_min / node_max are the group's total across its spot/on-demand pair: the on-demand base
counts inside it, spot takes the rest, and only the spot ASG's max carries headroom for capacity
rebalancing (it launches before it terminates). Seed 001's `node_min: 2, node_max: 2` is 2 instances."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from components.asg_pair import on_demand_capacity, spot_capacity, spot_headroom
from fleet.cli import main
from fleet.spec.model import build_group

ROOT = Path(__file__).resolve().parent.parent


def group(node_min: int, node_max: int, base: int | None = None, http: bool = False):
    auto = {"node_min": node_min, "node_max": node_max}
    if base is not None:
        auto["on_demand"] = {"base": base}
    raw = {"instance_type": "m5.large", "source_ami": "ami-12345678", "autoscale": auto}
    if http:
        raw["http"] = {"port": 80, "paths": ["/"]}
    return build_group("g", raw)


def test_seed_001_two_and_two_is_two_instances():
    g = group(2, 2)
    od, spot = on_demand_capacity(g), spot_capacity(g)
    assert od == (1, 1, 2)  # the base, inside the total; may carry the whole group when spot is gone
    assert spot == (1, 1, 2)  # the rest (1) plus 1 of headroom
    assert od[1] + spot[1] == 2 and od[0] + spot[0] == 2


@pytest.mark.parametrize("node_min,node_max,base,http", [
    (2, 2, None, False), (1, 4, None, False), (2, 12, None, True), (10, 40, None, False), (3, 3, 3, False),
    (0, 4, 0, False), (4, 10, 2, True), (1, 1, None, True), (5, 20, 0, False), (2, 6, 1, True),
])
def test_the_pair_splits_the_total(node_min, node_max, base, http):
    g = group(node_min, node_max, base, http)
    (od_min, od_desired, od_max), (spot_min, spot_desired, spot_max) = on_demand_capacity(g), spot_capacity(g)
    od_base = od_min
    assert od_min == od_desired and spot_min == spot_desired
    assert od_min + spot_min == max(node_min, od_base), "the total minimum is node_min (the base counts inside)"
    headroom = spot_headroom(g)
    assert spot_max - headroom + od_base == max(node_max, od_base), "spot's share is node_max minus the base"
    assert headroom == (0 if spot_max == 0 else max(1, -(-(node_max - od_base) // 10)))
    assert od_max == max(node_max, od_base), "the on-demand fallback may carry the whole group"


def test_plan_shows_the_totals(tmp_path, capsys):
    shutil.copy(ROOT / "tests" / "fixtures" / "seed001.yaml", tmp_path / "nodes.yaml")
    shutil.copytree(ROOT / "cookbooks", tmp_path / "cookbooks")  # plan checks the run lists' cookbooks
    assert main(["--project", str(tmp_path), "plan"]) == 0
    out = capsys.readouterr().out
    bee = out[out.index("group 12_04-bee"):out.index("group 12_04-www")]
    assert ("instances: node_min 2, node_max 2 in all: on-demand base 1 + spot 1-1 "
            "(spot max 2: +1 headroom for capacity rebalance)") in bee
    assert "on-demand min 1 max 2 desired 1" in bee and "spot min 1 max 2 desired 1" in bee
