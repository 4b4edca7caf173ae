"""The published JSON Schema and `fleet validate` agree: on the sample, on every bad input,
and on the defaults they document."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from fleet.spec import model
from fleet.spec.schema_check import SCHEMA_PATH, iter_defaults, schema
from tests.test_bad_inputs import CASES

ROOT = Path(__file__).resolve().parent.parent


def schema_errors(text: str) -> list[str]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return [f"yaml: {exc}"]
    return [e.message for e in Draft202012Validator(schema()).iter_errors(data)]


def test_schema_is_a_valid_draft_2020_12_schema():
    Draft202012Validator.check_schema(schema())


def test_nodes_yaml_points_editors_at_the_schema():
    first = (ROOT / "nodes.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=./schema/nodes.schema.json"
    assert (ROOT / "schema" / "nodes.schema.json") == SCHEMA_PATH


@pytest.mark.parametrize("sample", ["nodes.yaml", "tests/fixtures/seed001.yaml"])
def test_samples_pass_the_schema(sample):
    assert schema_errors((ROOT / sample).read_text()) == []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_schema_agrees_with_the_validator_on_bad_inputs(case):
    errors = schema_errors(case.nodes)
    if case.schema_rejects:
        assert errors, f"schema accepts {case.id}, which fleet validate rejects"
    else:
        # Cross-field rules, merged values, duplicate keys and instance types are fleet validate's alone.
        assert errors == [], f"schema rejects {case.id}; mark it schema_rejects=True: {errors}"


def _model_default(path: tuple[str, ...]):
    """Default of a dotted field path in the dataclass model (None if the model has no default)."""
    classes = {"autoscale": model.Autoscale, "spot": model.Spot, "on_demand": None, "image": model.Image,
               "health_check": model.HealthCheck, "http": model.Http, "scaling": model.Scaling,
               "burst": model.Burst, "scale_in": model.ScaleIn, "volume": model.Volume,
               "rollout": model.Rollout}
    cls = model.Group
    for i, part in enumerate(path):
        if part == "on_demand":
            cls_next = model.OnDemand if path[i - 1] == "autoscale" else model.OnDemandScaling
        else:
            cls_next = classes.get(part)
        if i == len(path) - 1:
            field = {f.name: f for f in dataclasses.fields(cls)}[part]
            if field.default is not dataclasses.MISSING:
                return field.default
            return None
        cls = cls_next
    raise AssertionError(path)


def test_schema_defaults_match_the_model():
    defaults = list(iter_defaults())
    assert len(defaults) >= 25
    for path, default in defaults:
        assert _model_default(path) == default, path


def test_an_off_the_shelf_checker_accepts_the_sample_and_rejects_a_typo(tmp_path):
    exe = str(Path(sys.executable).parent / "check-jsonschema")
    ok = subprocess.run([exe, "--schemafile", str(SCHEMA_PATH), str(ROOT / "nodes.yaml")], capture_output=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "nodes.yaml"
    bad.write_text("web: {instance_typ: m5.large}\n")
    rejected = subprocess.run([exe, "--schemafile", str(SCHEMA_PATH), str(bad)], capture_output=True)
    assert rejected.returncode == 1
