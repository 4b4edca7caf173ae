"""A base image locked against a local API never reaches a stack that targets AWS.

Every lock entry records the endpoint it was resolved at; validate, plan and the program refuse an
entry resolved anywhere but AWS when the stack targets AWS (a sandbox stack declares its local API
with fleet:awsEndpoint, as the committed samples do); `fleet lock --check` asks the endpoint whether
each locked id still exists with its name and owner (moto server over HTTP).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import boto3
import pytest

from fleet.cli import main
from fleet.spec.endpoints import is_aws_endpoint

ROOT = Path(__file__).resolve().parent.parent
FILTER = "099720109477/ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"
NODES = ("__base__: {instance_type: t3.micro, image: {builder: ami}}\n"
         "web: {source_ami: {name: 'base-web-*', owners: [self]}}\n")


def sample(tmp_path: Path, *, sandbox: bool) -> Path:
    """The committed sample project; prod declares the local API or (a real account) does not."""
    for name in ("nodes.yaml", "nodes.lock.json", "Pulumi.yaml", "Pulumi.prod.yaml", "Pulumi.staging.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    for name in ("cookbooks", "data_bags"):
        shutil.copytree(ROOT / name, tmp_path / name)
    if not sandbox:
        prod = tmp_path / "Pulumi.prod.yaml"
        prod.write_text("".join(line for line in prod.read_text().splitlines(keepends=True)
                                if "fleet:awsEndpoint" not in line))
    return tmp_path


def test_aws_endpoints_and_local_ones():
    assert is_aws_endpoint("https://ec2.us-east-1.amazonaws.com")
    assert is_aws_endpoint("https://ec2.cn-north-1.amazonaws.com.cn") and is_aws_endpoint("https://ec2.us-east-1.api.aws")
    for url in ("http://127.0.0.1:5000", "http://localhost:4566", "https://ec2.amazonaws.com.evil.example",
                "http://ec2.us-east-1.amazonaws.com", "", None):
        assert not is_aws_endpoint(url), url


def test_the_committed_sample_lock_is_marked_local_and_its_stacks_are_sandboxes():
    lock = json.loads((ROOT / "nodes.lock.json").read_text())
    assert {e["resolved_at"] for r in lock["images"].values() for e in r.values()} == {"http://127.0.0.1:5000"}
    for stack in ("staging", "prod"):
        text = (ROOT / f"Pulumi.{stack}.yaml").read_text()
        assert "fleet:awsEndpoint: http://127.0.0.1:5000" in text


def test_a_stack_that_targets_aws_refuses_a_locally_resolved_base_image(tmp_path, capsys):
    project = sample(tmp_path, sandbox=False)
    assert main(["--project", str(project), "validate", "--stack", "prod"]) == 2
    context, *lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines  # one line per distinct filter, naming file, group and key
    assert lines[0].startswith(f"{project / 'nodes.yaml'}:") and "key 'source_ami'" in lines[0]
    assert "resolved at http://127.0.0.1:5000, not at AWS, and stack prod targets AWS" in lines[0]
    assert "fleet lock --update" in lines[0]
    assert main(["--project", str(project), "plan", "--stack", "prod", "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "stack prod targets AWS" in err
    # the sandbox stack (the quick start's `make plan`) keeps planning the same lock
    assert main(["--project", str(project), "validate", "--stack", "staging"]) == 0


def test_a_lock_written_before_endpoints_were_recorded_counts_as_not_from_aws(tmp_path, capsys):
    project = sample(tmp_path, sandbox=False)
    lock = json.loads((project / "nodes.lock.json").read_text())
    del lock["images"]["us-east-1"][FILTER]["resolved_at"]
    (project / "nodes.lock.json").write_text(json.dumps(lock))
    assert main(["--project", str(project), "validate", "--stack", "prod"]) == 2
    assert "resolved at an unrecorded endpoint" in capsys.readouterr().err
    lock["images"]["us-east-1"][FILTER]["resolved_at"] = "https://ec2.us-east-1.amazonaws.com"
    (project / "nodes.lock.json").write_text(json.dumps(lock))
    assert main(["--project", str(project), "validate", "--stack", "prod"]) == 0


def test_the_real_engine_refuses_a_sandbox_stack_whose_provider_targets_aws(monkeypatch):
    import pulumi.runtime.settings as settings

    from components import program
    from fleet.spec.stack import stack_from_values

    sandbox = stack_from_values("prod", {"fleet:awsEndpoint": "http://127.0.0.1:5000"}, "Pulumi.prod.yaml")
    real = stack_from_values("prod", {}, "Pulumi.prod.yaml")
    assert not sandbox.targets_aws and real.targets_aws
    monkeypatch.setattr(settings, "get_monitor", lambda: object())  # not Pulumi's mock monitor: a real engine
    monkeypatch.setattr(program.pulumi, "Config", lambda ns: type("C", (), {"get": lambda self, k: None})())
    assert program.sandbox_to_aws(sandbox) and not program.sandbox_to_aws(real)
    endpoints = '[{"ec2": "http://127.0.0.1:5000"}]'
    monkeypatch.setattr(program.pulumi, "Config", lambda ns: type("C", (), {"get": lambda self, k: endpoints})())
    assert not program.sandbox_to_aws(sandbox)  # the provider itself targets the local API


def test_a_malformed_aws_endpoint_is_one_line(tmp_path, capsys):
    project = sample(tmp_path, sandbox=True)
    staging = project / "Pulumi.staging.yaml"
    staging.write_text(staging.read_text().replace("awsEndpoint: http://127.0.0.1:5000", "awsEndpoint: moto"))
    assert main(["--project", str(project), "validate", "--stack", "staging"]) == 2
    [_, line] = capsys.readouterr().err.strip().splitlines()
    assert "key 'fleet:awsEndpoint'" in line and "is not an endpoint URL" in line


# ------------------------------------------------------------------------ fleet lock --check (moto)

def register(name: str) -> str:
    ec2 = boto3.client("ec2")
    snap = ec2.create_snapshot(VolumeId=ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"])
    return ec2.register_image(Name=name, RootDeviceName="/dev/xvda", BlockDeviceMappings=[
        {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snap["SnapshotId"]}}])["ImageId"]


@pytest.fixture
def locked(tmp_path, aws):
    (tmp_path / "nodes.yaml").write_text(NODES)
    ami = register("base-web-1")
    assert main(["--nodes", str(tmp_path / "nodes.yaml"), "lock"]) == 0
    entry = json.loads((tmp_path / "nodes.lock.json").read_text())["images"]["us-east-1"]["self/base-web-*"]
    assert entry["ami_id"] == ami and entry["resolved_at"] == aws  # where it was resolved, recorded
    return tmp_path


def check(project: Path, *args: str) -> int:
    return main(["--nodes", str(project / "nodes.yaml"), "lock", "--check", *args])


def rewrite(project: Path, **changes) -> None:
    path = project / "nodes.lock.json"
    lock = json.loads(path.read_text())
    lock["images"]["us-east-1"]["self/base-web-*"].update(changes)
    path.write_text(json.dumps(lock))


def test_check_passes_when_every_locked_image_exists_and_changes_nothing(locked, capsys):
    before = (locked / "nodes.lock.json").read_text()
    capsys.readouterr()
    assert check(locked) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("us-east-1 self/base-web-*: ami-") and out[0].endswith("for web: ok")
    assert (locked / "nodes.lock.json").read_text() == before


@pytest.mark.parametrize("changes, why", [
    ({"ami_id": "ami-0123456789abcdef0"}, "ami-0123456789abcdef0 does not exist here, or is not owned by self"),
    ({"name": "base-web-0"}, "is named 'base-web-1', the lock says 'base-web-0'"),
])
def test_check_names_each_entry_that_is_not_there(locked, capsys, changes, why):
    rewrite(locked, **changes)
    capsys.readouterr()
    assert check(locked) == 1
    out, err = capsys.readouterr()
    [line] = out.strip().splitlines()
    assert line.startswith("us-east-1 self/base-web-*: ") and why in line
    assert err.strip().splitlines()[-1] == "fleet lock --check: 1 of 1 base image(s) not usable: see above"


def test_check_refuses_an_image_of_another_owner(locked, capsys):
    (locked / "nodes.yaml").write_text(NODES.replace("owners: [self]", "owners: ['099720109477']"))
    lock = json.loads((locked / "nodes.lock.json").read_text())
    lock["images"]["us-east-1"] = {"099720109477/base-web-*": lock["images"]["us-east-1"]["self/base-web-*"]}
    (locked / "nodes.lock.json").write_text(json.dumps(lock))
    capsys.readouterr()
    assert check(locked) == 1
    assert "is not owned by 099720109477" in capsys.readouterr().out


def test_check_refuses_a_local_entry_for_a_stack_that_targets_aws_even_where_the_id_exists(locked, capsys):
    (locked / "Pulumi.yaml").write_text("name: p\nruntime: python\n")
    (locked / "Pulumi.prod.yaml").write_text("config:\n  aws:region: us-east-1\n")
    capsys.readouterr()
    assert check(locked, "--stack", "prod") == 1
    [line] = capsys.readouterr().out.strip().splitlines()
    assert "not at AWS, and stack prod targets AWS" in line
    (locked / "Pulumi.prod.yaml").write_text("config:\n  aws:region: us-east-1\n  fleet:awsEndpoint: http://127.0.0.1:5000\n")
    assert check(locked, "--stack", "prod") == 0  # a sandbox stack: checked at the endpoint at hand (moto)


def test_check_and_update_together_is_bad_input(locked, capsys):
    assert check(locked, "--update") == 2
    assert "--check changes nothing" in capsys.readouterr().err
