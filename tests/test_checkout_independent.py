"""The program runs the same from any checkout and any shell.

- The image and rollout Commands run the project's own virtualenv python by a relative path, with no
  `dir` and no `environment`: nothing in their inputs names the checkout, and they work whether or
  not the venv is activated (the deploy workflow never activates it).
- The image hash covers file contents and project-relative names, never the checkout's location.
- Two clones of one tree at different paths give byte-identical `fleet plan --json`.
The Commands' exact `create` strings are run from a clean shell by the deploy workflow's test
(tests/test_workflows.py::test_deploy_job_runs_its_commands_without_an_activated_venv).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from components.project_python import ProjectPythonError, python_module_command, virtualenv_of
from fleet.image_hash import hash_groups
from fleet.spec.load import load_fleet
from tests.checkout import clone

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "command:local:Command"


def plan_json(project: Path, stack: str) -> bytes:
    proc = subprocess.run([sys.executable, "-m", "fleet", "plan", "--stack", stack, "--json"], cwd=project,
                          capture_output=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr.decode()
    return proc.stdout


@pytest.fixture(scope="module")
def clones(tmp_path_factory):
    a = clone(tmp_path_factory.mktemp("checkout-a") / "fleet")
    b = clone(tmp_path_factory.mktemp("elsewhere") / "deeper" / "fleet-b")
    return a, b


def test_virtualenv_comes_from_pulumi_yaml(tmp_path):
    assert virtualenv_of(ROOT) == ".venv"
    assert python_module_command(ROOT, "image_builds.build", ["a b", "--stack", "s"]) == \
        ".venv/bin/python -m image_builds.build 'a b' --stack s"
    for bad in ("runtime: python\n", "runtime: {name: python, options: {virtualenv: /opt/venv}}\n",
                "runtime: {name: python, options: {virtualenv: ../venv}}\n"):
        (tmp_path / "Pulumi.yaml").write_text("name: x\n" + bad)
        with pytest.raises(ProjectPythonError, match="runtime.options.virtualenv"):
            virtualenv_of(tmp_path)


def test_image_hash_does_not_depend_on_the_checkout_path(clones):
    a, b = clones
    for nodes in ("nodes.yaml", "examples/local/nodes.yaml"):
        fa, fb = load_fleet(a / nodes), load_fleet(b / nodes)
        project = Path(nodes).parent
        assert hash_groups(fa.groups, a / project) == hash_groups(fb.groups, b / project)


@pytest.fixture(scope="module")
def plans(clones):
    return {(i, stack): plan_json(where, stack) for i, where in enumerate(clones) for stack in ("staging", "prod")}


def test_plans_of_two_clones_are_byte_identical(clones, plans):
    for stack in ("staging", "prod"):
        assert plans[0, stack] == plans[1, stack], f"{stack}: the plan depends on where the checkout is"
        assert str(clones[0]).encode() not in plans[0, stack]


def _commands(plan: bytes) -> list[dict]:
    return [r for r in json.loads(plan)["resources"] if r["type"] == COMMAND]


def test_commands_name_the_projects_python_and_no_directory(plans):
    commands = _commands(plans[0, "staging"]) + _commands(plans[0, "prod"])
    assert {c["name"].rsplit("-", 1)[-1] for c in commands} >= {"image", "refresh"}
    for c in commands:
        assert c["inputs"]["create"].startswith(".venv/bin/python -m "), c["inputs"]["create"]
        assert "dir" not in c["inputs"] and "environment" not in c["inputs"], c["name"]
