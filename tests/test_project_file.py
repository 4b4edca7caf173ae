"""Pulumi.yaml as the Pulumi CLI reads it: valid YAML, the project's config keys declared with types,
descriptions and defaults (a declared key without a default must be set by every stack), and those
defaults change nothing when the program reads them through pulumi.Config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fleet.spec.load import load_fleet
from fleet.spec.stack import FLEET_KEYS

ROOT = Path(__file__).resolve().parent.parent
PROJECT = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
TYPES = {str: "string", bool: "boolean"}


def test_project_runtime():
    assert PROJECT["name"] == "fleet"
    assert PROJECT["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}}


def test_every_config_key_the_program_reads_is_declared_with_a_default():
    config = PROJECT["config"]
    assert set(config) == set(FLEET_KEYS)
    for key, (kind, _) in FLEET_KEYS.items():
        decl = config[key]
        assert decl["description"]
        if kind is dict:
            assert "type" not in decl and decl["value"] == {}
        else:
            assert decl["type"] == TYPES[kind] and "default" in decl
            assert isinstance(decl["default"], kind)


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_project_defaults_change_nothing(stack):
    """pulumi.Config returns the project defaults for keys a stack leaves out: same fleet."""
    from fleet.plan.engine import stack_config

    values = {f"fleet:{k}": d.get("default", d.get("value")) for k, d in PROJECT["config"].items()}
    values.update(stack_config(stack))
    with_defaults = load_fleet(ROOT / "nodes.yaml", stack, values)
    from_file = load_fleet(ROOT / "nodes.yaml", stack)
    assert with_defaults.groups == from_file.groups
    assert with_defaults.stack == from_file.stack.__class__(**{**from_file.stack.__dict__,
                                                               "file": with_defaults.stack.file})
