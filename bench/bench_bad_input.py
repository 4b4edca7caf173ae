"""What hostile nodes files cost `fleet validate` (not a test; results in bench/RESULTS.md).

    .venv/bin/python bench/bench_bad_input.py [--repeat 3]

The bad-input contract (README, "nodes.yaml") promises an answer in bounded time and memory. Each
row is one whole `python -m fleet --nodes FILE validate` process: CPU time (user + sys, the child's
own rusage; median of --repeat runs, rows interleaved) and peak RSS, beside the sample nodes.yaml
in the same run (this machine is shared: ratios, not absolute seconds). The inputs sit at or just
over the limits of fleet/spec/yamlfile.py (MAX_BYTES, MAX_NODES, MAX_DEPTH).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fleet.spec.yamlfile import MAX_BYTES, MAX_DEPTH, MAX_NODES  # noqa: E402

BASE = "__base__: {instance_type: m5.large, source_ami: ami-12345678}\n"


def _laughs() -> str:
    out = ["a: &a [l, l, l, l, l, l, l, l, l]"]
    out += [f"{chr(97 + i)}: &{chr(97 + i)} [{', '.join([f'*{chr(96 + i)}'] * 9)}]" for i in range(1, 9)]
    return "\n".join(out) + "\n"


def cases() -> dict[str, str]:
    n = MAX_NODES
    return {
        "billion laughs (9 levels of 9 aliases)": BASE + _laughs() + "web: {default_attributes: {x: *i}}\n",
        f"flat list, {MAX_BYTES // 2:,} items (file at the size cap)":
            BASE + "web: {default_attributes: {x: [" + ",".join(["1"] * (MAX_BYTES // 2 - 100)) + "]}}\n",
        f"aliases expanding to just under {n:,} values (accepted shape)":
            BASE + "web: {default_attributes: {a: &a [" + ",".join(["x"] * 440) + "], b: ["
            + ",".join(["*a"] * (n // 441 - 2)) + "]}}\n",
        f"{n // 2 - 10:,} security group names (accepted, schema-checked)":
            BASE + "web: {security_groups: [" + ",".join(["a"] * (n // 2 - 10)) + "]}\n",
        f"nesting {MAX_DEPTH + 1} deep": BASE + "web: {default_attributes: {x: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH
            + "}}\n",
        "recursive alias": BASE + "web: &w {tags: *w}\n",
    }


def run_once(path: Path) -> tuple[float, float, int]:
    """(CPU seconds, peak RSS MiB, exit status) of one validate process (its own rusage, via wait4)."""
    proc = subprocess.Popen([sys.executable, "-m", "fleet", "--nodes", str(path), "validate"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = {"sample nodes.yaml": ROOT / "nodes.yaml"}  # in its project (cookbooks for its run lists)
        sizes = {"sample nodes.yaml": files["sample nodes.yaml"].stat().st_size}
        for i, (name, text) in enumerate(cases().items()):
            files[name] = Path(tmp) / f"case{i}.yaml"
            files[name].write_text(text)
            sizes[name] = files[name].stat().st_size
        runs: dict[str, list[tuple[float, float, int]]] = {name: [] for name in files}
        for _ in range(args.repeat):  # interleaved: a busy moment hits every row alike
            for name, path in files.items():
                runs[name].append(run_once(path))
    base = statistics.median(cpu for cpu, _, _ in runs["sample nodes.yaml"])
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, median of {args.repeat} (CPU), max (RSS)")
    print("| input | bytes | exit | CPU s | x sample | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for name, rows in runs.items():
        cpu = statistics.median(r[0] for r in rows)
        print(f"| {name} | {sizes[name]:,} | {rows[-1][2]} | {cpu:.2f} | {cpu / base:.1f} | "
              f"{max(r[1] for r in rows):.0f} |")


if __name__ == "__main__":
    main()
