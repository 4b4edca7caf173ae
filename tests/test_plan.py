"""`fleet plan`: the real program of both stacks under the mock engine (JSON contract, stable
ordering, no run-to-run noise, violations -> exit 1, bad input -> exit 2, --group, the human
tree); `fleet plan diff` is tests/test_plan_diff.py.

Plans cost ~1 s each under the SDK: the stacks' plans are module fixtures, shared by the tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.plan.cli import render_plan
from fleet.plan.engine import PLAN_OPTIONS, ROOT, plan, plan_result

ASG = "aws:autoscaling/group:Group"
TG = "aws:lb/targetGroup:TargetGroup"
LB = "aws:lb/loadBalancer:LoadBalancer"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
COMMAND = "command:local:Command"
NODE_GROUP = "fleet:node_group:NodeGroup"


@pytest.fixture(scope="module")
def staging():
    return plan_result(ROOT, "staging")


@pytest.fixture(scope="module")
def prod():
    return plan_result(ROOT, "prod")


@pytest.fixture(params=["staging", "prod"])
def stack_plan(request, staging, prod):
    return request.param, {"staging": staging, "prod": prod}[request.param].data


def by_name(data, name, typ=None):
    found = [r for r in data["resources"] if r["name"] == name and (typ is None or r["type"] == typ)]
    assert len(found) == 1, (name, typ, len(found))
    return found[0]


# ------------------------------------------------------------------------------------------ the JSON

def test_json_has_exactly_the_contract_shape(stack_plan):
    stack, data = stack_plan
    assert list(data) == ["project", "stack", "resources", "outputs", "violations"]
    assert data["project"] == "fleet" and data["stack"] == stack
    names = {r["name"] for r in data["resources"]}
    for r in data["resources"]:
        assert set(r) == {"type", "name", "parent", "inputs", "options"}
        assert r["parent"] is None or r["parent"] in names
        assert list(r["options"]) == list(PLAN_OPTIONS)
        assert isinstance(r["options"]["ignoreChanges"], list) and isinstance(r["options"]["dependsOn"], list)
        assert isinstance(r["options"]["protect"], bool) and isinstance(r["options"]["deleteBeforeReplace"], bool)
        assert set(r["options"]["dependsOn"]) <= names
        if r["type"].startswith("aws:"):
            assert all("_" not in k for k in r["inputs"]), f"{r['name']}: inputs are camelCase, as the engine sees them"
    json.dumps(data)  # plain JSON
    assert data["violations"] == [], "the project's own stacks pass every guardrail"
    assert set(data["outputs"]["groups"]) == {"12_04-bee", "12_04-www", "api", "12_04-cron"}


def test_images_are_not_built_their_ami_is_named_by_hash(staging):
    data = staging.data
    assert not staging.run.logs or all(level != "ERROR" for level, _ in staging.run.logs)
    cmd = by_name(data, "api-image", COMMAND)
    image_hash = cmd["inputs"]["triggers"][0]
    assert len(image_hash) == 64
    assert by_name(data, "api-lt", LT)["inputs"]["imageId"] == f"(baked at deploy: {image_hash})"
    assert data["outputs"]["groups"]["api"]["ami_id"] == f"(baked at deploy: {image_hash})"
    # `builder: ami` with a filter: the locked image (nodes.lock.json), its id and root device; no lookup
    from fleet.spec.lock import lock_path, read_lock
    from fleet.spec.model import SourceAmiFilter

    locked = read_lock(lock_path(ROOT / "nodes.yaml")).find(SourceAmiFilter(
        "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*", ("099720109477",)), "us-east-1")
    cron = by_name(data, "12-04-cron-lt", LT)["inputs"]
    assert cron["imageId"] == locked.ami_id
    assert cron["blockDeviceMappings"][0]["deviceName"] == locked.root_device_name
    assert [t for t, _ in staging.run.calls if t == "aws:ec2/getAmi:getAmi"] == [], "the plan looks up no AMI"


def test_no_input_names_the_checkout(staging):
    """Strings are shown as they are (only asset paths, which the engine identifies by content hash,
    show the project as `<project>`): an absolute checkout path would show here."""
    text = json.dumps(staging.data)
    assert str(ROOT) not in text
    assert "dir" not in by_name(staging.data, "api-image", COMMAND)["inputs"]


def test_options_carry_ignore_changes_and_explicit_depends_on(staging):
    data = staging.data
    spot = by_name(data, "api-spot", ASG)
    assert "desiredCapacity" in spot["options"]["ignoreChanges"]
    assert spot["inputs"]["maxSize"] == 3 and isinstance(spot["inputs"]["maxSize"], int), "2.0 is shown as 2"
    # the role's policies, and the boot bundle the template's user data fetches (a first boot must
    # not race its upload): explicit depends_on only, by name
    options = dict(by_name(data, "api-lt", LT)["options"])
    bundles = [n for n in options["dependsOn"] if n.startswith("artifact-")]
    assert len(bundles) == 1
    assert by_name(data, bundles[0], "aws:s3/bucketObjectv2:BucketObjectv2")
    assert options == {
        "ignoreChanges": [], "dependsOn": sorted(["api-node-boot", "api-node-ssm", *bundles]), "protect": False,
        "deleteBeforeReplace": False, "replaceOnChanges": [], "retainOnDelete": False, "aliases": []}
    assert "api-lt" not in by_name(data, "api-spot", ASG)["options"]["dependsOn"], "property dependencies are not"


def test_ordering_is_depth_first_with_siblings_by_type_and_name(staging):
    resources, depths = staging.data["resources"], staging.depths
    assert depths[0] == 0
    for i in range(1, len(resources)):
        assert depths[i] <= depths[i - 1] + 1
        if depths[i] > 0:  # the parent is the nearest shallower entry above
            parent = next(resources[j] for j in range(i - 1, -1, -1) if depths[j] == depths[i] - 1)
            assert resources[i]["parent"] == parent["name"]
    tops = [(r["type"], r["name"]) for r, d in zip(resources, depths, strict=True) if d == 0]
    assert tops == sorted(tops)


def test_two_runs_in_two_processes_print_the_same_json(staging, tmp_path):
    """The CLI in a fresh process (other hash seed): byte for byte the plan the fixture made."""
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-m", "fleet", "plan", "--stack", "staging", "--json"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == json.dumps(staging.data, indent=2) + "\n"


def test_prod_plan_is_https_with_deletion_protection(prod):
    data = prod.data
    (lb,) = [r for r in data["resources"] if r["type"] == LB]
    assert lb["inputs"]["enableDeletionProtection"] is True and lb["inputs"]["internal"] is False
    listeners = [r["inputs"] for r in data["resources"] if r["type"] == "aws:lb/listener:Listener"]
    assert {x["protocol"] for x in listeners} == {"HTTP", "HTTPS"}
    assert not [r for r in data["resources"] if r["type"] == "aws:ec2/vpc:Vpc"], "prod adopts its VPC"


# -------------------------------------------------------------------------------------- --group

def test_group_keeps_the_groups_resources_and_no_shared_ones():
    data = plan(ROOT, "staging", group="api")
    names = {r["name"] for r in data["resources"]}
    assert {"api", "api-lt", "api-spot", "api-on-demand", "api-rule", "api-image"} <= names
    assert {"api-node", "api-node-from-alb", "alb-to-api"} <= names, "its instance SG and rules"
    types = {r["type"] for r in data["resources"]}
    assert LB not in types and "aws:ec2/vpc:Vpc" not in types and "fleet:network:Network" not in types
    assert not any(r["name"].startswith(("12-04-", "www-", "internal-")) for r in data["resources"])
    assert list(data["outputs"]) == ["groups"] and list(data["outputs"]["groups"]) == ["api"]
    nodes = [r for r in data["resources"] if r["type"] == NODE_GROUP]
    assert [n["name"] for n in nodes] == ["api"]


def test_unknown_group_is_bad_input(capsys):
    assert main(["plan", "--stack", "staging", "--group", "apx"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip().splitlines() == [f"fleet: project {ROOT}, nodes nodes.yaml, stack staging "
                                        "(Pulumi.staging.yaml)",
                                        "nodes.yaml: group 'apx': no such group (did you mean 'api'?)"]


# ------------------------------------------------------------------------------------ bad input

def _nodes_copy(tmp_path: Path, old: str, new: str) -> Path:
    text = (ROOT / "nodes.yaml").read_text()
    assert old in text
    path = tmp_path / "nodes.yaml"
    path.write_text(text.replace(old, new, 1))
    shutil.copy(ROOT / "nodes.lock.json", tmp_path / "nodes.lock.json")  # the base images stay locked
    return path


def test_bad_nodes_file_exits_2_with_one_line_and_nothing_on_stdout(tmp_path, capsys):
    bad = _nodes_copy(tmp_path, "  instance_type: c6i.large\n", "  instance_typ: c6i.large\n")
    assert main(["plan", "--stack", "staging", "--json", "--nodes", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    context, *lines = err.strip().splitlines()
    assert context == f"fleet: project {ROOT}, nodes {bad}, stack staging (Pulumi.staging.yaml)"
    assert len(lines) == 1, lines
    assert "group 'api'" in lines[0] and "instance_typ" in lines[0] and "did you mean 'instance_type'" in lines[0]


def test_problems_only_the_program_finds_are_bad_input_too(tmp_path, capsys):
    """c5.9xlarge has too few spot neighbours (c5n.9xlarge only): refused before the program runs."""
    bad = _nodes_copy(tmp_path, "  instance_type: c6i.large\n", "  instance_type: c5.9xlarge\n")
    assert main(["plan", "--stack", "staging", "--nodes", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    _, *lines = err.strip().splitlines()
    assert len(lines) == 1 and "group 'api'" in lines[0] and "spot" in lines[0], lines


def test_unknown_stack_and_bad_arguments_exit_2(capsys):
    assert main(["plan", "--stack", "stagin"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "no stack file for stack 'stagin'" in err and "did you mean 'staging'" in err
    for argv in (["plan", "diff", "only-one.json"], ["plan", "staging"], ["plan", "a.json", "b.json"],
                 ["plan", "diff", "a.json", "b.json", "c.json"]):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own errors
            code = exc.code
        assert code == 2, argv
        out, err = capsys.readouterr()
        assert out == "" and len(err.strip().splitlines()) == 1, (argv, err)
    assert main(["plan", "diff", "/nonexistent/a.json", "/nonexistent/b.json"]) == 2
    out, err = capsys.readouterr()  # one line per file: both problems in one run
    assert out == "" and [line.split(":")[0] for line in err.strip().splitlines()] == [
        "/nonexistent/a.json", "/nonexistent/b.json"]


# -------------------------------------------------------------------------- violations -> exit 1

TINY_PROGRAM = '''\
import pulumi_aws as aws

# one launch template that does not require IMDSv2 and leaves its root volume unencrypted
aws.ec2.LaunchTemplate("bad-lt", name_prefix="bad-", instance_type="m5.large", image_id="ami-0123456789abcdef0",
                       tags={"fleet:group": "api", "fleet:stack": "staging"},
                       block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                           device_name="/dev/sda1", ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                               volume_size=20, volume_type="gp3"))])
'''


@pytest.fixture
def tiny_project(tmp_path, monkeypatch):
    for name in ("Pulumi.yaml", "Pulumi.staging.yaml", "nodes.yaml", "nodes.lock.json"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "cookbooks", tmp_path / "cookbooks")  # plan checks what validate checks
    (tmp_path / "__main__.py").write_text(TINY_PROGRAM)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_violations_are_reported_and_exit_1(tiny_project, capsys):
    assert main(["plan", "--stack", "staging", "--json"]) == 1
    out, _ = capsys.readouterr()
    data = json.loads(out)
    assert [r["name"] for r in data["resources"]] == ["bad-lt"]
    policies = {v["policy"] for v in data["violations"] if v["resource"] == "bad-lt"}
    assert {"imdsv2-required", "ebs-encrypted"} <= policies
    assert main(["plan", "--stack", "staging"]) == 1
    out, _ = capsys.readouterr()
    assert "guardrail violation(s):" in out and "imdsv2-required: bad-lt:" in out


# ------------------------------------------------------------------------------- the human tree

def test_human_tree_shows_key_settings_per_group(staging):
    text = render_plan(staging.data, staging.depths, staging.groups, staging.homes, staging.group_names)
    lines = text.splitlines()
    assert lines[0].startswith("fleet plan: stack staging")
    assert [x for x in lines if x.startswith("group ")] == [
        "group 12_04-bee", "group 12_04-www", "group api", "group 12_04-cron"]
    assert "shared" in lines
    api = "\n".join(lines[lines.index("group api"):lines.index("group 12_04-cron")])
    assert "NodeGroup api" in api
    assert "ec2:LaunchTemplate api-lt  c6i.large, AMI (baked at deploy: " in api and "IMDSv2 required" in api
    assert "instances: node_min 1, node_max 3 in all: on-demand base 1 + spot 0-2 (spot max 3: " in api
    assert "autoscaling:Group api-spot  spot min 0 max 3" in api and "c6i.large,c6a.large" in api
    assert "autoscaling:Group api-on-demand  on-demand min 1 max 3" in api
    assert "lb:ListenerRule api-rule  priority " in api and "hosts api.example.com" in api
    assert "lb:TargetGroup api  HTTP:8000, health /status every 5s" in api
    assert "target tracking ASGAverageCPUUtilization 45, no scale-in" in api
    assert "CPUUtilization > 85 for 2 x 60s" in api and "CPUUtilization < 30 for 10 x 60s" in api
    assert "vpc:SecurityGroupIngressRule api-node-from-alb (in security-groups)  tcp 8000 from sg-" in api
    www = "\n".join(lines[lines.index("group 12_04-www"):lines.index("group api")])
    assert "paths /*" in www and "hosts www.example.com,example.com" in www
    cron = "\n".join(lines[lines.index("group 12_04-cron"):lines.index("shared")])
    locked = json.loads((ROOT / "nodes.lock.json").read_text())["images"]["us-east-1"]
    assert f"AMI {next(iter(locked.values()))['ami_id']}," in cron  # the locked base image, known offline
    assert lines[-2].startswith(f"{sum(1 for r in staging.data['resources'] if not r['type'].startswith('fleet:'))}"
                                " resources in ")
    assert "10 autoscaling:Group" in lines[-2] and "1 lb:LoadBalancer" in lines[-2]
    assert lines[-1] == "guardrails: no violations"


def test_cli_default_stack_is_staging(capsys):
    assert main(["plan", "--group", "12_04-cron"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("fleet plan: stack staging") and "group 12_04-cron" in out and "group api" not in out
    assert out.splitlines()[0].startswith(f"fleet plan: stack staging (project fleet, directory {ROOT}, nodes "
                                          "nodes.yaml, stack file Pulumi.staging.yaml): ")
    assert err == f"fleet: project {ROOT}, nodes nodes.yaml, stack staging (Pulumi.staging.yaml)\n"


# ------------------------------------------------------------------------------------- plumbing

def test_only_fleet_plan_package_imports_pulumi():
    code = ("import sys, fleet.cli, fleet.plan.cli, fleet.plan.diff; fleet.cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m == 'pulumi' or m.startswith('pulumi.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
    for path in (ROOT / "fleet").rglob("*.py"):
        if path.parent != ROOT / "fleet" / "plan":
            assert not re.search(r"^\s*(import|from) pulumi", path.read_text(), re.M), path


def test_a_run_leaves_the_interpreter_as_it_found_it(staging):
    """fleet.plan.engine.run switches cyclic GC off, the SDK's source positions off, memoizes its
    type unwrapping and checks for unknowns without cycles for the run only."""
    import gc

    from pulumi import _types
    from pulumi.runtime import resource as sdk_resource
    from pulumi.runtime import rpc

    assert gc.isenabled()
    assert sdk_resource._get_stack_trace.__module__ == "pulumi.runtime.resource"
    assert _types.unwrap_type.__module__ == "pulumi._types"
    assert rpc.contains_unknowns.__module__ == "pulumi.runtime.rpc"
    assert _types.resource_types.__module__ == "pulumi._types"


def test_memoized_type_unwrapping_gives_the_sdks_answers():
    import pulumi
    from pulumi import _types

    from fleet.plan.engine import _memoized_type_unwrapping

    hints = [pulumi.Input[str] | None, pulumi.Input[int], pulumi.Output[str], pulumi.Input[str] | None, str]
    plain = [_types.unwrap_type(h) for h in hints]
    with _memoized_type_unwrapping():
        assert _types.unwrap_type.__module__ == "fleet.plan.engine"
        assert [_types.unwrap_type(h) for h in hints + hints] == plain + plain  # the second round from memory
    assert plain[2] is str and plain[4] is str
    assert _types.unwrap_type.__module__ == "pulumi._types"


def test_a_run_reads_a_resource_classs_types_once():
    """The SDK reads a resource class's property types and names (type hints: the components' are
    strings, evaluated again each time) for every resource it resolves; during a run, once per class,
    with the SDK's answers."""
    from pulumi import _types

    from components.asg_pair import AsgPair
    from fleet.plan.engine import _memoized_resource_types

    plain = (_types.resource_types(AsgPair), _types.resource_pulumi_to_py_names(AsgPair))
    with _memoized_resource_types():
        first = (_types.resource_types(AsgPair), _types.resource_pulumi_to_py_names(AsgPair))
        again = (_types.resource_types(AsgPair), _types.resource_pulumi_to_py_names(AsgPair))
    assert first == plain and first[0] is again[0] and first[1] is again[1]
    assert "spot" in first[0] and _types.resource_types.__module__ == "pulumi._types"
    assert _types.resource_pulumi_to_py_names.__module__ == "pulumi._types"


def test_a_run_checks_for_unknowns_without_leaving_cyclic_garbage():
    """Cyclic GC is off during a run, so a reference cycle made per call is never freed: the SDK's
    `contains_unknowns` made one per call (an inner function that refers to itself), called for most
    values the SDK resolves (~57 MiB of a 100-group plan). During a run the check makes none."""
    import gc

    from pulumi.runtime import rpc

    from fleet.plan.engine import run

    found: list[int] = []

    def program():
        gc.collect()  # whatever the run made so far
        for _ in range(500):
            rpc.contains_unknowns({"a": [1, {"b": "c"}], "d": None})
        found.append(gc.collect())

    run(program)
    assert len(found) == 1 and found[0] < 50, found  # the SDK's own check left 6 objects per call: 3,000


def test_the_runs_unknown_check_gives_the_sdks_answers():
    """Same answers as the SDK's check, in the same order of lookups (an output type's `__getitem__`
    may warn: it is called for the same keys, up to the first unknown)."""
    import pulumi
    from pulumi.runtime import rpc

    from fleet.plan.engine import _acyclic_unknown_checks

    class Warns(dict):
        def __getitem__(self, key):
            looked.append(key)
            return super().__getitem__(key)

    loop: list = [1]
    loop.append(loop)
    values = [None, 1, "x", pulumi.UNKNOWN, [1, [2, pulumi.UNKNOWN]], {"a": {"b": pulumi.UNKNOWN}}, loop,
              {"a": [1, 2], "b": {"c": "d"}}, Warns(a=1, b=pulumi.UNKNOWN, c=2), (pulumi.UNKNOWN,)]
    looked: list[str] = []
    sdk = [rpc.contains_unknowns(v) for v in values]
    sdk_looked, looked = looked, []
    with _acyclic_unknown_checks():
        assert rpc.contains_unknowns.__module__ == "fleet.plan.engine"
        assert [rpc.contains_unknowns(v) for v in values] == sdk
        assert [pulumi.contains_unknowns(v) for v in values] == sdk  # the SDK's public name calls it too
    assert looked == sdk_looked + sdk_looked == ["a", "b"] * 2
    assert sdk == [False, False, False, True, True, True, False, False, True, False]
    assert rpc.contains_unknowns.__module__ == "pulumi.runtime.rpc"


def test_make_plan_runs_the_offline_plan():
    makefile = (ROOT / "Makefile").read_text()
    target = makefile[makefile.index("\nplan:"):].split("\n\n")[0]
    assert "$(PY) -m fleet plan --stack $(STACK)" in target and "$(VENV)/.runtime" in target


def test_a_raw_build_that_skips_zero_blocks_is_refused_before_the_plan_runs(tmp_path, capsys):
    """The unsafe opt-in is bad input for plan as for validate (every launch template encrypts its volume):
    one line naming the key, exit 2, nothing registered; without it the plan has no such violation (the
    raw-upload-every-block guardrail, tests/test_guardrails.py, stays behind it for the Command's line)."""
    nodes = tmp_path / "nodes.yaml"
    (tmp_path / "disk.raw").write_bytes(b"\1" * 4096)
    nodes.write_text((ROOT / "nodes.yaml").read_text() + (
        "\nrawbox:\n  instance_type: m5.large\n"
        "  image: {builder: raw, path: disk.raw, skip_zero_blocks_unsafe_if_encrypted: true}\n"))
    shutil.copy(ROOT / "nodes.lock.json", tmp_path / "nodes.lock.json")
    assert main(["plan", "--stack", "staging", "--json", "--nodes", str(nodes)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "group 'rawbox': key 'image.skip_zero_blocks_unsafe_if_encrypted'" in err, err
    nodes.write_text(nodes.read_text().replace(", skip_zero_blocks_unsafe_if_encrypted: true", ""))
    main(["plan", "--stack", "staging", "--json", "--nodes", str(nodes)])
    assert not [v for v in json.loads(capsys.readouterr().out)["violations"] if v["policy"] == "raw-upload-every-block"]
