"""How long the test suite takes: one process vs one pytest-xdist worker per core (what `make test` runs).

    .venv/bin/python bench/bench_test_suite.py [--modes serial,auto] [--out results.json]

Each mode runs the whole suite once as `make test` would (`python -m pytest -q [-n auto]`, the ruff
step and installs excluded: they take seconds once .venv exists) and prints its wall time, the CPU
of the run and every child it waited for (user + sys from wait4's rusage: workers, moto servers,
Packer, the CLI processes tests start), the pass count and the load average before and after. Run it
on a quiet machine: the goal is a quiet 2-core machine. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(mode: str) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    if mode != "serial":
        cmd += ["-n", mode]
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    passed = re.search(r"(\d+) passed", summary)
    return {"mode": mode, "command": " ".join(["python"] + cmd[1:]), "exit": os.waitstatus_to_exitcode(status),
            "wall_s": round(wall, 1), "cpu_user_s": round(usage.ru_utime, 1), "cpu_sys_s": round(usage.ru_stime, 1),
            "passed": int(passed.group(1)) if passed else 0, "summary": summary,
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", default="serial,auto", help="comma-separated: serial, auto, or a worker count")
    ap.add_argument("--out", help="also write the rows as JSON here")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    rows = [run(mode) for mode in args.modes.split(",")]
    print("| mode | wall | CPU user + sys (run and children) | passed | load before / after |")
    print("|---|---:|---:|---:|---|")
    for r in rows:
        print(f"| `{r['command']}` | {r['wall_s'] // 60:.0f} min {r['wall_s'] % 60:.0f} s | "
              f"{r['cpu_user_s'] + r['cpu_sys_s']:.0f} s ({r['cpu_user_s']:.0f} + {r['cpu_sys_s']:.0f}) | "
              f"{r['passed']} | {r['load_before']} / {r['load_after']} |")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
    return max(r["exit"] for r in rows)


if __name__ == "__main__":
    sys.exit(main())
