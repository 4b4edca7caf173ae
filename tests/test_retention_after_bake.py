"""A retention failure after a bake is a warning both the CLI and `pulumi up` show: the build made its
image, so it succeeds (exit 0, the result line), says `warning: ...` on stderr, and carries the warning
in its result line, which the BakedImage component hands to pulumi.log.warn. Retention itself has one
entry point, the protected one (`fleet image clean`), and fleet ships no test fixtures."""

from __future__ import annotations

import json

import pytest

import image_builds.build as build
import image_builds.retention as retention
from components.baked_image import parse_build_result, report_build_warnings
from fleet.cli import main

NODES = "__base__: {instance_type: t3.micro, source_ami: ami-12c6146b}\nweb: {image: {communicator: none}}\n"
RESULT = {"ami_id": "ami-0123", "image_hash": "h" * 64, "cached": False, "root_device_name": "/dev/xvda"}


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "nodes.yaml").write_text(NODES)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(build, "build", lambda *a, **k: dict(RESULT))  # a bake that made its image
    return tmp_path


@pytest.mark.parametrize("failure", ["raises", "partial"])
def test_retention_failure_after_a_bake_is_a_warning(project, capsys, monkeypatch, failure):
    def clean_run(*a, **k):
        if failure == "raises":
            raise RuntimeError("DescribeLaunchTemplates went away")
        return 1  # some AMI could not be removed; clean printed which

    monkeypatch.setattr(build.clean, "run", clean_run)
    assert main(["image", "build", "web"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out.strip().splitlines()[-1])
    [warning] = result["warnings"]
    assert "fleet image clean web" in warning
    if failure == "raises":
        assert "DescribeLaunchTemplates went away" in warning
    assert f"warning: fleet image build web: {warning}" in err.splitlines()
    assert {k: v for k, v in result.items() if k != "warnings"} == RESULT


def test_a_clean_retention_adds_no_warning(project, capsys, monkeypatch):
    monkeypatch.setattr(build.clean, "run", lambda *a, **k: 0)
    assert main(["image", "build", "web"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out.strip().splitlines()[-1]) == RESULT and "warning" not in err


def test_the_component_warns_with_what_the_build_said():
    said = []
    stdout = "log line\n" + json.dumps({**RESULT, "warnings": ["retention after the bake ..."]}) + "\n"
    result = report_build_warnings(parse_build_result(stdout), said.append)
    assert said == ["image build: retention after the bake ..."] and result["ami_id"] == "ami-0123"
    report_build_warnings(parse_build_result(json.dumps(RESULT)), said.append)
    assert len(said) == 1


def test_retention_has_only_the_protected_entry_point():
    """`fleet image clean` (image_builds.clean.run) adds the protections (current image hashes, stack
    pins); the unprotected shortcuts that only tests called are gone."""
    assert not hasattr(retention, "clean") and not hasattr(retention, "delete_all")


def test_aws_example_events_live_in_the_tests():
    import fleet.ops.events as events

    assert not [name for name in vars(events) if name.lower().startswith("sample")]
