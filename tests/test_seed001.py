"""Seed 001 verbatim: its nodes file, translated to YAML key for key (`type: amazon-ebs` and `region`
included, tests/fixtures/seed001.yaml), validates, shows, renders the seed's role, and plans; and
`type`/`region` are checked: one clear line each."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fleet.cli import main

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "tests" / "fixtures" / "seed001.yaml"


@pytest.fixture
def seed_project(tmp_path):
    shutil.copy(SEED, tmp_path / "nodes.yaml")
    shutil.copytree(ROOT / "cookbooks", tmp_path / "cookbooks")  # the seed's run lists name them
    (tmp_path / "Pulumi.staging.yaml").write_text("config:\n  aws:region: us-east-1\n")
    return tmp_path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_fixture_is_the_seeds_file_key_for_key():
    import yaml

    data = yaml.safe_load(SEED.read_text())
    assert list(data) == ["__base__", "12_04-bee", "12_04-www"]
    assert list(data["__base__"]) == ["autoscale", "type", "region", "instance_type", "source_ami",
                                      "security_groups", "default_attributes", "run_list", "post_run_list"]
    assert (data["__base__"]["type"], data["__base__"]["region"]) == ("amazon-ebs", "us-east-1")
    assert list(data["12_04-bee"]) == ["description", "autoscale", "instance_type", "security_groups",
                                       "default_attributes", "run_list"]
    assert data["12_04-bee"]["autoscale"] == {"timeout": 120, "node_min": 2, "node_max": 2}
    assert list(data["12_04-www"]) == ["description", "instance_type", "security_groups", "run_list"]


def test_seed_validates_shows_renders_and_plans(seed_project, capsys):
    project = ["--project", str(seed_project)]
    code, out, err = run(capsys, *project, "validate", "--stack", "staging")
    assert code == 0, err
    assert "2 groups OK for stack staging: 12_04-bee, 12_04-www" in out
    code, out, err = run(capsys, *project, "show", "12_04-bee", "--stack", "staging")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["image"]["builder"] == "packer" and shown["region"] == "us-east-1" and "type" not in shown
    code, out, err = run(capsys, *project, "role", "12_04-bee")
    assert code == 0, err
    assert json.loads(out)["run_list"][-2:] == ["recipe[seatgeek::notify-services]", "recipe[sudo]"]
    code, out, err = run(capsys, *project, "packer", "12_04-bee")
    assert code == 0, err
    builder = json.loads(out)["builders"][0]
    assert (builder["type"], builder["region"], builder["source_ami"]) == ("amazon-ebs", "us-east-1", "ami-1ebb2077")
    code, out, err = run(capsys, *project, "plan", "--stack", "staging")
    assert code == 0, err + out
    assert "group 12_04-bee" in out and "group 12_04-www" in out
    assert "guardrails: no violations" in out


def _seed_with(tmp_path: Path, old: str, new: str) -> Path:
    text = SEED.read_text()
    assert old in text
    (tmp_path / "nodes.yaml").write_text(text.replace(old, new, 1))
    shutil.copytree(ROOT / "cookbooks", tmp_path / "cookbooks")
    (tmp_path / "Pulumi.s.yaml").write_text("config:\n  aws:region: eu-west-1\n")
    return tmp_path


@pytest.mark.parametrize("old,new,stack,expect", [
    ("  type: amazon-ebs", "  type: docker", None,
     "nodes.yaml:5: group '__base__': key 'type': 'docker' is not accepted: the only type is amazon-ebs"),
    ("  security_groups: [bee]\n", "  security_groups: [bee]\n  image: {builder: raw, path: disk.img}\n", None,
     "group '12_04-bee': key 'type': type amazon-ebs means image.builder packer, but image.builder is raw"),
    ("  region: us-east-1", "  region: us-east-1", "s",
     "group '12_04-bee': key 'region': region us-east-1 is not the stack's aws:region eu-west-1"),
    ("  region: us-east-1", "  region: mars-1", None, "key 'region': 'mars-1' is not valid: expected an AWS region"),
])
def test_type_and_region_are_checked(tmp_path, capsys, old, new, stack, expect):
    project = _seed_with(tmp_path, old, new)
    argv = ["--project", str(project), "validate"] + (["--stack", stack] if stack else [])
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    problems = err.strip().splitlines()[1:]
    assert any(expect in line for line in problems), problems
