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


# --------------------------------------------------------- the deploy job: credentials and its Commands

def test_deploy_session_outlives_the_longest_deploy():
    """The OIDC session lasts longer than the job may run; the role's MaxSessionDuration
    needed for it is documented where the role is named."""
    wf = load("deploy.yml")
    text = (WORKFLOWS / "deploy.yml").read_text()
    for name in ("staging", "prod"):
        job = wf["jobs"][name]
        [creds] = uses(job, "aws-actions/configure-aws-credentials")
        duration = int(creds["with"]["role-duration-seconds"])
        assert duration > job["timeout-minutes"] * 60, f"{name}: the credentials expire before the job's timeout"
        assert duration <= 43200  # AWS's upper bound for MaxSessionDuration
        assert f"MaxSessionDuration must be at least {duration}" in text


def test_deploy_job_runs_its_commands_without_an_activated_venv(tmp_path, aws):
    """The deploy job as GitHub runs it, with stand-ins only where this machine cannot go: the install
    step's virtualenv is this test run's (no download), configure-aws-credentials' output is the moto
    server's credentials, and `pulumi up` is tests/checkout.py's stand-in (the program under the
    venv's python, then every Command's exact `create` by /bin/sh in the project, with the job's own
    environment: the system PATH, no venv activated, no PYTHONPATH). The images of this commit are
    already baked (tagged with their hashes, as after staging's bake): the build Commands reuse them."""
    import boto3

    from tests.checkout import CLEAN_PATH, clone, standin_pulumi_up

    job = load("deploy.yml")["jobs"]["staging"]
    install = step(job, "Install")["run"]
    [pulumi] = uses(job, "pulumi/actions@v6")
    project = clone(tmp_path / "runner" / "work" / "fleet")
    venv = yaml.safe_load((project / "Pulumi.yaml").read_text())["runtime"]["options"]["virtualenv"]
    assert f"python -m venv {venv}\n" in install and f"{venv}/bin/pip install" in install
    assert "activate" not in runs(job)  # nothing activates the venv for `pulumi up`
    (project / venv).symlink_to(Path(sys.executable).parent.parent, target_is_directory=True)

    env = {"PATH": CLEAN_PATH, "HOME": str(tmp_path), "LANG": "C.UTF-8",
           **{k: os.environ[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                         "AWS_REGION")}}
    # a bare `python` in that environment could not run the build (no boto3, or no python at all)
    bare = subprocess.run(["/bin/sh", "-c", "python3 -c 'import boto3, pulumi'"], env=env, capture_output=True)
    assert bare.returncode != 0

    from tests.checkout import program_plan
    plan = program_plan(project, pulumi["with"]["stack-name"], sys.executable)
    ec2 = boto3.client("ec2", region_name="us-east-1")
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    baked = {}
    for r in plan["resources"]:
        if r["type"] == "command:local:Command" and r["name"].endswith("-image"):
            ami = ec2.create_image(InstanceId=instance, Name=f"fleet-{r['name']}")["ImageId"]
            ec2.create_tags(Resources=[ami], Tags=[{"Key": "fleet:image-hash", "Value": r["inputs"]["triggers"][0]}])
            baked[r["name"]] = ami
    assert baked

    results = standin_pulumi_up(project, pulumi["with"]["stack-name"], env)
    for name, proc in results:
        assert "No module named" not in proc.stderr and ": not found" not in proc.stderr, f"{name}: {proc.stderr}"
        if name.endswith("-wait"):  # the health gate ran (its own one line): the ASGs exist only after a real up
            assert proc.returncode == 1 and proc.stderr.startswith("health gate failed: "), proc.stderr
        elif name.endswith("-bluegreen-deploy"):  # it ran, and stopped in one line: its table and slots come
            lines = proc.stderr.strip().splitlines()  # with a real up
            assert proc.returncode == 1 and len(lines) == 1 and "rollout failed: " in lines[0], proc.stderr
        else:
            assert proc.returncode == 0, f"{name}: {proc.stderr}"
    ran = dict(results)
    assert set(baked) < set(ran) and any(n.endswith("-refresh") for n in ran)
    for name, ami in baked.items():
        result = json.loads(ran[name].stdout.strip().splitlines()[-1])
        assert result["ami_id"] == ami and result["cached"] is True


def test_deploy_installs_pinned_packer_and_its_plugin_and_checks_the_lock_before_pulumi_up():
    from image_builds.packer_builder import AMAZON_PLUGIN, AMAZON_PLUGIN_VERSION, SSH_MIN_VERSION

    wf = load("deploy.yml")
    version = tuple(int(x) for x in wf["env"]["PACKER_VERSION"].split("."))
    assert version >= SSH_MIN_VERSION and wf["env"]["AMAZON_PLUGIN_VERSION"] == AMAZON_PLUGIN_VERSION
    for stack, job in wf["jobs"].items():
        names = [s.get("uses", "").split("@")[0] or s.get("name", "") for s in steps(job)]
        [setup] = uses(job, "hashicorp/setup-packer@")
        assert setup["with"]["version"] == "${{ env.PACKER_VERSION }}"
        plugin = step(job, "amazon plugin")["run"]
        assert f"packer plugins install {AMAZON_PLUGIN} \"$AMAZON_PLUGIN_VERSION\"" in plugin
        check = step(job, "fleet lock --check")["run"]
        assert check == f".venv/bin/python -m fleet lock --check --stack {stack}"
        order = [names.index(n) for n in ("hashicorp/setup-packer", "Packer's amazon plugin", "fleet lock --check",
                                          "pulumi/actions")]
        assert order == sorted(order), names  # packer before the bake, the lock check before pulumi up
        assert names.index("aws-actions/configure-aws-credentials") < names.index("fleet lock --check")
        assert "command -v packer" not in runs(job)  # Debian's packer (1.6.6) is for the tests, not deploys
        [logs] = uses(job, "actions/upload-artifact@")
        assert logs["if"] == "always()" and logs["with"]["path"] == ".fleet/logs/"
