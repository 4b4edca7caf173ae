"""`python -m fleet` starts without cyclic GC (a plan's heap only grows until the process ends, and
collections during the SDK's imports alone cost a 60-group plan a quarter of its CPU); every command
but `plan` turns it back on, so long-running ones (status --watch, simulate) collect as usual."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

from fleet.cli import main
from tests.conftest import ROOT


def test_plan_keeps_gc_off_and_other_commands_turn_it_on(tmp_path):
    plan = {"project": "fleet", "stack": "staging", "resources": [], "outputs": {}, "violations": []}
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text(json.dumps(plan))
    try:
        gc.disable()
        assert main(["plan", "diff", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
        assert not gc.isenabled()
        assert main(["--nodes", str(ROOT / "nodes.yaml"), "validate"]) == 0
        assert gc.isenabled()
    finally:
        gc.enable()


def test_the_entry_point_starts_without_gc():
    probe = "import gc, fleet.__main__; print(gc.isenabled())"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr
