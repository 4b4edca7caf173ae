"""Helpers for tests that need this project somewhere else, as a runner or another developer has it.

- `clone(dest)`: the checkout's tree as git gives it (tracked and new files, nothing ignored: no .venv,
  no __pycache__), so uncommitted work is tested too.
- `standin_pulumi_up(project, stack, env)`: what `pulumi up` does with the program's local Commands,
  reduced to the parts that decide whether they can run. The language host runs the program with the
  virtualenv named in Pulumi.yaml (here: the offline plan, the same program under mocks, run by that
  venv's python); pulumi-command then runs each Command's `create` with `/bin/sh -c`, in the provider's
  working directory (the project: `dir` is unset) and with the CLI's environment, NOT the venv's.
  Commands run in dependency order: image builds, rollouts, then health gates; all of them
  run (a gate needs ASGs that only a real `pulumi up` creates, so the caller judges each result).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "command:local:Command"
CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"


def clone(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def program_plan(project: Path, stack: str, python: str) -> dict:
    """The program run by `python` (the language host's interpreter) for `stack`, as plan JSON."""
    proc = subprocess.run([python, "-m", "fleet", "plan", "--stack", stack, "--json"], cwd=project,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def _order(command: dict) -> int:
    name = command["name"]
    return 0 if name.endswith("-image") else 1 if name.endswith("-refresh") else 2


def standin_pulumi_up(project: Path, stack: str, env: dict[str, str]) -> list[tuple[str, subprocess.CompletedProcess]]:
    """Run the stack's Commands as `pulumi up` would; return (name, result) per Command."""
    runtime = yaml.safe_load((project / "Pulumi.yaml").read_text())["runtime"]
    venv = project / runtime["options"]["virtualenv"]
    plan = program_plan(project, stack, str(venv / "bin" / "python"))
    results = []
    for command in sorted((r for r in plan["resources"] if r["type"] == COMMAND), key=_order):
        proc = subprocess.run(["/bin/sh", "-c", command["inputs"]["create"]], cwd=project, env=env,
                              capture_output=True, text=True, timeout=300)
        results.append((command["name"], proc))
    return results
