"""The project the user stands in: every command works on the project of the current directory (the
nearest Pulumi.yaml upward, else the directory itself), `--project DIR` overrides it, `--nodes`
defaults to the project's nodes file (or the stack's `fleet:nodesFile`), stack files come from the
project and never from beside a `--nodes` file elsewhere, and the first stderr line names all three.

Run as a user would: `python -m fleet` in a subprocess whose working directory is elsewhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BASE = "__base__: {instance_type: m5.large, source_ami: ami-12345678}\n"
# baked with `communicator: none` (no provisioner runs chef, so no cookbook is needed)
SOLO = BASE + "solo:\n  autoscale: {node_min: 1, node_max: 2}\n  run_list: ['recipe[solo]']\n" \
    "  image: {communicator: none}\n"


def fleet(cwd: Path, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fleet", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def context(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr.splitlines()[0]


def test_plan_in_a_folder_holding_only_a_nodes_file_plans_that_file(tmp_path):
    (tmp_path / "nodes.yaml").write_text(SOLO)
    proc = fleet(tmp_path, "plan")
    assert proc.returncode == 0, proc.stderr
    assert "group solo" in proc.stdout and "NodeGroup solo" in proc.stdout
    assert "12_04-www" not in proc.stdout and "api" not in proc.stdout.split("group solo")[1].split("shared")[0]
    header = proc.stdout.splitlines()[0]
    assert f"directory {tmp_path}" in header and "nodes nodes.yaml" in header and "stack staging" in header
    assert context(proc) == (f"fleet: project {tmp_path}, nodes nodes.yaml, "
                             "stack staging (no Pulumi.staging.yaml: stack defaults)")


def test_validate_and_plan_agree_from_another_directory(tmp_path):
    """Both fail alike in an empty folder (naming the missing file); both work with --project."""
    validate, plan = fleet(tmp_path, "validate"), fleet(tmp_path, "plan")
    assert validate.returncode == plan.returncode == 2
    for proc in (validate, plan):
        assert context(proc).startswith(f"fleet: project {tmp_path}, nodes nodes.yaml")
        assert proc.stderr.splitlines()[1].startswith("nodes.yaml: cannot read file"), proc.stderr
    validate = fleet(tmp_path, "--project", str(ROOT), "validate", "--stack", "staging")
    assert validate.returncode == 0, validate.stderr
    assert context(validate) == (f"fleet: project {ROOT}, nodes {ROOT / 'nodes.yaml'}, "
                                 "stack staging (Pulumi.staging.yaml)")
    assert "4 groups OK for stack staging" in validate.stdout


def test_a_subfolder_of_a_project_is_that_project(tmp_path):
    proc = fleet(ROOT / "tests", "validate", "--stack", "prod")
    assert proc.returncode == 0, proc.stderr
    assert context(proc) == f"fleet: project {ROOT}, nodes {ROOT / 'nodes.yaml'}, stack prod (Pulumi.prod.yaml)"
    proc = fleet(ROOT / "tests", "show", "api", "--stack", "staging")
    assert proc.returncode == 0 and json.loads(proc.stdout)["autoscale"]["node_max"] == 3


def test_stack_files_come_from_the_project_not_from_beside_the_nodes_file(tmp_path):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / "Pulumi.yaml").write_text("name: mine\nruntime: python\n")
    (project / "Pulumi.s.yaml").write_text("config:\n  fleet:groups:\n    solo: {instance_type: m5.xlarge}\n")
    (elsewhere / "nodes.yaml").write_text(SOLO)
    (elsewhere / "Pulumi.s.yaml").write_text("config:\n  fleet:groups:\n    solo: {instance_type: c5.large}\n")
    proc = fleet(project, "--nodes", str(elsewhere / "nodes.yaml"), "show", "solo", "--stack", "s")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["instance_type"] == "m5.xlarge"
    assert context(proc) == f"fleet: project {project}, nodes {elsewhere / 'nodes.yaml'}, stack s (Pulumi.s.yaml)"
    (project / "Pulumi.s.yaml").unlink()  # and never falls back to the one beside the nodes file
    proc = fleet(project, "--nodes", str(elsewhere / "nodes.yaml"), "show", "solo", "--stack", "s")
    assert proc.returncode == 2 and "no stack file for stack 's'" in proc.stderr


def test_nodes_default_to_the_stacks_nodes_file(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: mine\nruntime: python\n")
    (tmp_path / "fleets").mkdir()
    (tmp_path / "fleets" / "edge.yaml").write_text(SOLO.replace("solo", "edge"))
    (tmp_path / "nodes.yaml").write_text(SOLO)
    (tmp_path / "Pulumi.e.yaml").write_text("config:\n  fleet:nodesFile: fleets/edge.yaml\n")
    (tmp_path / "sub").mkdir()
    proc = fleet(tmp_path / "sub", "validate", "--stack", "e")
    assert proc.returncode == 0, proc.stderr
    assert "1 groups OK for stack e: edge" in proc.stdout
    assert context(proc) == (f"fleet: project {tmp_path}, nodes {tmp_path / 'fleets' / 'edge.yaml'}, "
                             "stack e (Pulumi.e.yaml)")
    proc = fleet(tmp_path / "sub", "validate")  # the default stack, on its defaults: the project's nodes.yaml
    assert "1 groups OK for stack staging: solo" in proc.stdout


@pytest.mark.parametrize("argv", [["validate"], ["show", "solo"], ["role", "solo"], ["packer", "solo"],
                                  ["validate", "--stack", "s"]])
def test_every_command_names_project_nodes_and_stack_first(tmp_path, argv):
    (tmp_path / "nodes.yaml").write_text(SOLO)
    (tmp_path / "Pulumi.s.yaml").write_text("config: {}\n")
    proc = fleet(tmp_path, *argv)
    assert proc.returncode == 0, proc.stderr
    stack = ("s (Pulumi.s.yaml)" if "--stack" in argv
             else "staging (no Pulumi.staging.yaml: stack defaults)" if argv[0] in ("validate", "show")
             else "(none: nodes file only)")
    assert context(proc) == f"fleet: project {tmp_path}, nodes nodes.yaml, stack {stack}"


def test_validate_suggests_the_stack_it_meant(tmp_path):
    proc = fleet(ROOT, "validate", "--stack", "stagin")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[1:] == [
        "Pulumi.stagin.yaml: no stack file for stack 'stagin' (did you mean 'staging'?); stacks here: prod, staging"]


def test_the_plan_from_another_directory_is_the_plan_from_the_project(tmp_path):
    """Relative asset paths (the bundles under .fleet/) are the project's, as for Pulumi, which runs
    the program in the project: their hashes must not depend on where `fleet plan` was started."""
    inside = fleet(ROOT, "plan", "--json", "--stack", "staging")
    outside = fleet(tmp_path, "--project", str(ROOT), "plan", "--json", "--stack", "staging")
    assert inside.returncode == outside.returncode == 0, outside.stderr
    assets = [r["inputs"]["source"] for r in json.loads(inside.stdout)["resources"]
              if "fileAsset" in r["inputs"].get("source", {})]
    assert assets and all(a["sha256"] for a in assets)  # bundles are hashed at all
    assert outside.stdout == inside.stdout
