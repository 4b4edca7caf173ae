"""CLI polish: `fleet --version`; `show` prints resolved values for defaults derived from other keys;
`deploy --timeout` says its default; `deploy` without GROUP rolls every autoscaled group in order; AWS
errors in `deploy` (an API the local endpoint lacks, an endpoint that is not there) are one line, exit
1, no traceback. The AWS parts run against the moto server (which has no instance refresh)."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from fleet.cli import main

ROOT = Path(__file__).resolve().parent.parent
NODES = """\
__base__: {instance_type: m5.large, source_ami: ami-12345678}
workers: {autoscale: {node_min: 0, node_max: 2}}
cron: {autoscale: false}
batch: {autoscale: {node_min: 0, node_max: 3}}
"""


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == "fleet 0.1.0"


def test_deploy_help_says_the_timeout_default(capsys):
    with pytest.raises(SystemExit):
        main(["deploy", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    timeout_help = help_text[help_text.index("--timeout"):]
    assert "default:" in timeout_help.split("--", 2)[1], timeout_help[:300]
    assert "[GROUP]" in help_text, "GROUP is optional: every autoscaled group"


def _none_paths(value, path=()):
    if value is None:
        yield ".".join(path)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _none_paths(v, (*path, k))


def test_show_prints_resolved_values(capsys):
    shown = {}
    for group in ("12_04-bee", "api", "12_04-cron"):
        assert main(["--project", str(ROOT), "show", group, "--stack", "staging"]) == 0
        shown[group] = json.loads(capsys.readouterr().out)
    assert shown["12_04-bee"]["autoscale"]["on_demand"]["max"] == 2  # node_max (staging's override)
    assert isinstance(shown["api"]["http"]["priority"], int) and shown["api"]["http"]["priority"] >= 1000
    assert shown["api"]["region"] == "us-east-1"  # the stack's
    # by builder unless set: ami converges at boot, a baked image does not
    assert shown["12_04-cron"]["boot"]["converge"] is True and shown["12_04-bee"]["boot"]["converge"] is False
    assert (shown["api"]["rollout"]["strategy"], shown["12_04-bee"]["rollout"]["strategy"]) == ("blue_green", "refresh")
    for group, data in shown.items():
        nulls = [p for p in _none_paths(data) if p not in ("image.path", "image.command", "http", "autoscale",
                                                         "boot.chef_package", "rollout.standby_min")]
        assert not nulls, (group, nulls)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "nodes.yaml").write_text(NODES)
    (tmp_path / "Pulumi.staging.yaml").write_text("config: {}\n")
    return tmp_path


def _pair(group: str, version: int = 1) -> list[str]:
    """A group's launch template and its two ASGs in moto, as `pulumi up` leaves them (tags, version)."""
    ec2, autoscaling = boto3.client("ec2"), boto3.client("autoscaling")
    lt = ec2.create_launch_template(LaunchTemplateName=f"lt-{group}", LaunchTemplateData={
        "ImageId": "ami-12345678", "InstanceType": "m5.large"})["LaunchTemplate"]["LaunchTemplateId"]
    names = []
    for capacity in ("on-demand", "spot"):
        name = f"fleet-staging-{group}-{capacity}"
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name, MinSize=0, MaxSize=2, DesiredCapacity=0, AvailabilityZones=["us-east-1a"],
            LaunchTemplate={"LaunchTemplateId": lt, "Version": "1"},
            Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": True} for k, v in
                  (("fleet:group", group), ("fleet:stack", "staging"), ("fleet:capacity", capacity))])
        names.append(name)
    for _ in range(version - 1):
        ec2.create_launch_template_version(LaunchTemplateId=lt, SourceVersion="1",
                                           LaunchTemplateData={"InstanceType": "m5.xlarge"})
    return names


def _no_refreshes_in_flight(monkeypatch):
    """moto has no instance refresh API: answer DescribeInstanceRefreshes (no refresh in flight) the way
    botocore's Stubber answers a call, through a before-call hook on the real client; every other call
    goes to the moto server."""
    from botocore.awsrequest import AWSResponse

    import fleet.ops.aws
    import fleet.ops.rollout

    real = fleet.ops.aws.client

    def client(service, **kwargs):
        made = real(service, **kwargs)
        if service == "autoscaling":
            made.meta.events.register("before-call.autoscaling.DescribeInstanceRefreshes", lambda **_: (
                AWSResponse(None, 200, {}, None), {"InstanceRefreshes": [], "ResponseMetadata": {}}))
        return made

    monkeypatch.setattr(fleet.ops.aws, "client", client)
    monkeypatch.setattr(fleet.ops.rollout, "aws_client", client)


def test_deploy_without_group_rolls_every_autoscaled_group_in_order(aws, project, capsys, monkeypatch):
    _no_refreshes_in_flight(monkeypatch)
    expected = _pair("workers") + _pair("batch")
    code = main(["--project", str(project), "deploy", "--stack", "staging", "--endpoint-url", aws])
    out, err = capsys.readouterr()
    assert code == 0, err
    results = [json.loads(line) for line in out.splitlines()]
    assert [r["asg"] for r in results] == expected  # nodes.yaml order, on-demand (canary) before spot
    assert {r["result"] for r in results} == {"no-op"}  # already on the latest version


def test_deploy_without_group_stops_at_the_first_group_that_fails(aws, project, capsys):
    """workers fails (its newer version needs an instance refresh, which moto lacks): batch, next in
    nodes.yaml, is not rolled at all, and the exit status is the failure's."""
    _pair("workers", version=2)
    _pair("batch")
    code = main(["--project", str(project), "deploy", "--stack", "staging", "--endpoint-url", aws])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "fleet deploy workers: " in err and "fleet deploy batch" not in err, err


def test_deploy_an_api_the_endpoint_lacks_is_one_line(aws, project, capsys):
    _pair("workers", version=2)  # a newer version: deploy must start an instance refresh, which moto lacks
    code = main(["--project", str(project), "deploy", "workers", "--stack", "staging", "--endpoint-url", aws])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("fleet deploy workers: ") and "InstanceRefresh" in last, err


def test_deploy_to_an_endpoint_that_is_not_there_is_one_line(project, capsys, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setattr("fleet.ops.aws.NO_ANSWER_BACKOFF", (0.01,) * 4)  # the retries, without their waits
    code = main(["--project", str(project), "deploy", "workers", "--stack", "staging",
                 "--endpoint-url", "http://127.0.0.1:9"])
    out, err = capsys.readouterr()
    assert code == 1 and out == "" and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("fleet deploy workers: ") and "127.0.0.1:9" in last, err
