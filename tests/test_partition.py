"""Hand-built ARNs use the stack's partition: `arn:aws:...` does not exist in GovCloud
(`aws-us-gov`) or China (`aws-cn`). The mock engine answers getPartition per region as AWS does."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from components.launch_template import LaunchTemplate, LaunchTemplateArgs
from tests.pulumi_mocks import group, run, run_program, stack_config

ROOT = Path(__file__).resolve().parent.parent
# Where `arn:aws:` may stay literal: the mock engine's and tests' own fixtures, sample events, and
# patterns that already accept every partition (`arn:aws[a-z-]*:`).
ALLOWED = re.compile(r"arn:aws\[a-z-\]\*:|^(tests|bench)/|^fleet/ops/events\.py:|^Pulumi\.prod\.yaml:|\.md:")


@pytest.mark.parametrize("region, partition", [("us-east-1", "aws"), ("us-gov-west-1", "aws-us-gov"),
                                               ("cn-north-1", "aws-cn")])
def test_the_ssm_policy_is_in_the_stacks_partition(region, partition):
    def program():
        lt = LaunchTemplate("web", LaunchTemplateArgs(
            group=group("web"), stack="prod", environment="prod", ami_id="ami-0123456789abcdef0",
            root_device_name="/dev/sda1", security_group_ids=["sg-00000001"]))
        return lt.id
    r = run(program, stack="prod", region=region)
    (attachment,) = r.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert attachment.inputs["policyArn"] == f"arn:{partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
    assert sum(t == "aws:index/getPartition:getPartition" for t, _ in r.calls) == 1


def test_a_govcloud_program_has_no_commercial_arn(tmp_path):
    """The whole program for a GovCloud stack: no input holds an `arn:aws:` ARN."""
    shutil.copy(ROOT / "nodes.yaml", tmp_path / "nodes.yaml")
    lock = json.loads((ROOT / "nodes.lock.json").read_text())
    lock["images"]["us-gov-west-1"] = lock["images"]["us-east-1"]  # as `fleet lock` would add for the region
    (tmp_path / "nodes.lock.json").write_text(json.dumps(lock))
    config = {**stack_config("prod"), "aws:region": "us-gov-west-1", "fleet:nodesFile": str(tmp_path / "nodes.yaml")}
    # prod's certificate is a commercial-partition ARN: a GovCloud one in its place (prod needs HTTPS)
    config["fleet:certificateArn"] = ("arn:aws-us-gov:acm:us-gov-west-1:123456789012:certificate/"
                                      "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
    r = run_program("prod", config)
    text = json.dumps([x.inputs for x in r.resources], default=str)
    assert "arn:aws-us-gov:iam::aws:policy/AmazonSSMManagedInstanceCore" in text
    assert "arn:aws:" not in text


def test_no_hand_built_commercial_arn_in_the_code():
    hits = subprocess.run(["git", "grep", "-n", "arn:aws:", "--", "*.py", "*.yml", "*.yaml", "*.json"], cwd=ROOT,
                          capture_output=True, text=True).stdout.splitlines()
    assert [h for h in hits if not ALLOWED.search(h)] == []
