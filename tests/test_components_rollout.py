"""Rollout under mocks: one Command per ASG of an autoscaled group, triggered by the launch template's
latest version, running `python -m fleet.ops.rollout` for its ASG (found by tags); the on-demand canary first,
the spot rollout after it, and each ASG updated only after its own rollout (so AWS's auto-rollback returns
to the version the ASG had, and Pulumi's state never records a version AWS does not run); none for one-off
groups. The Command lines the program builds are then run through fleet.ops.rollout's own CLI against a Stubber
(the real service model): a stack's first creation is a no-op, an ASG already on the version is a no-op, a
rolled-back refresh exits 1 with one line."""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime
from pathlib import Path

import pytest
from botocore.stub import Stubber

from components.node_group import NodeGroup, NodeGroupArgs
from components.rollout import Rollout, RolloutArgs, rollout_command_line
from fleet.ops import aws as fleet_aws
from fleet.ops import rollout
from fleet.spec.stack import StackConfig
from tests.pulumi_mocks import Run, group, http_group, run, worker_group

COMMAND = "command:local:Command"
ROLLOUT = "fleet:rollout:Rollout"
ASG = "aws:autoscaling/group:Group"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
STACK = StackConfig(name="prod", region="eu-west-1", environment="production")
PROJECT = Path("/srv/fleet")


def _node(g) -> Run:
    def program():
        node = NodeGroup(g.name, NodeGroupArgs(
            group=g, stack=STACK, image_hash="ab" * 32, project_dir=PROJECT, vpc_id="vpc-0a1b2c3d",
            private_subnet_ids=["subnet-00000011"], security_group_ids=["sg-00000001"],
            listener_arn="arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/x/1/2" if g.http else None,
            load_balancer_arn_suffix="app/x/1" if g.http else None, rule_priority=1000 if g.http else None))
        return node.outputs
    return run(program, stack=STACK.name, region=STACK.region)


def _by_capacity(r: Run) -> tuple[dict, dict]:
    """({capacity: rollout Command}, {capacity: ASG})."""
    cmds = {x.parent_name.rsplit("-rollout", 1)[0].split("-", 1)[1]: x
            for x in r.of_type(COMMAND) if x.parent_type == ROLLOUT}
    asgs = {next(t["value"] for t in x.inputs["tags"] if t["key"] == "fleet:capacity"): x for x in r.of_type(ASG)}
    return cmds, asgs


@pytest.fixture(scope="module")
def www() -> Run:
    return _node(http_group("www", autoscale={"node_min": 2, "node_max": 6, "timeout": 240}))


def test_command_line_is_shell_quoted_and_parsed_by_fleet_rollouts_cli(monkeypatch):
    line = rollout_command_line("web od'1", "prod", "on-demand", "lt-0123", 7.0,
                                ["fleet-prod-web-health-5xx", "a b;rm -rf /"], 150, "us-east-1")
    argv = shlex.split(line)
    assert argv[:3] == ["python", "-m", "fleet.ops.rollout"]
    seen = {}
    monkeypatch.setattr(rollout, "aws_client", lambda *a, **k: "client")
    monkeypatch.setattr(rollout, "find_group_asgs", lambda client, g, s: seen.update(found=(g, s)) or
                        {"on-demand": [{"AutoScalingGroupName": "asg-od"}], "spot": [{"AutoScalingGroupName": "x"}]})
    monkeypatch.setattr(rollout, "roll", lambda *a, **k: seen.update(args=a, kwargs=k) or
                        rollout.RolloutResult(a[0], a[2], "no-op"))
    assert rollout.main(argv[3:]) == 0
    assert seen["found"] == ("web od'1", "prod")
    assert seen["args"] == ("asg-od", "lt-0123", 7)
    assert seen["kwargs"]["alarms"] == ["fleet-prod-web-health-5xx", "a b;rm -rf /"]
    assert seen["kwargs"]["warmup"] == 150
    bare = "python -m fleet.ops.rollout --group a --stack s --capacity spot --launch-template-id lt-1 --version 2"
    assert rollout_command_line("a", "s", "spot", "lt-1", 2) == bare


def test_component_runs_fleet_rollout_in_the_project_triggered_by_the_version():
    def program():
        ro = Rollout("web-spot-rollout", RolloutArgs(
            group="web", stack="prod", capacity="spot", launch_template_id="lt-0123456789abcdef0",
            launch_template_version=4, region="us-east-1", project_dir=PROJECT,
            alarm_names=["fleet-prod-web-health-5xx-abc"], warmup=120))
        return ro.command.id
    r = run(program)
    (cmd,) = r.of_type(COMMAND)
    assert cmd.parent_type == ROLLOUT and cmd.name == "web-spot-rollout-refresh"
    assert cmd.inputs["create"] == ("python -m fleet.ops.rollout --group web --stack prod --capacity spot "
                                    "--launch-template-id lt-0123456789abcdef0 --version 4 "
                                    "--alarm fleet-prod-web-health-5xx-abc --warmup 120 --region us-east-1")
    assert cmd.inputs["triggers"] == [4]
    assert cmd.inputs["dir"] == str(PROJECT) and cmd.inputs["environment"] == {"PYTHONPATH": str(PROJECT)}
    assert "update" not in cmd.inputs and "delete" not in cmd.inputs, "a new version replaces it: create runs"
    (component,) = r.of_type(ROLLOUT)
    assert component.urn in r.component_outputs


def test_one_rollout_per_asg_triggered_by_the_templates_latest_version(www):
    (lt,) = www.of_type(LT)
    cmds, asgs = _by_capacity(www)
    assert set(cmds) == set(asgs) == {"spot", "on-demand"}
    alarms = www.value["health_alarm_names"]
    assert len(alarms) == 2
    for capacity, cmd in cmds.items():
        assert cmd.inputs["triggers"] == [lt.outputs["latestVersion"]]
        argv = shlex.split(cmd.inputs["create"])
        assert argv[:3] == ["python", "-m", "fleet.ops.rollout"]
        opts = {}
        for flag, value in zip(argv[3::2], argv[4::2], strict=True):
            opts.setdefault(flag, []).append(value)
        assert opts == {"--group": ["www"], "--stack": ["prod"], "--capacity": [capacity],
                        "--launch-template-id": [lt.id], "--version": [str(lt.outputs["latestVersion"])],
                        "--alarm": alarms, "--warmup": ["240"], "--region": ["eu-west-1"]}
        assert cmd.inputs["dir"] == str(PROJECT) and cmd.inputs["environment"] == {"PYTHONPATH": str(PROJECT)}


def test_on_demand_is_the_canary_and_spot_waits_for_it(www):
    cmds, _ = _by_capacity(www)
    assert cmds["on-demand"].name in cmds["spot"].options["dependsOn"]
    assert cmds["spot"].name not in cmds["on-demand"].options["dependencies"]


def test_each_asg_is_updated_only_after_its_rollout(www):
    cmds, asgs = _by_capacity(www)
    for capacity, asg in asgs.items():
        assert cmds[capacity].name in asg.options["dependsOn"]
        # the rollout does not wait for the ASG (it finds it by tags): no cycle, and it runs first
        assert asg.name not in cmds[capacity].options["dependencies"]
    assert cmds["spot"].name not in asgs["on-demand"].options["dependsOn"]


def test_asgs_ignore_desired_capacity_but_not_their_version(www):
    """The rollout has moved AWS to the new version before Pulumi updates the ASG, so the ASG follows
    latest_version and Pulumi's state always holds the version AWS runs (no stale ignored input)."""
    (lt,) = www.of_type(LT)
    _, asgs = _by_capacity(www)
    for asg in asgs.values():
        assert asg.options["ignoreChanges"] == ["desiredCapacity"]
    od, spot = asgs["on-demand"].inputs, asgs["spot"].inputs
    version = str(lt.outputs["latestVersion"])
    assert od["launchTemplate"]["version"] == version
    assert spot["mixedInstancesPolicy"]["launchTemplate"]["launchTemplateSpecification"]["version"] == version


def test_worker_group_rollout_has_no_alarm_gate():
    r = _node(worker_group("jobs", autoscale={"node_min": 1, "node_max": 4, "timeout": 90}))
    cmds, _ = _by_capacity(r)
    assert set(cmds) == {"spot", "on-demand"}
    for cmd in cmds.values():
        assert "--alarm" not in cmd.inputs["create"] and "--warmup 90" in cmd.inputs["create"]


def test_no_rollout_for_autoscale_false_groups():
    r = _node(group("cron", instances=2, image={"builder": "ami"}))
    assert not r.of_type(ROLLOUT) and not r.of_type(COMMAND) and not r.of_type(ASG)


# -- the Command lines through fleet.ops.rollout's CLI ------------------------------------------------

def _described(asg: dict, lt_id: str, version: str, capacity: str) -> dict:
    """DescribeAutoScalingGroups for the ASG as the program creates it, its instances on `version`."""
    spec = {"LaunchTemplateId": lt_id, "Version": version}
    g = {"AutoScalingGroupName": asg["outputs"]["name"], "MinSize": 1, "MaxSize": 4, "DesiredCapacity": 1,
         "DefaultCooldown": 300, "AvailabilityZones": ["eu-west-1a"], "HealthCheckType": "ELB",
         "CreatedTime": datetime(2024, 5, 1, tzinfo=UTC),
         "Tags": [{"Key": "fleet:capacity", "Value": capacity, "ResourceId": asg["outputs"]["name"]}],
         "Instances": [{"InstanceId": "i-0123456789abcdef0", "AvailabilityZone": "eu-west-1a",
                        "LifecycleState": "InService", "HealthStatus": "Healthy", "ProtectedFromScaleIn": False,
                        "LaunchTemplate": spec}]}
    mixed = asg["inputs"].get("mixedInstancesPolicy")
    if mixed:
        g["MixedInstancesPolicy"] = {"LaunchTemplate": {
            "LaunchTemplateSpecification": spec,
            "Overrides": [{"InstanceType": o["instanceType"]} for o in mixed["launchTemplate"]["overrides"]]}}
    else:
        g["LaunchTemplate"] = spec
    return g


def _argv(cmd) -> list[str]:
    """The Command's `create` as fleet.ops.rollout.main's argv (after `python -m fleet.ops.rollout`)."""
    return shlex.split(cmd.inputs["create"])[3:]


def _run_cli(monkeypatch, argv, script) -> int:
    client = fleet_aws.client("autoscaling", region="eu-west-1")
    stub = Stubber(client)
    script(stub)
    monkeypatch.setattr(rollout, "aws_client", lambda *a, **k: client)
    with stub:
        code = rollout.main(argv + ["--poll", "0"])
    stub.assert_no_pending_responses()
    return code


BY_TAGS = {"Filters": [{"Name": "tag:fleet:group", "Values": ["www"]}, {"Name": "tag:fleet:stack", "Values": ["prod"]}]}


@pytest.mark.parametrize("capacity", ["on-demand", "spot"])
def test_a_stacks_first_up_has_nothing_to_roll(www, monkeypatch, capsys, capacity):
    """The rollout runs before its ASG exists: it finds none by tags and exits 0 (no refresh)."""
    cmds, _ = _by_capacity(www)

    def script(stub):
        stub.add_response("describe_auto_scaling_groups", {"AutoScalingGroups": []}, BY_TAGS)

    assert _run_cli(monkeypatch, _argv(cmds[capacity]), script) == 0  # a StartInstanceRefresh would fail the Stubber
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["result"] == "no-op" and out["asg"] is None


@pytest.mark.parametrize("capacity", ["on-demand", "spot"])
def test_an_asg_already_on_the_version_is_a_no_op(www, monkeypatch, capsys, capacity):
    (lt,) = www.of_type(LT)
    cmds, asgs = _by_capacity(www)
    asg = {"inputs": asgs[capacity].inputs, "outputs": asgs[capacity].outputs}
    name = asg["outputs"]["name"]
    version = str(lt.outputs["latestVersion"])

    def script(stub):
        described = {"AutoScalingGroups": [_described(asg, lt.id, version, capacity)]}
        stub.add_response("describe_auto_scaling_groups", described, BY_TAGS)
        stub.add_response("describe_auto_scaling_groups", described, {"AutoScalingGroupNames": [name]})
        stub.add_response("describe_instance_refreshes", {"InstanceRefreshes": []}, {"AutoScalingGroupName": name})

    assert _run_cli(monkeypatch, _argv(cmds[capacity]), script) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out == {"asg": name, "version": int(version), "result": "no-op", "refresh_id": None}


def test_a_rolled_back_refresh_fails_the_command_with_one_line(www, monkeypatch, capsys):
    """`pulumi up` shows the Command's failure (exit 1 and the reason) and stops before the ASG update."""
    (lt,) = www.of_type(LT)
    cmds, asgs = _by_capacity(www)
    od = {"inputs": asgs["on-demand"].inputs, "outputs": asgs["on-demand"].outputs}
    name = od["outputs"]["name"]
    argv = _argv(cmds["on-demand"])
    argv[argv.index("--version") + 1] = "2"  # the launch template version a new image made
    reason = "Instance refresh failed: alarm fleet-prod-www-health-5xx in ALARM"

    def script(stub):
        described = {"AutoScalingGroups": [_described(od, lt.id, "1", "on-demand")]}
        stub.add_response("describe_auto_scaling_groups", described, BY_TAGS)
        stub.add_response("describe_auto_scaling_groups", described, {"AutoScalingGroupNames": [name]})
        stub.add_response("describe_instance_refreshes", {"InstanceRefreshes": []}, {"AutoScalingGroupName": name})
        stub.add_response("start_instance_refresh", {"InstanceRefreshId": "r-1"}, None)
        stub.add_response("describe_instance_refreshes", {"InstanceRefreshes": [
            {"InstanceRefreshId": "r-1", "AutoScalingGroupName": name, "Status": "RollbackSuccessful",
             "PercentageComplete": 0, "StatusReason": reason}]}, None)

    assert _run_cli(monkeypatch, argv, script) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("rollout failed: ") and "rolled back to the previous launch template version" in err[-1]
    assert reason in err[-1]


def test_two_asgs_with_the_same_tags_are_refused(www, monkeypatch, capsys):
    (lt,) = www.of_type(LT)
    cmds, asgs = _by_capacity(www)
    od = {"inputs": asgs["on-demand"].inputs, "outputs": asgs["on-demand"].outputs}
    twice = {"AutoScalingGroups": [_described(od, lt.id, "1", "on-demand")] * 2}

    def script(stub):
        stub.add_response("describe_auto_scaling_groups", twice, BY_TAGS)

    assert _run_cli(monkeypatch, _argv(cmds["on-demand"]), script) == 1
    assert "2 ASGs tagged" in capsys.readouterr().err
