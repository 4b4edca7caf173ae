"""The two entry points behave on a user's machine: `make test` as root installs the Debian tools it
needs but never cloud-init (Debian's package enables boot services), only unpacking its schema from
the downloaded package; `make plan`'s first run says what it is installing before pip's quiet minutes."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _dry_run(*args: str) -> str:
    return subprocess.run(["make", "-n", "-B", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_make_test_installs_no_system_service(tmp_path):
    dry = _dry_run("test", f"VENV={tmp_path / 'venv'}")
    installs = [line for line in dry.splitlines() if "apt-get install" in line]
    assert installs and not [line for line in installs if "cloud-init" in line], installs
    assert "apt-get download -qq cloud-init" in dry and "dpkg-deb --fsys-tarfile" in dry, dry
    assert f"{tmp_path / 'venv'}/cloud-init-schema.json" in dry  # into the venv, nothing system-wide


def test_make_plan_says_what_it_installs_first(tmp_path):
    dry = _dry_run("plan", f"VENV={tmp_path / 'venv'}")
    said = [line for line in dry.splitlines() if line.startswith("echo ")]
    pip = next(i for i, line in enumerate(dry.splitlines()) if "pip install" in line)
    assert said and dry.splitlines().index(said[0]) < pip, dry
    assert "installing the locked requirements" in said[0] and "requirements.lock" in said[0]
