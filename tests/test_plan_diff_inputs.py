"""`fleet plan diff` on any two files: each plan is checked on load (one line per problem, exit 2, never
a traceback), control characters in values never reach the terminal, a shortened long value keeps the
part that changed visible, plans of two stacks or projects are refused unless asked for, and the diff
is linear in the plans' size (bench/bench_plan_diff.py measures 10,000 resources)."""

from __future__ import annotations

import json
import time

import pytest

from fleet.cli import main
from fleet.plan.diff import diff_plans, format_diff, short_pair

LT = "aws:ec2/launchTemplate:LaunchTemplate"
INSTANCE = "aws:ec2/instance:Instance"
RULE = "aws:cloudwatch/eventRule:EventRule"
NODE_GROUP = "fleet:node_group:NodeGroup"


def res(typ, name, parent=None, **inputs):
    return {"type": typ, "name": name, "parent": parent, "inputs": inputs,
            "options": {"ignoreChanges": [], "dependsOn": [], "protect": False, "deleteBeforeReplace": False}}


def doc(*resources, stack="staging", project="fleet"):
    return {"project": project, "stack": stack, "resources": list(resources), "outputs": {}, "violations": []}


def diff_cli(tmp_path, capsys, old, new, *flags) -> tuple[int, str, list[str]]:
    for name, data in (("old.json", old), ("new.json", new)):
        (tmp_path / name).write_text(data if isinstance(data, str) else json.dumps(data))
    capsys.readouterr()
    code = main(["plan", "diff", str(tmp_path / "old.json"), str(tmp_path / "new.json"), *flags])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err.splitlines()


GOOD = doc(res(LT, "lt", "g", instanceType="m5.large"))
MALFORMED = {
    "inputs a string": doc({**res(LT, "lt"), "inputs": "x"}),
    "options a string": doc({**res(LT, "lt"), "options": "x"}),
    "parent a dict": doc({**res(LT, "lt"), "parent": {"a": 1}}),
    "violations an int": {**doc(), "violations": 5},
    "deep nesting": '{"resources": ' + "[" * 5000 + "]" * 5000 + "}",
    "resources a dict": {**doc(), "resources": {"a": 1}},
    "a resource a list": doc([1, 2]),
    "no type": doc({"name": "x"}),
    "ignoreChanges a string": doc({**res(LT, "lt"), "options": {"ignoreChanges": "userData"}}),
    "outputs a list": {**doc(), "outputs": []},
    "a NaN": '{"resources": [], "x": NaN}',
    "not an object": "[]",
    "a stack number": {**doc(), "stack": 5},
}


@pytest.mark.parametrize("shape", list(MALFORMED))
def test_malformed_plans_are_one_line_per_problem(tmp_path, capsys, shape):
    code, out, err = diff_cli(tmp_path, capsys, GOOD, MALFORMED[shape])
    assert code == 2 and out == ""
    problems = err
    assert problems and all(line.startswith(f"{tmp_path / 'new.json'}: not a fleet plan: ") for line in problems)
    assert all(len(line) < 400 for line in problems)


def test_both_files_problems_are_reported_in_one_run(tmp_path, capsys):
    code, _, err = diff_cli(tmp_path, capsys, MALFORMED["inputs a string"], MALFORMED["parent a dict"])
    assert code == 2
    new, old = tmp_path / "new.json", tmp_path / "old.json"
    assert sorted(err) == [
        f"{new}: not a fleet plan: resources[0].parent: must be a name (string) or null, not an object",
        f"{old}: not a fleet plan: resources[0].inputs: must be an object, not a string"]


def test_control_characters_in_values_and_names_are_escaped(tmp_path, capsys):
    old = doc(res(LT, "lt\x1b]0;owned\x07", "g", description="plain"))
    new = doc(res(LT, "lt\x1b]0;owned\x07", "g", description="\x1b[2J\x1b[31mred\u2028next"))
    code, out, _ = diff_cli(tmp_path, capsys, old, new)
    assert code == 0
    assert "\x1b" not in out and "\u2028" not in out and "\x07" not in out
    assert "\\x1b[2J\\x1b[31mred\\u2028next" in out and "lt\\x1b]0;owned\\x07" in out


def test_a_shortened_long_value_keeps_the_change_visible():
    pattern = {"source": ["aws.autoscaling"], "detail-type": [f"EC2 Instance Refresh {x}" for x in
                                                              ("Failed", "Cancelled", "Rollback Started")],
               "detail": {"AutoScalingGroupName": [f"fleet-staging-api-{i}" for i in range(12)]}}
    changed = json.loads(json.dumps(pattern))
    changed["detail"]["AutoScalingGroupName"][6] = "fleet-staging-apx-6"
    old, new = json.dumps(pattern), json.dumps(changed)
    text = format_diff(diff_plans(doc(res(RULE, "r", None, eventPattern=old)),
                                  doc(res(RULE, "r", None, eventPattern=new))))
    (line,) = [x for x in text.splitlines() if x.startswith("    eventPattern: ")]
    a, b = line.removeprefix("    eventPattern: ").split(" -> ")
    assert a != b and "api-6" in a and "apx-6" in b and len(a) <= 72 and len(b) <= 72
    assert short_pair("x" * 100 + "a" * 200 + "y" * 100, "x" * 100 + "b" * 200 + "y" * 100)[1].count("b") > 20


@pytest.mark.parametrize("stack,project", [("prod", "fleet"), ("staging", "other")])
def test_plans_of_two_stacks_or_projects_are_refused_unless_allowed(tmp_path, capsys, stack, project):
    new = doc(res(LT, "lt", "g", instanceType="m5.xlarge"), stack=stack, project=project)
    code, out, err = diff_cli(tmp_path, capsys, GOOD, new)
    assert code == 2 and out == "" and len(err) == 1
    assert "the plans are of different stacks" in err[0] and "--allow-other-stack" in err[0]
    code, out, _ = diff_cli(tmp_path, capsys, GOOD, new, "--allow-other-stack")
    assert code == 0 and "instanceType: m5.large -> m5.xlarge" in out


def test_many_changed_templates_and_instances_of_one_group_are_linear():
    tags = {"fleet:group": "g"}

    def plan(kind):
        rs = [res(NODE_GROUP, "g")]
        rs += [res(LT, f"lt-{i}", "g", instanceType=kind, tags=tags) for i in range(400)]
        rs += [res(INSTANCE, f"i-{i}", "g", tags=tags) for i in range(400)]
        return doc(*rs)

    start = time.process_time()
    d = diff_plans(plan("m5.large"), plan("m5.xlarge"))
    text = format_diff(d)
    assert time.process_time() - start < 8  # 19 s of CPU when it was quadratic; ~1 s now
    assert len(d.rollouts) == 400
    instance = next(c for c in d.changed if c.name == "i-0")
    assert instance.replace == ["launchTemplate.version"]
    assert text.count("REPLACE instance") == 400
