"""Each project file is opened once per plan (Pulumi.yaml, nodes.yaml, the lock, the stack file),
and outside a run every read sees the file as it is now."""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from pathlib import Path

from fleet.plan.engine import plan_result
from fleet.spec.readonce import one_read_per_file, read_bytes
from tests.conftest import ROOT

_opened: Counter | None = None


def _audit(event: str, args: tuple) -> None:
    if _opened is not None and event == "open" and isinstance(args[0], (str, Path)):
        _opened[Path(args[0]).name] += 1


sys.addaudithook(_audit)  # audit hooks cannot be removed; it counts only while _opened is set


def test_a_plan_opens_each_project_file_once():
    global _opened
    _opened = Counter()
    try:
        plan_result(ROOT, "staging")
    finally:
        counts, _opened = _opened, None
    files = ("Pulumi.yaml", "nodes.yaml", "nodes.lock.json", "Pulumi.staging.yaml")
    assert {f: counts[f] for f in files} == {f: 1 for f in files}


def test_outside_a_run_reads_are_fresh_and_inside_they_are_kept(tmp_path):
    f = tmp_path / "x"
    f.write_bytes(b"one")
    assert read_bytes(f) == b"one"
    f.write_bytes(b"two")
    assert read_bytes(f) == b"two"
    with one_read_per_file():
        assert read_bytes(f) == b"two"
        f.write_bytes(b"three")
        assert read_bytes(f) == b"two"
        assert read_bytes(f, limit=1) == b"th"  # a bounded read is its own entry: at most limit + 1 bytes
    assert read_bytes(f) == b"three"


def test_a_failed_read_is_not_kept(tmp_path):
    missing = tmp_path / "later"
    with one_read_per_file():
        try:
            read_bytes(missing)
        except FileNotFoundError:
            pass
        shutil.copy(ROOT / "Pulumi.yaml", missing)
        assert read_bytes(missing) == (ROOT / "Pulumi.yaml").read_bytes()


def test_a_plan_checks_the_fleet_once(monkeypatch):
    """The plan checks nodes.yaml with the stack file (line numbers), the program loads it again from
    Pulumi config: the second load of the same files and settings reuses the first's groups."""
    import fleet.spec.load as load

    calls = []
    original = load._apply_lock
    monkeypatch.setattr(load, "_apply_lock", lambda *a, **k: calls.append(1) or original(*a, **k))
    result = plan_result(ROOT, "staging")
    assert len(calls) == 1
    assert len(result.group_names) > 1


def test_other_settings_are_checked_again(tmp_path):
    """Inside a run, a load with other stack values (here: another region) is its own check."""
    from fleet.spec.load import load_fleet
    from fleet.spec.stack import read_stack_values

    values = dict(read_stack_values(ROOT / "Pulumi.staging.yaml")[0])
    with one_read_per_file():
        first = load_fleet(ROOT / "nodes.yaml", "staging", stack_values=values, project_dir=ROOT)
        again = load_fleet(ROOT / "nodes.yaml", "staging", stack_values=dict(values), project_dir=ROOT)
        assert again.groups is first.groups
        other = load_fleet(ROOT / "nodes.yaml", "staging", stack_values={**values, "aws:region": "us-west-2"},
                           project_dir=ROOT, require_lock=False)
    assert other.groups is not first.groups
    assert other.stack.region == "us-west-2"
