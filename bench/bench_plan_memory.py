"""Where `fleet plan`'s memory goes, and what a cyclic-GC policy would buy (not a test; results in
bench/RESULTS.md, "Program cost").

    .venv/bin/python bench/bench_plan_memory.py [--groups 300] [--thresholds 1000000,100000,20000]
                                                [--census 100] [--repeat 1]

1. GC policy, side by side at `--groups` generated groups (bench_program's projects), as whole
   processes: `fleet plan --json` as shipped (cyclic GC off from the first import to the exit), and
   with the imports frozen (`gc.freeze()`, so collections never walk the SDK's modules) and cyclic GC
   on during the plan at each generation-0 threshold. CPU (user + sys) and peak RSS from wait4.
2. Census at `--census` groups, in-process: the live objects by type (count and shallow size, from
   `gc.get_objects()`, the imports frozen out of it) at the end of the program body (every resource
   made, none registered yet) and at the end of the run (every registration done), with the number
   of declared resource properties the SDK turned into Outputs (`rpc.transfer_properties`).
"""

from __future__ import annotations

import argparse
import collections
import gc
import io
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def child_plan(threshold: int) -> None:
    """`python -m fleet plan --stack staging --json` in this process (cwd: the project); threshold 0:
    as shipped (GC off), else imports frozen and cyclic GC on at that generation-0 threshold."""
    gc.disable()
    from fleet.cli import main
    from fleet.spec.readonce import one_read_per_file

    if threshold:
        import pulumi  # noqa: F401  (the modules the plan imports, frozen with the rest)
        import pulumi_aws  # noqa: F401
        import pulumi_command  # noqa: F401

        import fleet.plan.engine  # noqa: F401

        gc.freeze()
        gc.set_threshold(threshold, 10, 10)
        gc.enable()
        gc.disable = lambda: None  # the plan turns it off: keep it on
        gc.collect = lambda *a: 0  # and no full pass at the end of the run (the CLI exits right after)
    out = io.StringIO()
    sys.stdout, real = out, sys.stdout
    with one_read_per_file():
        code = main(["plan", "--stack", "staging", "--json"])
    sys.stdout = real
    real.write(f"{code} {len(out.getvalue())}\n")
    real.flush()
    os._exit(0)


def child_census() -> None:
    """The census (see the module docstring) of the plan of the project in the current directory."""
    gc.disable()
    import runpy

    import pulumi  # noqa: F401
    import pulumi_aws  # noqa: F401
    import pulumi_command  # noqa: F401
    from pulumi.runtime import rpc

    import fleet.plan.engine as engine
    from fleet.spec.readonce import one_read_per_file

    gc.freeze()  # the imports out of the census
    taken: dict[str, tuple] = {}
    declared = [0]
    transfer = rpc.transfer_properties

    def counting(res, props, custom):
        declared[0] += sum(1 for k in props if k != "urn" and not (k == "id" and custom))
        return transfer(res, props, custom)

    rpc.transfer_properties = counting

    def census(when: str) -> None:
        count: collections.Counter = collections.Counter()
        size: collections.Counter = collections.Counter()
        for o in gc.get_objects():
            name = f"{type(o).__module__}.{type(o).__qualname__}"
            count[name] += 1
            size[name] += sys.getsizeof(o)
        taken[when] = (count, size, declared[0])

    run_path = runpy.run_path

    def body(*args, **kwargs):
        value = run_path(*args, **kwargs)
        census("end of the program body")
        return value

    runpy.run_path = body
    run_func = engine.run_pulumi_func

    async def whole(fn):
        await run_func(fn)
        census("end of the run")

    engine.run_pulumi_func = whole
    with one_read_per_file():
        result = engine.plan_result(".", "staging")
    n = len(result.run.resources)
    for when, (count, size, props) in taken.items():
        total = sum(size.values())
        print(f"{when}: {sum(count.values()):,} objects, {total / 2**20:.0f} MiB shallow; {n:,} resources, "
              f"{props:,} declared properties made Outputs ({props / n:.1f} per resource)")
        for name, s in size.most_common(14):
            print(f"  {s / 2**20:7.1f} MiB {count[name]:9,d} x {s / count[name]:5.0f} B  {name}")
    sys.stdout.flush()
    os._exit(0)


def run_child(argv: list[str], cwd: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    p = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    out = p.stdout.read().decode()
    _, status, ru = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv} failed: {out[-2000:]}")
    return {"cpu": ru.ru_utime + ru.ru_stime, "rss": ru.ru_maxrss / 1024, "out": out}


def main() -> int:
    if sys.argv[1:2] == ["--child-plan"]:
        child_plan(int(sys.argv[2]))
    if sys.argv[1:2] == ["--child-census"]:
        child_census()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--groups", type=int, default=300, help="generated groups for the GC comparison (0: skip)")
    p.add_argument("--thresholds", default="1000000,100000,20000", help="generation-0 thresholds with GC on")
    p.add_argument("--census", type=int, default=100, help="generated groups for the census (0: skip)")
    p.add_argument("--repeat", type=int, default=1, help="rounds of the GC comparison (interleaved; median)")
    args = p.parse_args()
    from bench_program import machine, make_project

    print(machine())
    with tempfile.TemporaryDirectory(prefix="fleet-mem-") as tmp:
        if args.groups:
            project = make_project(Path(tmp) / "gc", args.groups)
            settings = [0] + [int(t) for t in args.thresholds.split(",") if t]
            runs: dict[int, list[dict]] = {t: [] for t in settings}
            for t in settings:  # untimed: bytecode compiled
                run_child([sys.executable, __file__, "--child-plan", str(t)], project)
            for _ in range(args.repeat):
                for t in settings:
                    runs[t].append(run_child([sys.executable, __file__, "--child-plan", str(t)], project))
            outs = {r["out"] for v in runs.values() for r in v}
            print(f"\n{args.groups} groups, `fleet plan --json` (same output in every run: {len(outs) == 1}), "
                  f"median of {args.repeat}, load average {os.getloadavg()[0]:.1f}")
            print("| cyclic GC during the plan | CPU s | vs GC off | peak RSS MB |\n|---|---:|---:|---:|")
            off = statistics.median(r["cpu"] for r in runs[0])
            for t, v in runs.items():
                cpu, rss = statistics.median(r["cpu"] for r in v), statistics.median(r["rss"] for r in v)
                label = "off (as shipped)" if t == 0 else f"imports frozen, on, threshold {t:,}"
                print(f"| {label} | {cpu:.2f} | {cpu / off:.2f}x | {rss:.0f} |")
        if args.census:
            project = make_project(Path(tmp) / "census", args.census)
            print(f"\n{args.census} groups, live objects by type (imports frozen out):")
            print(run_child([sys.executable, __file__, "--child-census"], project)["out"], end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
