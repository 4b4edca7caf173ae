"""The packer builder end to end: real Packer from Debian against the moto server over HTTP."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from image_builds.packer_builder import ami_from_manifest, ui_line

ROOT = Path(__file__).resolve().parent.parent

NODES = """\
__base__:
  instance_type: t3.micro
  source_ami: {source}
  image: {{builder: packer, communicator: none}}
  run_list: ['recipe[base]']
g:
  description: test group
  run_list: ['recipe[app]']
  default_attributes: {{color: {color}}}
"""


def project(tmp_path: Path, source: str, color: str = "blue") -> Path:
    (tmp_path / "cookbooks").mkdir(exist_ok=True)
    (tmp_path / "nodes.yaml").write_text(NODES.format(source=source, color=color))
    return tmp_path / "nodes.yaml"


def build(nodes: Path, endpoint: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint}
    return subprocess.run([sys.executable, "-m", "fleet", "--nodes", str(nodes), "image", "build", "g",
                           "--endpoint-url", endpoint], capture_output=True, text=True, env=env,
                          cwd=nodes.parent, timeout=300)  # the user stands in the project: its cookbooks count


@pytest.fixture
def source_ami(aws):
    ec2 = boto3.client("ec2")
    return ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]


def own_images():
    return boto3.client("ec2").describe_images(Owners=["self"])["Images"]


def test_bake_then_reuse(tmp_path, aws, source_ami):
    nodes = project(tmp_path, source_ami)
    first = build(nodes, aws)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout.strip().splitlines()[-1])
    assert result["cached"] is False and result["ami_id"].startswith("ami-")
    assert len(first.stdout.strip().splitlines()) == 1  # logs go to stderr; stdout is the one JSON line
    assert "packer:" in first.stderr
    # Packer's own output goes to a log file in the project, whose path is printed; not to the Command's output
    [log] = [line.split("full log: ")[1] for line in first.stderr.splitlines() if "full log: " in line]
    assert Path(log).parent == tmp_path / ".fleet" / "logs" and "amazon-ebs" in Path(log).read_text()
    assert "amazon-ebs" not in first.stderr and len([x for x in first.stderr.splitlines() if "packer" in x]) <= 3

    images = own_images()
    assert [i["ImageId"] for i in images] == [result["ami_id"]]
    tags = {t["Key"]: t["Value"] for t in images[0]["Tags"]}
    assert tags["fleet:group"] == "g" and tags["fleet:image-hash"] == result["image_hash"]
    assert tags["fleet:builder"] == "packer" and tags["fleet:built-at"]
    snaps = [m["Ebs"]["SnapshotId"] for m in images[0]["BlockDeviceMappings"] if "Ebs" in m]
    snap_tags = boto3.client("ec2").describe_snapshots(SnapshotIds=snaps)["Snapshots"][0]["Tags"]
    assert {"Key": "fleet:image-hash", "Value": result["image_hash"]} in snap_tags

    second = build(nodes, aws)
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout.strip().splitlines()[-1])
    assert again == {**result, "cached": True}
    assert "packer:" not in second.stderr  # no bake
    assert len(own_images()) == 1  # created nothing


def test_changing_an_input_changes_the_hash_and_bakes_again(tmp_path, aws, source_ami):
    nodes = project(tmp_path, source_ami, color="blue")
    first = json.loads(build(nodes, aws).stdout.strip().splitlines()[-1])
    project(tmp_path, source_ami, color="green")
    second = json.loads(build(nodes, aws).stdout.strip().splitlines()[-1])
    assert second["image_hash"] != first["image_hash"] and second["cached"] is False
    (tmp_path / "cookbooks" / "app" / "recipes").mkdir(parents=True)  # a cookbook of g's run list
    (tmp_path / "cookbooks" / "app" / "recipes" / "default.rb").write_text("package 'nginx'")
    third = json.loads(build(nodes, aws).stdout.strip().splitlines()[-1])
    assert third["image_hash"] != second["image_hash"]
    assert len(own_images()) == 3


def test_packer_failure_leaves_nothing_behind(tmp_path, aws):
    nodes = project(tmp_path, "ami-0123456789abcdef0")  # does not exist
    proc = build(nodes, aws)
    assert proc.returncode == 1
    assert proc.stdout == ""
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("fleet image build g: packer build failed (exit 1)")
    assert own_images() == []
    ec2 = boto3.client("ec2")
    running = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
               if i["State"]["Name"] in ("pending", "running")]
    assert running == []


def test_ami_builder_resolves_the_newest_match(tmp_path, aws, monkeypatch):
    from fleet.spec.load import load_fleet
    from image_builds.build import build as build_image

    ec2 = boto3.client("ec2")
    some = ec2.describe_images(Owners=["amazon"])["Images"][0]
    (tmp_path / "nodes.yaml").write_text(
        "g:\n  instance_type: t3.micro\n  image: {builder: ami}\n"
        f"  source_ami: {{name: '{some['Name']}', owners: [amazon]}}\n")
    from fleet.cli import main

    assert main(["--nodes", str(tmp_path / "nodes.yaml"), "lock"]) == 0  # the newest match, locked
    group = load_fleet(tmp_path / "nodes.yaml").groups["g"]
    out = build_image(group, region="us-east-1", endpoint_url=aws, project_dir=tmp_path)
    assert out["ami_id"] == some["ImageId"] and out["cached"] is True
    assert own_images() == []


def test_machine_readable_lines_and_manifest(tmp_path):
    assert ui_line("1600000000,,ui,say,==> amazon-ebs: Creating AMI%!(PACKER_COMMA) done\n") == \
        ("ui", "==> amazon-ebs: Creating AMI, done")
    assert ui_line("1600000000,amazon-ebs,artifact,0,id,us-east-1:ami-0abc\n")[0] == "artifact"
    (tmp_path / "m.json").write_text(json.dumps({"builds": [{"artifact_id": "us-east-1:ami-0aaa"},
                                                            {"artifact_id": "us-east-1:ami-0bbb"}]}))
    assert ami_from_manifest(tmp_path / "m.json") == "ami-0bbb"


def test_build_refuses_inputs_other_than_the_ones_that_triggered_it(tmp_path, aws, source_ami):
    nodes = project(tmp_path, source_ami)
    env = {**os.environ, "AWS_ENDPOINT_URL": aws}
    proc = subprocess.run([sys.executable, "-m", "image_builds.build", "g", "--nodes", str(nodes),
                           "--expect-hash", "0" * 64], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "image inputs changed since the program ran: it expected image hash 000000000000" in proc.stderr
    assert own_images() == []


def test_packer_tags_name_the_resolved_base_ami_and_when_it_was_built(tmp_path, aws):
    """A {name, owners} filter is resolved before Packer runs and Packer gets the id: fleet:source is
    that id and its name, not the filter; fleet:built-at is when the AMI was available."""
    ec2 = boto3.client("ec2")
    base = ec2.describe_images(Owners=["amazon"])["Images"][0]
    (tmp_path / "cookbooks").mkdir()
    (tmp_path / "nodes.yaml").write_text(
        f"g:\n  instance_type: t3.micro\n  source_ami: {{name: '{base['Name']}', owners: [amazon]}}\n"
        "  image: {builder: packer, communicator: none}\n  run_list: ['recipe[app]']\n")
    from fleet.cli import main

    assert main(["--nodes", str(tmp_path / "nodes.yaml"), "lock"]) == 0  # the filter, locked (nodes.lock.json)
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    proc = build(tmp_path / "nodes.yaml", aws)
    assert proc.returncode == 0, proc.stderr
    ami = json.loads(proc.stdout.strip().splitlines()[-1])["ami_id"]
    tags = {t["Key"]: t["Value"] for t in ec2.describe_images(ImageIds=[ami])["Images"][0]["Tags"]}
    assert tags["fleet:source"] == f"{base['ImageId']} ({base['Name']})"
    built = dt.datetime.strptime(tags["fleet:built-at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert before <= built <= dt.datetime.now(dt.UTC)
