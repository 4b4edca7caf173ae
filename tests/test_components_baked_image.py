"""BakedImage under mocks: pin -> no Command; `builder: ami` -> the id, or one getAmi per distinct
filter for the whole run; otherwise a local Command re-run only by the image hash, whose last
stdout line gives the AMI id."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from components.baked_image import BakedImage, BakedImageArgs, parse_build_output
from fleet.spec.model import LockedImage
from tests.pulumi_mocks import MOCK_ROOT_DEVICE, group, run

PROJECT = Path(__file__).resolve().parent.parent  # the real project: its Pulumi.yaml names the venv

COMMAND = "command:local:Command"
FILTER = {"name": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*", "owners": ["099720109477"]}
HASH = "ab" * 32


def _image(g, pin=None, name=None):
    return BakedImage(name or g.name, BakedImageArgs(group=g, image_hash=HASH, stack="staging", region="us-east-1",
                                                    pin=pin, project_dir=PROJECT))


def _outputs(img):
    return [img.ami_id, img.root_device_name]


def _id_lookups(r):
    return [args["filters"] for token, args in r.calls if token == "aws:ec2/getAmi:getAmi"]


def test_pin_skips_the_build_and_reads_its_root_device():
    r = run(lambda: _outputs(_image(group("web"), pin="ami-0fedcba9876543210")))
    assert not r.of_type(COMMAND)
    assert _id_lookups(r) == [[{"name": "image-id", "values": ["ami-0fedcba9876543210"]}]]
    assert r.value == ["ami-0fedcba9876543210", "/dev/sda1"]  # the mocked lookup's answer


def test_packer_group_runs_the_build_command_triggered_by_the_image_hash():
    r = run(lambda: _outputs(_image(group("12_04-www"))))
    (cmd,) = r.of_type(COMMAND)
    assert cmd.inputs["create"] == (".venv/bin/python -m image_builds.build 12_04-www --stack staging "
                                    f"--region us-east-1 --expect-hash {HASH}")
    assert cmd.inputs["triggers"] == [HASH]
    assert "dir" not in cmd.inputs and "environment" not in cmd.inputs  # nothing names the checkout
    assert "update" not in cmd.inputs and "delete" not in cmd.inputs
    assert cmd.parent_type == "fleet:baked_image:BakedImage" and cmd.name == "12-04-www-image"
    last = json.loads(cmd.outputs["stdout"].strip().splitlines()[-1])
    assert r.value == [last["ami_id"], last["root_device_name"]] and last["root_device_name"] == MOCK_ROOT_DEVICE


def test_nothing_secret_reaches_the_command():
    r = run(lambda: _outputs(_image(group("web"))))
    (cmd,) = r.of_type(COMMAND)
    text = json.dumps(cmd.inputs).lower()
    for word in ("secret", "password", "token", "aws_access_key", "aws_secret"):
        assert word not in text


def test_raw_images_take_the_root_device_from_the_build_result():
    g = group("disk", image={"builder": "raw", "path": "images/disk.raw"}, source_ami=None)
    r = run(lambda: _outputs(_image(g)))
    assert len(r.of_type(COMMAND)) == 1 and not r.calls
    assert r.value[1] == MOCK_ROOT_DEVICE


def test_ami_builder_with_an_id_uses_it_as_is():
    g = group("cron", image={"builder": "ami"}, source_ami="ami-0aaaabbbbccccdddd")
    r = run(lambda: _outputs(_image(g)))
    assert not r.of_type(COMMAND)
    assert _id_lookups(r) == [[{"name": "image-id", "values": ["ami-0aaaabbbbccccdddd"]}]]
    assert r.value == ["ami-0aaaabbbbccccdddd", "/dev/sda1"]


def test_ami_builder_with_a_locked_filter_uses_the_lock_and_looks_nothing_up():
    """The lock's id and root device (Debian's /dev/xvda here), never a "most recent" lookup."""
    locked = LockedImage("ami-0d1e2b3a4c5f60718", "debian-12-amd64-20250101-1980", "2025-01-01T00:00:00.000Z",
                         "/dev/xvda")
    g = group("cron", image={"builder": "ami"}, source_ami={"name": "debian-12-amd64-*", "owners": ["136693071363"]})
    g = replace(g, source_ami=replace(g.source_ami, locked=locked))
    r = run(lambda: _outputs(_image(g)))
    assert not r.of_type(COMMAND) and not r.calls
    assert r.value == ["ami-0d1e2b3a4c5f60718", "/dev/xvda"]


def test_an_unlocked_filter_is_refused():
    g = group("cron", image={"builder": "ami"}, source_ami=FILTER)
    r = run(lambda: _outputs(_image(g)), raise_errors=False)
    assert "run `fleet lock`" in str(r.error)


def test_parse_build_output_reads_the_last_json_line():
    out = ('Build started\n{"progress": 1}\n'
           '{"ami_id": "ami-0123", "image_hash": "x", "cached": true, "root_device_name": "/dev/xvda"}\n\n')
    assert parse_build_output(out) == "ami-0123"
    with pytest.raises(ValueError, match="no root_device_name"):
        parse_build_output('{"ami_id": "ami-0123", "image_hash": "x", "cached": true}')
    with pytest.raises(ValueError, match="printed nothing"):
        parse_build_output("  \n")


def test_program_triggers_change_exactly_when_an_image_input_changes():
    """Across two whole-program runs: a Chef attribute change re-triggers that group's build only; a
    scaling change (not an image input) re-triggers nothing; staging and prod share every trigger."""
    import copy

    from fleet.plan.engine import stack_config
    from tests.pulumi_mocks import run_program

    def triggers(r):
        return {x.name: x.inputs["triggers"] for x in r.of_type(COMMAND) if x.parent_type.endswith("BakedImage")}

    base_cfg = stack_config("staging")
    base = triggers(run_program("staging", base_cfg))
    assert len(base) == 3  # the ami-builder group has no build Command

    attrs = copy.deepcopy(base_cfg)
    attrs["fleet:groups"]["api"]["default_attributes"] = {"feature": "on"}
    changed = triggers(run_program("staging", attrs))
    assert {n for n in base if base[n] != changed[n]} == {"api-image"}

    scaling = copy.deepcopy(base_cfg)
    scaling["fleet:groups"]["api"]["autoscale"] = {"node_min": 2, "node_max": 9}
    assert triggers(run_program("staging", scaling)) == base

    assert triggers(run_program("prod")) == base


def test_a_stacks_own_nodes_file_reaches_the_build():
    def program():
        return BakedImage("web", BakedImageArgs(group=group("web"), image_hash=HASH, stack="staging",
                                               region="us-east-1", pin=None, project_dir=PROJECT,
                                               nodes_file="fleets/edge.yaml")).ami_id
    (cmd,) = run(program).of_type(COMMAND)
    assert cmd.inputs["create"] == (".venv/bin/python -m image_builds.build web --stack staging --region us-east-1 "
                                    f"--expect-hash {HASH} --nodes fleets/edge.yaml")
