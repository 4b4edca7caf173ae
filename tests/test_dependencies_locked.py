"""Reproducible installs: hash-locked requirements used by make and the workflows, and the
Pulumi SDK pinned to the minor the offline engine is tested with (it uses SDK internals), with one
clear line for any other SDK."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from fleet.cli import main
from fleet.plan import sdk

ROOT = Path(__file__).resolve().parent.parent


def locked(path: Path) -> dict[str, tuple[str, list[str]]]:
    """{name: (version, hashes)} of a pip-compile --generate-hashes file."""
    text = path.read_text()
    out = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        m = re.match(r"([A-Za-z0-9_.\-]+)==([^\s\\;]+)", block)
        if m:
            out[m.group(1).lower().replace("_", "-")] = (m.group(2), re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return out


@pytest.mark.parametrize("name", ["requirements.lock", "requirements-dev.lock"])
def test_every_locked_requirement_is_pinned_with_hashes(name):
    entries = locked(ROOT / name)
    assert len(entries) > 20
    for pkg, (version, hashes) in entries.items():
        assert hashes, f"{name}: {pkg}=={version} has no --hash"
    assert "-e " not in (ROOT / name).read_text() and "--find-links" not in (ROOT / name).read_text()


def requirement_names(path: Path) -> list[str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return [re.match(r"[A-Za-z0-9_.\-]+", line).group(0).lower() for line in lines if line and line[0] != "-"]


def test_locks_cover_the_requirements_and_agree():
    runtime, dev = locked(ROOT / "requirements.lock"), locked(ROOT / "requirements-dev.lock")
    for req in ("requirements.txt", "policy/requirements.txt"):
        for name in requirement_names(ROOT / req):
            assert name in runtime and name in dev, f"{req}: {name} is not locked"
    for pkg, (version, _) in runtime.items():
        assert dev[pkg][0] == version, f"{pkg}: the dev lock has {dev[pkg][0]}, the runtime lock {version}"
    for name in requirement_names(ROOT / "requirements-dev.txt"):
        assert name in dev, f"requirements-dev.txt: {name} is not locked"


def test_the_sdk_is_pinned_to_the_tested_minor():
    (minor,) = sdk.TESTED_MINORS
    for req in ("requirements.txt", "policy/requirements.txt"):
        assert re.search(rf"^pulumi~={re.escape(minor)}\.0\b", (ROOT / req).read_text(), re.M), req
    assert locked(ROOT / "requirements.lock")["pulumi"][0].startswith(minor + ".")
    assert sdk.check_sdk() == metadata.version("pulumi")  # the SDK these tests run with is the tested one


def test_make_and_the_workflows_install_from_the_locks():
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r requirements.lock" in makefile
    assert "--require-hashes -r requirements-dev.lock" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    for wf in ("deploy.yml", "pr.yml"):
        data = yaml.safe_load((ROOT / ".github" / "workflows" / wf).read_text())
        for job in data["jobs"].values():
            for step in job.get("steps", []):
                run = step.get("run", "")
                for line in run.splitlines():
                    if ".venv/bin/pip install" in line and "RUNNER_TEMP/base" not in line:
                        assert "--require-hashes -r requirements.lock" in line or "--no-deps -e ." in line, line


@pytest.mark.parametrize("version", ["3.150.0", "3.999.1", "4.0.0"])
def test_an_unsupported_sdk_is_one_line(version):
    with pytest.raises(sdk.UnsupportedSdk) as exc:
        sdk.check_sdk(version)
    message = str(exc.value)
    assert "\n" not in message and version in message and "requirements.lock" in message


def test_fleet_plan_with_another_sdk_exits_with_one_line(monkeypatch, capsys):
    monkeypatch.setattr(sdk, "installed_version", lambda: "3.999.1")
    assert main(["plan", "--stack", "staging"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.strip() == err.strip().splitlines()[0]
    assert err.startswith("fleet plan: Pulumi SDK 3.999.1 is not supported") and "Traceback" not in err
    monkeypatch.setattr(sdk, "installed_version", lambda: None)
    assert main(["plan", "--stack", "staging"]) == 1
    assert "not installed" in capsys.readouterr().err
