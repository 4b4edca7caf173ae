"""Boot-time converge under Pulumi's mocks: the artifacts bucket, the bundle objects, the launching
lifecycle hook on both ASGs, the instance role's exact statements, user data."""

from __future__ import annotations

import base64
import bz2
import json
import shlex
import shutil

import pulumi
import pytest
import yaml

from components.artifacts import ArtifactFile, Artifacts, ArtifactsArgs
from components.asg_pair import AsgPair, AsgPairArgs
from components.launch_template import LaunchBoot, LaunchTemplate, LaunchTemplateArgs, boot_policy
from components.program import boot_files
from fleet.render.userdata import BOOT_CONFIG, BOOT_PATH, LAUNCH_HOOK_NAME, RUN, shipped_program
from fleet.spec.readiness import LAUNCH_SECONDS, launch_hook_heartbeat
from tests.pulumi_mocks import ROOT, group, run, run_program, worker_group

HOOK = "aws:autoscaling/lifecycleHook:LifecycleHook"
COMMAND = "command:local:Command"
ASG = "aws:autoscaling/group:Group"


@pytest.fixture(scope="module")
def staging():
    return run_program("staging")


def only(r, type_, name=None):
    found = [x for x in r.of_type(type_) if name is None or x.name == name]
    assert len(found) == 1, [x.name for x in found]
    return found[0]


def test_artifacts_bucket_is_private_encrypted_versioned_tls_only_with_lifecycle(staging):
    bucket = only(staging, "aws:s3/bucket:Bucket")
    assert bucket.inputs["bucketPrefix"] == "fleet-staging-artifacts-" and "bucket" not in bucket.inputs
    bid = bucket.id
    assert only(staging, "aws:s3/bucketVersioning:BucketVersioning").inputs == {
        "bucket": bid, "versioningConfiguration": {"status": "Enabled"}}
    sse = only(staging, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert sse.inputs["rules"] == [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"},
                                    "bucketKeyEnabled": True}]
    pab = only(staging, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(pab[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                         "restrictPublicBuckets"))
    own = only(staging, "aws:s3/bucketOwnershipControls:BucketOwnershipControls").inputs
    assert own["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    (deny,) = json.loads(only(staging, "aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])["Statement"]
    arn = bucket.outputs["arn"]
    assert deny == {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                    "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    (rule,) = only(staging, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs["rules"]
    assert rule["status"] == "Enabled" and rule["noncurrentVersionExpiration"] == {"noncurrentDays": 30}
    assert rule["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 1}
    assert rule["expiration"] == {"expiredObjectDeleteMarker": True}


def test_bundles_are_content_addressed_objects_with_project_relative_sources(staging):
    objects = staging.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
    per_group, files = boot_files(ROOT, {n: g for n, g in _groups().items()})
    assert sorted(per_group) == ["12_04-cron", "api"]  # the two converging groups of the sample
    assert sorted(o.inputs["key"] for o in objects) == sorted(f.key for f in files)
    for o in objects:
        sha = o.inputs["tags"]["fleet:sha256"]
        assert o.inputs["key"] == f"bundles/{sha}.tar.gz" and o.name == f"artifact-{sha[:16]}"
        source = o.inputs["source"]
        assert isinstance(source, pulumi.FileAsset) and source.path == f".fleet/bundles/{sha}.tar.gz"
        assert (ROOT / source.path).is_file()


def test_what_boots_from_a_bundle_waits_for_it_and_bundles_outlive_pulumi(staging):
    """The launch template, the rollout Command (or the blue/green one) and one-off instances of a converging
    group depend on the objects its boot names; the objects wait for the bucket's versioning; and Pulumi
    never deletes a bundle (a launch template version that a rollback may return to can still name it)."""
    per_group, _ = boot_files(ROOT, _groups())
    objects = {o.inputs["key"]: o for o in staging.of_type("aws:s3/bucketObjectv2:BucketObjectv2")}
    versioning = only(staging, "aws:s3/bucketVersioning:BucketVersioning").name
    for o in objects.values():
        assert versioning in o.options["dependsOn"], o.name
        assert o.options["retainOnDelete"] is True, o.name
    lts = {x.name: x for x in staging.of_type("aws:ec2/launchTemplate:LaunchTemplate")}
    for name, prefix in (("api", "api"), ("12_04-cron", "12-04-cron")):
        bundle = objects[per_group[name]["bundle_key"]].name
        assert bundle in lts[f"{prefix}-lt"].options["dependsOn"], name
        runners = [c for c in staging.of_type(COMMAND)
                   if c.name in (f"{prefix}-rollout-refresh", f"{prefix}-bluegreen-deploy")]
        instances = [i for i in staging.of_type("aws:ec2/instance:Instance") if i.name.startswith(f"{prefix}-")]
        assert runners or instances, name
        for r in [*runners, *instances]:
            assert bundle in r.options["dependsOn"], (name, r.name)
    assert not [n for n, lt in lts.items() if n not in ("api-lt", "12-04-cron-lt")
                and any(o.name in lt.options["dependsOn"] for o in objects.values())], "only converging groups"


def test_no_boot_resource_input_holds_the_checkout_path(staging):
    """No absolute checkout path in what the boot path adds (the image and rollout Commands are tested on their own)."""
    mine = ("aws:s3/", "aws:iam/rolePolicy:", "aws:ec2/launchTemplate:", HOOK)
    for x in [x for x in staging.resources if x.type.startswith(mine)]:
        text = json.dumps(x.inputs, default=lambda v: getattr(v, "path", str(v)))
        assert str(ROOT) not in text, x.name


def test_launching_hook_on_both_asgs_of_a_converging_group_only(staging):
    """New ASGs start with the hook (`initialLifecycleHooks`). api deploys blue/green: each slot keeps its
    hook as a resource (the idle slot is parked while Pulumi changes it); no other group has one, and every
    instance-refresh rollout of the sample deletes any left over (`--no-launch-hook`)."""
    timeout = _groups()["api"].autoscale.timeout
    # the hook holds the instance from launch: the OS boot counts against its heartbeat too
    heartbeat = launch_hook_heartbeat(_groups()["api"])
    assert heartbeat == LAUNCH_SECONDS + timeout
    expected = {"name": LAUNCH_HOOK_NAME, "lifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
                "heartbeatTimeout": heartbeat, "defaultResult": "ABANDON"}
    hooks = [h for h in staging.of_type(HOOK) if h.inputs["name"] == LAUNCH_HOOK_NAME]
    assert sorted(h.name for h in hooks) == ["api-b-on-demand-launch", "api-b-spot-launch", "api-on-demand-launch",
                                             "api-spot-launch"]
    for h in hooks:
        assert {k: h.inputs[k] for k in expected} == expected
    for a in staging.of_type(ASG):
        initial = a.inputs.get("initialLifecycleHooks")
        if a.name.startswith("api-"):
            assert initial == [expected], a.name  # a new ASG's first instances wait too
        else:
            assert not initial, a.name
        assert "initialLifecycleHooks" in a.options["ignoreChanges"], "never replaces an existing ASG"
    rollouts = {c.name: shlex.split(c.inputs["create"]) for c in staging.of_type(COMMAND)
                if c.name.endswith("-rollout-refresh")}
    assert rollouts, "no instance-refresh rollout Commands"
    for name, argv in rollouts.items():
        assert "--no-launch-hook" in argv and "--launch-hook-heartbeat" not in argv, name


def test_a_converging_instance_refresh_group_gets_its_hook_from_the_rollout():
    """A group without http rolls by instance refresh: its rollout puts the hook first (no resource that
    would change it only after the rollout), and its new ASGs start with it."""
    from components.node_group import NodeGroup, NodeGroupArgs
    from fleet.spec.stack import StackConfig

    g = worker_group("jobs", boot={"converge": True}, run_list=["recipe[x]"])
    stack = StackConfig(name="prod", region="eu-west-1", environment="production")

    def program():
        art = Artifacts("artifacts", ArtifactsArgs(stack="prod", files=[
            ArtifactFile("bundles/" + "a" * 64 + ".tar.gz", "a" * 64, ".fleet/bundles/" + "a" * 64 + ".tar.gz")]))
        boot = LaunchBoot("eu-west-1", art.bucket.id, art.bucket.arn, "bundles/" + "a" * 64 + ".tar.gz", "a" * 64)
        node = NodeGroup("jobs", NodeGroupArgs(
            group=g, stack=stack, image_hash="ab" * 32, project_dir=ROOT, vpc_id="vpc-0a1b2c3d",
            private_subnet_ids=["subnet-00000011"], security_group_ids=["sg-00000001"], boot=boot))
        return node.outputs

    r = run(program, stack="prod", region="eu-west-1")
    heartbeat = launch_hook_heartbeat(g)
    assert heartbeat == LAUNCH_SECONDS + 120
    assert [h.name for h in r.of_type(HOOK) if h.inputs["name"] == LAUNCH_HOOK_NAME] == []
    assert {a.inputs["initialLifecycleHooks"][0]["heartbeatTimeout"] for a in r.of_type(ASG)} == {heartbeat}
    (cmd,) = [c for c in r.of_type(COMMAND) if c.name == "jobs-rollout-refresh"]
    argv = shlex.split(cmd.inputs["create"])
    assert argv[argv.index("--launch-hook-heartbeat") + 1] == str(heartbeat) and "--no-launch-hook" not in argv


def test_instance_roles_get_exactly_the_boot_statements(staging):
    bucket_arn = only(staging, "aws:s3/bucket:Bucket").outputs["arn"]
    api = json.loads(only(staging, "aws:iam/rolePolicy:RolePolicy", "api-node-boot").inputs["policy"])
    assert api == {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadBootArtifacts", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [f"{bucket_arn}/bundles/*"]},
        {"Sid": "CompleteOwnLaunch", "Effect": "Allow", "Action": ["autoscaling:CompleteLifecycleAction"],
         "Resource": "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:*:autoScalingGroupName/*",
         "Condition": {"StringEquals": {
             "aws:ResourceTag/fleet:group": "api", "autoscaling:ResourceTag/fleet:group": "api",
             "aws:ResourceTag/fleet:stack": "staging", "autoscaling:ResourceTag/fleet:stack": "staging"}}}]}
    cron = json.loads(only(staging, "aws:iam/rolePolicy:RolePolicy", "12-04-cron-node-boot").inputs["policy"])
    assert cron["Statement"] == api["Statement"][:1], "a one-off instance has no hook to complete"
    baked = [p for p in staging.of_type("aws:iam/rolePolicy:RolePolicy")
             if p.name.startswith(("12-04-bee", "12-04-www"))]
    assert baked == []
    for lt in staging.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        if lt.name in ("api-lt", "12-04-cron-lt"):
            assert f"{lt.name[:-3]}-node-boot" in lt.options["dependsOn"], "no instance before its policy"


def test_partition_in_the_hook_statement_comes_from_the_role():
    g = worker_group("jobs")
    policy = boot_policy(g, "prod", "cn-north-1", "aws-cn", "111122223333", "arn:aws-cn:s3:::b", "packages/ab/c.deb")
    assert policy["Statement"][0]["Resource"] == ["arn:aws-cn:s3:::b/bundles/*", "arn:aws-cn:s3:::b/packages/ab/c.deb"]
    assert policy["Statement"][1]["Resource"].startswith("arn:aws-cn:autoscaling:cn-north-1:111122223333:")


def _user_data(r, lt_name):
    lt = [x for x in r.of_type("aws:ec2/launchTemplate:LaunchTemplate") if x.name == lt_name][0]
    return base64.b64decode(lt.inputs["userData"]).decode()


def test_user_data_carries_the_bundle_hash_and_the_boot_program(staging):
    per_group, _ = boot_files(ROOT, _groups())
    bucket = only(staging, "aws:s3/bucket:Bucket").id
    # new ASGs start with the hook; existing slots have it as a resource
    hooks = {a.name: h["heartbeatTimeout"] for a in staging.of_type(ASG) for h in a.inputs.get("initialLifecycleHooks")
             or () if h["name"] == LAUNCH_HOOK_NAME}
    resources = {h.name: h.inputs["heartbeatTimeout"] for h in staging.of_type(HOOK)}
    for name, lt_name, hook in (("api", "api-lt", LAUNCH_HOOK_NAME), ("12_04-cron", "12-04-cron-lt", None)):
        cloud = yaml.safe_load(_user_data(staging, lt_name))
        files = {f["path"]: f for f in cloud["write_files"]}
        config = json.loads(files[BOOT_CONFIG]["content"])
        assert config["bundle"] == {"key": per_group[name]["bundle_key"], "sha256": per_group[name]["bundle_sha256"]}
        assert config["bucket"] == bucket and config["hook"] == hook and config["role"] == f"role-{name}"
        program = files[BOOT_PATH]
        assert program["encoding"] == "b64"
        assert bz2.decompress(base64.b64decode(program["content"])).decode() == shipped_program()
        assert cloud["runcmd"] == [["python3", "-c", RUN, BOOT_PATH, BOOT_CONFIG]]
        if hook:  # the program's deadline is the hook's own heartbeat, on both ASGs
            assert config["heartbeat"] == hooks["api-spot"] == hooks["api-on-demand"]
            assert config["heartbeat"] == resources["api-spot-launch"] == resources["api-b-on-demand-launch"]
            assert config["heartbeat"] == launch_hook_heartbeat(_groups()[name])
        else:
            assert config["heartbeat"] is None, "no hook: the program's own bound"
    assert "fleet-boot" not in _user_data(staging, "12-04-bee-lt").split("/usr/local/bin/fleet-boot")[0]


def test_bundle_hash_in_user_data_changes_exactly_when_one_of_its_cookbooks_changes(tmp_path):
    project = tmp_path / "p"
    for d in ("cookbooks", "data_bags"):
        shutil.copytree(ROOT / d, project / d)
    groups = _groups()

    def shas():
        per_group, _ = boot_files(project, groups)
        return {n: v["bundle_sha256"] for n, v in per_group.items()}

    before = shas()
    (project / "cookbooks" / "unused" / "recipes").mkdir(parents=True)  # in no run list's closure
    (project / "cookbooks" / "unused" / "recipes" / "default.rb").write_text("log 'x'\n")
    (project / "cookbooks" / "README.md").write_text("not in any cookbook\n")
    (project / "data_bags" / "other").mkdir()  # no recipe reads it
    (project / "data_bags" / "other" / "x.json").write_text("{}")
    assert shas() == before
    (project / "cookbooks" / "seatgeek-service" / "recipes" / "cronq.rb").write_text("log 'cron'\n")
    after = shas()
    assert after["12_04-cron"] != before["12_04-cron"] and after["api"] != before["api"]
    (project / "cookbooks" / "sudo" / "metadata.rb").write_text("name 'sudo'\nversion '0.2.0'\n")
    assert all(shas()[n] != after[n] for n in after)


def test_components_alone(tmp_path):
    """Artifacts + LaunchTemplate + AsgPair wired by hand: a one-off group's user data has no hook."""
    def program():
        art = Artifacts("artifacts", ArtifactsArgs(stack="prod", files=[
            ArtifactFile("bundles/" + "a" * 64 + ".tar.gz", "a" * 64, ".fleet/bundles/" + "a" * 64 + ".tar.gz")]))
        g = group("cron", image={"builder": "ami"}, run_list=["recipe[x]"])
        boot = LaunchBoot("eu-west-1", art.bucket.id, art.bucket.arn, "bundles/" + "a" * 64 + ".tar.gz", "a" * 64)
        LaunchTemplate("cron", LaunchTemplateArgs(group=g, stack="prod", environment="production",
                                                  ami_id="ami-0123456789abcdef0", root_device_name="/dev/sda1",
                                                  security_group_ids=[], boot=boot))
        w = worker_group("jobs", autoscale={"node_min": 1, "node_max": 4, "timeout": 5})
        AsgPair("jobs", AsgPairArgs(group=w, stack="prod", launch_template_id="lt-1", launch_template_version=1,
                                    subnet_ids=["subnet-1"], spot_instance_types=["m5.large", "m5a.large", "m6i.large"],
                                    launch_hook_heartbeat=5))
    r = run(program, stack="prod")
    text = _user_data(r, "cron-lt")
    assert '\\"hook\\": null' in text and "a" * 64 in text
    initial = [h for a in r.of_type(ASG) for h in a.inputs["initialLifecycleHooks"]]
    assert len(initial) == 2 and {h["heartbeatTimeout"] for h in initial} == {30}, "AWS minimum 30 s"


def _groups():
    from tests.pulumi_mocks import project_groups

    return project_groups("staging")


def test_plan_shows_per_group_how_it_becomes_ready_and_the_modelled_time(capsys):
    from fleet.cli import main
    from fleet.spec.readiness import readiness

    groups = _groups()
    assert readiness(groups["12_04-bee"]).mode == "baked"
    api = readiness(groups["api"])
    hc = groups["api"].http.health_check
    assert api.mode == "converge at boot"
    # the launching hook's heartbeat (launch + timeout), then the target group's checks
    checks = hc.healthy_threshold * hc.interval
    assert api.in_service_within == LAUNCH_SECONDS + groups["api"].autoscale.timeout + checks
    cron = readiness(groups["12_04-cron"])
    assert cron.mode == "bootstrap from vanilla" and cron.in_service_within is None
    assert main(["plan", "--stack", "staging"]) in (0, 1)
    out = capsys.readouterr().out.splitlines()
    for g in groups:
        i = out.index(f"group {g}")
        assert out[i + 1] == f"  ready: {readiness(groups[g]).how}"
    assert f"in service <= {api.in_service_within} s" in out[out.index("group api") + 1]
