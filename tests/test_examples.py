"""The README's "Bake an image locally" walk-through, as a user runs it: examples/local against moto."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "local"


@pytest.mark.parametrize("group,builder", [("web", "packer"), ("appliance", "raw")])
def test_bake_each_builder_against_a_local_moto(aws, group, builder, tmp_path):
    env = {**os.environ, "AWS_ENDPOINT_URL": aws, "TMPDIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "fleet", "image", "build", group], cwd=EXAMPLE, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    image = boto3.client("ec2").describe_images(ImageIds=[result["ami_id"]])["Images"][0]
    tags = {t["Key"]: t["Value"] for t in image["Tags"]}
    assert tags["fleet:builder"] == builder and tags["fleet:image-hash"] == result["image_hash"]
    if builder == "raw":
        # moto echoes neither EnaSupport nor RootDeviceName; tests/test_image_raw.py checks the request
        assert image["BootMode"] == "uefi"
    again = subprocess.run([sys.executable, "-m", "fleet", "image", "build", group], cwd=EXAMPLE, env=env,
                           capture_output=True, text=True, timeout=300)
    assert json.loads(again.stdout.strip().splitlines()[-1]) == {**result, "cached": True}
