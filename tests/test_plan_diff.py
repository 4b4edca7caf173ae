"""`fleet plan diff`: old -> new values, user data decoded, REPLACE with what it risks (the provider's
replace-on-change table), ROLLOUT per launch template version, `--fail-on-replace` (exit 3).

Hand-made plans for the rules; real pairs of plans for what users change: the program run twice
under the mock engine on a copy of this project (port change, instance type change, new group,
removed group, cookbook change), compared through the CLI as the PR workflow does.
"""

from __future__ import annotations

import base64
import json
import shutil

import pytest

from fleet.cli import main
from fleet.plan.diff import (
    CRITICAL,
    MISSING,
    REPLACE_ON,
    changed_paths,
    decode_user_data,
    diff_plans,
    format_diff,
    resource_groups,
    short,
    value_changes,
)
from fleet.plan.engine import ROOT, plan
from fleet.plan.replacements import REPLACE_ON_CHANGES

ASG = "aws:autoscaling/group:Group"
TG = "aws:lb/targetGroup:TargetGroup"
LB = "aws:lb/loadBalancer:LoadBalancer"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
INSTANCE = "aws:ec2/instance:Instance"
COMMAND = "command:local:Command"
NODE_GROUP = "fleet:node_group:NodeGroup"


def res(typ, rname, parent=None, options=None, /, **inputs):
    return {"type": typ, "name": rname, "parent": parent, "inputs": inputs,
            "options": {"ignoreChanges": [], "dependsOn": [], "protect": False, "deleteBeforeReplace": False,
                        **(options or {})}}


def doc(*resources, violations=()):
    return {"project": "fleet", "stack": "staging", "resources": list(resources), "outputs": {},
            "violations": list(violations)}


# ------------------------------------------------------------------------------------ the rules

def test_changed_paths_and_values_nested_lists_and_numbers():
    old = {"a": {"b": 1, "c": [1, 2, {"d": "x"}]}, "gone": 1, "n": 2, "flag": True}
    new = {"a": {"b": 1, "c": [1, 3, {"d": "y"}, 4]}, "added": 1, "n": 2.0, "flag": 1}
    assert changed_paths(old, new) == ["a.c[1]", "a.c[2].d", "a.c[3]", "added", "flag", "gone"]
    assert value_changes(old, new) == [("a.c[1]", 2, 3), ("a.c[2].d", "x", "y"), ("a.c[3]", MISSING, 4),
                                       ("added", MISSING, 1), ("flag", True, 1), ("gone", 1, MISSING)]


def test_diff_shows_old_and_new_values_and_ignored_changes():
    old = doc(res(ASG, "api-spot", "api", {"ignoreChanges": ["desiredCapacity"]}, minSize=1, maxSize=4,
                  desiredCapacity=1, tags=[{"key": "team", "value": "a"}]),
              res(TG, "old", "old"),
              violations=[{"policy": "p", "resource": "old", "message": "m"}])
    new = doc(res(ASG, "api-spot", "api", {"ignoreChanges": ["desiredCapacity"]}, minSize=1, maxSize=6,
                  desiredCapacity=3, tags=[{"key": "team", "value": "b"}]),
              res(TG, "new", "new"),
              violations=[{"policy": "q", "resource": "new", "message": "m"}])
    d = diff_plans(old, new)
    assert [r["name"] for r in d.added] == ["new"] and [r["name"] for r in d.removed] == ["old"]
    (c,) = d.changed
    assert c.paths == ["desiredCapacity", "maxSize", "tags[0].value"] and c.ignored == ["desiredCapacity"]
    assert not c.replace and not d.rollouts
    lines = format_diff(d).splitlines()
    assert lines[0] == "fleet plan diff (staging): 1 to add, 1 to remove, 1 to change (0 replaced), 0 rollout(s)"
    assert f"+ {TG} new (in new)" in lines and f"- {TG} old (in old)" in lines
    i = lines.index(f"~ {ASG} api-spot (in api)")
    assert lines[i + 1:i + 4] == ["    desiredCapacity: 1 -> 3 (ignored)", "    maxSize: 4 -> 6",
                                  "    tags[0].value: a -> b"]
    assert "new violation: q on new: m" in lines and "fixed violation: p on old: m" in lines


@pytest.mark.parametrize("typ,field,old,new", [
    (TG, "port", 8000, 8001), (TG, "protocol", "HTTP", "HTTPS"), (TG, "vpcId", "vpc-1", "vpc-2"),
    (TG, "targetType", "instance", "ip"), (TG, "namePrefix", "a-", "b-"), (TG, "name", "a", "b"),
    (ASG, "name", "a", "b"), (ASG, "namePrefix", "a-", "b-"),
    (LB, "internal", False, True), (LB, "loadBalancerType", "application", "network"), (LB, "name", "a", "b"),
    (INSTANCE, "subnetId", "subnet-1", "subnet-2"), (LT, "namePrefix", "a-", "b-"),
    (COMMAND, "triggers", ["h1"], ["h2"]),
])
def test_replacements_name_the_value_and_the_risk(typ, field, old, new):
    d = diff_plans(doc(res(typ, "x", "p", **{field: old, "tags": {"a": "1"}})),
                   doc(res(typ, "x", "p", **{field: new, "tags": {"a": "2"}})))
    (c,) = d.changed
    assert c.replace and all(p.startswith(field) for p in c.replace) and field in REPLACE_ON[typ]
    text = format_diff(d)
    rule = REPLACE_ON_CHANGES[typ]
    shown = f"{short(old)} -> {short(new)}" if not isinstance(old, list) else f"{old[0]} -> {new[0]}"
    assert f"! {typ} x (in p)" in text and f"REPLACE {rule.label} x: " in text and shown in text
    assert f"(forces new; {rule.risk})" in text
    assert ("WARNING: 1 replacement(s)" in text) == (typ in CRITICAL)


def test_an_asgs_initial_lifecycle_hooks_force_a_new_asg_unless_ignored():
    """AWS sets initial lifecycle hooks at creation only: the provider replaces the ASG when they change, which
    is why both ASGs ignore them (the rollout puts the hook on existing ASGs)."""
    hook = {"name": "fleet-launch", "lifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
            "heartbeatTimeout": 300, "defaultResult": "ABANDON"}
    old, new = [hook], [dict(hook, heartbeatTimeout=390)]
    (c,) = diff_plans(doc(res(ASG, "api-spot", "api", initialLifecycleHooks=old)),
                      doc(res(ASG, "api-spot", "api", initialLifecycleHooks=new))).changed
    assert c.replace == ["initialLifecycleHooks[0].heartbeatTimeout"]
    assert "REPLACE ASG api-spot: initialLifecycleHooks[0].heartbeatTimeout 300 -> 390" in format_diff(
        diff_plans(doc(res(ASG, "api-spot", "api", initialLifecycleHooks=old)),
                   doc(res(ASG, "api-spot", "api", initialLifecycleHooks=new))))
    ignored = {"ignoreChanges": ["desiredCapacity", "initialLifecycleHooks"]}
    (c,) = diff_plans(doc(res(ASG, "api-spot", "api", ignored, initialLifecycleHooks=old)),
                      doc(res(ASG, "api-spot", "api", ignored, initialLifecycleHooks=new))).changed
    assert not c.replace


def test_the_issue_example_line():
    d = diff_plans(doc(res(TG, "12-04-www", "12-04-www", port=8080)), doc(res(TG, "12-04-www", "12-04-www", port=8081)))
    assert ("REPLACE target group 12-04-www: port 8080 -> 8081 (forces new; traffic moves to an empty group unless "
            in format_diff(d))


def test_in_place_updates_are_not_replacements():
    for typ, field in ((TG, "deregistrationDelay"), (TG, "healthCheck"), (ASG, "maxSize"), (LB, "idleTimeout"),
                       (LB, "subnets"), ("aws:lb/listenerRule:ListenerRule", "priority"), (INSTANCE, "instanceType"),
                       (INSTANCE, "userData"), (COMMAND, "create")):
        d = diff_plans(doc(res(typ, "x", None, **{field: 1})), doc(res(typ, "x", None, **{field: 2})))
        assert not d.changed[0].replace, (typ, field)
    nlb = diff_plans(doc(res(LB, "x", None, loadBalancerType="network", subnets=["a", "b"])),
                     doc(res(LB, "x", None, loadBalancerType="network", subnets=["a"])))
    assert nlb.changed[0].replace == ["subnets[1]"]
    replace_ud = diff_plans(doc(res(INSTANCE, "x", None, userData="YQ==", userDataReplaceOnChange=True)),
                            doc(res(INSTANCE, "x", None, userData="Yg==", userDataReplaceOnChange=True)))
    assert replace_ud.changed[0].replace == ["userData"]


def test_the_replace_on_changes_option_and_delete_before_replace():
    old = doc(res("aws:sqs/queue:Queue", "q", None, {"replaceOnChanges": ["visibility_timeout_seconds"],
                                                     "deleteBeforeReplace": True}, visibilityTimeoutSeconds=30))
    new = doc(res("aws:sqs/queue:Queue", "q", None, {"replaceOnChanges": ["visibility_timeout_seconds"],
                                                     "deleteBeforeReplace": True}, visibilityTimeoutSeconds=60))
    (c,) = diff_plans(old, new).changed
    assert c.replace == ["visibilityTimeoutSeconds"] and c.delete_first
    assert "(forces new; deleted before the new one exists, messages in the old queue are lost)" in format_diff(
        diff_plans(old, new))


def test_parent_or_type_change_is_a_replacement_unless_aliased():
    moved = diff_plans(doc(res(ASG, "api-spot", "api")), doc(res(ASG, "api-spot", "api-v2")))
    assert not moved.added and not moved.removed
    (c,) = moved.changed
    assert c.note == "moved: parent api -> api-v2, no alias: deleted and created" and c.replace and c.critical
    assert "REPLACE ASG api-spot: moved: parent api -> api-v2" in format_diff(moved)
    aliased = diff_plans(doc(res(ASG, "api-spot", "api")),
                         doc(res(ASG, "api-spot", "api-v2", {"aliases": [{"parentUrn": "urn:...api"}]})))
    assert not aliased.changed[0].replace and "(aliased)" in aliased.changed[0].note
    retyped = diff_plans(doc(res("aws:alb/targetGroup:TargetGroup", "tg", "api")), doc(res(TG, "tg", "api")))
    assert retyped.changed[0].note.startswith("retyped: type aws:alb/") and retyped.changed[0].replace
    assert "REPLACE target group tg: retyped" in format_diff(retyped)


def test_long_values_are_shortened_in_the_middle():
    long_old, long_new = "a" * 300 + "-old", "a" * 300 + "-new"
    text = format_diff(diff_plans(doc(res(COMMAND, "c", None, create=long_old)),
                                  doc(res(COMMAND, "c", None, create=long_new))))
    line = next(x for x in text.splitlines() if x.startswith("    create: "))
    assert "…" in line and line.endswith("-new") and len(line) < 170
    assert short({"k": [1, 2]}) == '{"k":[1,2]}' and short(MISSING) == "(unset)" and len(short("x" * 500)) == 72


def test_user_data_is_decoded_and_diffed_as_text():
    def b64(text):
        return base64.b64encode(text.encode()).decode()

    old = "#cloud-config\nruncmd:\n  - echo one\nwrite_files: []\n"
    new = "#cloud-config\nruncmd:\n  - echo two\nwrite_files: []\n"
    text = format_diff(diff_plans(doc(res(LT, "api-lt", "api", userData=b64(old))),
                                  doc(res(LT, "api-lt", "api", userData=b64(new)))))
    assert "    userData (base64, decoded):" in text
    assert "      -  - echo one" in text and "      +  - echo two" in text and b64(new) not in text
    assert decode_user_data("not base64!") is None and decode_user_data(MISSING) == ""


def test_a_launch_template_version_is_a_rollout_of_its_groups_asgs_and_replaces_its_instances():
    tags = {"fleet:group": "api"}
    asg_tags = [{"key": "fleet:group", "value": "api"}]
    common = [res(NODE_GROUP, "api"), res(ASG, "api-spot", "api", tags=asg_tags),
              res(ASG, "api-on-demand", "api", tags=asg_tags), res(INSTANCE, "api-0", "api", tags=tags),
              res(ASG, "other-spot", "other", tags=[{"key": "fleet:group", "value": "other"}])]
    old = doc(res(LT, "api-lt", "api", instanceType="c6i.large", tags=tags), *common)
    new = doc(res(LT, "api-lt", "api", instanceType="c6i.xlarge", tags=tags), *common)
    d = diff_plans(old, new)
    (ro,) = d.rollouts
    assert (ro.group, ro.template, ro.paths, ro.asgs, ro.instances) == (
        "api", "api-lt", ["instanceType"], ["api-on-demand", "api-spot"], ["api-0"])
    instance = next(c for c in d.changed if c.name == "api-0")
    assert instance.replace == ["launchTemplate.version"]
    text = format_diff(d)
    assert ("ROLLOUT group api: new version of launch template api-lt (instanceType): instance refresh of "
            "api-on-demand then api-spot; one-off instances replaced: api-0") in text
    assert "REPLACE instance api-0: new version of launch template api-lt (forces new; the instance is " in text
    # tags and the description make no new version
    retag = diff_plans(old, doc(res(LT, "api-lt", "api", instanceType="c6i.large",
                                    tags={**tags, "team": "x"}), *common))
    assert not retag.rollouts and not retag.replacements


def test_groups_come_from_tags_or_the_node_group_above():
    rs = [res(NODE_GROUP, "12-04-www"), res("fleet:asg_pair:AsgPair", "12-04-www", "12-04-www"),
          res(ASG, "12-04-www-spot", "12-04-www", tags=[{"key": "fleet:group", "value": "12_04-www"}]),
          res("fleet:rollout:Rollout", "12-04-www-spot-rollout", "12-04-www"),
          res(COMMAND, "12-04-www-spot-rollout-refresh", "12-04-www-spot-rollout"),
          res("fleet:network:Network", "network"), res("aws:ec2/vpc:Vpc", "network-vpc", "network")]
    assert resource_groups(rs) == ["12_04-www"] * 5 + [None, None]


def test_every_resource_type_the_program_registers_has_a_replace_rule_with_a_source(staging_plan, prod_plan):
    types = {r["type"] for p in (staging_plan, prod_plan) for r in p["resources"] if not r["type"].startswith("fleet:")}
    missing = sorted(t for t in types if t not in REPLACE_ON_CHANGES)
    assert not missing, f"add these types to fleet/plan/replacements.py (fields, risk, source): {missing}"
    for typ, rule in REPLACE_ON_CHANGES.items():
        assert rule.risk and rule.label, typ
        assert rule.source.startswith(("hashicorp/terraform-provider-aws internal/service/",
                                       "pulumi/pulumi-command ")), typ
        assert ".go (" in rule.source, typ


# ------------------------------------------------------------------------ real pairs of plans

@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of this project (the program, its config, nodes.yaml, cookbooks), so both plans of a pair
    come from one directory and only what a test edits differs."""
    dest = tmp_path_factory.mktemp("project") / "fleet"
    shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "tests", "bench",
                                                              "*.egg-info", ".pytest_cache"))
    (dest / "cookbooks" / "svc" / "recipes").mkdir(parents=True)
    (dest / "cookbooks" / "svc" / "recipes" / "default.rb").write_text("package 'nginx'\n")
    (dest / "cookbooks" / "svc" / "recipes" / "jobs.rb").write_text("package 'cron'\n")
    return dest


@pytest.fixture(scope="module")
def staging_plan(project):
    return plan(project, "staging")


@pytest.fixture(scope="module")
def prod_plan(project):
    return plan(project, "prod")


@pytest.fixture
def pair(project, staging_plan, tmp_path, capsys):
    """edit(project) -> (diff text, exit status of --fail-on-replace): the staging plan before and after."""
    saved = {p: p.read_bytes() for p in [project / "nodes.yaml", *sorted((project / "cookbooks").rglob("*.rb"))]}

    def run(edit):
        edit(project)
        try:
            (tmp_path / "old.json").write_text(json.dumps(staging_plan))
            assert main(["plan", "--stack", "staging", "--json"]) == 0
            (tmp_path / "new.json").write_text(capsys.readouterr().out)
            assert main(["plan", "diff", str(tmp_path / "old.json"), str(tmp_path / "new.json")]) == 0
            text = capsys.readouterr().out
            status = main(["plan", "diff", str(tmp_path / "old.json"), str(tmp_path / "new.json"),
                           "--fail-on-replace"])
            assert capsys.readouterr().out == text
            return text, status
        finally:
            for p, data in saved.items():
                p.write_bytes(data)

    return run


@pytest.fixture
def in_project(project, monkeypatch):
    monkeypatch.chdir(project)
    return project


def _edit_nodes(old, new):
    def edit(project):
        path = project / "nodes.yaml"
        text = path.read_text()
        assert old in text, old
        path.write_text(text.replace(old, new, 1))
    return edit


def test_real_pair_port_change(in_project, pair):
    text, status = pair(_edit_nodes("    port: 8080\n", "    port: 8081\n"))
    assert ("REPLACE target group 12-04-www: port 8080 -> 8081 (forces new; traffic moves to an empty group unless"
            in text)
    assert "    fromPort: 8080 -> 8081" in text  # the instances' ingress rule from the ALB follows the port
    assert "ROLLOUT group 12_04-www: new version of launch template 12-04-www-lt (userData)" in text
    assert '      +    content: "{\\"environment\\": \\"staging\\", \\"group\\": \\"12_04-www\\", ' in text
    assert '\\"port\\": 8081' in text  # the user data diff, decoded
    # both slots' target groups (a blue/green group): the next rollout run writes the new ones into the rule
    assert ("WARNING: 2 replacement(s) of an ASG, target group, load balancer or instance: target group 12-04-www, "
            "target group 12-04-www-b") in text
    assert status == 3


def test_real_pair_instance_type_change(in_project, pair):
    text, status = pair(_edit_nodes("  instance_type: c6i.large\n", "  instance_type: c6i.xlarge\n"))
    assert f"~ {LT} api-lt (in api)\n    instanceType: c6i.large -> c6i.xlarge" in text
    assert ("ROLLOUT group api: new version of launch template api-lt (instanceType): blue/green into the idle "
            "slot (the one at weight 0 when the rollout runs: slot a = api-on-demand, api-spot; slot b = "
            "api-b-on-demand, api-b-spot), canary, then 100/0; the live slot stays on standby") in text
    assert "REPLACE" not in text and status == 0  # a rollout, not a replacement
    text, status = pair(_edit_nodes("  instance_type: t3.medium\n", "  instance_type: t3.large\n"))
    assert "instanceType: t3.medium -> t3.large" in text
    assert "REPLACE instance 12-04-cron-0: new version of launch template 12-04-cron-lt (forces new;" in text
    assert "one-off instances replaced: 12-04-cron-0" in text and status == 3


def test_real_pair_new_group(in_project, pair):
    text, status = pair(lambda p: (p / "nodes.yaml").write_text((p / "nodes.yaml").read_text() + (
        "\njobs:\n  instance_type: m5.large\n  autoscale: {node_min: 1, node_max: 2}\n"
        "  run_list: [\"recipe[svc::jobs]\"]\n")))
    lines = text.splitlines()
    assert lines[0].startswith("fleet plan diff (staging): ") and " 0 to remove, " in lines[0]
    assert any(x.startswith("new group jobs: ") for x in lines)
    assert f"+ {NODE_GROUP} jobs" in lines and f"+ {ASG} jobs-spot (in jobs)" in lines
    assert "REPLACE" not in text and "ROLLOUT" not in text and status == 0


def test_real_pair_removed_group(in_project, pair):
    def drop_cron(project):
        path = project / "nodes.yaml"
        text = path.read_text()
        path.write_text(text[:text.index("12_04-cron:")])
    text, status = pair(drop_cron)
    assert "removed group 12_04-cron: deleted, terminating the instances of 12-04-cron-0" in text
    assert f"- {INSTANCE} 12-04-cron-0 (in 12-04-cron)" in text and f"- {NODE_GROUP} 12-04-cron" in text
    assert " 0 to add, " in text.splitlines()[0] and "REPLACE" not in text and status == 0


def test_real_pair_cookbook_change(in_project, pair):
    # only groups whose run list closure holds the edited cookbook rebake: seatgeek-service
    # is in 12_04-bee's (baked) and api's (converges at boot: no rebake) closures, not in 12_04-www's
    text, status = pair(lambda p: (p / "cookbooks" / "seatgeek-service" / "recipes" / "djjob.rb").write_text(
        "package 'nginx'\nservice 'nginx'\n"))
    assert "REPLACE command 12-04-bee-image: triggers[0] " in text  # the image is baked again
    assert "ROLLOUT group 12_04-bee: new version of launch template 12-04-bee-lt (imageId)" in text
    assert "imageId: (baked at deploy: " in text
    assert "12-04-www" not in text and "api-image" not in text
    assert "REPLACE command 12-04-cron" not in text  # builder: ami, nothing baked
    assert status == 3


def test_real_pair_unused_cookbook_change_changes_nothing(in_project, pair):
    text, status = pair(lambda p: (p / "cookbooks" / "svc" / "recipes" / "default.rb").write_text(
        "package 'nginx'\nservice 'nginx'\n"))
    assert "no resource changes" in text and status == 0


def test_fail_on_replace_needs_diff(capsys):
    assert main(["plan", "--fail-on-replace"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "--fail-on-replace goes with diff" in err


def test_plan_diff_against_an_empty_plan_as_the_pr_workflow_writes_it(tmp_path, capsys):
    (tmp_path / "old.json").write_text('{"project": "fleet", "stack": "staging", "resources": [], "outputs": {}, '
                                       '"violations": []}')
    (tmp_path / "new.json").write_text(json.dumps(doc(res(TG, "api", "api"))))
    assert main(["plan", "diff", str(tmp_path / "old.json"), str(tmp_path / "new.json"), "--fail-on-replace"]) == 0
    out, _ = capsys.readouterr()
    assert f"+ {TG} api (in api)" in out
    (tmp_path / "bad.json").write_text('{"resources": [{"no": "type"}]}')
    assert main(["plan", "diff", str(tmp_path / "old.json"), str(tmp_path / "bad.json")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "not a fleet plan" in err


def test_diff_of_identical_plans_is_empty(staging_plan):
    d = diff_plans(staging_plan, staging_plan)
    assert not (d.added or d.removed or d.changed or d.rollouts)
    assert format_diff(d).splitlines()[1] == "no resource changes"



def test_plan_diff_imports_only_what_it_uses(tmp_path):
    """`fleet plan diff` reads two JSON files: it must not pay for yaml, jsonschema, the spec loader or
    Pulumi (a third of a small diff's time went to importing them)."""
    import subprocess
    import sys

    for name in ("old.json", "new.json"):
        (tmp_path / name).write_text(json.dumps(doc(res(TG, "x", None, port=8080 if name == "old.json" else 81))))
    probe = ("import sys\nfrom fleet.cli import main\ncode = main(['plan', 'diff', 'old.json', 'new.json'])\n"
             "heavy = [m for m in ('yaml', 'jsonschema', 'fleet.spec.load', 'pulumi', 'boto3', 'numpy')\n"
             "         if m in sys.modules]\n"
             "print('HEAVY', heavy, code)\n")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "HEAVY [] 0" in out.stdout, out.stdout + out.stderr


def test_real_pair_says_which_slot_a_change_lands_in(in_project, pair):
    """A blue/green group's ASGs carry their slot and the diff names it (a new template version's ROLLOUT
    line names the idle slot: test_real_pair_instance_type_change)."""
    text, status = pair(_edit_nodes("    timeout: 150\n", "    timeout: 200\n"))
    assert f"~ {ASG} api-b-spot (in api-b) (slot b)" in text
    assert f"~ {ASG} api-spot (in api) (slot a)" in text
    assert status == 0
