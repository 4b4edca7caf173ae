"""Benchmark: `fleet plan diff` on big plans (it must stay linear in the plans' size).

Scenarios, each timed as CPU seconds of `load_plan` (both files: JSON read, limits, shape check),
`diff_plans` and `format_diff`, in this process:
- copies: the real staging plan (the program under the mock engine) copied until it holds 10,000+
  resources, names unchanged (duplicates, as a user concatenating plans makes), every launch
  template's instance type changed in the new one;
- one group: 400 launch templates and 400 one-off instances of one group, every template changed
  (each template's rollout replaces all 400 instances).

Not a test: run `.venv/bin/python bench/bench_plan_diff.py`. Prints one line per scenario.
"""

from __future__ import annotations

import copy
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fleet.plan.diff import diff_plans, format_diff, load_plan  # noqa: E402

LT = "aws:ec2/launchTemplate:LaunchTemplate"
INSTANCE = "aws:ec2/instance:Instance"
NODE_GROUP = "fleet:node_group:NodeGroup"
TARGET = 10_000


def staging_copies() -> tuple[dict, dict]:
    from fleet.plan.engine import plan

    base = plan(ROOT, "staging")
    copies = -(-TARGET // len(base["resources"]))
    old = {**base, "resources": [copy.deepcopy(r) for _ in range(copies) for r in base["resources"]]}
    new = copy.deepcopy(old)
    for r in new["resources"]:
        if r["type"] == LT:
            r["inputs"]["instanceType"] = "m5.2xlarge"
    return old, new


def one_group() -> tuple[dict, dict]:
    def side(kind: str) -> dict:
        tags = {"fleet:group": "g"}
        rs = [{"type": NODE_GROUP, "name": "g", "parent": None, "inputs": {}, "options": {}}]
        rs += [{"type": LT, "name": f"lt-{i}", "parent": "g", "inputs": {"instanceType": kind, "tags": tags},
                "options": {}} for i in range(400)]
        rs += [{"type": INSTANCE, "name": f"i-{i}", "parent": "g", "inputs": {"tags": tags}, "options": {}}
               for i in range(400)]
        return {"project": "fleet", "stack": "staging", "resources": rs, "outputs": {}, "violations": []}

    return side("m5.large"), side("m5.xlarge")


def run(name: str, old: dict, new: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / "old.json", Path(tmp) / "new.json"]
        for path, data in zip(paths, (old, new), strict=True):
            path.write_text(json.dumps(data, indent=2))
        size = sum(p.stat().st_size for p in paths)
        t0 = time.process_time()
        a, b = (load_plan(p) for p in paths)
        t1 = time.process_time()
        d = diff_plans(a, b)
        t2 = time.process_time()
        text = format_diff(d)
        t3 = time.process_time()
    print(f"{name}: {len(old['resources'])} -> {len(new['resources'])} resources, {size / 2**20:.1f} MiB of JSON; "
          f"load {t1 - t0:.2f} s, diff {t2 - t1:.2f} s, text {t3 - t2:.2f} s ({len(text.splitlines())} lines), "
          f"total {t3 - t0:.2f} s CPU", flush=True)


def main() -> None:
    run("one group, 400 templates + 400 instances", *one_group())
    run("staging plan copied to 10,000+ resources", *staging_copies())


if __name__ == "__main__":
    main()
