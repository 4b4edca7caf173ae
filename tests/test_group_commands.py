"""Every command that takes a group answers a near miss with "did you mean", and `fleet deploy` of a
group that does not autoscale says so: one line naming the file, the group and the key, exit 2,
before any AWS call. The commands are found by walking the CLI's own parser, so a command added later
is covered without a change here."""

from __future__ import annotations

import argparse

import pytest

from fleet.cli import build_parser, main

NODES = """\
__base__: {instance_type: t3.micro, source_ami: ami-12c6146b, image: {builder: packer, communicator: none}}
web:
  autoscale: {node_min: 1, node_max: 2}
cron: {}
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "Pulumi.yaml").write_text("name: groups\nruntime: python\n")
    (tmp_path / "Pulumi.staging.yaml").write_text("config:\n  aws:region: us-east-1\n")
    (tmp_path / "nodes.yaml").write_text(NODES)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _group_commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every (sub)command path whose parser takes a GROUP positional or a --group option."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _group_commands(sub, (*path, name))
        elif action.dest == "group" and path:
            found.append((*path, "--group") if action.option_strings else path)
    return found


COMMANDS = _group_commands(build_parser())


def test_the_walk_finds_the_group_commands():
    assert {("show",), ("role",), ("packer",), ("image", "build"), ("image", "clean"), ("image", "delete"),
            ("deploy",), ("plan", "--group")} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_near_miss_group_gets_did_you_mean(project, aws, capsys, command):
    assert main(["--stack", "staging", *command, "webb"]) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in err and out == ""
    last = err.strip().splitlines()[-1]
    assert "group 'webb'" in last and "(did you mean 'web'?)" in last, last


def test_deploy_of_a_group_that_does_not_autoscale_says_so(project, capsys):
    assert main(["deploy", "cron", "--stack", "staging", "--endpoint-url", "http://127.0.0.1:9"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    last = err.strip().splitlines()[-1]
    assert last.startswith("nodes.yaml:") and "group 'cron': key 'autoscale'" in last, last
    assert "does not autoscale" in last and "pulumi up" in last, last
    assert "127.0.0.1:9" not in err  # refused before any AWS call
