"""The code that runs on machines we do not choose runs on their Python: the boot program on every image
the README supports (down to Python 3.8: Ubuntu 20.04; 22.04, Amazon Linux 2023 and RHEL 9 are 3.9-3.10),
the spot reconciler on its Lambda runtime. vermin (PyPI) reads the code and names the minimum
version each construct needs; a newer construct (such as `datetime.UTC`, 3.11) fails here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from components.spot_capacity import RUNTIME
from tests.pulumi_mocks import ROOT

BOOT_MINIMUM = "3.8"


def vermin(target: str, *paths: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("vermin")), f"-t={target}-", "--no-tips", "--violations",
                           "--eval-annotations", *paths], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("folder, target", [("boot", BOOT_MINIMUM), ("lambdas", RUNTIME.removeprefix("python"))])
def test_runs_on_its_minimum_python(folder, target):
    proc = vermin(target, folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_vermin_catches_what_the_boot_program_had(tmp_path):
    """The check can fail: `datetime.UTC` (what the boot program used) needs 3.11."""
    (tmp_path / "new.py").write_text("import datetime\nnow = datetime.datetime.now(datetime.UTC)\n")
    proc = vermin(BOOT_MINIMUM, str(tmp_path / "new.py"))
    assert proc.returncode != 0 and "3.11" in proc.stdout
