"""`fleet <command> --help` ends with one example of that command, and the example is a command line
the parser accepts. Every command the parser has is covered (a command added later needs its example)."""

from __future__ import annotations

import shlex

import pytest

from fleet.cli import _leaf_commands, build_parser

COMMANDS = [path for path, _ in _leaf_commands(build_parser())]


def test_the_walk_finds_every_command():
    assert {"validate", "show", "plan", "image build", "image clean", "deploy", "lock"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_one_example_the_parser_accepts(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([*command.split(), "--help"])
    assert done.value.code == 0
    help_text = capsys.readouterr().out
    examples = [line for line in help_text.splitlines() if line.startswith("example: ")]
    assert len(examples) == 1, help_text
    words = shlex.split(examples[0][len("example: "):].split(" > ")[0])  # without a shell redirection
    assert words[0] == "fleet" and words[1:1 + len(command.split())] == command.split(), examples[0]
    args = build_parser().parse_args(words[1:])  # exits 2 on a line the parser refuses
    assert args.func is not None
