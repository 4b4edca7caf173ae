"""Retention: pure selection, then `plan_clean` / `remove_all` (keep N, keep 0) against the moto server.

Ordering note: moto stamps CreationDate to the second, so AMIs registered in one test tie; they are
ordered by Name then (`registry.sort_key`), and the test names them web-000 ... web-011 in creation
order, like the build timestamps fleet puts at the end of AMI names. moto's RegisterImage ignores
BlockDeviceMappings and gives every AMI its own auto-created snapshot: "an AMI's snapshots" below
are the ones DescribeImages reports for it, which is what `clean` deletes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import pytest

from fleet.ops.aws import client
from image_builds import registry, retention

GROUP = "web"
ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- pure selection


def fake(i: int, *, date: str | None = None, state: str = "available") -> dict:
    return {"ImageId": f"ami-{i:03d}", "Name": f"web-{i:03d}", "State": state,
            "CreationDate": date or f"2024-05-{i + 1:02d}T00:00:00.000Z",
            "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": f"snap-{i:03d}"}}]}


def ids(images) -> list[str]:
    return [i.image_id for i in images]


def test_select_keeps_the_newest_and_everything_in_use():
    images = [fake(i) for i in range(12)]
    kept, removed = retention.select(images, 10, {"ami-000": "instance i-1"})
    assert ids(kept) == [f"ami-{i:03d}" for i in range(11, 1, -1)] + ["ami-000"]
    assert ids(removed) == ["ami-001"] and removed[0].snapshot_ids == ("snap-001",)
    assert kept[-1].in_use == "instance i-1"
    kept, removed = retention.select(images, 0, {})
    assert kept == [] and len(removed) == 12
    kept, removed = retention.select(images, 2, {"ami-011": "instance i-1", "ami-010": "pinned"})
    assert ids(kept) == ["ami-011", "ami-010", "ami-009", "ami-008"]  # in use does not count against keep
    assert retention.select(images, 20, {})[1] == []
    with pytest.raises(ValueError):
        retention.select(images, -1, {})


def test_select_never_removes_pending_images_and_orders_ties_by_name():
    same = "2024-05-01T00:00:00.000Z"
    images = [fake(2, date=same), fake(0, date=same), fake(1, date=same, state="pending")]
    kept, removed = retention.select(images, 0, {})
    assert ids(kept) == ["ami-001"] and ids(removed) == ["ami-002", "ami-000"]


def test_template_refs_and_version_resolution():
    groups = [
        {"AutoScalingGroupName": "a", "LaunchTemplate": {"LaunchTemplateId": "lt-1", "Version": "$Latest"}},
        {"AutoScalingGroupName": "b", "MixedInstancesPolicy": {"LaunchTemplate": {
            "LaunchTemplateSpecification": {"LaunchTemplateName": "two"},
            "Overrides": [{"InstanceType": "m7g.large",
                           "LaunchTemplateSpecification": {"LaunchTemplateId": "lt-3", "Version": "4"}}]}}},
        {"AutoScalingGroupName": "c", "LaunchConfigurationName": "old"},
    ]
    assert retention.template_refs(groups) == [("a", "lt-1", "$Latest"), ("b", "two", "$Default"), ("b", "lt-3", "4")]
    template = {"LatestVersionNumber": 7, "DefaultVersionNumber": 2}
    assert [retention.resolve_version(v, template) for v in ("$Latest", "$Default", "5")] == [7, 2, 5]


# ---------------------------------------------------------------- against moto


@pytest.fixture
def fleet(aws):
    """12 tagged AMIs of group web (a0 oldest ... a11 newest), one of group api, and what uses them:

    - ASG asg-mixed: MixedInstancesPolicy on untagged template shared-lt, version $Default (v1 -> a0;
      its v2 -> a7 is not used by anyone);
    - ASG asg-plain: LaunchTemplate old-lt (untagged) $Latest (v2 -> a4; v1 -> a3 unused);
    - template web-lt tagged fleet:group=web, no ASG: default v1 -> a5, latest v2 -> a6;
    - a running instance of a2, a terminated one of a1.
    """
    ec2, autoscaling = client("ec2"), client("autoscaling")
    images = []
    for i in range(12):
        ami = ec2.register_image(Name=f"web-{i:03d}", Description="test")["ImageId"]
        ec2.create_tags(Resources=[ami], Tags=[{"Key": "fleet:group", "Value": GROUP}])
        images.append(ami)
    other = ec2.register_image(Name="api-000")["ImageId"]
    ec2.create_tags(Resources=[other], Tags=[{"Key": "fleet:group", "Value": "api"}])

    def template(name, first, second, tags=None):
        kwargs = {}
        if tags:
            kwargs["TagSpecifications"] = [{"ResourceType": "launch-template", "Tags": registry.tag_list(tags)}]
        lt = ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={
            "ImageId": images[first], "InstanceType": "t3.micro"}, **kwargs)["LaunchTemplate"]
        ec2.create_launch_template_version(LaunchTemplateId=lt["LaunchTemplateId"], LaunchTemplateData={
            "ImageId": images[second], "InstanceType": "t3.micro"})
        return lt["LaunchTemplateId"]

    shared = template("shared-lt", 0, 7)
    template("old-lt", 3, 4)
    template("web-lt", 5, 6, {"fleet:group": GROUP})
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="asg-mixed", MinSize=0, MaxSize=2, DesiredCapacity=0, AvailabilityZones=["us-east-1a"],
        MixedInstancesPolicy={"LaunchTemplate": {
            "LaunchTemplateSpecification": {"LaunchTemplateId": shared, "Version": "$Default"},
            "Overrides": [{"InstanceType": "t3.micro"}, {"InstanceType": "t3a.micro"}]}})
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="asg-plain", MinSize=0, MaxSize=2, DesiredCapacity=0, AvailabilityZones=["us-east-1a"],
        LaunchTemplate={"LaunchTemplateName": "old-lt", "Version": "$Latest"})
    ec2.run_instances(ImageId=images[2], MinCount=1, MaxCount=1, InstanceType="t3.micro")
    gone = ec2.run_instances(ImageId=images[1], MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"][0]
    ec2.terminate_instances(InstanceIds=[gone["InstanceId"]])
    snapshots = {i["ImageId"]: registry.snapshot_ids(i) for i in ec2.describe_images(ImageIds=images)["Images"]}
    return ec2, autoscaling, images, other, snapshots


def existing_snapshots(ec2, wanted) -> set[str]:
    found = set()
    for page in ec2.get_paginator("describe_snapshots").paginate(OwnerIds=["self"]):
        found.update(s["SnapshotId"] for s in page["Snapshots"] if s["SnapshotId"] in wanted)
    return found


def _clean(ec2, autoscaling, group: str, keep: int, dry_run: bool = False):
    """What `fleet image clean` does below its protections (image_builds.clean.run adds the current
    image hashes and the stacks' pins): plan, then remove."""
    _, remove = retention.plan_clean(ec2, autoscaling, group, keep)
    return retention.remove_all(ec2, group, remove, dry_run=dry_run)


def test_keep_6_removes_only_the_old_unused_ami_and_its_snapshots(fleet):
    """5 AMIs are in use and do not count: keep 6 keeps the 6 newest unused ones besides them."""
    ec2, autoscaling, a, other, snapshots = fleet
    kept, removed = retention.plan_clean(ec2, autoscaling, GROUP, 6)
    assert ids(removed) == [a[1]]  # a0 is older but its template version is used by asg-mixed
    assert ids(kept) == [a[i] for i in range(11, 1, -1)] + [a[0]]
    reasons = {k.image_id: k.in_use for k in kept}
    assert "shared-lt v1 used by ASG asg-mixed" in reasons[a[0]]
    assert reasons[a[2]].startswith("instance i-")

    dry = _clean(ec2, autoscaling, GROUP, 6, dry_run=True)
    assert [(r.image_id, r.snapshot_ids) for r in dry] == [(a[1], tuple(snapshots[a[1]]))]
    assert len(ec2.describe_images(ImageIds=a)["Images"]) == 12, "a dry run removes nothing"
    all_snaps = {s for v in snapshots.values() for s in v}
    assert existing_snapshots(ec2, all_snaps) == all_snaps

    done = _clean(ec2, autoscaling, GROUP, 6)
    assert [(r.image_id, r.name, r.snapshot_ids, r.errors) for r in done] == [
        (a[1], "web-001", tuple(snapshots[a[1]]), ())]
    left = {i["ImageId"] for i in retention.group_images(ec2, GROUP)}
    assert left == set(a) - {a[1]}
    assert existing_snapshots(ec2, all_snaps) == all_snaps - set(snapshots[a[1]])
    assert _clean(ec2, autoscaling, GROUP, 6) == []  # idempotent
    assert ec2.describe_images(ImageIds=[other])["Images"], "another group's AMI is never touched"


def test_delete_all_keeps_only_what_is_in_use(fleet):
    ec2, autoscaling, a, other, snapshots = fleet
    in_use = {a[0], a[2], a[4], a[5], a[6]}  # asg-mixed $Default, instance, asg-plain $Latest, web-lt default+latest
    dry = _clean(ec2, autoscaling, GROUP, 0, dry_run=True)
    assert {r.image_id for r in dry} == set(a) - in_use
    removed = _clean(ec2, autoscaling, GROUP, 0)
    assert {r.image_id for r in removed} == set(a) - in_use and all(not r.errors for r in removed)
    assert {i["ImageId"] for i in retention.group_images(ec2, GROUP)} == in_use
    all_snaps = {s for v in snapshots.values() for s in v}
    assert existing_snapshots(ec2, all_snaps) == {s for i in in_use for s in snapshots[i]}
    assert ec2.describe_images(ImageIds=[other])["Images"]


def test_stopped_instances_protect_and_the_cache_lookup_picks_the_newest(fleet):
    ec2, autoscaling, a, _, _ = fleet
    inst = ec2.run_instances(ImageId=a[3], MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"][0]
    ec2.stop_instances(InstanceIds=[inst["InstanceId"]])
    assert a[3] not in ids(_clean(ec2, autoscaling, GROUP, 0, dry_run=True))
    for ami in (a[8], a[9]):
        ec2.create_tags(Resources=[ami], Tags=[{"Key": registry.IMAGE_HASH_TAG, "Value": "h1"}])
    assert registry.find_cached(ec2, "h1") == a[9]
    tagged = registry.tag_image(ec2, a[10], {"fleet:image-hash": "h2"})
    assert tagged[0] == a[10] and len(tagged) >= 2  # the AMI and its snapshot(s)
    snap = ec2.describe_snapshots(SnapshotIds=tagged[1:])["Snapshots"][0]
    assert registry.tags_of(snap)["fleet:image-hash"] == "h2"


# ---------------------------------------------------------------- orphaned snapshots


def test_orphans_are_unused_and_older_than_the_grace_period():
    now = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    snaps = [{"SnapshotId": "snap-old", "StartTime": now - dt.timedelta(hours=7)},
             {"SnapshotId": "snap-used", "StartTime": now - dt.timedelta(days=9)},
             {"SnapshotId": "snap-young", "StartTime": now - dt.timedelta(hours=5)},
             {"SnapshotId": "snap-older", "StartTime": now - dt.timedelta(days=2)}]
    found = retention.orphans(snaps, {"snap-used"}, now, dt.timedelta(hours=6))
    assert [s["SnapshotId"] for s in found] == ["snap-older", "snap-old"]


def test_a_network_failure_mid_upload_leaves_an_orphan_that_clean_and_delete_remove(aws, tmp_path, capsys):
    from botocore.exceptions import EndpointConnectionError

    from fleet.cli import main
    from image_builds import ebs_upload
    from tests.test_image_raw import FAST, Faults

    image = tmp_path / "disk.raw"
    image.write_bytes(os.urandom(8192))
    ebs, ec2 = ebs_upload.make_clients(workers=4)
    down = EndpointConnectionError(endpoint_url="http://127.0.0.1:1")  # the network is gone for good
    ebs.meta.events.register("before-call.ebs.PutSnapshotBlock", Faults(down, repeat=True))
    ec2.meta.events.register("before-call.ec2.DeleteSnapshot", Faults(down, repeat=True))
    with pytest.raises(ebs_upload.UploadError) as err:
        ebs_upload.upload(image, tags={"fleet:group": GROUP}, ebs=ebs, ec2=ec2, policy=FAST, progress=False)
    leftover = err.value.snapshot_id
    assert f"could NOT delete incomplete snapshot {leftover}" in str(err.value)
    assert "fleet image clean GROUP" in str(err.value)
    # an AMI of the group whose snapshot is tagged too: never an orphan
    ami = client("ec2").register_image(Name="web-keep")["ImageId"]
    registry.tag_image(client("ec2"), ami, {"fleet:group": GROUP})
    ami_snaps = registry.snapshot_ids(registry.describe_image(client("ec2"), ami))

    nodes = str(ROOT / "nodes.yaml")
    assert main(["--nodes", nodes, "image", "clean", GROUP, "--keep", "1", "--dry-run"]) == 0
    out, err_text = capsys.readouterr()
    assert "orphaned snapshot" not in out  # younger than the default grace period (6 h): maybe a running build
    assert err_text.strip().splitlines()[-1] == (f"{GROUP}: would remove 0 AMIs, keep 1; would remove 0 orphaned "
                                                 f"snapshots (tagged fleet:group={GROUP}, no AMI, older than 6h)")
    assert main(["--nodes", nodes, "image", "clean", GROUP, "--keep", "1", "--orphan-grace-hours", "0"]) == 0
    out, err_text = capsys.readouterr()
    assert out.strip().splitlines() == [f"removed orphaned snapshot {leftover} (no AMI uses it)"]
    summary = err_text.strip().splitlines()[-1]
    assert summary.startswith(f"{GROUP}: removed 0 AMIs, kept 1; removed 1 orphaned snapshot ")
    assert existing_snapshots(client("ec2"), {leftover, *ami_snaps}) == set(ami_snaps)

    # `delete` too, after the AMI itself (its snapshots go with it, no double count)
    second = ec2.create_snapshot(VolumeId=client("ec2").create_volume(Size=1, AvailabilityZone="us-east-1a")
                                 ["VolumeId"])["SnapshotId"]
    ec2.create_tags(Resources=[second], Tags=[{"Key": "fleet:group", "Value": GROUP}])
    assert main(["--nodes", nodes, "image", "delete", GROUP, "--orphan-grace-hours", "0"]) == 0
    out, err_text = capsys.readouterr()
    assert f"removed orphaned snapshot {second} (no AMI uses it)" in out and f"removed {ami} (web-keep)" in out
    summary = err_text.strip().splitlines()[-1]
    assert summary.startswith(f"{GROUP}: removed 1 AMI, kept 0; removed 1 orphaned snapshot ")
    assert existing_snapshots(client("ec2"), {second, *ami_snaps}) == set()


# ---------------------------------------------------------------- what runs is kept


def project_with_stacks(tmp_path, pinned: str) -> Path:
    """Group g (raw) in nodes.yaml (keep 2); staging overrides its boot mode (another image hash);
    prod pins an AMI."""
    (tmp_path / "Pulumi.yaml").write_text("name: t\nruntime: python\n")
    (tmp_path / "disk.raw").write_bytes(b"\1" * 4096)
    (tmp_path / "nodes.yaml").write_text(
        "g:\n  instance_type: t3.micro\n  image: {builder: raw, path: disk.raw, keep: 2}\n")
    (tmp_path / "Pulumi.staging.yaml").write_text(
        "config:\n  aws:region: us-east-1\n  fleet:groups:\n    g: {image: {boot_mode: legacy-bios}}\n")
    (tmp_path / "Pulumi.prod.yaml").write_text(f"config:\n  aws:region: us-east-1\n  fleet:amis: {{g: {pinned}}}\n")
    return tmp_path / "nodes.yaml"


def test_clean_never_removes_a_stacks_current_image_or_a_pinned_one(aws, tmp_path, capsys):
    """A reverted nodes.yaml points at an old AMI: "revert and redeploy, no rebuild" needs it."""
    from fleet.cli import main
    from fleet.image_hash import image_hash
    from fleet.spec.load import load_fleet
    from image_builds import clean

    ec2 = client("ec2")
    amis = []
    for i in range(7):  # a0 oldest
        ami = ec2.register_image(Name=f"fleet-g-{i:03d}")["ImageId"]
        ec2.create_tags(Resources=[ami], Tags=[{"Key": "fleet:group", "Value": "g"},
                                               {"Key": "fleet:image-hash", "Value": f"old-{i}"}])
        amis.append(ami)
    nodes = project_with_stacks(tmp_path, pinned=amis[1])
    staging = image_hash(load_fleet(nodes, "staging").groups["g"], tmp_path)
    current = image_hash(load_fleet(nodes).groups["g"], tmp_path)
    assert staging != current
    ec2.create_tags(Resources=[amis[0]], Tags=[{"Key": "fleet:image-hash", "Value": staging}])
    ec2.create_tags(Resources=[amis[2]], Tags=[{"Key": "fleet:image-hash", "Value": current}])
    hashes, pinned, keep = clean.protections("g", nodes)
    assert hashes == {current: "the current image of nodes.yaml", staging: "the current image of stack staging"}
    assert pinned == {amis[1]: "pinned in Pulumi.prod.yaml fleet:amis"} and keep == 2

    assert main(["--nodes", str(nodes), "image", "clean", "g", "-n", "2", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert err.strip().splitlines()[-1].startswith("g: would remove 2 AMIs, keep 5;")
    assert f"would remove {amis[3]}" in out and f"would remove {amis[4]}" in out
    assert f"kept {amis[0]} (fleet-g-000): in use by the current image of stack staging" in out
    assert f"kept {amis[1]} (fleet-g-001): in use by pinned in Pulumi.prod.yaml fleet:amis" in out
    assert f"kept {amis[2]} (fleet-g-002): in use by the current image of nodes.yaml" in out
    assert main(["--nodes", str(nodes), "image", "clean", "g"]) == 0  # --keep: image.keep (2)
    capsys.readouterr()
    left = {i["ImageId"] for i in retention.group_images(ec2, "g")}
    assert left == {amis[0], amis[1], amis[2], amis[5], amis[6]}
    assert main(["--nodes", str(nodes), "image", "delete", "g"]) == 0
    capsys.readouterr()
    assert {i["ImageId"] for i in retention.group_images(ec2, "g")} == {amis[0], amis[1], amis[2]}


def test_a_broken_stack_file_stops_clean_before_it_removes_anything(aws, tmp_path, capsys):
    from fleet.cli import main

    ec2 = client("ec2")
    ami = ec2.register_image(Name="fleet-g-000")["ImageId"]
    ec2.create_tags(Resources=[ami], Tags=[{"Key": "fleet:group", "Value": "g"}])
    nodes = project_with_stacks(tmp_path, pinned="ami-nope")
    assert main(["--nodes", str(nodes), "image", "delete", "g"]) == 2
    assert "fleet:amis" in capsys.readouterr().err
    assert {i["ImageId"] for i in retention.group_images(ec2, "g")} == {ami}


def test_every_bake_runs_retention_with_the_groups_keep(aws, tmp_path, capsys):
    from image_builds.build import run

    ec2 = client("ec2")
    old = []
    for i in range(3):
        ami = ec2.register_image(Name=f"fleet-a-old-{i}")["ImageId"]  # sorts older than fleet-g-<hash> on a tie
        ec2.create_tags(Resources=[ami], Tags=[{"Key": "fleet:group", "Value": "g"}])
        old.append(ami)
    nodes = project_with_stacks(tmp_path, pinned=old[0])
    assert run("g", nodes=str(nodes), stack=None, region="us-east-1", endpoint_url=aws) == 0
    out, err = capsys.readouterr()
    new = json.loads(out.strip().splitlines()[-1])["ami_id"]
    assert out.strip().splitlines() == [out.strip()]  # stdout: the JSON line only
    # keep 2 unused besides the new (current) AMI and the pinned old[0]: nothing to remove yet
    assert "g: removed 0 AMIs, kept 4;" in err
    assert run("g", nodes=str(nodes), stack=None, region="us-east-1", endpoint_url=aws) == 0  # cached
    assert "removed" not in capsys.readouterr().err  # a cache hit bakes nothing and cleans nothing
    tags = registry.tags_of(registry.describe_image(ec2, new))
    assert tags["fleet:source"] == "sha256:" + hashlib.sha256(b"\1" * 4096).hexdigest()
    assert dt.datetime.strptime(tags["fleet:built-at"], "%Y-%m-%dT%H:%M:%SZ")
    # another bake (new image bytes -> new hash): keep 2 unused -> old[1] (the oldest unused) goes
    (tmp_path / "disk.raw").write_bytes(b"\2" * 4096)
    assert run("g", nodes=str(nodes), stack=None, region="us-east-1", endpoint_url=aws) == 0
    err = capsys.readouterr().err
    assert "g: removed 1 AMI, kept 4;" in err and f"removed {old[1]}" in err
    assert {i["ImageId"] for i in retention.group_images(ec2, "g")} >= {new, old[0]}
