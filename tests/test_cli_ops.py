"""The CLI's AWS commands end to end against the moto server: image clean/delete, deploy."""

from __future__ import annotations

from pathlib import Path

import boto3

from fleet.cli import main

ROOT = Path(__file__).resolve().parent.parent
NODES = str(ROOT / "nodes.yaml")


def make_ami(ec2, group: str, name: str) -> str:
    vol = ec2.create_volume(Size=8, AvailabilityZone="us-east-1a")["VolumeId"]
    snap = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    ami = ec2.register_image(Name=name, RootDeviceName="/dev/xvda",
                             BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snap}}])["ImageId"]
    ec2.create_tags(Resources=[ami, snap], Tags=[{"Key": "fleet:group", "Value": group}])
    return ami


def own(ec2) -> set[str]:
    return {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]}


def test_image_clean_dry_run_then_for_real(aws, capsys):
    ec2 = boto3.client("ec2")
    amis = [make_ami(ec2, "12_04-bee", f"fleet-12-04-bee-{i:02d}") for i in range(4)]
    other = make_ami(ec2, "api", "fleet-api-00")
    assert main(["--nodes", NODES, "image", "clean", "12_04-bee", "--keep", "2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("would remove") == 2 and amis[0] in out and amis[1] in out
    assert own(ec2) == {*amis, other}

    # moto gives each AMI a snapshot of its own (it ignores the mapping's): read them from the AMIs
    snaps = {i["ImageId"]: [m["Ebs"]["SnapshotId"] for m in i["BlockDeviceMappings"] if "Ebs" in m]
             for i in ec2.describe_images(ImageIds=amis)["Images"]}
    assert main(["--nodes", NODES, "image", "clean", "12_04-bee", "-n", "2"]) == 0
    assert capsys.readouterr().out.count("removed ami-") == 2
    assert own(ec2) == {amis[2], amis[3], other}
    left = {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    assert not left & {*snaps[amis[0]], *snaps[amis[1]]}  # the removed AMIs' snapshots went with them
    assert {*snaps[amis[2]], *snaps[amis[3]]} <= left

    assert main(["--nodes", NODES, "image", "delete", "12_04-bee"]) == 0
    assert own(ec2) == {other}


def test_image_clean_keeps_image_keep_by_default(aws, capsys):
    """No --keep: the group's image.keep (10 in nodes.yaml); the summary says how many go and stay."""
    ec2 = boto3.client("ec2")
    amis = [make_ami(ec2, "12_04-bee", f"fleet-12-04-bee-{i:02d}") for i in range(12)]
    assert main(["--nodes", NODES, "image", "clean", "12_04-bee", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert out.count("would remove") == 2 and amis[0] in out and amis[1] in out
    assert err.strip().splitlines()[-1].startswith("12_04-bee: would remove 2 AMIs, keep 10;")


def test_deploy_without_asgs_fails_with_one_line(aws, capsys):
    code = main(["--nodes", NODES, "deploy", "12_04-www", "--stack", "staging", "--endpoint-url", aws])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1] == ("fleet deploy 12_04-www: no Auto Scaling groups tagged fleet:group=12_04-www "
                       "fleet:stack=staging (not deployed yet? `pulumi up` creates them)")
