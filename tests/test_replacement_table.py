"""The replace-on-change table (fleet/plan/replacements.py) against the pinned pulumi-aws: it names the
version it was checked for, that version is the one the lock installs, every field it lists is an input
of that version's resource, and the entries found wrong by reading the provider's schema stay fixed."""

from __future__ import annotations

import importlib
import re
from importlib.metadata import version
from pathlib import Path

import pulumi._types
import pytest

from fleet.plan.replacements import PULUMI_AWS_VERSION, REPLACE_ON_CHANGES

ROOT = Path(__file__).resolve().parent.parent


def _inputs(typ: str) -> set[str]:
    """The camelCase inputs of the pinned SDK's resource for a type token (`aws:lb/targetGroup:TargetGroup`)."""
    module, name = typ.split(":")[1].split("/")[0], typ.split(":")[2]
    sdk = importlib.import_module(f"pulumi_aws.{module}_" if module == "lambda" else f"pulumi_aws.{module}")
    args = getattr(sdk, f"{name}InitArgs", None) or getattr(sdk, f"{name}Args")  # InitArgs when the name is taken
    return set(pulumi._types.input_type_py_to_pulumi_names(args).values())


def test_the_table_names_the_pinned_and_installed_version():
    pinned = re.search(r"^pulumi-aws==(\S+)", (ROOT / "requirements.lock").read_text(), re.M).group(1)
    assert PULUMI_AWS_VERSION == pinned == version("pulumi-aws")


@pytest.mark.parametrize("typ", sorted(t for t in REPLACE_ON_CHANGES if t.startswith("aws:")))
def test_every_field_is_an_input_of_the_pinned_resource(typ):
    inputs = _inputs(typ)
    assert {f.split(".")[0] for f in REPLACE_ON_CHANGES[typ].fields} <= inputs, (typ, sorted(inputs))


@pytest.mark.parametrize("typ,field,replaces", [
    ("aws:autoscaling/lifecycleHook:LifecycleHook", "autoscalingGroupName", False),
    ("aws:cloudwatch/logGroup:LogGroup", "logGroupClass", True),
    ("aws:lambda/permission:Permission", "principalOrgId", True),
    ("aws:iam/policy:Policy", "description", True),
    ("aws:ec2/natGateway:NatGateway", "privateIp", True),
])
def test_entries_checked_against_the_provider_schema(typ, field, replaces):
    assert (field in REPLACE_ON_CHANGES[typ].fields) is replaces
