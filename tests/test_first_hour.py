"""A new user's first steps in a folder of their own, against a local AWS API (the moto server): lock,
then validate and plan. The lock's AMIs exist only on that endpoint, so the default stack (which
targets AWS) refuses them in one line that says both ways out; the sandbox stack file it suggests
makes validate and plan pass."""

from __future__ import annotations

import boto3

from fleet.cli import main

NODES = """\
web:
  instance_type: t3.micro
  source_ami: {name: "base-web-*", owners: [self]}
  image: {communicator: none}
  autoscale: {node_min: 1, node_max: 3}
"""


def test_lock_against_a_local_endpoint_then_validate_and_plan(aws, tmp_path, monkeypatch, capsys):
    ec2 = boto3.client("ec2")
    snap = ec2.create_snapshot(VolumeId=ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"])
    ec2.register_image(Name="base-web-1", RootDeviceName="/dev/sda1", BlockDeviceMappings=[
        {"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": snap["SnapshotId"]}}])
    (tmp_path / "nodes.yaml").write_text(NODES)
    monkeypatch.chdir(tmp_path)
    assert main(["lock", "--endpoint-url", aws]) == 0
    capsys.readouterr()

    for command in (["validate"], ["plan"]):
        assert main(command) == 2
        out, err = capsys.readouterr()
        assert out == "" and "Traceback" not in err
        [line] = err.strip().splitlines()[1:]
        assert "fleet lock --update" in line and "fleet:awsEndpoint: URL` in Pulumi.staging.yaml" in line, line

    (tmp_path / "Pulumi.staging.yaml").write_text(f"config:\n  fleet:awsEndpoint: {aws}\n")
    assert main(["validate"]) == 0, capsys.readouterr().err
    assert main(["plan"]) == 0, capsys.readouterr().err
