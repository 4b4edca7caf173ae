"""Rollout under mocks: one Command per ASG of an autoscaled group, triggered by the launch template's
latest version, running `python -m fleet.rollout` for its ASG; the on-demand canary first, the spot ASG
after it; both ASGs ignore their launch template version (and desired capacity); none for one-off groups.
The Command lines the program builds are then run through fleet.rollout's own CLI against a Stubber
(the real service model): a first creation is a no-op, a rolled-back refresh exits 1 with one line."""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime
from pathlib import Path

import pytest
from botocore.stub import Stubber

from components.asg_pair import ON_DEMAND_VERSION_PATH, SPOT_VERSION_PATH
from components.node_group import NodeGroup, NodeGroupArgs
from components.rollout import Rollout, RolloutArgs, rollout_command_line
from fleet import aws as fleet_aws
from fleet import rollout
from fleet.stack import StackConfig
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
    line = rollout_command_line("web od'1", "lt-0123", 7.0, ["fleet-prod-web-health-5xx", "a b;rm -rf /"], 150,
                                "us-east-1")
    argv = shlex.split(line)
    assert argv[:3] == ["python", "-m", "fleet.rollout"]
    seen = {}
    monkeypatch.setattr(rollout, "aws_client", lambda *a, **k: "client")
    monkeypatch.setattr(rollout, "roll", lambda *a, **k: seen.update(args=a, kwargs=k) or
                        rollout.RolloutResult(a[0], a[2], "no-op"))
    assert rollout.main(argv[3:]) == 0
    assert seen["args"] == ("web od'1", "lt-0123", 7)
    assert seen["kwargs"]["alarms"] == ["fleet-prod-web-health-5xx", "a b;rm -rf /"]
    assert seen["kwargs"]["warmup"] == 150
    bare = "python -m fleet.rollout --asg a --launch-template-id lt-1 --version 2"
    assert rollout_command_line("a", "lt-1", 2) == bare


def test_component_runs_fleet_rollout_in_the_project_triggered_by_the_version():
    def program():
        ro = Rollout("web-spot-rollout", RolloutArgs(
            asg_name="web-spot-1234567", launch_template_id="lt-0123456789abcdef0", launch_template_version=4,
            region="us-east-1", project_dir=PROJECT, alarm_names=["fleet-prod-web-health-5xx-abc"], warmup=120))
        return ro.command.id
    r = run(program)
    (cmd,) = r.of_type(COMMAND)
    assert cmd.parent_type == ROLLOUT and cmd.name == "web-spot-rollout-refresh"
    assert cmd.inputs["create"] == ("python -m fleet.rollout --asg web-spot-1234567 --launch-template-id "
                                    "lt-0123456789abcdef0 --version 4 --alarm fleet-prod-web-health-5xx-abc "
                                    "--warmup 120 --region us-east-1")
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
        assert argv[:3] == ["python", "-m", "fleet.rollout"]
        opts = {}
        for flag, value in zip(argv[3::2], argv[4::2], strict=True):
            opts.setdefault(flag, []).append(value)
        assert opts == {"--asg": [asgs[capacity].outputs["name"]], "--launch-template-id": [lt.id],
                        "--version": [str(lt.outputs["latestVersion"])], "--alarm": alarms,
                        "--warmup": ["240"], "--region": ["eu-west-1"]}
        assert cmd.inputs["dir"] == str(PROJECT) and cmd.inputs["environment"] == {"PYTHONPATH": str(PROJECT)}


def test_on_demand_is_the_canary_and_spot_waits_for_it(www):
    cmds, _ = _by_capacity(www)
    assert cmds["on-demand"].name in cmds["spot"].options["dependsOn"]
    assert cmds["spot"].name not in cmds["on-demand"].options["dependencies"]
    # each refresh also waits for its ASG's drain hook (its terminations go through it)
    assert "www-spot-drain" in cmds["spot"].options["dependsOn"]
    assert "www-on-demand-drain" in cmds["on-demand"].options["dependsOn"]


def test_both_asgs_ignore_desired_capacity_and_their_launch_template_version(www):
    _, asgs = _by_capacity(www)
    for asg in asgs.values():
        ignored = set(asg.options["ignoreChanges"])
        assert {"desiredCapacity", ON_DEMAND_VERSION_PATH, SPOT_VERSION_PATH} <= ignored
        assert "launchTemplate" not in ignored and "mixedInstancesPolicy" not in ignored, \
            "only the version: a new template id or instance types still reach the ASG"
    # the paths name where each ASG really keeps its version
    od, spot = asgs["on-demand"].inputs, asgs["spot"].inputs
    assert od["launchTemplate"]["version"] == "1"
    assert spot["mixedInstancesPolicy"]["launchTemplate"]["launchTemplateSpecification"]["version"] == "1"
    assert ON_DEMAND_VERSION_PATH == "launchTemplate.version"
    assert SPOT_VERSION_PATH == "mixedInstancesPolicy.launchTemplate.launchTemplateSpecification.version"


def test_worker_group_rollout_has_no_alarm_gate():
    r = _node(worker_group("jobs", autoscale={"node_min": 1, "node_max": 4, "timeout": 90}))
    cmds, _ = _by_capacity(r)
    assert set(cmds) == {"spot", "on-demand"}
    for cmd in cmds.values():
        assert "--alarm" not in cmd.inputs["create"] and "--warmup 90" in cmd.inputs["create"]


def test_no_rollout_for_autoscale_false_groups():
    r = _node(group("cron", instances=2, image={"builder": "ami"}))
    assert not r.of_type(ROLLOUT) and not r.of_type(COMMAND) and not r.of_type(ASG)


# -- the Command lines through fleet.rollout's CLI ------------------------------------------------

def _described(asg: dict, lt_id: str, version: str) -> dict:
    """DescribeAutoScalingGroups for the ASG as the program creates it, its instances on `version`."""
    spec = {"LaunchTemplateId": lt_id, "Version": version}
    g = {"AutoScalingGroupName": asg["outputs"]["name"], "MinSize": 1, "MaxSize": 4, "DesiredCapacity": 1,
         "DefaultCooldown": 300, "AvailabilityZones": ["eu-west-1a"], "HealthCheckType": "ELB",
         "CreatedTime": datetime(2024, 5, 1, tzinfo=UTC),
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
    """The Command's `create` as fleet.rollout.main's argv (after `python -m fleet.rollout`)."""
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


@pytest.mark.parametrize("capacity", ["on-demand", "spot"])
def test_first_creation_is_a_no_op(www, monkeypatch, capsys, capacity):
    """On create the ASG already runs latest_version: the rollout looks, finds it there, starts nothing."""
    (lt,) = www.of_type(LT)
    cmds, asgs = _by_capacity(www)
    asg = {"inputs": asgs[capacity].inputs, "outputs": asgs[capacity].outputs}
    created_at = (asg["inputs"].get("launchTemplate") or asg["inputs"].get("mixedInstancesPolicy", {})
                  .get("launchTemplate", {}).get("launchTemplateSpecification"))["version"]
    name = asg["outputs"]["name"]

    def script(stub):
        described = {"AutoScalingGroups": [_described(asg, lt.id, created_at)]}
        stub.add_response("describe_auto_scaling_groups", described, {"AutoScalingGroupNames": [name]})
        stub.add_response("describe_instance_refreshes", {"InstanceRefreshes": []}, {"AutoScalingGroupName": name})

    assert _run_cli(monkeypatch, _argv(cmds[capacity]), script) == 0  # no StartInstanceRefresh: the Stubber would fail
    out = capsys.readouterr().out.strip().splitlines()
    assert json.loads(out[-1]) == {"asg": name, "version": 1, "result": "no-op", "refresh_id": None}


def test_a_rolled_back_refresh_fails_the_command_with_one_line(www, monkeypatch, capsys):
    """`pulumi up` shows the Command's failure: exit 1 and the reason, the old version kept."""
    (lt,) = www.of_type(LT)
    cmds, asgs = _by_capacity(www)
    od = {"inputs": asgs["on-demand"].inputs, "outputs": asgs["on-demand"].outputs}
    name = od["outputs"]["name"]
    argv = _argv(cmds["on-demand"])
    argv[argv.index("--version") + 1] = "2"  # the launch template version a new image made
    reason = "Instance refresh failed: alarm fleet-prod-www-health-5xx in ALARM"

    def script(stub):
        stub.add_response("describe_auto_scaling_groups",
                          {"AutoScalingGroups": [_described(od, lt.id, "1")]}, {"AutoScalingGroupNames": [name]})
        stub.add_response("describe_instance_refreshes", {"InstanceRefreshes": []}, {"AutoScalingGroupName": name})
        stub.add_response("start_instance_refresh", {"InstanceRefreshId": "r-1"}, None)
        stub.add_response("describe_instance_refreshes", {"InstanceRefreshes": [
            {"InstanceRefreshId": "r-1", "AutoScalingGroupName": name, "Status": "RollbackSuccessful",
             "PercentageComplete": 0, "StatusReason": reason}]}, None)

    assert _run_cli(monkeypatch, argv, script) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("rollout failed: ") and "rolled back to the previous launch template version" in err[-1]
    assert reason in err[-1]
