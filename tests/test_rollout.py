"""fleet.ops.rollout. moto has no instance refresh API, so `roll` runs against a real autoscaling client under
botocore's Stubber, which checks every request and response against the real service model and fails on
any call that was not scripted (a second StartInstanceRefresh, a CancelInstanceRefresh). `deploy` finds
its ASGs, launch templates and alarms on the moto server."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import boto3
import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import ANY, Stubber

from fleet.ops import aws as fleet_aws
from fleet.ops import rollout
from fleet.ops.gate import GateError
from fleet.ops.rollout import RolloutError, RolloutResult, roll
from tests.conftest import ROOT

ASG = "web-od"
LT = "lt-0123456789abcdef0"
PREFS = {"AutoRollback": True, "MinHealthyPercentage": 100, "MaxHealthyPercentage": 200, "SkipMatching": True}
MIXED = {
    "LaunchTemplate": {
        "LaunchTemplateSpecification": {"LaunchTemplateId": LT, "LaunchTemplateName": "web", "Version": "1"},
        "Overrides": [{"InstanceType": "m7g.large"}, {"InstanceType": "m6g.large"}, {"InstanceType": "c7g.large"}],
    },
    "InstancesDistribution": {"OnDemandBaseCapacity": 0, "OnDemandPercentageAboveBaseCapacity": 0,
                              "SpotAllocationStrategy": "price-capacity-optimized"},
}


def group(version="1", instances=("1", "1"), *, mixed=False, states=None) -> dict:
    """A DescribeAutoScalingGroups entry configured at `version` whose instances run `instances`."""
    spec = {"LaunchTemplateId": LT, "LaunchTemplateName": "web", "Version": version}
    states = states or ["InService"] * len(instances)
    g = {
        "AutoScalingGroupName": ASG, "MinSize": 1, "MaxSize": 6, "DesiredCapacity": len(instances),
        "DefaultCooldown": 300, "AvailabilityZones": ["us-east-1a"], "HealthCheckType": "ELB",
        "CreatedTime": datetime(2024, 5, 1, tzinfo=UTC),
        "Instances": [
            {"InstanceId": f"i-{n:017x}", "AvailabilityZone": "us-east-1a", "LifecycleState": state,
             "HealthStatus": "Healthy", "ProtectedFromScaleIn": False, "LaunchTemplate": dict(spec, Version=v)}
            for n, (v, state) in enumerate(zip(instances, states, strict=True))
        ],
    }
    if mixed:
        g["MixedInstancesPolicy"] = json.loads(json.dumps(MIXED))
        g["MixedInstancesPolicy"]["LaunchTemplate"]["LaunchTemplateSpecification"]["Version"] = version
    else:
        g["LaunchTemplate"] = spec
    return g


def refresh(rid: str, status: str, percent: int = 0, reason: str | None = None) -> dict:
    r = {"InstanceRefreshId": rid, "AutoScalingGroupName": ASG, "Status": status, "PercentageComplete": percent}
    if reason:
        r["StatusReason"] = reason
    return r


class Script:
    """The calls the rollout is expected to make, in order, with the answers AWS would give."""

    def __init__(self):
        self.client = fleet_aws.client("autoscaling", region="us-east-1")
        self.stub = Stubber(self.client)
        self.logs: list[str] = []

    def group(self, g: dict, asg: str = ASG):
        g = dict(g, AutoScalingGroupName=asg)
        self.stub.add_response("describe_auto_scaling_groups", {"AutoScalingGroups": [g]},
                               {"AutoScalingGroupNames": [asg]})

    def history(self, *refreshes: dict, asg: str = ASG):
        self.stub.add_response("describe_instance_refreshes", {"InstanceRefreshes": list(refreshes)},
                               {"AutoScalingGroupName": asg})

    def start(self, rid: str, desired: dict | None = None, prefs: dict | None = None, asg: str = ASG,
              version: str = "2"):
        self.stub.add_response("start_instance_refresh", {"InstanceRefreshId": rid}, {
            "AutoScalingGroupName": asg, "Strategy": "Rolling",
            "DesiredConfiguration": desired or {"LaunchTemplate": {"LaunchTemplateId": LT, "Version": version}},
            "Preferences": prefs or PREFS,
        })

    def poll(self, *states: dict, asg: str = ASG):
        for r in states:
            self.stub.add_response("describe_instance_refreshes",
                                   {"InstanceRefreshes": [dict(r, AutoScalingGroupName=asg)]},
                                   {"AutoScalingGroupName": asg, "InstanceRefreshIds": [r["InstanceRefreshId"]]})

    def rollback(self, rid: str, asg: str = ASG):
        self.stub.add_response("rollback_instance_refresh", {"InstanceRefreshId": rid}, {"AutoScalingGroupName": asg})

    def roll(self, version=2, **kwargs):
        kwargs.setdefault("sleep", lambda s: None)
        with self.stub:
            return roll(ASG, LT, version, client=self.client, log=self.logs.append, **kwargs)


@pytest.fixture
def script():
    s = Script()
    yield s
    s.stub.assert_no_pending_responses()


class TestRoll:
    def test_success_reports_progress(self, script):
        script.history(refresh("r-old", "Successful", 100))
        script.group(group("1"))
        script.start("r-1")
        script.poll(refresh("r-1", "Pending"), refresh("r-1", "InProgress", 50), refresh("r-1", "InProgress", 50),
                    refresh("r-1", "Successful", 100))

        result = script.roll()

        assert result == RolloutResult(ASG, 2, "succeeded", "r-1")
        assert any("50% complete" in line for line in script.logs)
        assert sum("InProgress, 50%" in line for line in script.logs) == 1, "unchanged progress is logged once"
        assert "Successful, 100% complete" in script.logs[-1]

    def test_failure_rolled_back_says_so_with_the_reason(self, script):
        script.history()
        script.group(group("1"))
        script.start("r-1")
        script.poll(refresh("r-1", "InProgress", 40),
                    refresh("r-1", "RollbackInProgress", 20, "Alarm fleet-staging-web-health-5xx is in ALARM state"),
                    refresh("r-1", "RollbackSuccessful", 0, "Alarm fleet-staging-web-health-5xx is in ALARM state"))

        with pytest.raises(RolloutError) as err:
            script.roll()

        message = str(err.value)
        assert "rolled back to the previous launch template version" in message
        assert "fleet-staging-web-health-5xx is in ALARM state" in message
        assert "r-1" in message and ASG in message
        assert "\n" not in message

    def test_rollback_failed(self, script):
        script.history()
        script.group(group("1"))
        script.start("r-1")
        script.poll(refresh("r-1", "RollbackFailed", 30, "Rollback failed:\n capacity unavailable"))
        with pytest.raises(RolloutError, match=r"rollback failed too.*: Rollback failed: capacity unavailable$"):
            script.roll()

    def test_failed_without_rollback(self, script):
        script.history()
        script.group(group("1"))
        script.start("r-1")
        script.poll(refresh("r-1", "Failed", 10, "Instances failed to launch"))
        with pytest.raises(RolloutError, match="r-1 failed: Instances failed to launch"):
            script.roll()

    def test_cancelled(self, script):
        script.history()
        script.group(group("1"))
        script.start("r-1")
        script.poll(refresh("r-1", "Cancelling", 30), refresh("r-1", "Cancelled", 30, "Cancelled by user"))
        with pytest.raises(RolloutError, match="r-1 was cancelled: Cancelled by user"):
            script.roll()

    def test_already_at_the_version_is_a_no_op(self, script):
        script.history(refresh("r-1", "Successful", 100))
        script.group(group("2", ("2", "2")))
        assert script.roll() == RolloutResult(ASG, 2, "no-op", None)

    def test_instances_on_their_way_out_do_not_count(self, script):
        script.history()
        script.group(group("2", ("2", "1"), states=["InService", "Terminating:Wait"]))
        assert script.roll().result == "no-op"

    def test_configured_but_instances_behind_starts_a_refresh(self, script):
        """E.g. the provider already switched the ASG's version: instances still run 1."""
        script.history()
        script.group(group("2", ("2", "1")))
        script.start("r-1")
        script.poll(refresh("r-1", "Successful", 100))
        assert script.roll().result == "succeeded"

    def test_foreign_refresh_is_waited_for_then_our_own_starts(self, script):
        """A refresh we did not start brought the group to the version: its success is not ours."""
        script.history(refresh("r-9", "InProgress", 60))
        script.poll(refresh("r-9", "InProgress", 80), refresh("r-9", "Baking", 100), refresh("r-9", "Successful", 100))
        script.group(group("2", ("2", "2")))
        script.start("r-1")
        script.poll(refresh("r-1", "Successful", 100))

        assert script.roll() == RolloutResult(ASG, 2, "succeeded", "r-1")
        assert "not started by this rollout" in script.logs[0]

    def test_foreign_refresh_that_rolls_back_is_not_our_failure(self, script):
        script.history(refresh("r-9", "RollbackInProgress", 10))
        script.poll(refresh("r-9", "RollbackSuccessful", 0, "Health checks failed"))
        script.group(group("1"))
        script.start("r-1")
        script.poll(refresh("r-1", "InProgress", 50), refresh("r-1", "Successful", 100))

        assert script.roll() == RolloutResult(ASG, 2, "succeeded", "r-1")
        assert any("r-9 ended RollbackSuccessful" in line for line in script.logs)

    def test_refresh_started_by_someone_else_between_look_and_start(self, script):
        script.history()
        script.group(group("1"))
        script.stub.add_client_error("start_instance_refresh", "InstanceRefreshInProgress",
                                     "An Instance Refresh is already in progress", 400)
        script.history(refresh("r-7", "Pending"))
        script.poll(refresh("r-7", "Successful", 100))
        script.group(group("2", ("2", "2")))
        script.start("r-1")
        script.poll(refresh("r-1", "Successful", 100))
        assert script.roll() == RolloutResult(ASG, 2, "succeeded", "r-1")

    def test_timeout_rolls_the_refresh_back_and_says_so(self, script):
        now = [1000.0]
        script.history()
        script.group(group("1"))
        script.start("r-1")
        script.poll(*[refresh("r-1", "InProgress", p) for p in (0, 10, 20, 30, 40)])
        script.rollback("r-1")
        script.poll(refresh("r-1", "RollbackInProgress", 40), refresh("r-1", "RollbackSuccessful", 0))

        with pytest.raises(RolloutError) as err:
            script.roll(timeout=60, rollback_timeout=600, poll=15, clock=lambda: now[0],
                        sleep=lambda s: now.__setitem__(0, now[0] + s))

        message = str(err.value)
        assert message.startswith(f"{ASG}: timed out waiting for instance refresh r-1 (InProgress, 40% complete)")
        assert message.endswith("rolled back to the previous launch template version")
        assert now[0] == 1075.0

    def test_timeout_whose_rollback_cannot_finish_names_the_command_to_follow_it(self, script):
        now = [0.0]
        script.history()
        script.group(group("1"))
        script.start("r-1")
        script.poll(refresh("r-1", "InProgress", 10), refresh("r-1", "InProgress", 20))
        script.rollback("r-1")
        script.poll(refresh("r-1", "RollbackInProgress", 20), refresh("r-1", "RollbackInProgress", 10))
        with pytest.raises(RolloutError, match=r"its rollback is still RollbackInProgress after 15s"):
            script.roll(timeout=15, rollback_timeout=15, poll=15, clock=lambda: now[0],
                        sleep=lambda s: now.__setitem__(0, now[0] + s))

    def test_mixed_instances_group_keeps_its_policy(self, script):
        script.history()
        script.group(group("1", mixed=True))
        want = json.loads(json.dumps(MIXED))
        want["LaunchTemplate"]["LaunchTemplateSpecification"] = {"LaunchTemplateId": LT, "Version": "2"}
        script.start("r-1", desired={"MixedInstancesPolicy": want})
        script.poll(refresh("r-1", "Successful", 100))
        assert script.roll().result == "succeeded"

    @pytest.mark.parametrize("strategy", ["price-capacity-optimized", "capacity-optimized",
                                          "capacity-optimized-prioritized"])
    def test_spot_instance_pools_are_not_sent_back_for_other_strategies(self, script, strategy):
        """DescribeAutoScalingGroups reports SpotInstancePools (default 2) whatever the strategy; AWS rejects
        it in a DesiredConfiguration unless the strategy is lowest-price."""
        g = group("1", mixed=True)
        g["MixedInstancesPolicy"]["InstancesDistribution"].update(SpotAllocationStrategy=strategy, SpotInstancePools=2)
        script.history()
        script.group(g)
        want = json.loads(json.dumps(MIXED))
        want["LaunchTemplate"]["LaunchTemplateSpecification"] = {"LaunchTemplateId": LT, "Version": "2"}
        want["InstancesDistribution"]["SpotAllocationStrategy"] = strategy
        assert "SpotInstancePools" not in want["InstancesDistribution"]
        script.start("r-1", desired={"MixedInstancesPolicy": want})  # the Stubber compares the request exactly
        script.poll(refresh("r-1", "Successful", 100))
        assert script.roll().result == "succeeded"

    def test_spot_instance_pools_stay_for_lowest_price(self, script):
        g = group("1", mixed=True)
        g["MixedInstancesPolicy"]["InstancesDistribution"].update(SpotAllocationStrategy="lowest-price",
                                                                  SpotInstancePools=4)
        script.history()
        script.group(g)
        want = json.loads(json.dumps(g["MixedInstancesPolicy"]))
        want["LaunchTemplate"]["LaunchTemplateSpecification"] = {"LaunchTemplateId": LT, "Version": "2"}
        script.start("r-1", desired={"MixedInstancesPolicy": want})
        script.poll(refresh("r-1", "Successful", 100))
        assert script.roll().result == "succeeded"

    def test_alarms_warmup_and_bake_time_go_into_the_preferences(self, script):
        script.history()
        script.group(group("1"))
        script.start("r-1", prefs=dict(PREFS, InstanceWarmup=90, BakeTime=300,
                                       AlarmSpecification={"Alarms": ["fleet-staging-web-health-5xx", "other"]}))
        script.poll(refresh("r-1", "Successful", 100))
        script.roll(alarms=("fleet-staging-web-health-5xx", "other"), warmup=90, bake_time=300)

    def test_missing_asg(self, script):
        script.history(asg=ASG)
        script.stub.add_response("describe_auto_scaling_groups", {"AutoScalingGroups": []},
                                 {"AutoScalingGroupNames": [ASG]})
        with pytest.raises(RolloutError, match=f"no Auto Scaling group named {ASG}"):
            script.roll()


def test_spot_instance_pools_rule_matches_botocores_model():
    """The premise of dropping SpotInstancePools, read from the service model botocore ships."""
    model = botocore.session.get_session().get_service_model("autoscaling")
    desired = model.operation_model("StartInstanceRefresh").input_shape.members["DesiredConfiguration"]
    distribution = desired.members["MixedInstancesPolicy"].members["InstancesDistribution"]
    doc = distribution.members["SpotInstancePools"].documentation
    assert f"Valid only when the <code>SpotAllocationStrategy</code> is <code>{rollout.POOLS_STRATEGY}</code>" in doc
    prefs = model.operation_model("StartInstanceRefresh").input_shape.members["Preferences"].members
    assert {"BakeTime", "CheckpointPercentages", "CheckpointDelay", "AlarmSpecification", "AutoRollback"} <= set(prefs)
    assert "RollbackInstanceRefresh" in model.operation_names


# -- the whole pair --------------------------------------------------------------------------------

OD, SP = "web-od", "web-spot"
BY_TAGS = {"Filters": [{"Name": "tag:fleet:group", "Values": ["web"]},
                       {"Name": "tag:fleet:stack", "Values": ["staging"]}]}
HEALTH = "fleet-staging-web-health-5xx"
CANARY_PREFS = dict(PREFS, InstanceWarmup=120, BakeTime=300, AlarmSpecification={"Alarms": [HEALTH]})
SPOT_PREFS = dict(PREFS, InstanceWarmup=120, AlarmSpecification={"Alarms": [HEALTH]})
RESTORE_PREFS = {"AutoRollback": False, "MinHealthyPercentage": 100, "MaxHealthyPercentage": 200,
                 "SkipMatching": True}
SPOT_TO = {"MixedInstancesPolicy": {**json.loads(json.dumps(MIXED)), "LaunchTemplate": {
    **MIXED["LaunchTemplate"], "LaunchTemplateSpecification": {"LaunchTemplateId": LT, "Version": "2"}}}}


def tagged(g: dict, name: str, capacity: str) -> dict:
    g = dict(g)
    extra = g.pop("ExtraTags", [])
    return dict(g, AutoScalingGroupName=name, Tags=[
        {"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": k, "Value": v, "PropagateAtLaunch": True}
        for k, v in [*{"fleet:group": "web", "fleet:stack": "staging", "fleet:capacity": capacity}.items(), *extra]])


def with_tag(g: dict, key: str, value: str) -> dict:
    """`g` as DescribeAutoScalingGroups gives it with one more tag (as `tagged` lays tags out)."""
    return dict(g, ExtraTags=[(key, value)])


def retemplate(g: dict, template_id: str) -> dict:
    """`g` configured with (and its instances launched from) another launch template id."""
    def walk(x):
        if isinstance(x, dict):
            return {k: (template_id if k == "LaunchTemplateId" and v == LT else walk(v)) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v) for v in x]
        return x
    return walk(g)


class Pair(Script):
    def tags(self, od: dict | None = None, spot: dict | None = None):
        found = ([tagged(od, OD, "on-demand")] if od else []) + ([tagged(spot, SP, "spot")] if spot else [])
        self.stub.add_response("describe_auto_scaling_groups", {"AutoScalingGroups": found}, BY_TAGS)

    def preflight(self, od_foreign=(), spot_foreign=()):
        """members_of: the pair by tags on version 1, and each ASG's refresh history."""
        self.tags(group("1"), group("1", mixed=True))
        self.history(*od_foreign, asg=OD)
        self.history(*spot_foreign, asg=SP)

    def run(self, timeout=3600, rollback_timeout=1800, now=None, **kwargs):
        now = now if now is not None else [0.0]
        w = rollout.Waiter(self.client, poll=15, log=self.logs.append,
                           sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0],
                           wall=lambda: 1_780_000_000.0)
        with self.stub:
            return rollout.roll_group("web", "staging", LT, 2, alarms=[HEALTH], warmup=120, bake_time=300,
                                      timeout=timeout, rollback_timeout=rollback_timeout, waiter=w, **kwargs)

    def hooks(self, *found: dict | None):
        """DescribeLifecycleHooks of the launching hook on the on-demand, then the spot ASG."""
        for asg, hook in zip((OD, SP), found, strict=True):
            self.stub.add_response("describe_lifecycle_hooks", {"LifecycleHooks": [dict(hook, AutoScalingGroupName=asg)]
                                                                if hook else []},
                                   {"AutoScalingGroupName": asg, "LifecycleHookNames": ["fleet-launch"]})

    def put_hook(self, asg: str, heartbeat: int, result: str = "ABANDON"):
        self.stub.add_response("put_lifecycle_hook", {}, {
            "LifecycleHookName": "fleet-launch", "AutoScalingGroupName": asg,
            "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING", "HeartbeatTimeout": heartbeat,
            "DefaultResult": result})

    def delete_hook(self, asg: str):
        self.stub.add_response("delete_lifecycle_hook", {}, {"LifecycleHookName": "fleet-launch",
                                                             "AutoScalingGroupName": asg})

    def canary_ok(self):
        self.history(asg=OD)
        self.group(group("1"), asg=OD)
        self.start("r-od", asg=OD, prefs=CANARY_PREFS)
        self.poll(refresh("r-od", "InProgress", 50), refresh("r-od", "Baking", 100), refresh("r-od", "Successful", 100),
                  asg=OD)

    def spot_start(self):
        self.history(asg=SP)
        self.group(group("1", mixed=True), asg=SP)
        self.start("r-sp", asg=SP, prefs=SPOT_PREFS, desired=SPOT_TO)

    def marked(self, asgs=(OD, SP)):
        """The failure is remembered on both ASGs (FAILED_TAG, not propagated to instances)."""
        self.stub.add_response("create_or_update_tags", {}, {"Tags": [
            {"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": rollout.FAILED_TAG, "Value": ANY,
             "PropagateAtLaunch": False} for name in asgs]})

    def restore_canary(self, end="Successful"):
        self.history(asg=OD)
        self.group(group("2", ("2", "2")), asg=OD)
        self.start("r-back", asg=OD, prefs=RESTORE_PREFS, version="1")
        self.poll(refresh("r-back", "InProgress", 50), refresh("r-back", end, 100), asg=OD)


@pytest.fixture
def pair_script():
    s = Pair()
    yield s
    s.stub.assert_no_pending_responses()


class TestPairRollout:
    """`roll_group` end to end on the Stubber: every call and its order is the script; any call not in it
    (a StartInstanceRefresh on spot after a failed canary, say) fails the test."""

    def test_success_canary_soaks_then_spot(self, pair_script):
        s = pair_script
        s.preflight()
        s.canary_ok()
        s.spot_start()
        s.poll(refresh("r-sp", "InProgress", 50), refresh("r-sp", "Successful", 100), asg=SP)

        results = s.run()

        assert [(r.asg, r.result, r.refresh_id) for r in results] == [(OD, "succeeded", "r-od"),
                                                                       (SP, "succeeded", "r-sp")]
        assert any("300s soak" in line for line in s.logs)

    def test_canary_fails_spot_is_never_touched(self, pair_script):
        s = pair_script
        s.preflight()
        s.history(asg=OD)
        s.group(group("1"), asg=OD)
        s.start("r-od", asg=OD, prefs=CANARY_PREFS)
        s.poll(refresh("r-od", "InProgress", 30),
               refresh("r-od", "RollbackSuccessful", 0, "Instances failed health checks"), asg=OD)

        s.marked()
        with pytest.raises(RolloutError) as err:
            s.run()

        assert str(err.value) == (f"group web: step canary: {OD}: instance refresh r-od failed and was rolled back "
                                  "to the previous launch template version: Instances failed health checks")

    def test_alarm_during_the_soak_rolls_the_canary_back(self, pair_script):
        s = pair_script
        s.preflight()
        s.history(asg=OD)
        s.group(group("1"), asg=OD)
        s.start("r-od", asg=OD, prefs=CANARY_PREFS)
        s.poll(refresh("r-od", "InProgress", 60), refresh("r-od", "Baking", 100),
               refresh("r-od", "RollbackInProgress", 50, f"Alarm {HEALTH} is in ALARM state"),
               refresh("r-od", "RollbackSuccessful", 0, f"Alarm {HEALTH} is in ALARM state"), asg=OD)

        s.marked()
        with pytest.raises(RolloutError) as err:
            s.run()

        message = str(err.value)
        assert message.startswith("group web: step soak: ")
        assert "rolled back to the previous launch template version" in message and HEALTH in message

    def test_spot_fails_after_the_canary_succeeded_both_end_on_the_old_version(self, pair_script):
        s = pair_script
        s.preflight()
        s.canary_ok()
        s.spot_start()
        s.poll(refresh("r-sp", "InProgress", 40),
               refresh("r-sp", "RollbackSuccessful", 0, "Instance refresh failed: alarm in ALARM"), asg=SP)
        s.restore_canary()

        s.marked()
        with pytest.raises(RolloutError) as err:
            s.run()

        message = str(err.value)
        assert message.startswith(f"group web: step spot: {SP}: instance refresh r-sp failed and was rolled back")
        assert message.endswith(f"; on-demand ASG {OD} restored to version 1 (instance refresh r-back)")
        assert "\n" not in message

    def test_spot_start_refused_still_restores_the_canary(self, pair_script):
        s = pair_script
        s.preflight()
        s.canary_ok()
        s.history(asg=SP)
        s.group(group("1", mixed=True), asg=SP)
        s.stub.add_client_error("start_instance_refresh", "ValidationError", "SpotInstancePools is not valid", 400)
        s.restore_canary()

        s.marked()
        with pytest.raises(RolloutError, match=r"^group web: step spot: .*ValidationError.*restored to version 1"):
            s.run()

    def test_restore_failure_is_reported_too(self, pair_script):
        s = pair_script
        s.preflight()
        s.canary_ok()
        s.spot_start()
        s.poll(refresh("r-sp", "RollbackSuccessful", 0, "boom"), asg=SP)
        s.restore_canary(end="Failed")
        s.marked()
        with pytest.raises(RolloutError, match=rf"restoring on-demand ASG {OD} to version 1 FAILED: .*r-back failed"):
            s.run()

    def test_foreign_refresh_in_flight_that_rolls_back_then_ours_runs(self, pair_script):
        """Left by an earlier run that timed out: waited for, its rollback is not our failure, and the
        rollout then starts its own canary (with the soak) and spot refreshes."""
        s = pair_script
        s.tags(group("1"), group("1", mixed=True))
        s.history(refresh("r-old", "InProgress", 70), asg=OD)
        s.poll(refresh("r-old", "RollbackInProgress", 40, "Alarm x"),
               refresh("r-old", "RollbackSuccessful", 0, "Alarm x"), asg=OD)
        s.group(group("1"), asg=OD)  # re-read after the foreign refresh: still version 1
        s.history(asg=SP)
        s.canary_ok()
        s.spot_start()
        s.poll(refresh("r-sp", "Successful", 100), asg=SP)

        results = s.run()

        assert [r.refresh_id for r in results] == ["r-od", "r-sp"]
        assert any("r-old (not started by this rollout)" in line for line in s.logs)

    def test_timeout_in_spot_rolls_spot_back_and_restores_the_canary(self, pair_script):
        s = pair_script
        now = [0.0]
        s.preflight()
        s.canary_ok()  # 3 polls: 30 s
        s.spot_start()
        s.poll(*[refresh("r-sp", "InProgress", p) for p in (10, 20, 30, 40, 50)], asg=SP)  # 30 -> 90 s
        s.rollback("r-sp", asg=SP)
        s.poll(refresh("r-sp", "RollbackInProgress", 20), refresh("r-sp", "RollbackSuccessful", 0), asg=SP)
        s.restore_canary()

        s.marked()
        with pytest.raises(RolloutError) as err:
            s.run(timeout=90, now=now)

        message = str(err.value)
        assert message.startswith(f"group web: step spot: {SP}: timed out waiting for instance refresh r-sp "
                                  "(InProgress, 50% complete); rolled back to the previous launch template version")
        assert f"on-demand ASG {OD} restored to version 1" in message

    def test_a_refresh_that_failed_without_a_rollback_is_refreshed_back(self, pair_script):
        """AWS did not roll the canary back (Failed, not RollbackSuccessful) and the ASG moved to version 2:
        the rollout refreshes it back to version 1 itself."""
        s = pair_script
        s.preflight()
        s.history(asg=OD)
        s.group(group("1"), asg=OD)
        s.start("r-od", asg=OD, prefs=CANARY_PREFS)
        s.poll(refresh("r-od", "InProgress", 50), refresh("r-od", "Failed", 50, "Instance launch failed"), asg=OD)
        s.group(group("2", ("2", "1")), asg=OD)  # the in-flight ASG, read again: not on version 1 any more
        s.restore_canary()
        s.marked()

        with pytest.raises(RolloutError) as err:
            s.run()

        message = str(err.value)
        assert message.startswith(f"group web: step canary: {OD}: instance refresh r-od failed: Instance launch failed")
        assert message.endswith(f"; on-demand ASG {OD} restored to version 1 (instance refresh r-back)")

    def test_a_restore_returns_to_the_template_the_asg_had_before(self, pair_script):
        """The launch template was replaced (new id, versions from 1 again): the canary goes back to the old
        template's version 5, not to version 5 of the new template."""
        s = pair_script
        old = "lt-0aaaaaaaaaaaaaaaa"
        s.tags(retemplate(group("5"), old), retemplate(group("5", mixed=True), old))
        s.history(asg=OD)
        s.history(asg=SP)
        s.history(asg=OD)
        s.group(retemplate(group("5"), old), asg=OD)
        s.start("r-od", asg=OD, prefs=CANARY_PREFS)
        s.poll(refresh("r-od", "Successful", 100), asg=OD)
        s.history(asg=SP)
        s.group(retemplate(group("5", mixed=True), old), asg=SP)
        s.start("r-sp", asg=SP, prefs=SPOT_PREFS, desired=SPOT_TO)
        s.poll(refresh("r-sp", "RollbackSuccessful", 0, "Alarm in ALARM"), asg=SP)
        s.history(asg=OD)
        s.group(group("2", ("2", "2")), asg=OD)
        s.start("r-back", asg=OD, prefs=RESTORE_PREFS, desired={"LaunchTemplate": {"LaunchTemplateId": old,
                                                                                 "Version": "5"}})
        s.poll(refresh("r-back", "Successful", 100), asg=OD)
        s.marked()

        with pytest.raises(RolloutError) as err:
            s.run()
        assert str(err.value).endswith(f"; on-demand ASG {OD} restored to version 5 (instance refresh r-back)")

    def test_a_version_that_failed_is_not_rolled_again_and_says_why(self, pair_script):
        """The next `pulumi up` re-runs the Command for the same version: nothing starts, and the one line
        says which version the group is on and why the new one is not rolled."""
        s = pair_script
        value = rollout.failed_tag_value(LT, "2", "step soak: web-od: Alarm fleet-staging-web-health-5xx in ALARM",
                                         1_780_000_000.0)
        s.tags(with_tag(group("1"), rollout.FAILED_TAG, value), with_tag(group("1", mixed=True), rollout.FAILED_TAG,
                                                                         value))
        s.history(asg=OD)
        s.history(asg=SP)

        with pytest.raises(RolloutError) as err:
            s.run()  # any StartInstanceRefresh (the bad canary again) would fail the Stubber

        assert str(err.value) == (
            f"group web: still on launch template {LT} version 1: version 2 of {LT} failed its rollout at "
            "2026-05-28T20:26:40Z step soak: web-od: Alarm fleet-staging-web-health-5xx in ALARM; not rolled again. "
            "Change the group (a new version) and `pulumi up`, or retry this version with "
            "`fleet deploy web --stack staging`")

    def test_a_failure_is_remembered_on_both_asgs(self, pair_script):
        s = pair_script
        s.preflight()
        s.history(asg=OD)
        s.group(group("1"), asg=OD)
        s.start("r-od", asg=OD, prefs=CANARY_PREFS)
        s.poll(refresh("r-od", "RollbackSuccessful", 0, "Instances failed health checks"), asg=OD)
        value = (f"{LT}:2 2026-05-28T20:26:40Z step canary: {OD}: instance refresh r-od failed and was rolled back "
                 "to the previous launch template version: Instances failed health checks")
        s.stub.add_response("create_or_update_tags", {}, {"Tags": [
            {"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": "fleet:rollout-failed",
             "Value": value, "PropagateAtLaunch": False} for name in (OD, SP)]})
        with pytest.raises(RolloutError, match="step canary"):
            s.run()

    def test_retry_rolls_a_failed_version_and_a_success_clears_the_mark(self, pair_script):
        s = pair_script
        value = rollout.failed_tag_value(LT, "2", "step canary: x", 0)
        s.tags(with_tag(group("1"), rollout.FAILED_TAG, value), with_tag(group("1", mixed=True), rollout.FAILED_TAG,
                                                                         value))
        s.history(asg=OD)
        s.history(asg=SP)
        s.canary_ok()
        s.spot_start()
        s.poll(refresh("r-sp", "Successful", 100), asg=SP)
        s.stub.add_response("delete_tags", {}, {"Tags": [
            {"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": "fleet:rollout-failed"}
            for name in (OD, SP)]})

        assert [r.result for r in s.run(retry=True)] == ["succeeded", "succeeded"]

    def test_a_mark_for_another_version_does_not_stop_this_one(self, pair_script):
        s = pair_script
        value = rollout.failed_tag_value(LT, "3", "step canary: x", 0)
        s.tags(with_tag(group("1"), rollout.FAILED_TAG, value), group("1", mixed=True))
        s.history(asg=OD)
        s.history(asg=SP)
        s.canary_ok()
        s.spot_start()
        s.poll(refresh("r-sp", "Successful", 100), asg=SP)
        s.stub.add_response("delete_tags", {}, {"Tags": [
            {"ResourceId": OD, "ResourceType": "auto-scaling-group", "Key": "fleet:rollout-failed"}]})
        assert [r.result for r in s.run()] == ["succeeded", "succeeded"]

    def test_converge_turned_on_puts_the_launch_hook_first(self, pair_script):
        """Before the canary's first instance of the converging version launches, both ASGs have the hook."""
        s = pair_script
        s.preflight()
        s.hooks(None, None)
        s.put_hook(OD, 390)
        s.put_hook(SP, 390)
        s.canary_ok()
        s.spot_start()
        s.poll(refresh("r-sp", "Successful", 100), asg=SP)
        s.run(launch_hook=rollout.LaunchHook(390))

    def test_converge_turned_off_deletes_the_launch_hook_first(self, pair_script):
        s = pair_script
        hook = {"LifecycleHookName": "fleet-launch", "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
                "HeartbeatTimeout": 390, "DefaultResult": "ABANDON"}
        s.preflight()
        s.hooks(hook, hook)
        s.delete_hook(OD)
        s.delete_hook(SP)
        s.canary_ok()
        s.spot_start()
        s.poll(refresh("r-sp", "Successful", 100), asg=SP)
        s.run(launch_hook=rollout.LaunchHook(None))

    def test_a_hook_already_right_is_left_alone(self, pair_script):
        s = pair_script
        hook = {"LifecycleHookName": "fleet-launch", "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
                "HeartbeatTimeout": 390, "DefaultResult": "ABANDON"}
        s.preflight()
        s.hooks(hook, hook)
        s.canary_ok()
        s.spot_start()
        s.poll(refresh("r-sp", "Successful", 100), asg=SP)
        s.run(launch_hook=rollout.LaunchHook(390))

    def test_a_rollback_puts_the_hooks_back_as_soon_as_it_starts(self, pair_script):
        """Converge turned on, the canary fails: the previous version's instances that AWS's rollback launches
        must not wait on a hook their image never completes, so the hooks go as soon as the rollback shows."""
        s = pair_script
        s.preflight()
        s.hooks(None, None)
        s.put_hook(OD, 390)
        s.put_hook(SP, 390)
        s.history(asg=OD)
        s.group(group("1"), asg=OD)
        s.start("r-od", asg=OD, prefs=CANARY_PREFS)
        s.poll(refresh("r-od", "InProgress", 30), refresh("r-od", "RollbackInProgress", 10, "health"), asg=OD)
        s.delete_hook(OD)  # before the next poll: while AWS's rollback launches the old version
        s.delete_hook(SP)
        s.poll(refresh("r-od", "RollbackSuccessful", 0, "health"), asg=OD)
        s.marked()

        with pytest.raises(RolloutError, match="step canary"):
            s.run(launch_hook=rollout.LaunchHook(390))

    def test_a_changed_heartbeat_is_put_back_after_a_failure(self, pair_script):
        s = pair_script
        old = {"LifecycleHookName": "fleet-launch", "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
               "HeartbeatTimeout": 200, "DefaultResult": "ABANDON"}
        s.preflight()
        s.hooks(old, old)
        s.put_hook(OD, 390)
        s.put_hook(SP, 390)
        s.history(asg=OD)
        s.group(group("1"), asg=OD)
        s.start("r-od", asg=OD, prefs=CANARY_PREFS)
        s.poll(refresh("r-od", "RollbackSuccessful", 0, "health"), asg=OD)
        s.put_hook(OD, 200)
        s.put_hook(SP, 200)
        s.marked()

        with pytest.raises(RolloutError, match="step canary"):
            s.run(launch_hook=rollout.LaunchHook(390))

    def test_first_up_has_no_asgs_and_nothing_to_roll(self, pair_script):
        s = pair_script
        s.tags()
        assert s.run() == []

    def test_two_asgs_with_the_same_capacity_are_refused(self, pair_script):
        s = pair_script
        g = tagged(group("1"), OD, "on-demand")
        twice = {"AutoScalingGroups": [g, dict(g, AutoScalingGroupName="x")]}
        s.stub.add_response("describe_auto_scaling_groups", twice, BY_TAGS)
        with pytest.raises(RolloutError, match="2 ASGs tagged"):
            s.run()


@pytest.fixture
def pair(aws):
    """staging/web on-demand + spot ASGs on launch template version 1 of 2, a prod pair that must not be
    touched, and alarms for the group and for another group."""
    ec2, asg, cw = boto3.client("ec2"), boto3.client("autoscaling"), boto3.client("cloudwatch")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    data = {"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"}
    lt = ec2.create_launch_template(LaunchTemplateName="web",
                                    LaunchTemplateData=data)["LaunchTemplate"]["LaunchTemplateId"]
    ec2.create_launch_template_version(LaunchTemplateId=lt, LaunchTemplateData=dict(data, InstanceType="t3.small"))
    prod_lt = ec2.create_launch_template(LaunchTemplateName="web-prod",
                                         LaunchTemplateData=data)["LaunchTemplate"]["LaunchTemplateId"]

    def make(name, capacity, stack, template):
        tags = [{"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": k, "Value": v,
                 "PropagateAtLaunch": True}
                for k, v in {"fleet:group": "web", "fleet:stack": stack, "fleet:capacity": capacity}.items()]
        spec = {"LaunchTemplateId": template, "Version": "1"}
        kwargs = {"LaunchTemplate": spec}
        if capacity == "spot":
            kwargs = {"MixedInstancesPolicy": {"LaunchTemplate": {
                "LaunchTemplateSpecification": spec,
                "Overrides": [{"InstanceType": "t3.micro"}, {"InstanceType": "t3a.micro"}]}}}
        asg.create_auto_scaling_group(AutoScalingGroupName=name, MinSize=0, MaxSize=3, DesiredCapacity=1,
                                      VPCZoneIdentifier=subnet, Tags=tags, **kwargs)

    # Created spot first, so ordering by creation or name would be wrong.
    make("web-spot", "spot", "staging", lt)
    make("web-od", "on-demand", "staging", lt)
    make("prod-web-od", "on-demand", "prod", prod_lt)
    for name in ("fleet-staging-web-health-5xx", "fleet-staging-api-health-5xx", "fleet-prod-web-health-5xx",
                 "fleet-staging-web-cpu-burst"):
        cw.put_metric_alarm(AlarmName=name, MetricName="HTTPCode_Target_5XX_Count", Namespace="AWS/ApplicationELB",
                            Statistic="Sum", Period=60, EvaluationPeriods=2, Threshold=10,
                            ComparisonOperator="GreaterThanThreshold")
    return lt


class TestDeploy:
    """`deploy` finds the pair's template, its latest version and the group's alarms on the moto server,
    then hands over to `roll_group` (moto has no instance refresh: TestPairRollout runs that part)."""

    def record(self, monkeypatch, fail=False):
        calls = []

        def fake_roll_group(group, stack, template_id, version, **kwargs):
            calls.append((group, stack, template_id, version, tuple(kwargs["alarms"]), kwargs["bake_time"]))
            if fail:
                raise RolloutError("group web: step canary: web-od: instance refresh r-1 failed and was rolled back")
            return [RolloutResult("web-od", version, "succeeded", "r-1"),
                    RolloutResult("web-spot", version, "succeeded")]

        monkeypatch.setattr(rollout, "roll_group", fake_roll_group)
        return calls

    def test_the_pair_rolls_to_the_latest_version_with_the_groups_alarms(self, pair, monkeypatch):
        calls = self.record(monkeypatch)
        results = rollout.deploy("web", "staging", alarms=["extra"], bake_time=60, log=lambda m: None)
        assert calls == [("web", "staging", pair, 2, ("extra", "fleet-staging-web-health-5xx"), 60)]
        assert [r.asg for r in results] == ["web-od", "web-spot"]

    def test_the_health_gate_ends_it(self, pair, monkeypatch):
        self.record(monkeypatch)
        seen = {}

        def gate(group, asgs, **kwargs):
            seen.update(group=group, asgs=asgs, timeout=kwargs["timeout"])
            raise GateError(f"group {group}: web-od 0/1 healthy after 615 s; last activity: none")

        monkeypatch.setattr(rollout, "wait_healthy", gate)
        with pytest.raises(RolloutError, match=r"^health gate: group web: web-od 0/1 healthy after 615 s"):
            rollout.deploy("web", "staging", gate_timeout=615, log=lambda m: None)
        assert seen == {"group": "web", "asgs": ["web-od", "web-spot"], "timeout": 615}

    def test_failure_propagates(self, pair, monkeypatch):
        self.record(monkeypatch, fail=True)
        with pytest.raises(RolloutError, match="step canary"):
            rollout.deploy("web", "staging", log=lambda m: None)

    def test_unknown_group(self, pair, monkeypatch):
        calls = self.record(monkeypatch)
        with pytest.raises(RolloutError, match="no Auto Scaling groups tagged fleet:group=api fleet:stack=staging"):
            rollout.deploy("api", "staging", log=lambda m: None)
        assert calls == []

    def test_discovered_alarms_are_the_groups_only(self, pair):
        cw = boto3.client("cloudwatch")
        assert rollout.discover_alarms(cw, "web", "staging") == ["fleet-staging-web-health-5xx"]


class TestOnMoto:
    """The hook and failure-tag calls against the moto server (real HTTP, the real request shapes)."""

    def test_launch_hook_put_changed_and_deleted(self, pair):
        autoscaling = boto3.client("autoscaling")
        w = rollout.Waiter(autoscaling, log=lambda m: None)
        assert rollout.read_launch_hook(autoscaling, "web-od") is None
        rollout.set_launch_hook(w, "web-od", 390, None)
        hook = rollout.read_launch_hook(autoscaling, "web-od")
        assert (hook["LifecycleTransition"], hook["HeartbeatTimeout"], hook["DefaultResult"]) == (
            "autoscaling:EC2_INSTANCE_LAUNCHING", 390, "ABANDON")
        rollout.set_launch_hook(w, "web-od", 450, hook)
        assert rollout.read_launch_hook(autoscaling, "web-od")["HeartbeatTimeout"] == 450
        rollout.set_launch_hook(w, "web-od", None, rollout.read_launch_hook(autoscaling, "web-od"))
        assert rollout.read_launch_hook(autoscaling, "web-od") is None
        assert rollout.read_launch_hook(autoscaling, "web-spot") is None, "only the ASG named"

    def test_failure_tag_is_read_back_by_the_pair_lookup_and_cleared(self, pair):
        autoscaling = boto3.client("autoscaling")
        w = rollout.Waiter(autoscaling, log=lambda m: None)
        value = rollout.failed_tag_value(pair, "2", "step canary: " + "x" * 400, 0)
        assert len(value) == 256
        rollout.mark_failed(autoscaling, ["web-od", "web-spot"], value)
        # moto's DescribeInstanceRefreshes is missing: members_of waits for none when there is none to read
        autoscaling.meta.events.register("before-call.autoscaling.DescribeInstanceRefreshes", lambda **_: (
            AWSResponse(None, 200, {}, None), {"InstanceRefreshes": [], "ResponseMetadata": {}}))
        members = rollout.members_of(w, "web", "staging", 0, 60)
        assert [(m.capacity, m.previous, m.previous_template, m.failed) for m in members] == [
            ("on-demand", "1", pair, value), ("spot", "1", pair, value)]
        with pytest.raises(RolloutError, match=f"still on launch template {pair} version 1: version 2 of"):
            rollout.roll_group("web", "staging", pair, 2, waiter=w)
        rollout.clear_failed(autoscaling, ["web-od", "web-spot"])
        assert all(not m.failed for m in rollout.members_of(w, "web", "staging", 0, 60))
        prod = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["prod-web-od"])["AutoScalingGroups"]
        assert rollout.FAILED_TAG not in {t["Key"] for t in prod[0]["Tags"]}


class TestMain:
    def test_launch_hook_flags_reach_the_rollout(self, monkeypatch):
        seen = []
        monkeypatch.setattr(rollout, "aws_client", lambda *a, **k: "client")
        monkeypatch.setattr(rollout, "roll_group", lambda *a, **k: seen.append(k["launch_hook"]) or [])
        base = ["--group", "web", "--stack", "s", "--launch-template-id", LT, "--version", "2"]
        for extra in (["--launch-hook-heartbeat", "390"], ["--no-launch-hook"], []):
            assert rollout.main(base + extra) == 0
        assert seen == [rollout.LaunchHook(390), rollout.LaunchHook(None), None]
        with pytest.raises(SystemExit):
            rollout.main(base + ["--no-launch-hook", "--launch-hook-heartbeat", "390"])

    def test_prints_one_json_line_last(self, monkeypatch, capsys):
        seen = {}

        def fake_roll(asg_name, template_id, version, **kwargs):
            seen.update(kwargs, asg=asg_name, template=template_id, version=version)
            return RolloutResult(asg_name, version, "no-op")

        monkeypatch.setattr(rollout, "roll", fake_roll)
        code = rollout.main(["--asg", ASG, "--launch-template-id", LT, "--version", "7", "--alarm", "a",
                             "--alarm", "b", "--warmup", "60", "--region", "eu-west-1", "--timeout", "90"])
        out = capsys.readouterr().out.splitlines()
        assert code == 0
        assert json.loads(out[-1]) == {"asg": ASG, "version": 7, "result": "no-op", "refresh_id": None}
        assert (seen["version"], seen["alarms"], seen["warmup"], seen["timeout"]) == (7, ["a", "b"], 60, 90.0)
        assert seen["client"].meta.region_name == "eu-west-1"

    def test_rollout_error_is_one_stderr_line_and_exit_1(self, monkeypatch, capsys):
        def fake_roll(*args, **kwargs):
            raise RolloutError(f"{ASG}: instance refresh r-1 failed and was rolled back to the previous "
                               "launch template version: Alarm x in ALARM")

        monkeypatch.setattr(rollout, "roll", fake_roll)
        code = rollout.main(["--asg", ASG, "--launch-template-id", LT, "--version", "2"])
        captured = capsys.readouterr()
        assert code == 1
        assert captured.out == ""
        assert captured.err.splitlines() == [
            f"rollout failed: {ASG}: instance refresh r-1 failed and was rolled back to the previous "
            "launch template version: Alarm x in ALARM"]

    def test_runs_as_a_module_against_the_moto_server(self, aws):
        """The Command's exact invocation, end to end over HTTP: before the stack's ASGs exist (first
        `pulumi up`) it finds none by tags and exits 0 with one JSON line."""
        proc = subprocess.run(
            [sys.executable, "-m", "fleet.ops.rollout", "--group", "web", "--stack", "staging",
             "--launch-template-id", LT, "--version", "2", "--endpoint-url", aws],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout.splitlines()[-1]) == {"group": "web", "version": 2, "result": "no-op",
                                                            "asgs": []}


def test_readme_durations_are_the_timing_model():
    """README's Operations numbers for a default http group come from fleet/ops/timing.py."""
    from fleet.ops import timing
    from tests.pulumi_mocks import http_group

    g = http_group("www", autoscale={"node_min": 2, "node_max": 6, "timeout": 300})
    assert timing.replace_seconds(g) == 90 + 300 + 5 * 2 + 30 == 430
    model = timing.rollback_model(g)
    assert (model["canary"], model["soak"], model["spot"]) == (430, 430, 860)
    assert model["total_good_rollout"] == 2 * 430 + 300
    assert (timing.rollout_timeout(g), timing.rollback_timeout(g), timing.gate_timeout(g)) == (1740, 645, 600)
    readme = (ROOT / "README.md").read_text()
    for text in ("R = 430 s", "(1740 s there)", "(645 s)"):
        assert text in readme, text
