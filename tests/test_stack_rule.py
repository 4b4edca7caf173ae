"""One stack rule for validate, show, deploy and plan (fleet.spec.project.pick_stack): `--stack S`, else
the default stack; the default stack without its Pulumi.<stack>.yaml runs on the stack defaults, named
or not; any other stack needs its file (one line with "did you mean"). Each command's first stderr
line says which it is, and they all say the same."""

from __future__ import annotations

import pytest

from fleet.cli import main
from fleet.spec.project import DEFAULT_STACK

NODES = "web:\n  instance_type: t3.micro\n  source_ami: ami-12c6146b\n  image: {communicator: none}\n" \
        "  autoscale: {node_min: 1, node_max: 2}\n"
COMMANDS = {
    "validate": ["validate"],
    "show": ["show", "web"],
    "deploy": ["deploy", "web", "--endpoint-url", "http://127.0.0.1:9"],
    "plan": ["plan", "--json"],
}


@pytest.fixture
def folder(tmp_path, monkeypatch):
    (tmp_path / "nodes.yaml").write_text(NODES)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setattr("fleet.ops.aws.NO_ANSWER_BACKOFF", (0.01,) * 4)
    return tmp_path


def _first_line(argv, capsys) -> tuple[int, str, list[str]]:
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    return code, lines[0], lines


@pytest.mark.parametrize("named", [False, True], ids=["default", "--stack staging"])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_folder_with_only_a_nodes_file_is_the_default_stack_on_its_defaults(folder, capsys, command, named):
    argv = COMMANDS[command] + (["--stack", DEFAULT_STACK] if named else [])
    code, first, lines = _first_line(argv, capsys)
    assert first == (f"fleet: project {folder}, nodes nodes.yaml, stack {DEFAULT_STACK} "
                     f"(no Pulumi.{DEFAULT_STACK}.yaml: stack defaults)")
    if command == "deploy":  # it got as far as AWS: the stack was accepted
        assert code == 1 and "no answer from http://127.0.0.1:9" in lines[-1], lines
    else:
        assert code == 0, lines


@pytest.mark.parametrize("command", COMMANDS)
def test_another_stack_without_its_file_is_one_line_everywhere(folder, capsys, command):
    (folder / "Pulumi.prod.yaml").write_text("config:\n  aws:region: us-east-1\n")
    code, first, lines = _first_line(COMMANDS[command] + ["--stack", "prdo"], capsys)
    assert code == 2 and first.startswith("fleet: project ") and len(lines) == 2, lines
    assert lines[-1] == "Pulumi.prdo.yaml: no stack file for stack 'prdo' (did you mean 'prod'?); stacks here: prod"


@pytest.mark.parametrize("command", COMMANDS)
def test_the_stack_file_is_used_when_there(folder, capsys, command):
    (folder / f"Pulumi.{DEFAULT_STACK}.yaml").write_text("config:\n  aws:region: us-east-1\n")
    code, first, lines = _first_line(COMMANDS[command], capsys)
    assert first.endswith(f"stack {DEFAULT_STACK} (Pulumi.{DEFAULT_STACK}.yaml)"), first
    assert code == (1 if command == "deploy" else 0), lines
