"""`fleet status` against a deployed-looking fleet on the moto server (tests/status_fleet.py): matching,
drifted, unhealthy, undeployed and unknown groups, blue/green slots, the reconciler's record, the exit
codes, the JSON contract, and --watch. Instance refreshes, which moto lacks, through botocore's Stubber."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber
from rich.console import Console

from fleet.cli import main
from fleet.ops import status_read
from fleet.status import cli as status_cli
from fleet.status.join import refresh_view
from lambdas.spot_capacity import handler as capacity
from tests.status_fleet import ROOT, STACK, FleetMaker, declared_hashes, write_project

GROUPS = {"web": True, "api": False, "batch": False}


@pytest.fixture
def deployed(aws, tmp_path):
    """web (http) and api deployed as `pulumi up` leaves them; batch in nodes.yaml only."""
    project = write_project(tmp_path / "project", GROUPS)
    hashes = declared_hashes(project)
    maker = FleetMaker(aws)
    maker.group("web", hashes["web"], http=True, priority=1)
    maker.group("api", hashes["api"])
    maker.project, maker.hashes, maker.endpoint = project, hashes, aws
    return maker


def status(maker, *args: str, capsys=None) -> tuple[int, dict | str]:
    code = main(["--project", str(maker.project), "status", "--stack", STACK, "--endpoint-url", maker.endpoint,
                 *args])
    out = capsys.readouterr().out if capsys else ""
    return code, (json.loads(out) if "--json" in args else out)


def group(rep: dict, name: str) -> dict:
    (g,) = [g for g in rep["groups"] if g["group"] == name]
    return g


def test_matching_healthy_groups_and_the_json_contract(deployed, capsys):
    maker = deployed
    code, rep = status(maker, "web", "--json", capsys=capsys)
    assert code == 0, rep
    assert rep["stack"] == STACK and rep["undeployed"] == [] and rep["unknown"] == []
    web = group(rep, "web")
    assert web["declared"]["image_hash"] == maker.hashes["web"]
    assert web["drift"] == [] and web["problems"] == [] and web["healthy"] is True
    assert [(a["name"], a["capacity"]) for a in web["asgs"]] == [
        ("fleet-staging-web-on-demand", "on-demand"), ("fleet-staging-web-spot", "spot")]
    for a in web["asgs"]:
        assert {"name", "capacity", "desired", "in_service", "pending", "launch_template_version",
                "image_id"} <= set(a)
        assert (a["desired"], a["in_service"], a["pending"], a["launch_template_version"], a["image_id"]) == (
            1, 1, 0, "1", maker.out.ami["web"])
    assert [(a["spot"], a["on_demand"]) for a in web["asgs"]] == [(0, 1), (1, 0)]
    assert web["split"] == {"spot": 1, "on_demand": 1}
    (tg,) = web["target_groups"]
    assert tg["arn"] == maker.out.target_group["web"] and tg["weight"] is None  # one target group: no weights
    assert tg["healthy"] + tg["unhealthy"] + tg["initial"] + tg["other"] == 2  # both ASGs' instances registered
    assert "not an AWS response" in rep["refreshes_unavailable"]  # moto has no DescribeInstanceRefreshes


def test_drifted_group_exits_1_and_names_the_asg_and_the_image(deployed, capsys):
    maker = deployed
    other = maker.ami("0" * 64)  # an image the nodes file does not declare
    version = maker.new_version("api", other)
    maker.autoscaling.update_auto_scaling_group(
        AutoScalingGroupName=maker.out.asgs["api"]["on-demand"],
        LaunchTemplate={"LaunchTemplateId": maker.out.template["api"], "Version": str(version)})
    code, rep = status(maker, "--json", capsys=capsys)
    assert code == 1
    api = group(rep, "api")
    assert api["drift"] == [
        f"on-demand ASG runs {other} (image hash 000000000000), nodes.yaml declares image hash "
        f"{maker.hashes['api'][:12]}",
        f"spot ASG is on launch template version 1, the latest is {version}",
    ]
    assert api["healthy"] is True and group(rep, "web")["drift"] == []
    od = api["asgs"][0]
    assert (od["launch_template_version"], od["latest_version"], od["image_id"]) == (str(version), version, other)

    code, text = status(maker, capsys=capsys)
    assert code == 1
    assert "drifted" in text and f"api: drift: on-demand ASG runs {other}" in text


def test_a_pinned_ami_is_compared_by_id(deployed, capsys):
    maker = deployed
    (maker.project / f"Pulumi.{STACK}.yaml").write_text(
        "config:\n  aws:region: us-east-1\n  fleet:amis:\n    api: ami-0123456789abcdef0\n")
    code, rep = status(maker, "api", "--json", capsys=capsys)
    assert code == 1
    assert group(rep, "api")["drift"][0] == (f"on-demand ASG runs {maker.out.ami['api']}, declared "
                                             "ami-0123456789abcdef0")


def test_unhealthy_instance_exits_1(deployed, capsys):
    maker = deployed
    (instance,) = maker.instances_of(maker.out.asgs["api"]["spot"])
    maker.autoscaling.set_instance_health(InstanceId=instance, HealthStatus="Unhealthy")
    code, rep = status(maker, "--json", capsys=capsys)
    assert code == 1
    api = group(rep, "api")
    assert api["healthy"] is False and api["drift"] == []
    assert api["problems"] == ["spot ASG: 1 unhealthy instance(s)"]
    assert api["asgs"][1]["unhealthy"] == 1


def test_undeployed_and_unknown_groups(deployed, capsys):
    maker = deployed
    maker.group("retired", "f" * 64)
    code, rep = status(maker, "--json", capsys=capsys)
    assert code == 1
    assert rep["undeployed"] == ["batch"] and rep["unknown"] == ["retired"]
    retired = group(rep, "retired")
    assert retired["declared"] is None and retired["drift"] == [] and len(retired["asgs"]) == 2
    code, text = status(maker, capsys=capsys)
    assert "batch: in nodes.yaml, nothing deployed in stack staging" in text
    assert "deployed but not in nodes.yaml: retired" in text


def test_a_missing_member_of_the_pair_is_drift(deployed, capsys):
    maker = deployed
    maker.autoscaling.delete_auto_scaling_group(AutoScalingGroupName=maker.out.asgs["api"]["spot"], ForceDelete=True)
    code, rep = status(maker, "api", "--json", capsys=capsys)
    assert code == 1 and group(rep, "api")["drift"] == ["no spot ASG"]


def test_bad_input_exits_2_with_one_line(deployed, capsys):
    maker = deployed
    assert main(["--project", str(maker.project), "status", "wbe", "--stack", STACK]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no such group" in err[-1] and "web" in err[-1]  # the context line, then the problem
    assert main(["--project", str(maker.project), "status", "--stack", "prdo"]) == 2
    assert "no stack file for stack 'prdo'" in capsys.readouterr().err.strip().splitlines()[-1]
    # without --stack: the CLI's rule, staging
    assert main(["--project", str(maker.project), "status", "web"]) == 0
    assert "stack staging" in capsys.readouterr().err.splitlines()[0]
    with pytest.raises(SystemExit) as exc:
        main(["--project", str(maker.project), "status", "--stack", STACK, "--watch", "-1"])
    assert exc.value.code == 2


def test_blue_green_slots_and_listener_weights(aws, tmp_path, capsys):
    """Slots tagged fleet:slot (a/b), each a pair with its own target group, both in the group's rule."""
    project = write_project(tmp_path / "project", {"web": True})
    hashes = declared_hashes(project)
    maker = FleetMaker(aws)
    old = maker.ami("0" * 64)
    lt = maker.template("web", old)
    version = maker.new_version("web", maker.ami(hashes["web"]))
    tgs = {slot: maker.target_group("web", slot) for slot in "ab"}
    maker.rule(1, "/web/*", {tgs["a"]: 90, tgs["b"]: 10})
    rule = maker.elbv2.describe_rules(ListenerArn=maker.out.listener)["Rules"]
    (rule_arn,) = [r["RuleArn"] for r in rule if not r["IsDefault"]]
    for slot in "ab":  # slot a runs the declared image; slot b, the standby, the previous one
        for cap in ("on-demand", "spot"):
            maker.asg("web", cap, lt, version=str(version) if slot == "a" else "1", target_groups=[tgs[slot]],
                      slot=slot)
    code = main(["--project", str(project), "status", "--stack", STACK, "--endpoint-url", aws, "--json"])
    rep = json.loads(capsys.readouterr().out)
    assert code == 0, rep  # the idle slot's previous version is by design, not drift
    web = group(rep, "web")
    assert [(a["slot"], a["capacity"], a["live"]) for a in web["asgs"]] == [
        ("a", "on-demand", True), ("a", "spot", True), ("b", "on-demand", False), ("b", "spot", False)]
    assert web["live_slot"] == "a" and web["asgs"][2]["image_id"] == old
    assert web["traffic_split"] is True  # 90/10: a canary
    assert {(t["slot"], t["weight"]) for t in web["target_groups"]} == {("a", 90), ("b", 10)}

    # traffic on slot b (a rollback written by hand): now b is compared, and it runs the old image
    maker.elbv2.modify_rule(RuleArn=rule_arn, Actions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": [
        {"TargetGroupArn": tgs["a"], "Weight": 0}, {"TargetGroupArn": tgs["b"], "Weight": 100}]}}])
    maker.autoscaling.delete_auto_scaling_group(AutoScalingGroupName="fleet-staging-web-spot-b", ForceDelete=True)
    code = main(["--project", str(project), "status", "--stack", STACK, "--endpoint-url", aws])
    text = capsys.readouterr().out
    assert code == 1 and "web: drift: no spot ASG in slot b" in text
    assert f"web: drift: on-demand ASG (slot b) runs {old}" in text
    assert f"web: drift: on-demand ASG (slot b) is on launch template version 1, the latest is {version}" in text
    assert "target group" in text and " 100 " in text and "b live" in text and "a idle" in text


def test_the_reconcilers_extra_and_last_decision(deployed, capsys, monkeypatch):
    """The real reconciler writes its table; status reads the extra and the decision from it."""
    maker = deployed
    table = maker.reconciler_table({})
    maker.autoscaling.update_auto_scaling_group(AutoScalingGroupName=maker.out.asgs["api"]["spot"], DesiredCapacity=2,
                                                MaxSize=4)
    (extra_instance,) = set(maker.instances_of(maker.out.asgs["api"]["spot"])) - set(
        maker.instances_of(maker.out.asgs["api"]["spot"])[:1])
    monkeypatch.setenv("FLEET_STACK", STACK)
    monkeypatch.setenv("FLEET_CAPACITY_TABLE", table)
    capacity.handler({"detail-type": capacity.WARNING, "detail": {"instance-id": extra_instance}, "id": "w1"}, None)
    capsys.readouterr()
    code, rep = status(maker, "--json", capsys=capsys)
    cover = group(rep, "api")["spot_cover"]
    assert cover["extra"] == 1 and cover["last"]["action"] == "raised" and cover["last"]["deficit"] == 1
    assert group(rep, "web")["spot_cover"] is None  # never reconciled: no record


def test_the_number_of_aws_calls_does_not_grow_with_groups(aws, tmp_path):
    """Groups without target groups: every call is a paged describe (moto lacks refreshes, so the per-ASG
    refresh calls stop at the probe)."""
    calls = []
    for n in (2, 6):
        project = write_project(tmp_path / f"p{n}", {f"g{i}": False for i in range(n)})
        hashes = declared_hashes(project)
        maker = FleetMaker(aws, stack=f"s{n}")
        for name, h in hashes.items():
            maker.group(name, h)
        calls.append(status_read.read_stack(f"s{n}", endpoint_url=aws).calls)
    assert calls[0] == calls[1]


# --- instance refreshes (moto lacks the API: botocore's Stubber with the real service model) ---

def _stubbed_autoscaling():
    c = boto3.client("autoscaling", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    return c, Stubber(c)


def test_a_baking_refresh_shows_its_progress_bake_left_and_rollback():
    client, stub = _stubbed_autoscaling()
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    refresh = {"AutoScalingGroupName": "od", "InstanceRefreshId": "r1", "Status": "Baking", "StartTime": start,
               "PercentageComplete": 100, "InstancesToUpdate": 0, "Preferences": {"BakeTime": 300},
               "DesiredConfiguration": {"LaunchTemplate": {"LaunchTemplateId": "lt-1", "Version": "3"}}}
    stub.add_response("describe_instance_refreshes", {"InstanceRefreshes": [refresh]},
                      {"AutoScalingGroupName": "od", "MaxRecords": 1})
    stub.add_response("describe_scaling_activities", {"Activities": [
        {"ActivityId": "a1", "AutoScalingGroupName": "od", "Cause": "refresh",
         "StartTime": start + timedelta(minutes=1),
         "EndTime": start + timedelta(minutes=4), "StatusCode": "Successful"},
        {"ActivityId": "a0", "AutoScalingGroupName": "od", "Cause": "before", "StartTime": start - timedelta(hours=1),
         "EndTime": start + timedelta(minutes=30), "StatusCode": "Successful"}]},
        {"AutoScalingGroupName": "od", "MaxRecords": 20})
    with stub:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            found, unavailable = status_read.refreshes(client, ["od"], pool)
        baked = status_read.bake_started(client, "od", start)
    assert unavailable is None and found["od"]["Status"] == "Baking"
    assert baked == start + timedelta(minutes=4)  # the activity from before the refresh does not count
    asg = {"LaunchTemplate": {"LaunchTemplateId": "lt-1", "Version": "2"}}
    view = refresh_view(found["od"], asg, baked, start + timedelta(minutes=6))
    assert (view["status"], view["in_flight"], view["percent_complete"], view["bake_time_left"],
            view["rollback_possible"]) == ("Baking", True, 100, 180, True)
    # on $Latest (or without a desired configuration) AWS cannot roll back
    latest = {"LaunchTemplate": {"LaunchTemplateId": "lt-1", "Version": "$Latest"}}
    assert refresh_view(found["od"], latest, baked, start)["rollback_possible"] is False
    done = dict(refresh, Status="Successful")
    assert refresh_view(done, asg, None, start)["rollback_possible"] is False


def test_a_throttled_probe_is_asked_again_with_retries():
    probe, probe_stub = _stubbed_autoscaling()
    client, stub = _stubbed_autoscaling()
    probe_stub.add_client_error("describe_instance_refreshes", "Throttling", "Rate exceeded")
    stub.add_response("describe_instance_refreshes", {"InstanceRefreshes": []}, {"AutoScalingGroupName": "a",
                                                                                  "MaxRecords": 1})
    from concurrent.futures import ThreadPoolExecutor

    with probe_stub, stub, ThreadPoolExecutor(1) as pool:
        assert status_read.refreshes(client, ["a"], pool, probe) == ({"a": None}, None)


# --- --watch ---

def test_watch_rerenders_until_ctrl_c_and_exits_with_the_last_read(deployed):
    maker = deployed
    reads = []

    def read():
        reads.append(1)
        rep = {"stack": STACK, "read_at": f"read {len(reads)}", "groups": [], "undeployed": ["batch"] if len(reads) > 1
               else [], "unknown": []}
        return rep

    def sleep(seconds):
        assert seconds == 0.5
        if len(reads) == 2:
            raise KeyboardInterrupt

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    assert status_cli.run(read, as_json=False, watch=0.5, console=console, sleep=sleep) == 1
    assert len(reads) == 2
    text = out.getvalue()
    assert "read 1" in text and "read 2" in text and "batch" in text  # the live view showed both reads
    del maker


def as_from_a_terminal():
    """Ctrl-C as a terminal delivers it: a test run started in the background of a non-interactive shell
    (as CI may) has SIGINT ignored, and children inherit that; the command rightly respects it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_watch_in_a_process_stops_on_sigint(deployed):
    maker = deployed
    env = {**os.environ, "AWS_ENDPOINT_URL": maker.endpoint, "PYTHONPATH": str(ROOT), "COLUMNS": "160"}
    proc = subprocess.Popen([sys.executable, "-m", "fleet", "--project", str(maker.project), "status", "api",
                             "--stack", STACK, "--watch", "0.2", "--json"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=as_from_a_terminal)
    try:
        first = proc.stdout.readline()
        second = proc.stdout.readline()  # a second read: it really watches
        assert json.loads(first)["groups"][0]["group"] == "api" and json.loads(second)["stack"] == STACK
        time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


def test_groups_without_asgs_are_checked_by_their_instances(aws, tmp_path, capsys):
    project = write_project(tmp_path / "project", {}, extra_nodes="solo:\n  autoscale: false\n  instances: 2\n")
    hashes = declared_hashes(project)
    maker = FleetMaker(aws)
    ami = maker.ami(hashes["solo"])
    tags = [{"ResourceType": "instance", "Tags": maker.stack_tags(**{"fleet:group": "solo"})}]
    (instance,) = [i["InstanceId"] for i in maker.ec2.run_instances(
        ImageId=ami, MinCount=1, MaxCount=1, InstanceType="m5.large", TagSpecifications=tags)["Instances"]]
    code = main(["--project", str(project), "status", "--stack", STACK, "--endpoint-url", aws, "--json"])
    rep = json.loads(capsys.readouterr().out)
    solo = group(rep, "solo")
    assert code == 1 and solo["asgs"] == [] and [i["id"] for i in solo["instances"]] == [instance]
    assert solo["drift"] == ["1 instance(s) running, nodes.yaml declares 2"]
    maker.ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="m5.large", TagSpecifications=tags)
    assert main(["--project", str(project), "status", "--stack", STACK, "--endpoint-url", aws, "--json"]) == 0


@pytest.mark.parametrize(("distribution", "in_service", "spot"), [
    ({"OnDemandBaseCapacity": 0, "OnDemandPercentageAboveBaseCapacity": 0}, 3, 3),
    ({"OnDemandBaseCapacity": 1, "OnDemandPercentageAboveBaseCapacity": 0}, 3, 2),
    ({"OnDemandBaseCapacity": 0, "OnDemandPercentageAboveBaseCapacity": 50}, 3, 1),  # on-demand rounded up
    ({"OnDemandBaseCapacity": 4, "OnDemandPercentageAboveBaseCapacity": 0}, 2, 0),
])
def test_spot_count_follows_the_instances_distribution(distribution, in_service, spot):
    from fleet.status.join import spot_count

    asg = {"MixedInstancesPolicy": {"LaunchTemplate": {}, "InstancesDistribution": distribution}}
    assert spot_count(asg, {}, in_service) == spot
    assert spot_count({"LaunchTemplate": {}}, {"InstanceMarketOptions": {"MarketType": "spot"}}, 2) == 2
    assert spot_count({"LaunchTemplate": {}}, {}, 2) == 0


def test_blue_green_reconciler_records_and_the_iam_actions_of_a_read(aws, tmp_path, capsys):
    """Per slot records (slot a under the group's own key), summed; every call is a listed IAM action."""
    project = write_project(tmp_path / "project", {"web": True}, extra_nodes="solo:\n  autoscale: false\n")
    hashes = declared_hashes(project)
    maker = FleetMaker(aws)
    maker.group("web", hashes["web"], http=True)
    maker.reconciler_table({
        "web": {"extra": {"N": "1"}, "last_decision": {"M": {"action": {"S": "raised"},
                                                              "at": {"S": "2026-01-01T10:00:00Z"}}}},
        "web/b": {"extra": {"N": "2"}, "last_decision": {"M": {"action": {"S": "capped"},
                                                                "at": {"S": "2026-01-01T11:00:00Z"}}}}})
    # another table of the stack with the same keys (the blue/green rollout's lock): not the reconciler's
    maker.dynamodb.create_table(TableName="fleet-staging-rollouts", BillingMode="PAY_PER_REQUEST",
                                AttributeDefinitions=[{"AttributeName": "group", "AttributeType": "S"}],
                                KeySchema=[{"AttributeName": "group", "KeyType": "HASH"}], Tags=maker.stack_tags())
    maker.dynamodb.put_item(TableName="fleet-staging-rollouts", Item={"group": {"S": "staging/web"},
                                                                     "lock_owner": {"S": "someone"}})
    live = status_read.read_stack(STACK, endpoint_url=aws, instance_groups=["solo"])
    assert set(live.calls_by_operation) <= {a.split(":")[1] for a in status_read.STATUS_ACTIONS}
    assert {"GetResources", "Scan", "DescribeRules", "DescribeTargetHealth", "DescribeInstances"} <= set(
        live.calls_by_operation)
    code = main(["--project", str(project), "status", "web", "--stack", STACK, "--endpoint-url", aws, "--json"])
    cover = group(json.loads(capsys.readouterr().out), "web")["spot_cover"]
    assert code == 0
    assert (cover["extra"], cover["last"]["action"]) == (3, "capped")
    assert {s: c["extra"] for s, c in cover["slots"].items()} == {"a": 1, "b": 2}


def test_an_aws_failure_is_one_line_and_exit_1(deployed, capsys):
    """An endpoint that is not AWS (here a page of the moto server that is not an API) fails the read: one
    line naming the command, exit 1, no traceback (fleet.cli's failure contract)."""
    maker = deployed
    code = main(["--project", str(maker.project), "status", "--stack", STACK, "--endpoint-url",
                 maker.endpoint + "/moto-api/nothing-here"])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if not line.startswith("fleet: project") and "retrying" not in line]
    assert code == 1 and out == ""
    assert len(lines) == 1 and lines[0].startswith("fleet status: ") and "Traceback" not in err


def test_ctrl_c_while_a_read_waits_on_a_silent_endpoint_leaves_at_once(tmp_path):
    """Ctrl-C must not wait for reads stuck on an endpoint that never answers (each would hold the
    command for its read timeout and retries): the command leaves in seconds, without a traceback."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts connections, never answers
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    try:
        proc = subprocess.Popen([sys.executable, "-m", "fleet", "status", "--stack", STACK, "--watch", "1", "--json",
                                 "--endpoint-url", url], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, preexec_fn=as_from_a_terminal)
        time.sleep(3)  # the first read is under way, waiting on the silent endpoint
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        try:
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert time.monotonic() - started < 5, "Ctrl-C waited for the stuck reads"
        assert proc.returncode == 130, err
        assert "Traceback" not in err and "KeyboardInterrupt" not in err
    finally:
        silent.close()


def test_a_ctrl_c_swallowed_where_it_landed_still_ends_the_watch():
    """Python raises KeyboardInterrupt wherever the main thread is; landing in a finalizer or callback
    it is printed as ignored and lost. The watch must end on that one Ctrl-C all the same."""
    from fleet.status.cli import run

    reads = []

    def read():
        reads.append(1)
        assert len(reads) < 5, "the watch went on after Ctrl-C"
        return {"stack": STACK, "groups": [], "undeployed": [], "unknown": []}

    def sleep(_seconds):
        try:  # what a finalizer does with an exception: report it and go on
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        except BaseException:  # noqa: BLE001 - the swallowing under test
            pass

    console = __import__("rich.console", fromlist=["Console"]).Console(file=io.StringIO())
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)  # as from a terminal (see above)
    try:
        assert run(read, as_json=True, watch=0.01, console=console, sleep=sleep) == 0
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, inherited)
    assert len(reads) == 1
