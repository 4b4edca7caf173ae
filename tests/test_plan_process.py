"""`python -m fleet plan` as the process users run: what it imports, how it exits, and the
per-group work done once for all groups. (How fast: bench/bench_program.py, not a test.)"""

from __future__ import annotations

import gc
import json
import subprocess
import sys

from fleet.cli import main
from fleet.plan.engine import ROOT, group_members, run_program
from fleet.plan.tags import tag_value
from fleet.spec.instance_types import known_instance_types
from fleet.spec.names import slug


def fleet(*argv: str, cwd=ROOT, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fleet", *argv], capture_output=True, text=True, cwd=cwd,
                          timeout=300, **kw)


def test_plan_imports_no_boto3_or_botocore():
    code = ("import sys, io, contextlib\n"
            "from fleet.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    status = main(['plan', '--json'])\n"
            "print(status, sorted({m.split('.')[0] for m in sys.modules} & {'boto3', 'botocore', 's3transfer', "
            "'urllib3'}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[-2] == "0 []", out.stdout[-500:]


def test_the_process_prints_everything_and_keeps_its_exit_status(tmp_path):
    done = fleet("plan", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)  # the whole document arrived before the process ended
    assert data["stack"] == "staging" and len(data["resources"]) > 50
    bad = tmp_path / "nodes.yaml"
    bad.write_text("api:\n  instance_type: nope.large\n")
    done = fleet("plan", "--json", "--nodes", str(bad))
    assert done.returncode == 2 and done.stdout == "" and "nope.large" in done.stderr
    assert fleet("--help").returncode == 0
    usage = fleet("plan", "--no-such-option")
    assert usage.returncode == 2 and "fleet:" in usage.stderr


def test_a_closed_pipe_is_not_an_error():
    done = subprocess.run(f"'{sys.executable}' -m fleet plan | head -c 10", shell=True, capture_output=True,
                          text=True, cwd=ROOT, timeout=300)
    assert done.stdout == "fleet plan" and "Traceback" not in done.stderr, done.stderr


def test_main_in_process_leaves_garbage_collection_as_it_found_it(capsys):
    assert gc.isenabled()
    assert main(["plan", "--group", "api"]) == 0
    assert gc.isenabled()
    gc.disable()
    try:
        assert main(["plan", "--group", "api"]) == 0
        assert not gc.isenabled()
    finally:
        gc.enable()
    capsys.readouterr()


def test_group_members_for_all_groups_in_one_pass():
    r = run_program("staging", offline=True)
    groups = ["12_04-bee", "12_04-www", "api", "12_04-cron"]
    members = group_members(r.resources, groups)
    by_urn = r.by_urn()
    for g in groups:
        (root,) = [x for x in r.resources if x.type == "fleet:node_group:NodeGroup" and x.name == slug(g)]
        under = {x.urn for x in r.resources if x.urn == root.urn or _below(x, root.urn, by_urn)}
        tagged = {x.urn for x in r.resources if tag_value(x.inputs, "fleet:group") == g}
        assert members[g] == under | tagged and tagged - under  # its security group lives outside its NodeGroup
    assert not set.intersection(*members.values())


def _below(x, urn, by_urn) -> bool:
    while x.parent is not None:
        if x.parent == urn:
            return True
        x = by_urn.get(x.parent)
        if x is None:
            return False
    return False


def test_instance_types_are_botocores():
    from botocore.loaders import Loader

    model = Loader().load_service_model("ec2", "service-2")
    assert known_instance_types() == frozenset(model["shapes"]["InstanceType"]["enum"])
