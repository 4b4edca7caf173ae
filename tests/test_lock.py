"""Base images are locked: `fleet lock` resolves every source_ami name filter
into nodes.lock.json beside the nodes file, against the moto server (real DescribeImages over HTTP);
validate/plan refuse an unlocked filter with one line; the image hash, the Packer template and the
program use the locked id; `--update [GROUP]` bumps on purpose."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import boto3
import pytest

from fleet.cli import main
from fleet.image_hash import image_hash
from fleet.render.packer import render_packer
from fleet.spec.load import load_fleet

ROOT = Path(__file__).resolve().parent.parent
NODES = """\
__base__: {instance_type: t3.micro, image: {builder: packer, communicator: none}}
web: {source_ami: {name: "base-web-*", owners: [self]}}
cron: {source_ami: {name: "base-cron-*", owners: [self]}, image: {builder: ami}}
fixed: {source_ami: ami-12c6146b}
"""


def register(name: str, root: str = "/dev/sda1") -> str:
    ec2 = boto3.client("ec2")
    snap = ec2.create_snapshot(VolumeId=ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"])
    return ec2.register_image(Name=name, RootDeviceName=root, BlockDeviceMappings=[
        {"DeviceName": root, "Ebs": {"SnapshotId": snap["SnapshotId"]}}])["ImageId"]


@pytest.fixture
def project(tmp_path, aws):
    (tmp_path / "nodes.yaml").write_text(NODES)
    # validate runs the default stack: a sandbox of the moto server, whose AMI ids exist nowhere else
    (tmp_path / "Pulumi.staging.yaml").write_text(f"config:\n  fleet:awsEndpoint: {aws}\n")
    return tmp_path


def lock(project: Path, *args: str) -> int:
    return main(["--nodes", str(project / "nodes.yaml"), "lock", *args])


def entries(project: Path) -> dict:
    return json.loads((project / "nodes.lock.json").read_text())["images"]["us-east-1"]


def test_unlocked_filters_are_one_line_each_and_exit_2(project, capsys):
    assert main(["--project", str(project), "validate"]) == 2
    context, *lines = capsys.readouterr().err.strip().splitlines()
    assert context.startswith("fleet: project ")
    assert len(lines) == 2, lines  # one per distinct filter; the literal id needs no lock
    assert all("key 'source_ami'" in line and "not locked" in line and "run `fleet lock`" in line for line in lines)
    sample = project / "sample"
    sample.mkdir()
    shutil.copy(ROOT / "nodes.yaml", sample / "nodes.yaml")  # the sample without its lock
    assert main(["plan", "--nodes", str(sample / "nodes.yaml"), "--stack", "staging", "--json"]) == 2
    out, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 2, err  # the project line; every group shares the one Ubuntu filter
    assert out == "" and "run `fleet lock`" in err and "Traceback" not in err


def test_lock_adds_missing_entries_and_then_changes_nothing(project, capsys):
    old = register("base-web-20250101")
    new = register("base-web-20250301")
    cron = register("base-cron-1")
    assert lock(project) == 0
    locked = entries(project)
    assert set(locked) == {"self/base-web-*", "self/base-cron-*"}
    assert locked["self/base-web-*"]["ami_id"] == new and locked["self/base-web-*"]["name"] == "base-web-20250301"
    [image] = boto3.client("ec2").describe_images(ImageIds=[cron])["Images"]
    assert locked["self/base-cron-*"] == {"ami_id": cron, "name": "base-cron-1", "creation_date": image["CreationDate"],
                                          "root_device_name": image["RootDeviceName"],
                                          "resolved_at": boto3.client("ec2").meta.endpoint_url}
    assert all(e["creation_date"] for e in locked.values())
    assert "added" in capsys.readouterr().out
    before = (project / "nodes.lock.json").read_text()
    register("base-web-20250601")  # the owner publishes: nothing moves until --update
    assert lock(project) == 0
    assert (project / "nodes.lock.json").read_text() == before
    assert capsys.readouterr().out.count("unchanged") == 2
    assert main(["--project", str(project), "validate"]) == 0
    assert old != new


def test_update_one_group_bumps_only_its_filter(project, capsys):
    register("base-web-1")
    register("base-cron-1")
    assert lock(project) == 0
    first = entries(project)
    web2, cron2 = register("base-web-2"), register("base-cron-2")
    assert lock(project, "--update", "cron") == 0
    second = entries(project)
    assert second["self/base-web-*"] == first["self/base-web-*"]
    assert second["self/base-cron-*"]["ami_id"] == cron2
    assert f"updated from {first['self/base-cron-*']['ami_id']}" in capsys.readouterr().out
    assert lock(project, "--update") == 0
    assert entries(project)["self/base-web-*"]["ami_id"] == web2
    assert lock(project, "--update", "fixd") == 2  # not a group with a filter
    assert "did you mean 'fixed'" not in capsys.readouterr().err  # 'fixed' has no filter to update


def test_the_locked_id_is_what_everything_uses(project):
    register("base-web-1")
    register("base-cron-1", root="/dev/xvda")
    assert lock(project) == 0
    web = load_fleet(project / "nodes.yaml").groups["web"]
    locked = entries(project)["self/base-web-*"]
    assert web.source_ami.locked.ami_id == locked["ami_id"]
    builder = render_packer(web, region="us-east-1", image_hash="ab" * 32)["builders"][0]
    assert builder["source_ami"] == locked["ami_id"] and "source_ami_filter" not in builder
    h1 = image_hash(web, project)
    register("base-web-2")
    assert lock(project, "--update", "web") == 0
    assert image_hash(load_fleet(project / "nodes.yaml").groups["web"], project) != h1  # a bump rebakes


def test_no_image_for_a_filter_fails_and_leaves_the_lock(project, capsys):
    register("base-web-1")
    assert lock(project) == 1
    assert "no available image named 'base-cron-*'" in capsys.readouterr().err
    assert not (project / "nodes.lock.json").exists()


def test_a_malformed_lock_is_one_line(project, capsys):
    (project / "nodes.lock.json").write_text('{"images": {"us-east-1": {"self/base-web-*": {"ami_id": 1}}}}')
    assert main(["--project", str(project), "validate"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()[1:]  # after the project line: one per problem
    assert [line.split("key '")[1].split("'")[0].rsplit(".", 1)[1] for line in lines] == [
        "ami_id", "creation_date", "name", "root_device_name"]
    assert all("nodes.lock.json" in line and "fleet lock --update" in line for line in lines)


@pytest.mark.parametrize("nodes", ["nodes.yaml", "examples/local/nodes.yaml"])
def test_committed_samples_are_locked_with_plausible_entries(nodes):
    path = ROOT / nodes
    fleet = load_fleet(path, "staging" if nodes == "nodes.yaml" else None)
    locked = [g.source_ami.locked for g in fleet.groups.values() if hasattr(g.source_ami, "locked")]
    assert locked and all(x is not None for x in locked)
    for image in json.loads(path.with_name("nodes.lock.json").read_text())["images"]["us-east-1"].values():
        assert image["ami_id"].startswith("ami-") and len(image["ami_id"]) in (12, 21)
        assert image["root_device_name"] in ("/dev/sda1", "/dev/xvda") and image["creation_date"][:2] == "20"


def test_the_example_lock_matches_the_moto_server(aws, tmp_path):
    """examples/local runs against moto: its lock names the Amazon Linux image moto serves."""
    shutil.copytree(ROOT / "examples" / "local", tmp_path / "local")
    before = json.loads((tmp_path / "local" / "nodes.lock.json").read_text())["images"]
    assert main(["--nodes", str(tmp_path / "local" / "nodes.yaml"), "lock", "--update"]) == 0
    after = json.loads((tmp_path / "local" / "nodes.lock.json").read_text())["images"]
    assert {k: v["ami_id"] for k, v in after["us-east-1"].items()} == \
        {k: v["ami_id"] for k, v in before["us-east-1"].items()}
