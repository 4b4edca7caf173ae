"""Does any part of `fleet plan` grow faster than the fleet? Call counts at two sizes (not a test;
results in bench/RESULTS.md, "Program cost").

    .venv/bin/python bench/bench_plan_scaling.py [--sizes 100,300]

Runs `fleet plan --json` in-process under cProfile for two generated projects (bench_program's) and
compares, per function, how many times it was called: call counts are deterministic, timers on a
shared machine are not. Prints the project's own functions (fleet/, components/, __main__.py) whose
count grew more than the groups did, the SDK's and the standard library's that did (the top ones),
and the total calls of each side.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def child(out: str) -> None:
    """Profile the plan of the project in the current directory; write the stats to `out`."""
    import gc

    gc.disable()
    import pulumi  # noqa: F401  (imports out of the profile)
    import pulumi_aws  # noqa: F401
    import pulumi_command  # noqa: F401

    import fleet.plan.engine  # noqa: F401
    from fleet.cli import main
    from fleet.spec.readonce import one_read_per_file

    sys.stdout, real = io.StringIO(), sys.stdout
    profile = cProfile.Profile()
    profile.enable()
    with one_read_per_file():
        main(["plan", "--stack", "staging", "--json"])
    profile.disable()
    sys.stdout = real
    profile.dump_stats(out)
    os._exit(0)


def counts(path: str) -> dict[tuple[str, int, str], int]:
    """Calls per function, the project's files named relative to it (each project links them)."""
    found: dict[tuple[str, int, str], int] = {}
    for (file, line, name), (_, calls, *_rest) in pstats.Stats(path).stats.items():
        file = re.sub(r"^.*?/(fleet|components)/", r"\1/", file)
        file = file.split("site-packages/")[-1]
        # a C method inherited by many classes is named after whichever class cProfile met first
        name = re.sub(r"<function \w+\.(__\w+__)>", r"<function dict.\1>", re.sub(r" at 0x[0-9a-f]+", "", name))
        key = (file, line, name)
        found[key] = found.get(key, 0) + calls
    return found


def own(file: str) -> bool:
    return file.startswith(("fleet/", "components/")) or file.endswith("__main__.py")


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100,300", help="two group counts")
    args = p.parse_args()
    small, large = (int(x) for x in args.sizes.split(","))
    from bench_program import machine, make_project

    print(machine())
    with tempfile.TemporaryDirectory(prefix="fleet-scaling-") as tmp:
        stats = {}
        for n in (small, large):
            project = make_project(Path(tmp) / f"p{n}", n)
            stats[n] = str(Path(tmp) / f"{n}.pstats")
            subprocess.run([sys.executable, __file__, "--child", stats[n]], cwd=project, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        a, b = counts(stats[small]), counts(stats[large])
    k = large / small
    print(f"\ncalls per function, {small} -> {large} groups ({k:.1f}x the groups); total "
          f"{sum(a.values()):,} -> {sum(b.values()):,} ({sum(b.values()) / sum(a.values()):.2f}x)")
    for title, mine in (("the project's own functions", True), ("the SDK and the standard library", False)):
        rows = [(b[f] / max(a.get(f, 0), 1), a.get(f, 0), b[f], f) for f in b
                if own(f[0]) == mine and b[f] >= 2 * large]  # called at least twice per group
        faster = sorted((r for r in rows if r[0] > k * 1.01), reverse=True)
        calls = sum(r[2] for r in rows)
        print(f"\n{title}: {len(rows)} functions called >= 2x per group ({calls:,} calls at {large}); "
              f"{len(faster)} grew more than {k:.1f}x")
        for ratio, x, y, (file, line, name) in faster[:10]:
            print(f"  {ratio:6.2f}x {x:10,d} -> {y:10,d}  {file}:{line} {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
