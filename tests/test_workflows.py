""".github/workflows: valid against GitHub's workflow schema (check-jsonschema's vendored copy, offline),
the key facts of the pull-request and deploy workflows, and the PR plan/diff shell steps run for real
against a stand-in `fleet plan --stack S --json` (canned plans, exit 1 on violations) and the real
`fleet plan diff` on them: the comment carries each stack's diff with its REPLACE lines.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def triggers(wf: dict) -> dict:
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` key as True
    return {on: None} if isinstance(on, str) else on


def steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def runs(job: dict) -> str:
    return "\n".join(s.get("run", "") for s in steps(job))


def uses(job: dict, action: str) -> list[dict]:
    return [s for s in steps(job) if s.get("uses", "").startswith(action)]


def step(job: dict, name_part: str) -> dict:
    [found] = [s for s in steps(job) if name_part in s.get("name", "")]
    return found


def test_workflow_files_exist():
    assert {p.name for p in WORKFLOWS.glob("*.yml")} >= {"pr.yml", "deploy.yml"}


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.y*ml")), ids=lambda p: p.name)
def test_valid_against_github_workflow_schema(path):
    result = subprocess.run([str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.y*ml")), ids=lambda p: p.name)
def test_run_steps_are_valid_bash(path):
    for name, job in load(path.name)["jobs"].items():
        for s in steps(job):
            if "run" in s:
                script = re.sub(r"\$\{\{.*?\}\}", "X", s["run"])
                result = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
                assert result.returncode == 0, f"{name}/{s.get('name', s['run'][:40])}: {result.stderr}"


def test_pr_workflow():
    wf = load("pr.yml")
    assert "pull_request" in triggers(wf)
    jobs = wf["jobs"]
    assert "make test" in runs(jobs["test"])
    assert uses(jobs["test"], "actions/setup-python")[0]["with"]["python-version"] == "3.11"
    plan = jobs["plan"]
    assert plan["permissions"]["pull-requests"] == "write"
    script = runs(plan)
    assert "for stack in staging prod" in script
    assert "-m fleet plan --stack \"$stack\" --json" in script
    assert "git worktree add" in script and "$RUNNER_TEMP/base" in script
    assert "-m fleet plan diff" in script
    assert uses(plan, "actions/github-script") and "<!-- fleet-plan -->" in script
    preview = jobs["preview"]
    assert preview["needs"] == "credentials" and preview["if"] == "needs.credentials.outputs.ready == 'true'"
    assert "secrets.PULUMI_ACCESS_TOKEN" in jobs["credentials"]["env"]["PULUMI_ACCESS_TOKEN"]
    assert preview["strategy"]["matrix"]["stack"] == ["staging", "prod"]
    [pulumi] = uses(preview, "pulumi/actions@v6")
    assert pulumi["with"]["command"] == "preview" and pulumi["with"]["policyPacks"] == "policy"
    assert uses(preview, "aws-actions/configure-aws-credentials") and preview["permissions"]["id-token"] == "write"


def test_deploy_workflow():
    wf = load("deploy.yml")
    assert triggers(wf)["push"]["branches"] == ["main"]
    assert wf["permissions"]["id-token"] == "write"
    staging, prod = wf["jobs"]["staging"], wf["jobs"]["prod"]
    assert prod["needs"] == "staging" and prod["environment"] == "production"
    assert staging["concurrency"]["group"] != prod["concurrency"]["group"]
    assert not staging["concurrency"]["cancel-in-progress"] and not prod["concurrency"]["cancel-in-progress"]
    for stack, job in (("staging", staging), ("prod", prod)):
        [creds] = uses(job, "aws-actions/configure-aws-credentials")
        assert creds["with"]["role-to-assume"].startswith("${{ vars.")
        [pulumi] = uses(job, "pulumi/actions@v6")
        assert pulumi["with"] == {"command": "up", "stack-name": stack, "policyPacks": "policy", "diff": True}


# --------------------------------------------------------- the PR plan steps, run against a stand-in CLI

FAKE_FLEET = r"""#!/bin/bash
# stand-in for `.venv/bin/python -m fleet ...`: canned plans, and the real `fleet plan diff` on them
[ "$1 $2 $3" = "-m fleet plan" ] || exit 9
if [ "$4" = diff ]; then shift 2; exec "$REAL_PYTHON" -m fleet "$@"; fi
stack="$5"
tg='{"type":"aws:lb/targetGroup:TargetGroup","name":"12-04-www","parent":"12-04-www","inputs":{"port":PORT},
     "options":{"ignoreChanges":[],"dependsOn":[],"protect":false,"deleteBeforeReplace":false}}'
case "$FAKE_SIDE-$stack" in
  head-staging) echo "{\"project\":\"fleet\",\"stack\":\"staging\",\"resources\":[${tg/PORT/8081}],
    \"outputs\":{},\"violations\":[]}" ;;
  base-staging) echo "{\"project\":\"fleet\",\"stack\":\"staging\",\"resources\":[${tg/PORT/8080}],
    \"outputs\":{},\"violations\":[]}" ;;
  head-prod) echo '{"project":"fleet","stack":"prod","resources":[],"outputs":{},"violations":[
    {"policy":"imdsv2-required","resource":"api-lt","message":"metadataOptions.httpTokens is unset"}]}'; exit 1 ;;
  base-*) echo "usage: fleet {validate,show,...}" >&2; exit 2 ;;
esac
"""


def _fake_venv(directory: Path, side: str) -> None:
    bin_dir = directory / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(FAKE_FLEET.replace("$FAKE_SIDE", side))
    (bin_dir / "python").chmod(stat.S_IRWXU)


def test_pr_plan_and_diff_steps(tmp_path):
    head, runner = tmp_path / "head", tmp_path / "runner"
    head.mkdir()
    _fake_venv(head, "head")
    _fake_venv(runner / "base", "base")
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}", "RUNNER_TEMP": str(runner),
           "GITHUB_OUTPUT": str(tmp_path / "output"), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
           "RUN_URL": "https://example.invalid/run/1", "REAL_PYTHON": sys.executable}
    plan = load("pr.yml")["jobs"]["plan"]
    for name in ("fleet plan --json", "fleet plan diff"):
        result = subprocess.run(["bash", "-e", "-c", step(plan, name)["run"]], cwd=head, env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
    assert "failed=true" in (tmp_path / "output").read_text()  # prod has a violation
    assert json.loads((runner / "plans" / "old-prod.json").read_text())["resources"] == []
    body = (runner / "plans" / "comment.md").read_text()
    assert body.startswith("<!-- fleet-plan -->")
    assert "### staging" in body and "### prod" in body and "diffed against an empty one" in body
    staging, prod = body.split("### prod")
    # the real `fleet plan diff` for each stack: the replacement with its risk, flagged above the diff
    assert "**This PR replaces resources in staging" in staging
    assert ("REPLACE target group 12-04-www: port 8080 -> 8081 (forces new; traffic moves to an empty group"
            in staging)
    assert "no resource changes" in prod and "replaces resources" not in prod
    assert "No guardrail violations." in body
    assert "1 guardrail violation(s)" in body and "`imdsv2-required` on `api-lt`" in body
    assert (tmp_path / "summary").read_text() == body
