"""fleet simulate: the model's pieces against hand-worked cases, determinism, the CSV reader's bad
input, the plot, and the deployed rules (a threshold changed in nodes.yaml moves plan and simulation)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from fleet.cli import main
from fleet.render.scaling import ON_DEMAND, SPOT, percent_adjustment
from fleet.simulate import traces
from fleet.simulate.lanes import lane
from fleet.simulate.market import Market
from fleet.simulate.model import _Alarm, run
from fleet.simulate.run import simulate
from fleet.spec.errors import SpecError
from fleet.spec.model import build_group

MARKET = Market.load()


def group(**over):
    raw = {"instance_type": "m5.large", "source_ami": "ami-0123456789abcdef0",
           "autoscale": {"node_min": 2, "node_max": 10, "timeout": 120,
                         "spot": {"instance_types": ["m5.large", "m5a.large", "m6i.large"]}},
           "http": {"port": 8080, "paths": ["/*"]}}
    for k, v in over.items():
        raw[k] = {**raw[k], **v} if isinstance(v, dict) and isinstance(raw.get(k), dict) else v
    return build_group("web", raw)


def quiet(g, **over):
    """A lane with no random interruptions or shortages: every change comes from the load or a script."""
    return dataclasses.replace(lane(g, MARKET), interruption_per_step=0.0, shortage_per_step=0.0, **over)


def test_alarm_m_of_n_hand_worked():
    # 2 of 3 datapoints above 85: [90, 80, 90] alarms, [90, 80, 80] does not; 60 s periods
    alarm = _Alarm(np.array([0, 1]), 1, 3, 2, np.array([85.0, 85.0]), above=True)
    hist = np.array([[90, 80, 90, 0], [90, 80, 80, 0]], dtype=float)
    assert alarm.alarm(hist, t=2, filled=3).tolist() == [True, False]
    assert alarm.alarm(hist, t=2, filled=2).tolist() == [False, False]  # fewer than N datapoints: no action
    # 120 s periods: datapoints are means of two steps: (90+80)/2=85 is not above 85
    two = _Alarm(np.array([0]), 2, 1, 1, np.array([85.0]), above=True)
    assert two.alarm(np.array([[90.0, 80.0]]), t=1, filled=2).tolist() == [False]
    assert two.alarm(np.array([[90.0, 82.0]]), t=1, filled=2).tolist() == [True]


def test_percent_adjustment_rounds_like_auto_scaling():
    assert percent_adjustment(3, 20) == 1  # 0.6 -> at least 1
    assert percent_adjustment(12, 20) == 2  # 2.4 -> 2
    assert percent_adjustment(7, -10) == -1
    assert percent_adjustment(25, -10) == -2


def test_scale_in_waits_for_its_cooldown():
    # 9 spot + 1 on-demand at 5 % CPU: the scale-in alarm (10 x 60 s below 30 %) fires at the 10th
    # minute, then once per 300 s cooldown: 9 -> 8 -> 7 -> 6 -> 5 at minutes 9, 14, 19, 24 (0-based).
    g = group(scaling={"scale_in": {"cooldown": 300}}, autoscale={"node_min": 2, "node_max": 10})
    ln = quiet(g)
    steps = 25
    series, _ = _run_with_start(ln, np.full(steps, 0.5), spot_start=9)
    spot = series.desired[SPOT][:, 0]
    drops = [t for t in range(1, steps) if spot[t] < spot[t - 1]]
    assert drops == [9, 14, 19, 24]
    assert spot[-1] == 5


def _run_with_start(ln, demand, spot_start):
    """Run one lane whose spot ASG starts with `spot_start` serving instances."""
    ln = dataclasses.replace(ln, spot_start=spot_start)
    series, totals = run([ln], demand[:, None])
    return series, totals


def test_step_scale_out_counts_no_instance_in_warm_up():
    # load far above capacity: the burst alarm (2 x 60 s above 85 %) fires every minute from minute 1,
    # but while the first added instance warms up (launch 90 s + 120 s warm-up) the same step adds nothing.
    g = group(scaling={"target_cpu": 99}, autoscale={"node_min": 6, "node_max": 40, "timeout": 600})
    ln = quiet(g)
    series, _ = run([ln], np.full((8, 1), 50.0))
    spot = series.desired[SPOT][:, 0]
    assert spot[0] == 5 and spot[1] == 6  # +20 % of 5 settled = +1
    assert (spot[1:8] == 6).all()  # warm-up: no compounding


def test_spot_interruption_is_covered_by_on_demand_and_decays():
    g = group(autoscale={"node_min": 4, "node_max": 10})
    ln = quiet(g)
    steps = 20
    script = np.zeros((steps, 1), dtype=np.int64)
    script[3, 0] = 1  # one warning at minute 3
    series, totals = run([ln], np.full((steps, 1), 1.0), scripted_warnings=script)
    od = series.desired[ON_DEMAND][:, 0]
    spot_serving = series.serving[SPOT][:, 0]
    assert od[2] == 1 and od[3] == 2  # the reconciler adds one on-demand instance at the warning
    assert spot_serving[3] == 2  # the warned instance stops serving at once
    # it terminates 2 minutes later; its replacement serves after launch + boot + health (ready_steps)
    back = 5 + ln.ready_steps
    assert spot_serving[back] == 3
    assert od[back] == 1  # the extra decays once spot serves again
    assert totals.reconciler_writes[0] >= 2


def test_same_seed_same_run_other_seed_other_run():
    g = group()
    ln = dataclasses.replace(lane(g, MARKET), interruption_per_step=0.01, shortage_per_step=0.001)
    demand = traces.synthetic("diurnal", 1, 6, seed=1)
    a = simulate([ln], demand, seed=7).summary
    b = simulate([ln], demand, seed=7).summary
    c = simulate([ln], demand, seed=8).summary
    assert a == b
    assert a[0]["interruptions"] != c[0]["interruptions"] or a[0]["cost_per_day"] != c[0]["cost_per_day"]


def test_abandoned_converging_instances_never_serve():
    # converge at boot that outlasts the hook's heartbeat: bootstrap from vanilla (600 s) with timeout 120
    g = group(image={"builder": "ami"}, run_list=["recipe[x]"], boot={"converge": True})
    ln = quiet(g)
    assert ln.abandoned
    series, _ = run([ln], np.full((30, 1), 9.0))
    assert series.serving[SPOT][:, 0].max() == 1  # only the starting instance; launches are abandoned


@pytest.mark.parametrize("content, needle", [
    ("minute,load\n0,1\n1,x\n", "trace.csv:3: key 'load': 'x' is not a number"),
    ("minute,load\n0,1\n1,-2\n", "must be a finite number >= 0"),
    ("timestamp,load\n2026-01-01T00:00:00Z,1\n2026-01-01T00:02:00Z,1\n", "not one minute after"),
    ("minute,cpu,instances\n0,140,2\n", "is not a percentage"),
    ("minute,foo\n0,1\n", "has none of"),
    ("minute,requests\n0,100\n", "needs --requests-per-instance"),
    ("minute,load\n0,1,2\n", "3 fields, the header has 2"),
])
def test_csv_bad_input_is_one_line_exit_2(tmp_path, capsys, monkeypatch, content, needle):
    monkeypatch.chdir(tmp_path)
    _project(tmp_path)
    (tmp_path / "trace.csv").write_text(content)
    assert main(["simulate", "web", "--trace", "trace.csv"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and needle in err[1] and "web" not in err[1].split(":")[0]


def test_csv_formats_agree():
    load = traces.read_csv(_write("minute,load\n0,1.5\n1,3\n"))
    cpu = traces.read_csv(_write("timestamp,cpu,instances\n2026-01-01T00:00:00Z,50,3\n2026-01-01T00:01:00Z,75,4\n"))
    req = traces.read_csv(_write("minute,requests\n0,300\n1,600\n"), requests_per_instance=200)
    assert load.tolist() == cpu.tolist() == req.tolist() == [1.5, 3.0]


def _write(text):
    import tempfile

    f = tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False)
    f.write(text)
    f.close()
    return f.name


NODES = """\
web:
  instance_type: m5.large
  source_ami: ami-0123456789abcdef0
  autoscale:
    node_min: 2
    node_max: 8
    timeout: 120
    spot: {{instance_types: [m5.large, m5a.large, m6i.large]}}
  http: {{port: 8080, paths: ["/*"]}}
  scaling: {{scale_in: {{cpu: {scale_in}}}}}
"""


def _project(path, scale_in=30):
    (path / "Pulumi.yaml").write_text("name: simtest\nruntime: python\n")
    (path / "nodes.yaml").write_text(NODES.format(scale_in=scale_in))


def test_plot_is_a_png_with_a_capacity_and_a_cpu_panel_per_lane(tmp_path, monkeypatch, capsys):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    _project(tmp_path)
    out = tmp_path / "sim.png"
    assert main(["simulate", "web", "--trace", "synthetic:flash", "--compare", "market=on-demand",
                 "--plot", str(out), "--json"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(out) as im:
        assert im.size[0] > 600 and im.size[1] > 4 * 150  # four panels stacked
    doc = json.loads(capsys.readouterr().out)
    assert [ln["lane"] for ln in doc["lanes"]] == ["as configured", "market=on-demand"]
    on_demand = doc["lanes"][1]
    assert on_demand["spot_cost_per_day"] > doc["lanes"][0]["spot_cost_per_day"]


def test_plot_panels():
    from fleet.simulate.plot import plot

    g = group()
    lanes = [quiet(g), dataclasses.replace(quiet(g), name="b")]
    r = simulate(lanes, traces.synthetic("flash", 1, 5, 0), seed=0)
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".png") as f:
        titles = plot(lanes, r.series, f.name)
    assert titles == ["web: load vs capacity", "web: CPU %", "b: load vs capacity", "b: CPU %"]


def test_a_threshold_in_nodes_yaml_moves_the_plan_and_the_simulation(tmp_path, monkeypatch, capsys):
    from components.scaling import ScalingPolicies, ScalingPoliciesArgs
    from fleet.spec.load import load_fleet
    from tests.pulumi_mocks import run as run_mocks

    def both(scale_in):
        _project(tmp_path, scale_in)
        g = load_fleet(tmp_path / "nodes.yaml", require_lock=False).group("web")

        def program():
            asgs = {"spot": "s", "on-demand": "o"}
            ScalingPolicies(g.name, ScalingPoliciesArgs(group=g, stack="prod", asg_names=asgs))
        r = run_mocks(program, stack="prod")
        planned = sorted(a.inputs["threshold"] for a in r.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
                         if a.inputs["comparisonOperator"] == "LessThanThreshold"
                         and a.inputs["dimensions"]["AutoScalingGroupName"] == "s")
        monkeypatch.chdir(tmp_path)
        assert main(["simulate", "web", "--trace", "synthetic:flash", "--json"]) == 0
        sim = json.loads(capsys.readouterr().out)["lanes"][0]
        return planned, sim, lane(g, MARKET).rules[SPOT].scale_in_alarm.threshold

    plan_30, sim_30, rule_30 = both(30)
    plan_45, sim_45, rule_45 = both(45)
    assert (plan_30, rule_30) == ([30], 30) and (plan_45, rule_45) == ([45], 45)
    # after the crowd the group idles at 30-40 % CPU: only the higher scale-in threshold gives it back
    assert sim_45["cost_per_day"] < sim_30["cost_per_day"]


def test_unknown_compare_key_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _project(tmp_path)
    assert main(["simulate", "web", "--compare", "scaling.burts.cpu=90"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "did you mean" in err[1] and "scaling.burts.cpu" in err[1]


def test_price_missing_from_snapshot_is_bad_input():
    with pytest.raises(SpecError, match="no on-demand price for x9.huge"):
        MARKET.on_demand_price("x9.huge")


def test_node_max_is_a_hard_ceiling_of_the_pair():
    # node_max 2: base 1 on demand, spot share 1 + headroom 1; each ASG's max alone would allow 2 + 2.
    # Under a load far above the group, the pair runs at most node_max + headroom = 3 instances at once.
    g = group(autoscale={"node_min": 2, "node_max": 2})
    ln = dataclasses.replace(lane(g, MARKET), interruption_per_step=0.002)
    r = simulate([ln], np.full(600, 5.0), seed=3)
    s = r.summary[0]
    assert (s["node_max"], s["ceiling"]) == (2, 3)
    assert s["peak_instances"] == 3 and s["ceiling_held"]


def test_compare_changes_several_settings_together():
    from fleet.simulate.variants import parse

    types = "[c5.large,c5a.large,c6i.large]"
    label, g, on_demand = parse(f"image.builder=ami,autoscale.timeout=900,autoscale.spot.instance_types={types}",
                                group())
    assert (g.image.builder, g.autoscale.timeout) == ("ami", 900)
    assert g.autoscale.spot.instance_types == ("c5.large", "c5a.large", "c6i.large")
    assert not on_demand and label.startswith("image.builder=ami")
    assert parse("market=on-demand", group())[2] is True


def test_skipping_the_reconciler_where_nothing_happens_changes_nothing():
    # the model calls the reconciler only for lanes with a possible deficit, an extra, or on-demand
    # above its room; elsewhere its plan would write back exactly what is there
    from lambdas.spot_capacity import reconcile

    for base in range(0, 3):
        for room in range(base, 8):
            for desired in range(base, room + 1):
                p = reconcile.plan(0, reconcile.OnDemand(desired=desired, max_size=room, base=base, extra=0))
                assert (p.desired, p.min_size, p.extra, p.capped) == (desired, base, 0, False)


def test_target_tracking_scales_to_capacity_times_cpu_over_target_after_three_datapoints():
    # 4 settled spot + 1 on-demand serving a load of 5 (CPU 100 %): the target tracking alarm needs 3
    # datapoints above 50 %, then the spot ASG goes to ceil(4 x 100 / 50) = 8
    g = group(scaling={"burst": {"cpu": 100}}, autoscale={"node_min": 2, "node_max": 20})  # no burst
    ln = dataclasses.replace(quiet(g), spot_start=4)
    series, _ = run([ln], np.full((4, 1), 5.0))
    assert series.desired[SPOT][:, 0].tolist() == [4, 4, 8, 8]


def test_an_asg_without_instances_has_no_datapoint_and_never_scales_out():
    # node_min = the on-demand base: the spot ASG starts empty, its own CPU has no datapoint, so only
    # the on-demand ASG's policies (75 % target) act on a load far above the group
    g = group(autoscale={"node_min": 1, "node_max": 10})
    series, _ = run([quiet(g)], np.full((10, 1), 5.0))
    assert series.desired[SPOT][:, 0].max() == 0 and series.desired[ON_DEMAND][:, 0].max() > 1


def test_compare_that_breaks_a_nodes_yaml_rule_is_bad_input():
    from fleet.simulate.variants import parse

    with pytest.raises(SpecError, match="scaling.*needs scale_in.cpu < target_cpu < burst.cpu"):
        parse("scaling.target_cpu=90", group())


def test_a_spot_scale_out_is_arriving_not_a_deficit_until_its_launch_bound():
    # 4 spot + 1 on-demand at a load of 5: spot target tracking launches 4 more at minute 2. While they
    # boot (within launch + autoscale.timeout) the reconciler adds no on-demand instance; the
    # on-demand ASG's own policies are out of reach here (targets at 100 %).
    g = group(scaling={"burst": {"cpu": 100}, "on_demand": {"target_cpu": 100, "burst_cpu": 100}},
              autoscale={"node_min": 2, "node_max": 20})
    ln = dataclasses.replace(quiet(g), spot_start=4)
    series, _ = run([ln], np.full((10, 1), 5.0))
    assert series.desired[SPOT][2, 0] == 8 and series.serving[SPOT][2, 0] == 4
    assert (series.desired[ON_DEMAND][:, 0] == 1).all()
    # the same launches past their bound (a boot slower than launch + autoscale.timeout) are missing
    slow = dataclasses.replace(ln, ready_steps=ln.launch_bound // 60 + 3)
    series, _ = run([slow], np.full((12, 1), 5.0))
    assert series.desired[ON_DEMAND][:, 0].max() > 1
