"""Two builds of one image hash at once (two stacks deploying together) converge on one AMI.

Against moto, through `UniqueNamesProxy`, which adds AWS's AMI-name uniqueness check that moto
lacks (tests/unique_names_proxy.py): two real `fleet image build` processes race, for the raw and
the packer builders. The register-level duplicate path is also checked with botocore's Stubber,
call by call, as AWS answers it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from image_builds import register
from tests.unique_names_proxy import UniqueNamesProxy

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"


def own_snapshots(ec2) -> set[str]:
    return {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"] if s["OwnerId"] == ACCOUNT}


def race(project: Path, endpoint: str) -> list[tuple[int, str, str]]:
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint}
    cmd = [sys.executable, "-m", "fleet", "--nodes", str(project / "nodes.yaml"), "image", "build", "g",
           "--endpoint-url", endpoint]
    procs = [subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    return [(p.wait(timeout=300), *p.communicate()) for p in procs]


def check_converged(results, proxy: UniqueNamesProxy, *, packer: bool = False):
    for code, _, err in results:
        assert code == 0, err
    out = [json.loads(o.strip().splitlines()[-1]) for _, o, _ in results]
    assert out[0]["ami_id"] == out[1]["ami_id"] and out[0]["image_hash"] == out[1]["image_hash"]
    assert sorted(o["cached"] for o in out) == [False, True]
    loser = next(err for (_, _, err), o in zip(results, out, strict=True) if o["cached"])
    # both builds tried to make the AMI (a real race): the name check refused the loser, either
    # AWS's (the proxy's) at RegisterImage/CreateImage, or Packer's own pre-validation of the name
    assert proxy.duplicates >= 1 or (packer and "is used by an existing AMI" in loser), loser
    assert "another build of image hash" in loser and f"made {out[0]['ami_id']} first; using it" in loser
    images = boto3.client("ec2").describe_images(Owners=["self"])["Images"]
    assert [i["ImageId"] for i in images] == [out[0]["ami_id"]]
    tags = {t["Key"]: t["Value"] for t in images[0]["Tags"]}
    assert tags["fleet:image-hash"] == out[0]["image_hash"]
    return out[0]


def test_two_raw_builds_of_one_hash_converge_on_one_ami(aws, tmp_path):
    project = tmp_path / "p"
    project.mkdir()
    (project / "disk.raw").write_bytes(os.urandom(8 << 10))
    (project / "nodes.yaml").write_text("g:\n  instance_type: t3.micro\n  image: {builder: raw, path: disk.raw}\n")
    ec2 = boto3.client("ec2")
    proxy = UniqueNamesProxy(aws, meet=2)  # both RegisterImage calls arrive before either is answered
    with proxy as url:
        results = race(project, url)
    result = check_converged(results, proxy)
    image = ec2.describe_images(ImageIds=[result["ami_id"]])["Images"][0]
    # left: the winner's uploaded snapshot and the one moto makes for every AMI; the loser deleted its own
    assert own_snapshots(ec2) == {image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"], *_uploaded(ec2, result)}
    assert len(own_snapshots(ec2)) == 2


def _uploaded(ec2, result) -> set[str]:
    snaps = ec2.describe_snapshots(OwnerIds=["self"], Filters=[
        {"Name": "description", "Values": [f"fleet g {result['image_hash'][:12]}"]}])["Snapshots"]
    return {s["SnapshotId"] for s in snaps}


def test_two_packer_builds_of_one_hash_converge_on_one_ami(aws, tmp_path):
    ec2 = boto3.client("ec2")
    source = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    project = tmp_path / "p"
    (project / "cookbooks").mkdir(parents=True)
    (project / "nodes.yaml").write_text(
        f"g:\n  instance_type: t3.micro\n  source_ami: {source}\n  image: {{builder: packer, communicator: none}}\n"
        "  run_list: ['recipe[app]']\n")
    proxy = UniqueNamesProxy(aws)
    with proxy as url:
        results = race(project, url)
    check_converged(results, proxy, packer=True)
    running = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
               if i["State"]["Name"] in ("pending", "running")]
    assert running == [], "the losing Packer cleans up its build instance"


def test_register_duplicate_name_reuses_the_winner_and_deletes_our_snapshot_stubbed():
    """What AWS answers, call by call: RegisterImage -> InvalidAMIName.Duplicate; the clean-up finds
    no AMI of that name using our snapshot and deletes the snapshot; the winner is looked up by name."""
    ec2 = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    name = "fleet-g-0123456789abcdef0123"
    winner = {"ImageId": "ami-0aaaaaaaaaaaaaaaa", "Name": name, "State": "available",
              "CreationDate": dt.datetime(2026, 1, 1).isoformat() + ".000Z",
              "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": "snap-0winner0000000000"}}]}
    by_name = {"Owners": ["self"], "Filters": [{"Name": "name", "Values": [name]}]}
    with Stubber(ec2) as stub:
        stub.add_client_error("register_image", "InvalidAMIName.Duplicate",
                              f"AMI name {name} is already in use by AMI {winner['ImageId']}", 400)
        stub.add_response("describe_images", {"Images": [winner]}, by_name)  # clean-up: not ours
        stub.add_response("delete_snapshot", {}, {"SnapshotId": "snap-0ours00000000000"})
        stub.add_response("describe_images", {"Images": [winner]}, by_name)  # the winner
        with pytest.raises(register.NameTaken) as err:
            register.register(ec2, snapshot_id="snap-0ours00000000000", name=name, architecture="x86_64",
                              boot_mode="uefi", tags={"fleet:group": "g"})
        stub.assert_no_pending_responses()
    assert err.value.existing == winner["ImageId"] and err.value.leftover is None
    assert "snapshot snap-0ours00000000000 deleted" in str(err.value)
