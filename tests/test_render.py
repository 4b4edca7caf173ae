"""Renderers (role, Packer template, user data), names, and the CLI's read-only commands."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fleet.cli import main
from fleet.image_hash import hash_groups
from fleet.render.packer import bake_files, render_packer
from fleet.render.userdata import render_user_data
from fleet.spec.load import load_fleet
from fleet.spec.names import rule_priorities, slug

ROOT = Path(__file__).resolve().parent.parent
FLEET = load_fleet(ROOT / "nodes.yaml", "staging")
HASHES = hash_groups(FLEET.groups, ROOT)


def test_packer_template_shape():
    bee = FLEET.groups["12_04-bee"]
    t = render_packer(bee, region="eu-west-1", image_hash="ab" * 32, bake=bake_files(bee, ROOT))
    b = t["builders"][0]
    assert b["type"] == "amazon-ebs" and b["region"] == "eu-west-1" and b["instance_type"] == "m5.large"
    # the locked base image (nodes.lock.json), never packer's moving "most_recent" filter
    assert b["source_ami"] == bee.source_ami.locked.ami_id and "source_ami_filter" not in b
    assert b["ami_name"] == "fleet-12-04-bee-" + "ab" * 10  # one name per image hash: duplicates are refused
    assert b["tags"]["fleet:group"] == "12_04-bee" and b["tags"]["fleet:image-hash"] == "ab" * 32
    assert b["snapshot_tags"]["fleet:image-hash"] == "ab" * 32
    # file + shell only (every Packer has them): the converge itself is tests/test_bake_converge.py
    assert {p["type"] for p in t["provisioners"]} == {"file", "shell"}
    assert t["post-processors"][0]["type"] == "manifest"
    text = json.dumps(t).lower()
    assert "access_key" not in text and "secret_key" not in text and "custom_endpoint_ec2" not in text


def test_packer_template_for_a_local_endpoint_and_no_communicator():
    import dataclasses

    cron = FLEET.groups["12_04-cron"]
    cron = dataclasses.replace(cron, source_ami="ami-12345678",
                               image=dataclasses.replace(cron.image, builder="packer", communicator="none"))
    t = render_packer(cron, region="us-east-1", image_hash="0" * 64, endpoint_url="http://127.0.0.1:5000")
    b = t["builders"][0]
    assert b["source_ami"] == "ami-12345678" and b["communicator"] == "none"
    assert b["custom_endpoint_ec2"] == "http://127.0.0.1:5000" and b["skip_credential_validation"] is True
    assert t["provisioners"] == []


def test_user_data_names_the_node_and_holds_no_secrets():
    www = FLEET.groups["12_04-www"]
    ud = render_user_data(www, "staging", "staging")
    assert ud.startswith("#cloud-config\n")
    node = json.loads(json.loads(re.search(r"content: (.*)", ud).group(1)))
    assert node == {"group": "12_04-www", "stack": "staging", "environment": "staging", "port": 8080}
    assert not re.search(r"(?i)(secret|password|token|AKIA[0-9A-Z]{16})", ud)


def test_slug_makes_valid_target_group_names():
    for name in ["12_04-bee", "A__b--c", "x" * 24, "9"]:
        s = slug(name)
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", s), s
        assert len(s) + 8 <= 32  # Pulumi autonaming adds '-' and 7 characters


def test_rule_priorities_are_stable_and_explicit_first():
    """Derived priorities depend on the name only (collisions are validate errors:
    tests/test_validate_aws_rejects.py), so adding groups moves none."""
    names = [f"g{i}" for i in range(300)]
    first = rule_priorities([(n, None) for n in names])
    assert all(1000 <= p <= 50000 for p in first.values())
    more = rule_priorities([(n, None) for n in [*names, "new-group"]])
    assert all(first[n] == more[n] for n in names)
    explicit = rule_priorities([("a", 5), ("b", None)])
    assert explicit["a"] == 5 and explicit["b"] >= 1000


def test_cli_show_role_packer(tmp_path, capsys):
    assert main(["--nodes", str(ROOT / "nodes.yaml"), "show", "api", "--stack", "staging"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["autoscale"]["node_max"] == 3 and shown["scaling"]["target_cpu"] == 45
    assert main(["--nodes", str(ROOT / "nodes.yaml"), "packer", "12_04-bee"]) == 0
    assert json.loads(capsys.readouterr().out)["builders"][0]["type"] == "amazon-ebs"
    nodes = tmp_path / "nodes.yaml"
    nodes.write_text((ROOT / "nodes.yaml").read_text())
    (tmp_path / "nodes.lock.json").write_text((ROOT / "nodes.lock.json").read_text())
    assert main(["--project", str(tmp_path), "role", "12_04-bee", "--write"]) == 0  # into the project's roles/
    assert json.loads((tmp_path / "roles" / "12_04-bee.json").read_text())["name"] == "role-12_04-bee"


def test_cli_validate_lists_groups(capsys):
    assert main(["--nodes", str(ROOT / "nodes.yaml"), "--stack", "prod", "validate"]) == 0
    assert "4 groups OK for stack prod" in capsys.readouterr().out


def test_image_hash_is_shared_across_stacks_and_changes_with_inputs():
    import dataclasses

    prod = hash_groups(load_fleet(ROOT / "nodes.yaml", "prod").groups, ROOT)
    assert prod == HASHES  # staging's AMI is promoted to prod unchanged
    bee = FLEET.groups["12_04-bee"]
    base = hash_groups({"a": bee}, ROOT)["a"]
    assert hash_groups({"a": dataclasses.replace(bee, name="other", tags={})}, ROOT)["a"] == base
    assert hash_groups({"a": dataclasses.replace(bee, run_list=(*bee.run_list, "recipe[x]"))}, ROOT)["a"] != base
    assert hash_groups({"a": dataclasses.replace(bee, source_ami="ami-12345678")}, ROOT)["a"] != base
    assert hash_groups({"a": dataclasses.replace(bee, default_attributes={"k": "v2"})}, ROOT)["a"] != base
    assert hash_groups({"a": dataclasses.replace(bee, image=dataclasses.replace(bee.image, keep=3))}, ROOT)["a"] == base


def test_image_hash_covers_the_files_the_build_reads(tmp_path):
    import dataclasses

    bee = FLEET.groups["12_04-bee"]
    recipe = tmp_path / "cookbooks" / "seatgeek-service" / "recipes" / "djjob.rb"
    recipe.parent.mkdir(parents=True)
    recipe.write_text("a")
    h1 = hash_groups({"a": bee}, tmp_path)["a"]
    recipe.write_text("b")
    assert hash_groups({"a": bee}, tmp_path)["a"] != h1
    raw = dataclasses.replace(bee, image=dataclasses.replace(bee.image, builder="raw", path="disk.img"))
    (tmp_path / "disk.img").write_bytes(b"\0" * 10)
    r1 = hash_groups({"a": raw}, tmp_path)["a"]
    (tmp_path / "disk.img").write_bytes(b"\1" * 10)
    assert hash_groups({"a": raw}, tmp_path)["a"] != r1
