"""A cache hit (the AMI for the group's image hash exists: staging's AMI promoted to prod) is one AWS
call, DescribeImages, whose answer also gives the root device the result line reports."""

from __future__ import annotations

import boto3

import image_builds.build as build
from fleet.ops.aws import client as real_client
from fleet.spec.load import load_fleet
from image_builds import registry

NODES = "web:\n  instance_type: t3.micro\n  source_ami: ami-12c6146b\n  image: {communicator: none}\n"


def test_a_cache_hit_is_one_describe_images_call(aws, tmp_path, monkeypatch):
    (tmp_path / "nodes.yaml").write_text(NODES)
    group = load_fleet(tmp_path / "nodes.yaml", None, project_dir=tmp_path).group("web")
    h = build.image_hash(group, tmp_path)
    ec2 = boto3.client("ec2")
    snap = ec2.create_snapshot(VolumeId=ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"])
    ami = ec2.register_image(Name="web-cached", RootDeviceName="/dev/xvda", BlockDeviceMappings=[
        {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snap["SnapshotId"]}}])["ImageId"]
    ec2.create_tags(Resources=[ami], Tags=[{"Key": registry.IMAGE_HASH_TAG, "Value": h}])
    [image] = ec2.describe_images(ImageIds=[ami])["Images"]
    calls = []

    def counting_client(*args, **kwargs):
        made = real_client(*args, **kwargs)
        made.meta.events.register("before-call", lambda model, **_: calls.append(model.name))
        return made

    monkeypatch.setattr(build, "client", counting_client)
    result = build.build(group, region="us-east-1", project_dir=tmp_path)
    assert result == {"ami_id": ami, "image_hash": h, "cached": True, "root_device_name": image["RootDeviceName"]}
    assert calls == ["DescribeImages"]
