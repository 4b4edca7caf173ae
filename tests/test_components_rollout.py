"""Rollout component: one Command per node group, triggered by the launch template's latest version, running
`python -m fleet.ops.rollout` for the group's pair (found by tags): on-demand canary, soak, spot; both ASGs are
updated after it; no alarm gate for groups without http. The Command lines the program builds are then run
through fleet.ops.rollout's own CLI against a Stubber (moto has no instance refresh): a stack's first `up` is a
no-op, a failed step exits 1 with one line naming the group and the step."""

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
from fleet.ops import rollout, timing
from fleet.spec.stack import StackConfig
from tests.pulumi_mocks import Run, group, http_group, run, worker_group

COMMAND = "command:local:Command"
ROLLOUT = "fleet:rollout:Rollout"
ASG = "aws:autoscaling/group:Group"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
STACK = StackConfig(name="prod", region="eu-west-1", environment="production")
PROJECT = Path(__file__).resolve().parent.parent


def _node(g) -> Run:
    def program():
        node = NodeGroup(g.name, NodeGroupArgs(
            group=g, stack=STACK, image_hash="ab" * 32, project_dir=PROJECT, vpc_id="vpc-0a1b2c3d",
            private_subnet_ids=["subnet-00000011"], security_group_ids=["sg-00000001"],
            listener_arn="arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/x/1/2" if g.http else None,
            load_balancer_arn_suffix="app/x/1" if g.http else None, rule_priority=1000 if g.http else None))
        return node.outputs
    return run(program, stack=STACK.name, region=STACK.region)


def _asgs(r: Run) -> dict:
    return {next(t["value"] for t in x.inputs["tags"] if t["key"] == "fleet:capacity"): x for x in r.of_type(ASG)}


def _cmd(r: Run):
    (cmd,) = [x for x in r.of_type(COMMAND) if x.parent_type == ROLLOUT]
    return cmd


@pytest.fixture(scope="module")
def www() -> Run:
    return _node(http_group("www", autoscale={"node_min": 2, "node_max": 6, "timeout": 240},
                            rollout={"bake_time": 600, "strategy": "refresh"}))


def test_command_line_is_shell_quoted_and_parsed_by_fleet_rollouts_cli(monkeypatch):
    line = rollout_command_line(PROJECT, "web od'1", "prod", "lt-0123", 7.0,
                                ["fleet-prod-web-health-5xx", "a b;rm -rf /"], warmup=150, bake_time=60, timeout=900,
                                rollback_timeout=400, region="us-east-1")
    argv = shlex.split(line)
    assert argv[:3] == [".venv/bin/python", "-m", "fleet.ops.rollout"]
    seen = {}
    monkeypatch.setattr(rollout, "aws_client", lambda *a, **k: "client")
    monkeypatch.setattr(rollout, "roll_group", lambda *a, **k: seen.update(args=a, kwargs=k) or [])
    assert rollout.main(argv[3:]) == 0
    assert seen["args"] == ("web od'1", "prod", "lt-0123", 7)
    k = seen["kwargs"]
    assert k["alarms"] == ["fleet-prod-web-health-5xx", "a b;rm -rf /"]
    assert (k["warmup"], k["bake_time"], k["timeout"], k["rollback_timeout"]) == (150, 60, 900.0, 400.0)
    bare = (".venv/bin/python -m fleet.ops.rollout --group a --stack s --launch-template-id lt-1 --version 2 "
            "--bake-time 300 --timeout 3600 --rollback-timeout 1800")
    assert rollout_command_line(PROJECT, "a", "s", "lt-1", 2) == bare


def test_component_runs_fleet_rollout_in_the_project_triggered_by_the_version():
    g = http_group("web", autoscale={"node_min": 2, "node_max": 6, "timeout": 120})

    def program():
        ro = Rollout("web-rollout", RolloutArgs(
            group=g, stack="prod", launch_template_id="lt-0123456789abcdef0",
            launch_template_version=4, region="us-east-1", project_dir=PROJECT,
            alarm_names=["fleet-prod-web-health-5xx-abc"]))
        return ro.command.id
    r = run(program)
    (cmd,) = r.of_type(COMMAND)
    assert cmd.parent_type == ROLLOUT and cmd.name == "web-rollout-refresh"
    assert cmd.inputs["create"] == (
        ".venv/bin/python -m fleet.ops.rollout --group web --stack prod --launch-template-id lt-0123456789abcdef0 "
        "--version 4 "
        f"--alarm fleet-prod-web-health-5xx-abc --warmup 120 --bake-time 300 --timeout {timing.rollout_timeout(g)} "
        f"--rollback-timeout {timing.rollback_timeout(g)} --region us-east-1 --no-launch-hook")
    assert cmd.inputs["triggers"] == [4]
    assert "dir" not in cmd.inputs and "environment" not in cmd.inputs
    assert "update" not in cmd.inputs and "delete" not in cmd.inputs, "a new version replaces it: create runs"
    (component,) = r.of_type(ROLLOUT)
    assert component.urn in r.component_outputs


def test_one_rollout_per_group_triggered_by_the_templates_latest_version(www):
    (lt,) = www.of_type(LT)
    assert len(www.of_type(ROLLOUT)) == 1
    cmd = _cmd(www)
    alarms = www.value["health_alarm_names"]
    assert len(alarms) == 2
    assert cmd.inputs["triggers"] == [lt.outputs["latestVersion"]]
    argv = shlex.split(cmd.inputs["create"])
    assert argv[:3] == [".venv/bin/python", "-m", "fleet.ops.rollout"]
    assert "dir" not in cmd.inputs and "environment" not in cmd.inputs
    assert argv.pop() == "--no-launch-hook", "www does not converge at boot: the rollout removes any launch hook"
    opts = {}
    for flag, value in zip(argv[3::2], argv[4::2], strict=True):
        opts.setdefault(flag, []).append(value)
    g = http_group("www", autoscale={"node_min": 2, "node_max": 6, "timeout": 240},
                   rollout={"bake_time": 600, "strategy": "refresh"})
    assert opts == {"--group": ["www"], "--stack": ["prod"], "--launch-template-id": [lt.id],
                    "--version": [str(lt.outputs["latestVersion"])], "--alarm": alarms, "--warmup": ["240"],
                    "--bake-time": ["600"], "--timeout": [str(timing.rollout_timeout(g))],
                    "--rollback-timeout": [str(timing.rollback_timeout(g))], "--region": ["eu-west-1"]}
    assert timing.rollout_timeout(g) >= 2 * timing.replace_seconds(g) + 600


def test_both_asgs_are_updated_only_after_the_groups_rollout(www):
    cmd, asgs = _cmd(www), _asgs(www)
    assert set(asgs) == {"spot", "on-demand"}
    for asg in asgs.values():
        assert cmd.name in asg.options["dependsOn"]
        # the rollout does not wait for the ASGs (it finds them by tags): no cycle, and it runs first
        assert asg.name not in cmd.options["dependencies"]


def test_asgs_ignore_desired_capacity_but_not_their_version(www):
    """The rollout has moved AWS to the new version before Pulumi updates the ASG, so the ASG follows
    latest_version and Pulumi's state always holds the version AWS runs (no stale ignored input)."""
    (lt,) = www.of_type(LT)
    asgs = _asgs(www)
    for asg in asgs.values():
        assert "desiredCapacity" in asg.options["ignoreChanges"]
        assert not any("version" in c.lower() or "launchTemplate" in c or "mixed" in c
                       for c in asg.options["ignoreChanges"])
    od, spot = asgs["on-demand"].inputs, asgs["spot"].inputs
    version = str(lt.outputs["latestVersion"])
    assert od["launchTemplate"]["version"] == version
    assert spot["mixedInstancesPolicy"]["launchTemplate"]["launchTemplateSpecification"]["version"] == version


def test_worker_group_rollout_has_no_alarm_gate():
    r = _node(worker_group("jobs", autoscale={"node_min": 1, "node_max": 4, "timeout": 90}))
    create = _cmd(r).inputs["create"]
    assert "--alarm" not in create and "--warmup 90" in create and "--bake-time 300" in create


def test_no_rollout_for_autoscale_false_groups():
    r = _node(group("cron", instances=2, image={"builder": "ami"}))
    assert not r.of_type(ROLLOUT) and not r.of_type(ASG)
    assert not [c for c in r.of_type(COMMAND) if c.parent_type == ROLLOUT]


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


def _no_launch_hooks(stub, names):
    """The rollout's first step for a group that does not converge: no launching hook on either ASG."""
    for capacity in ("on-demand", "spot"):
        stub.add_response("describe_lifecycle_hooks", {"LifecycleHooks": []},
                          {"AutoScalingGroupName": names[capacity], "LifecycleHookNames": ["fleet-launch"]})


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


def test_a_stacks_first_up_has_nothing_to_roll(www, monkeypatch, capsys):
    """The rollout runs before its ASGs exist: it finds none by tags and exits 0 (no refresh)."""
    def script(stub):
        stub.add_response("describe_auto_scaling_groups", {"AutoScalingGroups": []}, BY_TAGS)

    assert _run_cli(monkeypatch, _argv(_cmd(www)), script) == 0  # a StartInstanceRefresh would fail the Stubber
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["result"] == "no-op" and out["asgs"] == []


def _pair(www, version: str) -> tuple[dict, dict]:
    (lt,) = www.of_type(LT)
    asgs = _asgs(www)
    described = {c: _described({"inputs": a.inputs, "outputs": a.outputs}, lt.id, version, c) for c, a in asgs.items()}
    return described, {c: a.outputs["name"] for c, a in asgs.items()}


def test_a_pair_already_on_the_version_is_a_no_op(www, monkeypatch, capsys):
    (lt,) = www.of_type(LT)
    version = str(lt.outputs["latestVersion"])
    described, names = _pair(www, version)

    def script(stub):
        stub.add_response("describe_auto_scaling_groups",
                          {"AutoScalingGroups": [described["on-demand"], described["spot"]]}, BY_TAGS)
        for capacity in ("on-demand", "spot"):
            stub.add_response("describe_instance_refreshes", {"InstanceRefreshes": []},
                              {"AutoScalingGroupName": names[capacity]})
        _no_launch_hooks(stub, names)
        for capacity in ("on-demand", "spot"):
            stub.add_response("describe_instance_refreshes", {"InstanceRefreshes": []},
                              {"AutoScalingGroupName": names[capacity]})
            stub.add_response("describe_auto_scaling_groups", {"AutoScalingGroups": [described[capacity]]},
                              {"AutoScalingGroupNames": [names[capacity]]})

    assert _run_cli(monkeypatch, _argv(_cmd(www)), script) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [a["result"] for a in out["asgs"]] == ["no-op", "no-op"]
    assert [a["asg"] for a in out["asgs"]] == [names["on-demand"], names["spot"]]


def test_a_rolled_back_canary_fails_the_command_with_one_line(www, monkeypatch, capsys):
    """`pulumi up` shows the Command's failure (exit 1 and the reason) and stops before the ASG update;
    spot is never touched (the Stubber would fail on any call to it after the canary)."""
    described, names = _pair(www, "1")
    argv = _argv(_cmd(www))
    argv[argv.index("--version") + 1] = "2"  # the launch template version a new image made
    reason = "Instance refresh failed: alarm fleet-prod-www-health-5xx in ALARM"
    od = names["on-demand"]

    def script(stub):
        stub.add_response("describe_auto_scaling_groups",
                          {"AutoScalingGroups": [described["on-demand"], described["spot"]]}, BY_TAGS)
        for capacity in ("on-demand", "spot"):
            stub.add_response("describe_instance_refreshes", {"InstanceRefreshes": []},
                              {"AutoScalingGroupName": names[capacity]})
        _no_launch_hooks(stub, names)
        stub.add_response("describe_instance_refreshes", {"InstanceRefreshes": []}, {"AutoScalingGroupName": od})
        stub.add_response("describe_auto_scaling_groups", {"AutoScalingGroups": [described["on-demand"]]},
                          {"AutoScalingGroupNames": [od]})
        stub.add_response("start_instance_refresh", {"InstanceRefreshId": "r-1"}, None)
        stub.add_response("describe_instance_refreshes", {"InstanceRefreshes": [
            {"InstanceRefreshId": "r-1", "AutoScalingGroupName": od, "Status": "RollbackSuccessful",
             "PercentageComplete": 0, "StatusReason": reason}]}, None)
        stub.add_response("create_or_update_tags", {}, None)  # the failed version, remembered on both ASGs

    assert _run_cli(monkeypatch, argv, script) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("rollout failed: group www: step canary: ")
    assert "rolled back to the previous launch template version" in err[-1] and reason in err[-1]


def test_two_asgs_with_the_same_tags_are_refused(www, monkeypatch, capsys):
    described, _ = _pair(www, "1")
    twice = {"AutoScalingGroups": [described["on-demand"]] * 2}

    def script(stub):
        stub.add_response("describe_auto_scaling_groups", twice, BY_TAGS)

    assert _run_cli(monkeypatch, _argv(_cmd(www)), script) == 1
    assert "2 ASGs tagged" in capsys.readouterr().err
