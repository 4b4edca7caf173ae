"""The launch template's root volume mapping names the image's own root device:
the build's result line carries `root_device_name` from DescribeImages, after the bake and on a cache
hit, and BakedImage passes it to the launch template. Against the moto server, with real Packer."""

from __future__ import annotations

import json

import boto3
import pulumi

from components.baked_image import BakedImage, BakedImageArgs
from components.launch_template import LaunchTemplate, LaunchTemplateArgs
from fleet.image_hash import image_hash
from fleet.spec.load import load_fleet
from image_builds.build import build as build_image
from tests.pulumi_mocks import group, run
from tests.test_image_packer import ROOT, build, project

AMAZON_LINUX = "ami-760aaa0f"  # moto's amzn-ami-hvm-2017.09.1 (Amazon): root device /dev/xvda


def test_a_cache_hit_reports_the_cached_images_root_device(tmp_path, aws):
    ec2 = boto3.client("ec2")
    nodes = project(tmp_path, "ami-12c6146b")
    g = load_fleet(nodes).groups["g"]
    h = image_hash(g, tmp_path)
    instance = ec2.run_instances(ImageId=AMAZON_LINUX, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ami = ec2.create_image(InstanceId=instance, Name="cached")["ImageId"]
    ec2.create_tags(Resources=[ami], Tags=[{"Key": "fleet:image-hash", "Value": h}])
    [image] = ec2.describe_images(ImageIds=[ami])["Images"]
    out = build_image(g, region="us-east-1", endpoint_url=aws, project_dir=tmp_path)
    assert out == {"ami_id": ami, "image_hash": h, "cached": True, "root_device_name": image["RootDeviceName"]}


def test_an_amazon_linux_image_reports_xvda(tmp_path, aws):
    """`builder: ami` on an Amazon Linux image: the result says /dev/xvda, read from the image."""
    (tmp_path / "nodes.yaml").write_text(f"g: {{instance_type: t3.micro, image: {{builder: ami}}, "
                                         f"source_ami: {AMAZON_LINUX}}}\n")
    g = load_fleet(tmp_path / "nodes.yaml").groups["g"]
    out = build_image(g, region="us-east-1", endpoint_url=aws, project_dir=tmp_path)
    assert out["ami_id"] == AMAZON_LINUX and out["root_device_name"] == "/dev/xvda"


def test_a_bake_reports_the_baked_images_root_device(tmp_path, aws):
    source = boto3.client("ec2").describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    proc = build(project(tmp_path, source), aws)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    [image] = boto3.client("ec2").describe_images(ImageIds=[result["ami_id"]])["Images"]
    assert result["cached"] is False and result["root_device_name"] == image["RootDeviceName"]


def test_the_launch_template_maps_the_root_device_the_build_reported():
    """A build whose image boots from /dev/xvda (Amazon Linux, Debian): the encrypted gp3 mapping is
    on /dev/xvda, not on Ubuntu's /dev/sda1 (which would be an extra empty disk)."""
    stdout = 'baking\n{"ami_id": "ami-0a1b2c3d4e5f60718", "image_hash": "h", "cached": false, ' \
             '"root_device_name": "/dev/xvda"}\n'

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args):
            state = dict(args.inputs)
            if args.typ == "command:local:Command":
                state["stdout"] = stdout
            return f"{args.name}-id", state

        def call(self, args):
            return {"partition": "aws"} if args.token == "aws:index/getPartition:getPartition" else {}

    def program():
        g = group("web")
        img = BakedImage("web", BakedImageArgs(group=g, image_hash="h", stack="prod", region="us-east-1", pin=None,
                                               project_dir=ROOT))
        lt = LaunchTemplate("web", LaunchTemplateArgs(group=g, stack="prod", environment="prod", ami_id=img.ami_id,
                                                      root_device_name=img.root_device_name,
                                                      security_group_ids=["sg-00000001"]))
        return lt.id

    from fleet.plan.engine import FleetMocks

    r = run(program, stack="prod", mocks=type("M", (Mocks, FleetMocks), {})())
    (template,) = r.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    [bdm] = template.inputs["blockDeviceMappings"]
    assert bdm["deviceName"] == "/dev/xvda" and bdm["ebs"]["encrypted"] == "true"
    assert template.inputs["imageId"] == "ami-0a1b2c3d4e5f60718"
