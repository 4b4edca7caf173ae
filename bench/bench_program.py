"""How the Pulumi program's cost grows with the fleet (not a test; results in bench/RESULTS.md).

    .venv/bin/python bench/bench_program.py [--sizes 1,10,100,300] [--repeat 3] [--out results.json]

For each size N a nodes file with N groups is generated (per 10 groups: 3 http groups behind the
ALB, 5 workers, 2 one-off `autoscale: false` boxes whose image is an Ubuntu name filter, so every
kind of NodeGroup is there), and in the same run:

- ours:  the real `__main__.py` under fleet.plan.engine's mock engine (what `fleet plan` evaluates: spec
         load and checks, image hashes, every component), for the staging stack's config with
         `fleet:nodesFile` pointing at the generated file;
- floor: a bare program that registers the same resources with the same (resolved) inputs and
         parents, directly with `pulumi.ComponentResource` / `pulumi.CustomResource`: no components'
         Python, no spec, no Outputs between resources. Same mock engine, so the difference is
         what our code costs on top of the SDK.

Both run on the same engine, `fleet.plan.engine.run`: cyclic GC off during the run, no per-resource source
positions (the mock engine never reads them), DEBUG logs dropped.

Each measurement runs in a fresh subprocess: a warm-up run first (a 1-group fleet for ours, the
first resources of the recording for the floor) so module imports are not counted, then the timed
run; wall time of the run, and peak RSS (ru_maxrss) before and after it (the run's growth is the
difference). The best of `--repeat` child runs is kept. Invokes are counted during our run: the
goal is one per distinct AMI filter (plus the network's availability-zone lookup), never one per group.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BASE = """\
__base__:
  autoscale: false
  instance_type: m5.large
  source_ami:
    name: "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"
    owners: ["099720109477"]
  security_groups: [internal]
  image: {builder: packer, ssh_username: ubuntu, keep: 10}
  volume: {size: 20, type: gp3}
  run_list: ["recipe[seatgeek::base-server]"]
  tags: {team: platform}
"""
HTTP = """\
{name}:
  instance_type: c6i.large
  autoscale: {{timeout: 150, node_min: 2, node_max: 10}}
  security_groups: [www]
  run_list: ["recipe[svc::{name}]"]
  http: {{port: 8000, health_check: /status, hosts: [{name}.example.com]}}
"""
WORKER = """\
{name}:
  autoscale:
    timeout: 120
    node_min: 1
    node_max: 6
    spot: {{instance_types: [m5.large, m5a.large, m6i.large, m6a.large]}}
  run_list: ["recipe[svc::{name}]"]
"""
CRON = """\
{name}:
  instance_type: t3.medium
  image: {{builder: ami}}
  run_list: ["recipe[svc::{name}]"]
"""
KINDS = [HTTP, WORKER, WORKER, HTTP, CRON, WORKER, HTTP, WORKER, WORKER, CRON]  # 3 http, 5 worker, 2 cron


def nodes_yaml(groups: int) -> str:
    parts = [BASE]
    for i in range(groups):
        parts.append(KINDS[i % len(KINDS)].format(name=f"g{i:03d}"))
    return "\n".join(parts)


def stack_config(nodes_file: Path) -> dict:
    from fleet.plan.engine import stack_config as read

    cfg = read("staging", ROOT)
    cfg.pop("fleet:groups", None)  # staging's overrides name the project's own groups
    cfg["fleet:nodesFile"] = str(nodes_file)
    return cfg


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- children (one measurement each, in a fresh process) -----------------------------------------

def child_ours(groups: int, workdir: Path, record: Path) -> dict:
    from fleet.plan.engine import run_program
    from fleet.plan.guardrails import check_all

    warm = workdir / "warm.yaml"
    warm.write_text(nodes_yaml(10))
    run_program("staging", stack_config(warm), offline=True)  # imports every module the program uses
    nodes = workdir / f"nodes-{groups}.yaml"
    nodes.write_text(nodes_yaml(groups))
    cfg = stack_config(nodes)
    declared = _record_declared_properties()
    rss0 = _maxrss_mb()
    t0 = time.perf_counter()
    r = run_program("staging", cfg, offline=True)
    wall = time.perf_counter() - t0
    rss1 = _maxrss_mb()
    t1 = time.perf_counter()
    violations = check_all(r.views(), "staging")
    guardrails = time.perf_counter() - t1
    # the recording, parents first (URN-sorted registrations, re-ordered depth first), for the floor
    by_parent: dict = {}
    for x in r.resources:
        by_parent.setdefault(x.parent, []).append(x)
    ordered, todo = [], [None]
    while todo:
        for x in by_parent.get(todo.pop(0), []):
            ordered.append({"type": x.type, "name": x.name, "urn": x.urn, "parent": x.parent, "custom": x.custom,
                            "inputs": x.inputs, "declared": declared.get((x.type, x.name), [])})
            todo.append(x.urn)
    record.write_text(json.dumps(ordered, default=str))
    calls: dict[str, int] = {}
    for token, _ in r.calls:
        calls[token] = calls.get(token, 0) + 1
    return {"wall": wall, "rss_before": rss0, "rss_peak": rss1, "resources": len(r.resources),
            "custom": sum(1 for x in r.resources if x.custom), "invokes": calls, "guardrails": guardrails,
            "violations": len(violations), "error": repr(r.error) if r.error else None}


def _record_declared_properties() -> dict:
    """(type, name) -> the property names the resource's class hands the SDK: a provider class
    declares every input and output (outputs as None), and the SDK makes an Output for each.
    Recorded for the class-shaped floor; a list append per resource (negligible)."""
    from pulumi.runtime import rpc

    declared: dict = {}
    transfer = rpc.transfer_properties

    def recording(res, props, custom):
        declared[(res._type, res._name)] = list(props)
        return transfer(res, props, custom)

    rpc.transfer_properties = recording
    return declared


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def _replay(records: list[dict], shaped: bool = False) -> None:
    """Register the recorded resources again, parents first, each with its recorded inputs
    (`shaped`: plus every other property its provider class declares, as None, like the class does)."""
    import pulumi

    class Custom(pulumi.CustomResource):  # a subclass, like every provider resource class: the SDK
        def __init__(self, typ, name, props, opts):  # looks for a third __init__ frame for the
            super().__init__(typ, name, props, opts=opts)  # source position of each registration

    class Component(pulumi.ComponentResource):
        def __init__(self, typ, name, opts):
            super().__init__(typ, name, None, opts=opts)
            self.register_outputs({})

    made: dict[str, pulumi.Resource] = {}
    for rec in records:
        opts = pulumi.ResourceOptions(parent=made.get(rec["parent"])) if rec["parent"] else None
        if rec["custom"]:
            props = dict(rec["inputs"])
            if shaped:
                props.update({k: None for k in rec["declared"] if _camel(k) not in props and k not in ("id", "urn")})
            made[rec["urn"]] = Custom(rec["type"], rec["name"], props, opts)
        else:
            made[rec["urn"]] = Component(rec["type"], rec["name"], opts)


def child_floor(record: Path, shaped: bool) -> dict:
    from fleet.plan.engine import FleetMocks, run

    records = json.loads(record.read_text())
    run(lambda: _replay(records[:60], shaped), stack="staging", mocks=FleetMocks(offline=True))  # warm-up
    rss0 = _maxrss_mb()
    t0 = time.perf_counter()
    r = run(lambda: _replay(records, shaped), stack="staging", mocks=FleetMocks(offline=True))
    wall = time.perf_counter() - t0
    rss1 = _maxrss_mb()
    assert len(r.resources) == len(records), (len(r.resources), len(records))
    return {"wall": wall, "rss_before": rss0, "rss_peak": rss1, "resources": len(r.resources)}


# -- parent ---------------------------------------------------------------------------------------

def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if out.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(sizes: list[int], repeat: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        work = Path(tmp)
        for n in sizes:
            record = work / f"record-{n}.json"
            runs: dict[str, list[dict]] = {"ours": [], "bare": [], "shaped": []}
            for _ in range(repeat):  # interleaved, so a busy moment hits all three alike
                runs["ours"].append(_child(["--child", "ours", str(n), str(work), str(record)]))
                runs["bare"].append(_child(["--child", "floor", str(record)]))
                runs["shaped"].append(_child(["--child", "floor", str(record), "--shaped"]))
            best = {k: min(v, key=lambda m: m["wall"]) for k, v in runs.items()}
            row = {"groups": n, **best, "ratio_bare": best["ours"]["wall"] / best["bare"]["wall"],
                   "ratio_shaped": best["ours"]["wall"] / best["shaped"]["wall"]}
            rows.append(row)
            print(_fmt_row(row), flush=True)
    return rows


def _rss(m: dict) -> str:
    return f"{m['rss_peak']:.0f} (+{m['rss_peak'] - m['rss_before']:.0f})"


def _fmt_row(row: dict) -> str:
    o, b, c = row["ours"], row["bare"], row["shaped"]
    n = o["resources"]
    invokes = ", ".join(f"{t.split(':')[-1]} {k}" for t, k in sorted(o["invokes"].items()))
    return (f"| {row['groups']} | {n} | {o['wall']:.2f} | {1000 * o['wall'] / n:.2f} | "
            f"{b['wall']:.2f} | {row['ratio_bare']:.2f} | {c['wall']:.2f} | {row['ratio_shaped']:.2f} | "
            f"{_rss(o)} | {_rss(b)} | {_rss(c)} | {invokes} | {o['guardrails']:.2f} |")


HEADER = ("| groups | resources | ours s | ours ms/resource | bare floor s | ours/bare | class-shaped floor s "
          "| ours/class-shaped | ours peak RSS MB (run's growth) | bare floor RSS | class-shaped floor RSS "
          "| invokes (whole run) | guardrails s |\n"
          "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import version

    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, pulumi {version('pulumi')}, "
            f"pulumi-aws {version('pulumi-aws')}, {platform.system()} {platform.release()}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        kind = argv[1]
        result = (child_ours(int(argv[2]), Path(argv[3]), Path(argv[4])) if kind == "ours"
                  else child_floor(Path(argv[2]), shaped="--shaped" in argv))
        print(json.dumps(result))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1,10,100,300")
    p.add_argument("--repeat", type=int, default=3, help="child runs per measurement; the fastest is kept")
    p.add_argument("--out", default=None, help="also write the raw numbers as JSON")
    args = p.parse_args(argv)
    print(machine())
    print(HEADER)
    rows = measure([int(s) for s in args.sizes.split(",")], args.repeat)
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
