"""A target group port change never takes traffic down. `http.port` forces a new
target group while the listener rule and the ASGs switch to it at once and the instances still serve
the old port: the program reads the deployed target groups' ports (their `fleet:port` tag, one Resource
Groups Tagging API call) before registering anything, and refuses a change with one line explaining the
two safe deploys, unless the stack acknowledges that exact new port in `fleet:portChanges`."""

from __future__ import annotations

import shutil
from pathlib import Path

import boto3
import pytest

from components.port_changes import port_change_problems
from fleet.ops.target_groups import target_group_exists
from fleet.plan import engine
from fleet.spec.load import load_fleet
from tests.pulumi_mocks import run_program, stack_config

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "aws:resourcegroupstaggingapi/getResources:getResources"
TG_TYPE = "aws:lb/targetGroup:TargetGroup"


def tg_arn(group: str, n: int = 1) -> str:
    return f"arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{group}/{n:016x}"


def deployed(monkeypatch, ports: dict[str, int], *, deleted: dict[str, int] | None = None,
             arns: dict[str, str] | None = None) -> list:
    """The mock engine answers the tagging call with the stack's deployed target groups (`arns` for those
    that exist on the moto server), plus `deleted` ones that the tagging API still lists but that no
    longer exist."""
    seen = []
    listed = [(tg_arn(g, 0), g, p) for g, p in (deleted or {}).items()]
    listed += [((arns or {}).get(g, tg_arn(g)), g, p) for g, p in ports.items()]

    class Deployed(engine.FleetMocks):
        def call(self, args):
            if args.token == TOKEN:
                seen.append(dict(args.args))
                return {"resourceTagMappingLists": [
                    {"resourceArn": arn, "tags": {"fleet:group": g, "fleet:stack": "staging", "fleet:port": str(p)}}
                    for arn, g, p in listed]}
            return super().call(args)

    monkeypatch.setattr(engine, "FleetMocks", Deployed)
    return seen


def test_a_deleted_target_group_the_tagging_api_still_lists_does_not_count(aws, monkeypatch):
    """The tagging API is eventually consistent: a target group an earlier update deleted (port 9000) is
    still listed next to the live one (8000, the group's port). ELBv2 says it is gone: it is ignored."""
    deployed(monkeypatch, {"api": 8000, "12_04-www": 8080}, deleted={"api": 9000})
    r = run_program("staging", {**stack_config("staging"), "fleet:awsEndpoint": aws}, raise_errors=False)
    assert r.error is None, [m for level, m in r.logs if level == "ERROR"]


def live_target_group(port: int) -> str:
    """A target group that exists on the moto server (the ELBv2 lookup finds it)."""
    vpc = boto3.client("ec2").create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    return boto3.client("elbv2").create_target_group(Name=f"api-{port}", Protocol="HTTP", Port=port,
                                                     VpcId=vpc)["TargetGroups"][0]["TargetGroupArn"]


def test_a_live_target_group_on_another_port_still_refuses(aws, monkeypatch, tmp_path):
    elbv2 = boto3.client("elbv2")
    arn = live_target_group(8000)
    deployed(monkeypatch, {"api": 8000}, arns={"api": arn})
    cfg = {**stack_config("staging"), "fleet:nodesFile": nodes_with_api_port(tmp_path, 9000), "fleet:awsEndpoint": aws}
    r = run_program("staging", cfg, raise_errors=False)
    assert [m for level, m in r.logs if level == "ERROR" and "8000 -> 9000" in m]
    assert target_group_exists(elbv2, arn) and not target_group_exists(elbv2, tg_arn("api", 0))


def nodes_with_api_port(tmp_path: Path, port: int) -> str:
    text = (ROOT / "nodes.yaml").read_text()
    assert "    port: 8000\n" in text
    (tmp_path / "nodes.yaml").write_text(text.replace("    port: 8000\n", f"    port: {port}\n", 1))
    shutil.copy(ROOT / "nodes.lock.json", tmp_path / "nodes.lock.json")
    return str(tmp_path / "nodes.yaml")


def test_an_unchanged_port_or_a_first_deploy_goes_ahead(monkeypatch):
    seen = deployed(monkeypatch, {"api": 8000, "12_04-www": 8080})
    r = run_program("staging")
    assert r.error is None
    tgs = [x for x in r.of_type(TG_TYPE) if x.inputs["tags"]["fleet:group"] == "api"]  # one per blue/green slot
    assert len(tgs) == 2 and all(tg.inputs["port"] == 8000 and tg.inputs["tags"]["fleet:port"] == "8000"
                                 for tg in tgs)
    assert seen and seen[0]["resourceTypeFilters"] == ["elasticloadbalancing:targetgroup"]
    assert seen[0]["tagFilters"] == [{"key": "fleet:stack", "values": ["staging"]}]
    deployed(monkeypatch, {})
    assert run_program("staging").error is None


def test_a_port_change_is_refused_with_one_line_and_nothing_registered(aws, monkeypatch, tmp_path):
    deployed(monkeypatch, {"api": 8000, "12_04-www": 8080}, arns={"api": live_target_group(8000)})
    cfg = {**stack_config("staging"), "fleet:nodesFile": nodes_with_api_port(tmp_path, 9000), "fleet:awsEndpoint": aws}
    r = run_program("staging", cfg, raise_errors=False)
    errors = [m for level, m in r.logs if level == "ERROR"]
    assert len(errors) == 1, errors
    line = errors[0]
    assert "group 'api'" in line and "key 'http.port'" in line and "8000 -> 9000" in line
    assert "two deploys" in line and "fleet:portChanges: {api: 9000}" in line and "Pulumi.staging.yaml" in line
    assert not [x for x in r.resources if x.custom], "nothing is created"


@pytest.mark.parametrize("ack, ok", [(9000, True), (9001, False)])
def test_the_second_deploy_is_acknowledged_by_the_exact_port(monkeypatch, tmp_path, ack, ok):
    deployed(monkeypatch, {"api": 8000})
    cfg = {**stack_config("staging"), "fleet:nodesFile": nodes_with_api_port(tmp_path, 9000),
           "fleet:portChanges": {"api": ack}}
    r = run_program("staging", cfg, raise_errors=False)
    assert (r.error is None) is ok
    if ok:
        tgs = [x for x in r.of_type(TG_TYPE) if x.inputs["tags"]["fleet:group"] == "api"]  # one per slot
        assert len(tgs) == 2 and all(tg.inputs["port"] == 9000 and tg.inputs["tags"]["fleet:port"] == "9000"
                                     for tg in tgs)


def test_port_change_problems_is_per_group():
    groups = load_fleet(ROOT / "nodes.yaml", "staging").groups
    assert port_change_problems(groups, {"api": 8000, "12_04-www": 8080}, {}, "nodes.yaml", "staging") == []
    [p] = port_change_problems(groups, {"api": 7000, "gone": 1}, {}, "nodes.yaml", "staging")
    assert p.group == "api" and p.key == "http.port" and "7000 -> 8000" in p.message
