"""`fleet iam deployer`: the deploy role's policy covers what the program registers and invokes (the
plan of both stacks under mocks) and every AWS call the deploy paths make (recorded by the autouse
fixture in tests/aws_calls.py in every test; here a few deploy paths run in-process on moto)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import pytest

from fleet.cli import main
from fleet.plan.engine import run_program
from fleet.render import deployer_policy as dp
from fleet.spec.load import load_fleet
from image_builds.build import build

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def programs():
    return [run_program(stack) for stack in ("staging", "prod")]


def test_every_resource_type_and_invoke_of_the_program_has_a_row(programs):
    types = {r.type for run in programs for r in run.resources if not r.type.startswith("fleet:")}
    invokes = {token for run in programs for token, _ in run.calls}
    assert types - set(dp.RESOURCES) == set(), "add a row to RESOURCES in fleet/render/deployer_policy.py"
    assert invokes - set(dp.INVOKES) == set(), "add a row to INVOKES in fleet/render/deployer_policy.py"
    document = dp.policy()
    for row in (*dp.RESOURCES.values(), *dp.INVOKES.values(), *dp.CALLS.values()):
        assert all(dp.allows(document, action) for action in row)


def test_the_calls_the_commands_and_lambda_helpers_need_are_allowed():
    document = dp.policy()
    for action in ("autoscaling:DescribeLifecycleHooks", "autoscaling:PutLifecycleHook",
                   "autoscaling:DeleteLifecycleHook", "autoscaling:CreateOrUpdateTags", "autoscaling:DeleteTags",
                   "autoscaling:StartInstanceRefresh", "autoscaling:RollbackInstanceRefresh",
                   "ec2:DescribeLaunchTemplates", "ec2:DescribeLaunchTemplateVersions", "s3:ListBucket",
                   "s3:DeleteObject", "elasticloadbalancing:DescribeTargetGroups",
                   "elasticloadbalancing:DescribeTargetHealth", "ebs:PutSnapshotBlock", "ec2:CreateImage",
                   "tag:GetResources", "cloudwatch:GetMetricData"):
        assert dp.allows(document, action), action
    for action in ("iam:CreateUser", "ec2:DeleteVpcPeeringConnection", "s3:PutBucketAcl", "sts:AssumeRole"):
        assert not dp.allows(document, action), action


def test_the_policy_document_is_least_privilege_and_fits_an_inline_role_policy():
    document = dp.policy()
    actions = [a for st in document["Statement"] for a in st["Action"]]
    assert len(actions) == len(set(actions))
    assert not [a for a in actions if a == "*" or a.endswith(":*")], "no service-wide wildcard"
    assert {a.split(":")[1] for a in actions if "*" in a} <= {"Describe*", "GetBucket*"}  # metadata reads only
    conditioned = {st["Action"][0]: st["Condition"] for st in document["Statement"] if "Condition" in st}
    assert conditioned["iam:PassRole"]["StringEquals"]["iam:PassedToService"] == list(dp.PASS_ROLE_SERVICES)
    assert set(conditioned) == {"iam:PassRole", "iam:CreateServiceLinkedRole"}
    assert len(json.dumps(document, separators=(",", ":"))) <= 10240  # IAM's inline role policy limit


def test_cli_prints_the_policy(capsys):
    assert main(["iam", "deployer"]) == 0
    assert json.loads(capsys.readouterr().out) == dp.policy()


def test_iam_action_names():
    assert dp.iam_action("elbv2", "DescribeRules") == "elasticloadbalancing:DescribeRules"
    assert dp.iam_action("s3", "ListObjectsV2") == "s3:ListBucket" and dp.iam_action("s3", "HeadObject") == \
        "s3:GetObject"
    assert dp.iam_action("resourcegroupstaggingapi", "GetResources") == "tag:GetResources"


def test_the_recorder_names_a_call_the_policy_lacks(deploy_calls_are_allowed):
    recorder = deploy_calls_are_allowed
    recorder.calls.append(("ec2:DescribeImages", "image_builds/build.py:1"))
    without = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ebs:*"], "Resource": "*"}]}
    assert recorder.uncovered(without) == [("ec2:DescribeImages", "image_builds/build.py:1")]
    assert recorder.uncovered() == []
    recorder.calls.clear()


def test_deploy_paths_on_moto_call_only_what_the_policy_allows(aws, tmp_path, deploy_calls_are_allowed):
    """A raw bake, its retention, `fleet lock` and `fleet lock --check`, in this process: every call recorded."""
    ec2 = boto3.client("ec2")
    snap = ec2.create_snapshot(VolumeId=ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"])
    ec2.register_image(Name="base-1", RootDeviceName="/dev/xvda", BlockDeviceMappings=[
        {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snap["SnapshotId"]}}])
    (tmp_path / "disk.raw").write_bytes(os.urandom(1 << 16))
    (tmp_path / "nodes.yaml").write_text(
        "raw: {instance_type: t3.micro, image: {builder: raw, path: disk.raw}}\n"
        "base: {instance_type: t3.micro, image: {builder: ami}, source_ami: {name: 'base-*', owners: [self]}}\n")
    nodes = str(tmp_path / "nodes.yaml")
    assert main(["--nodes", nodes, "lock"]) == 0
    assert main(["--nodes", nodes, "lock", "--check"]) == 0
    group = load_fleet(tmp_path / "nodes.yaml").groups["raw"]
    assert build(group, region="us-east-1", endpoint_url=aws, project_dir=tmp_path)["cached"] is False
    assert main(["--nodes", nodes, "image", "clean", "raw", "--keep", "0"]) == 0
    recorded = {action for action, _ in deploy_calls_are_allowed.calls}
    assert {"ebs:StartSnapshot", "ebs:PutSnapshotBlock", "ebs:CompleteSnapshot", "ec2:RegisterImage",
            "ec2:DescribeImages", "ec2:CreateTags"} <= recorded, recorded
    assert deploy_calls_are_allowed.uncovered() == []
