"""Bad input never crashes (found by fuzzing): every input below ends `fleet validate` with
exit 2 and one line per problem naming the file (and line where there is one), no traceback; and the
inputs `validate` accepts, `show`, `role`, `packer` and `plan` handle.

The property-based version of this contract is tests/test_fuzz_contract.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.plan.guardrails import check_all
from fleet.spec.errors import Problem, quote
from fleet.spec.instance_types import architecture_of
from fleet.spec.yamlfile import MAX_BYTES, MAX_DEPTH, MAX_NODES

ROOT = Path(__file__).resolve().parent.parent
BASE = "__base__: {instance_type: m5.large, source_ami: ami-12345678}\n"
AUTO = BASE + "web: {autoscale: {}, http: {port: 80, hosts: [a.io]}}\n"
MAX_LINE = 800  # no problem line is longer (values are quoted short)


@dataclass
class Case:
    id: str
    nodes: str | bytes
    expect: tuple[str, ...]  # substrings of one problem line
    stack: str | None = None  # Pulumi.s.yaml, used with --stack s
    lines: int | None = None  # exactly this many problem lines
    absent: tuple[str, ...] = ()  # substrings no line may have


def _laughs(prefix: str = "") -> str:
    """Nine levels of nine aliases each: 9**9 (387 million) strings once expanded."""
    out = [f"{prefix}a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 9):
        prev, cur = chr(96 + i), chr(97 + i)
        out.append(f"{prefix}{cur}: &{cur} [{', '.join([f'*{prev}'] * 9)}]")
    return "\n".join(out) + "\n"


NODES_CASES = [
    # tracebacks
    Case("recursive-alias", BASE + "web: &w {tags: *w}\n", ("nodes.yaml:2", "inside its own anchor"), lines=1),
    Case("deep-list", BASE + "web: {default_attributes: {a: " + "[" * 980 + "]" * 980 + "}}\n",
         ("nodes.yaml", f"more than {MAX_DEPTH} levels"), lines=1),
    Case("timestamp-tag", BASE + "web: {description: !!timestamp soon}\n",
         ("nodes.yaml:2", "group 'web'", "key 'description'", "'soon'", "quote it"), lines=1),
    Case("float-tag", BASE + "web: {description: !!float abc}\n", ("nodes.yaml:2", "cannot read 'abc' as float"),
         lines=1),
    Case("int-tag", BASE + "web: {instances: !!int four}\n", ("nodes.yaml:2", "cannot read 'four' as int"), lines=1),
    # unbounded
    Case("billion-laughs", BASE + _laughs() + "web: {default_attributes: {x: *i}}\n",
         ("nodes.yaml", f"more than {MAX_NODES} values with aliases expanded"), lines=1),
    Case("oversized", BASE + "web: {description: x}\n" + "# " + "x" * MAX_BYTES + "\n",
         ("nodes.yaml", "larger than 2 MiB"), lines=1),
    # accepted, then crashing later
    Case("date-in-attributes", BASE + "web: {default_attributes: {d: 2024-01-01}}\n",
         ("nodes.yaml:2", "key 'default_attributes.d'", "'2024-01-01' as a date", "quote it")),
    Case("datetime-in-attributes", BASE + "web: {default_attributes: {t: 2024-01-01 10:00:00}}\n",
         ("nodes.yaml:2", "key 'default_attributes.t'", "as a date", "quote it")),
    Case("binary-in-attributes", BASE + "web: {default_attributes: {b: !!binary aGVsbG8=}}\n",
         ("nodes.yaml:2", "key 'default_attributes.b'", "binary data", "quote it")),
    Case("set-in-attributes", BASE + "web: {default_attributes: {s: !!set {a: null}}}\n",
         ("nodes.yaml:2", "key 'default_attributes.s'", "a set")),
    Case("infinity-in-attributes", BASE + "web: {default_attributes: {f: .inf}}\n",
         ("nodes.yaml:2", "key 'default_attributes.f'", "not a number JSON can hold")),
    Case("mixed-key-types", BASE + "web: {default_attributes: {1: a, b: c}}\n",
         ("nodes.yaml:2", "key 'default_attributes.1'", "read by YAML as a number", "quote it"), lines=1),
    Case("instances-float", BASE + "web: {instances: 2.0}\n",
         ("nodes.yaml:2", "key 'instances'", "must be an integer", "2.0")),
    # accepted, then wrong
    Case("security-groups-differ-in-case", BASE + "web: {security_groups: [Www]}\napi: {security_groups: [www]}\n",
         ("group 'api'", "key 'security_groups[0]'", "'www' and 'Www'", "same security group")),
    # accepted although AWS or the contract refuses it
    Case("trailing-newline-instance-type", BASE + 'web: {instance_type: "m5.large\\n"}\n',
         ("nodes.yaml:2", "key 'instance_type'", "'m5.large\\n'")),
    Case("trailing-newline-ami", 'web: {instance_type: m5.large, source_ami: "ami-12345678\\n"}\n',
         ("nodes.yaml:1", "key 'source_ami'")),
    Case("trailing-newline-recipe", BASE + 'web: {run_list: ["recipe[a::b]\\n"]}\n', ("key 'run_list[0]'",)),
    Case("trailing-newline-host", BASE + 'web: {autoscale: {}, http: {port: 80, hosts: ["a.io\\n"]}}\n',
         ("key 'http.hosts[0]'",)),
    Case("trailing-newline-group-name", BASE + '"web\\n": {}\n', ("nodes.yaml", "group 'web\\n'"), lines=1),
    Case("huge-int", BASE + "web: {autoscale: {node_max: 100000000000000000000000}}\n",
         ("key 'autoscale.node_max'", "<= 10000")),
    Case("on-demand-base-above-implied-max", BASE + "web: {autoscale: {node_max: 2, on_demand: {base: 3}}}\n",
         ("key 'autoscale.on_demand.base'", "above node_max 2")),
    Case("spot-type-thrice", BASE + "web: {autoscale: {spot: {instance_types: [m5.large, m5.large, m5.large]}}}\n",
         ("key 'autoscale.spot.instance_types[2]'", "already listed"), lines=2),
    Case("arm-image-on-x86", BASE + "web: {image: {architecture: arm64}}\n",
         ("key 'instance_type'", "m5.large runs x86_64", "arm64")),
    Case("x86-spot-type-for-arm", BASE + "web: {instance_type: m6g.large, image: {architecture: arm64}, "
         "autoscale: {spot: {instance_types: [m6g.large, c6g.large, m5.large]}}}\n",
         ("key 'autoscale.spot.instance_types[2]'", "m5.large runs x86_64"), lines=1),
    Case("aws-tag-upper-case", BASE + "web: {tags: {AWS:team: x}}\n", ("key 'tags.AWS:team'", "reserved by AWS")),
    Case("aws-tag-mixed-case", BASE + "web: {tags: {Aws:team: x}}\n", ("key 'tags.Aws:team'", "reserved by AWS")),
    Case("too-many-tags", BASE + "web: {tags: {" + ", ".join(f"t{i}: v" for i in range(47)) + "}}\n",
         ("key 'tags'", "47 tags", "at most 46")),
    Case("long-host", BASE + "web: {autoscale: {}, http: {port: 80, hosts: [" + "a" * 126 + ".io]}}\n",
         ("key 'http.hosts[0]'", "longer than 128")),
    Case("long-path", BASE + "web: {autoscale: {}, http: {port: 80, paths: [/" + "a" * 128 + "]}}\n",
         ("key 'http.paths[0]'", "longer than 128")),
    # messages that broke the one-line contract
    Case("control-character", BASE + "web: {description: a\x01b}\n", ("nodes.yaml:2", "U+0001"), lines=1),
    Case("key-with-newline", BASE + 'web: {"ins\\ntance": 1}\n', ("nodes.yaml:2", "key 'ins\\ntance'"), lines=1),
    Case("huge-value", BASE + "web: {instances: '" + "x" * 1_000_000 + "'}\n",
         ("key 'instances'", "(1000000 characters)"), lines=1),
    Case("not-utf-8", (BASE + "web: {description: caf\xe9}\n").encode("latin-1"),
         ("nodes.yaml:2", "not UTF-8", "0xe9"), lines=1),
    Case("group-named-off-and-null", BASE + "off: {}\nnull: {}\n", ("nodes.yaml:2", "group 'off'", "quote it")),
    Case("group-named-null", BASE + "off: {}\nnull: {}\n", ("nodes.yaml:3", "group 'null'", "quote it")),
    # found by tests/test_fuzz_contract.py; the second line: no group besides __base__
    Case("complex-key-at-top", "? [a]\n: 1\n" + BASE, ("nodes.yaml:1", "a key must be a plain string"), lines=2),
    Case("complex-key-in-group", BASE + "web: {? [a]: 1}\n", ("nodes.yaml:2", "group 'web'", "plain string"), lines=1),
]

NET = "config:\n  fleet:network:\n"
STACK_CASES = [
    Case("stack-recursive-alias", AUTO, ("Pulumi.s.yaml:3", "inside its own anchor"), lines=1,
         stack="config:\n  fleet:groups:\n    web: &w {tags: *w}\n"),
    Case("stack-billion-laughs", AUTO, ("Pulumi.s.yaml", "aliases expanded"), lines=1,
         stack=_laughs() + "config: {fleet:environment: x}\n"),
    Case("private-subnets-minus-one", AUTO, ("Pulumi.s.yaml", "key 'fleet:network.privateSubnetIds'", "2+ subnet"),
         stack=NET + "    vpcId: vpc-0a1b2c3d\n    publicSubnetIds: [subnet-0a1b2c3d, subnet-0a1b2c3e]\n"
                     "    privateSubnetIds: -1\n", lines=1),
    Case("network-non-string-key", AUTO, ("Pulumi.s.yaml:4", "key 'fleet:network.1'", "quote it"),
         stack=NET + "    cidr: 10.0.0.0/16\n    1: x\n"),
    Case("network-ipv6", AUTO, ("key 'fleet:network.cidr'", "IPv6"), stack=NET + "    cidr: 2001::/16\n"),
    Case("network-too-wide", AUTO, ("key 'fleet:network.cidr'", "/16 at most"), stack=NET + "    cidr: 10.0.0.0/8\n"),
    Case("network-duplicate-subnets", AUTO, ("key 'fleet:network.publicSubnetIds'", "more than once"),
         stack=NET + "    vpcId: vpc-0a1b2c3d\n    publicSubnetIds: [subnet-0a1b2c3d, subnet-0a1b2c3d]\n"
                     "    privateSubnetIds: [subnet-0a1b2c3e, subnet-0a1b2c3f]\n"),
    Case("network-subnets-without-vpc", AUTO, ("key 'fleet:network.vpcId'", "is required"),
         stack=NET + "    publicSubnetIds: [subnet-0a1b2c3d, subnet-0a1b2c3e]\n"
                     "    privateSubnetIds: [subnet-0a1b2c3f, subnet-0a1b2c30]\n"),
    Case("network-adopt-and-create", AUTO, ("key 'fleet:network.cidr'", "at once"),
         stack=NET + "    vpcId: vpc-0a1b2c3d\n    publicSubnetIds: [subnet-0a1b2c3d, subnet-0a1b2c3e]\n"
                     "    privateSubnetIds: [subnet-0a1b2c3f, subnet-0a1b2c30]\n    cidr: 10.0.0.0/16\n"),
    Case("certificate-in-another-region", AUTO, ("key 'fleet:certificateArn'", "eu-west-1", "us-east-1"),
         stack="config:\n  aws:region: us-east-1\n  fleet:certificateArn: "
               "arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c-4b5a\n"),
    Case("missing-nodes-file", AUTO, ("Pulumi.s.yaml:2", "key 'fleet:nodesFile'", "does not exist"),
         stack="config:\n  fleet:nodesFile: nodes-missing.yaml\n"),
    Case("bucket-upper-case", AUTO, ("key 'fleet:accessLogsBucket'", "not a valid S3 bucket name"),
         stack="config:\n  fleet:accessLogsBucket: My_Logs\n"),
    Case("bucket-ip-address", AUTO, ("key 'fleet:accessLogsBucket'", "not a valid S3 bucket name"),
         stack="config:\n  fleet:accessLogsBucket: 192.168.1.10\n"),
    Case("bucket-double-dot", AUTO, ("key 'fleet:accessLogsBucket'", "not a valid S3 bucket name"),
         stack="config:\n  fleet:accessLogsBucket: logs..here\n"),
    Case("trailing-newline-region", AUTO, ("key 'aws:region'",), stack='config:\n  aws:region: "us-east-1\\n"\n'),
    Case("trailing-newline-certificate", AUTO, ("key 'fleet:certificateArn'", "not an ACM certificate ARN"),
         stack='config:\n  fleet:certificateArn: "arn:aws:acm:us-east-1:123456789012:certificate/0f1e\\n"\n'),
    Case("trailing-newline-ami-pin", AUTO, ("key 'fleet:amis'", "not an AMI id"),
         stack='config:\n  fleet:amis: {web: "ami-12345678\\n"}\n'),
    Case("stack-misspelled-config", AUTO, ("Pulumi.s.yaml:1", "key 'confg'", "did you mean 'config'"), lines=1,
         stack="confg:\n  aws:region: us-east-1\n"),
    Case("stack-duplicate-key", AUTO, ("Pulumi.s.yaml:3", "key 'fleet:environment'", "duplicate key"), lines=1,
         absent=("group 'config'",), stack="config:\n  fleet:environment: a\n  fleet:environment: b\n"),
    Case("stack-duplicate-group-key", AUTO, ("Pulumi.s.yaml:5", "group 'web'", "key 'instances'", "duplicate key"),
         lines=1, stack="config:\n  fleet:groups:\n    web:\n      instances: 1\n      instances: 2\n"),
    Case("stack-override-blamed-on-stack", AUTO, ("Pulumi.s.yaml:3", "group 'web'", "key 'http'", "needs autoscale"),
         lines=1, stack="config:\n  fleet:groups:\n    web:\n      autoscale: false\n"),
    Case("stack-override-adds-http-without-port", BASE + "web: {autoscale: {}}\n",
         ("Pulumi.s.yaml:4", "group 'web'", "key 'http'", "'port' is required"), lines=1,
         stack="config:\n  fleet:groups:\n    web:\n      http: {hosts: [a.io]}\n"),
]


def _write(tmp_path: Path, case: Case) -> list[str]:
    nodes = tmp_path / "nodes.yaml"
    if isinstance(case.nodes, bytes):
        nodes.write_bytes(case.nodes)
    else:
        nodes.write_text(case.nodes)
    args = ["--project", str(tmp_path)]  # the project: its nodes.yaml and its Pulumi.s.yaml
    if case.stack is not None:
        (tmp_path / "Pulumi.s.yaml").write_text(case.stack)
        args += ["--stack", "s"]
    return args


def assert_problem_lines(err: str, files: tuple[str, ...]) -> list[str]:
    """The one-line contract: every stderr line names one of `files`, is short and has no control characters
    (after the first, which names the project, nodes file and stack the command used)."""
    context, *lines = err.splitlines()
    assert context.startswith("fleet: project ")
    assert lines, "no problem printed"
    assert err.endswith("\n") and "\r" not in err
    for line in lines:
        assert any(line.startswith(f) for f in files), f"line does not start with a file: {line[:200]!r}"
        assert len(line) <= MAX_LINE, f"line of {len(line)} characters"
        assert not re.search(r"[\x00-\x1f\x7f-\x9f]", line), f"control character in {line[:200]!r}"
    return lines


@pytest.mark.parametrize("case", NODES_CASES + STACK_CASES, ids=[c.id for c in NODES_CASES + STACK_CASES])
def test_bad_input_is_one_line_per_problem(tmp_path, capsys, case):
    args = _write(tmp_path, case)
    code = main([*args, "validate"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, ""), err
    lines = assert_problem_lines(err, (str(tmp_path / "nodes.yaml"), str(tmp_path / "Pulumi.s.yaml")))
    assert [line for line in lines if all(s in line for s in case.expect)], \
        f"no line has all of {case.expect}:\n{err[:2000]}"
    if case.lines is not None:
        assert len(lines) == case.lines, err[:2000]
    assert not [s for s in case.absent if s in err], err[:2000]


def test_billion_laughs_ends_in_bounded_time_without_traceback(tmp_path):
    """The real entry point (a hang guard, not a speed target: bench/ holds those)."""
    nodes = tmp_path / "nodes.yaml"
    nodes.write_text(BASE + _laughs() + "web: {default_attributes: {x: *i}}\n")
    proc = subprocess.run([sys.executable, "-m", "fleet", "--nodes", str(nodes), "validate"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 2  # the project line, then the one problem


# -- accepted input: every command handles it ---------------------------------------------------

ACCEPTED = [
    Case("merge-key-with-override", BASE + "web: &web {autoscale: {node_max: 3}, description: w}\n"
         "api: {<<: *web, autoscale: {node_max: 4}}\n", ()),
    Case("quoted-date-in-attributes", BASE + "web: {default_attributes: {d: '2024-01-01', '1': a, b: c}}\n", ()),
    Case("stack-override-on-merged-http", AUTO, (),
         stack="config:\n  fleet:groups:\n    web: {http: {deregistration_delay: 10}}\n"),
    Case("arm-group", BASE + "web: {instance_type: m6g.large, image: {architecture: arm64}, autoscale: {}}\n", ()),
]


@pytest.mark.parametrize("case", ACCEPTED, ids=[c.id for c in ACCEPTED])
def test_what_validate_accepts_every_command_handles(tmp_path, capsys, case):
    args = _write(tmp_path, case)
    assert main([*args, "validate"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    groups = [g for g in ("web", "api") if f"{g}:" in str(case.nodes)]
    for group in groups:
        for command in ("show", "role", "packer"):
            assert main([*args, command, group]) == 0, capsys.readouterr().err
            json.loads(capsys.readouterr().out)


def test_merge_key_override_wins(tmp_path, capsys):
    args = _write(tmp_path, ACCEPTED[0])
    assert main([*args, "show", "api"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["autoscale"]["node_max"] == 4 and shown["description"] == "w"


def test_stack_override_keeps_the_nodes_port(tmp_path, capsys):
    args = _write(tmp_path, ACCEPTED[2])
    assert main([*args, "show", "web"]) == 0
    http = json.loads(capsys.readouterr().out)["http"]
    assert (http["port"], http["deregistration_delay"]) == (80, 10)


SHARED_NAMES = """\
__base__: {instance_type: m5.large, source_ami: ami-12345678, image: {builder: ami}}
network: {autoscale: {}}
alb: {autoscale: {}, http: {port: 80, hosts: [a.example.com]}}
spot-interruption: {autoscale: {}}
security-groups: {}
"""


def test_groups_named_like_shared_components_plan_without_violations(tmp_path, capsys, monkeypatch):
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "nodes.yaml").write_text(SHARED_NAMES)
    (tmp_path / "Pulumi.s.yaml").write_text("config:\n  aws:region: us-east-1\n")
    monkeypatch.chdir(tmp_path)
    code = main(["--nodes", "nodes.yaml", "plan", "--stack", "s", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    plan = json.loads(out)
    assert plan["violations"] == []
    assert {"network", "alb", "spot-interruption", "security-groups"} <= {
        r["name"] for r in plan["resources"] if r["type"] == "fleet:node_group:NodeGroup"}


def test_tag_guardrail_tells_a_group_from_a_shared_component_of_the_same_name():
    """Unit level: the VPC under the Network `network` is not the NodeGroup `network`'s."""
    def view(typ, name, parent=None, parent_type=None, tags=None):
        return {"type": typ, "name": name, "parent": parent, "parentType": parent_type,
                "inputs": {"tags": tags} if tags is not None else {}, "options": {}, "outputs": {}}

    resources = [view("fleet:network:Network", "network"), view("fleet:node_group:NodeGroup", "network"),
                 view("aws:ec2/vpc:Vpc", "network-vpc", "network", "fleet:network:Network", {"fleet:stack": "s"})]
    assert [v for v in check_all(resources, "s") if v["policy"] == "fleet-tags"] == []
    resources.append(view("aws:ec2/launchTemplate:LaunchTemplate", "network-lt", "network",
                          "fleet:node_group:NodeGroup", {"fleet:stack": "s"}))
    found = [v for v in check_all(resources, "s") if v["policy"] == "fleet-tags"]
    assert [(v["resource"], v["message"]) for v in found] == [("network-lt", "missing tag fleet:group")]


# -- helpers --------------------------------------------------------------------------------------

@pytest.mark.parametrize("itype, arch", [
    ("m5.large", "x86_64"), ("m6i.large", "x86_64"), ("c7i-flex.large", "x86_64"), ("g5.xlarge", "x86_64"),
    ("u7i-12tb.224xlarge", "x86_64"), ("m6g.large", "arm64"), ("c7gn.large", "arm64"), ("t4g.nano", "arm64"),
    ("is4gen.large", "arm64"), ("g5g.xlarge", "arm64"), ("a1.large", "arm64"), ("p6e-gb200.36xlarge", "arm64"),
    ("mac1.metal", "x86_64_mac"), ("mac2-m2.metal", "arm64_mac")])
def test_architecture_from_the_instance_family(itype, arch):
    assert architecture_of(itype) == arch


def test_quote_caps_what_it_echoes():
    assert len(quote("x" * 5_000_000)) < 100
    assert len(quote(list(range(10**5)))) < 100
    assert quote("m5.large\n") == "'m5.large\\n'"


def test_problem_is_one_line_whatever_it_holds():
    p = Problem("f.yaml\n", 3, "we\nb", "k\x00ey", "bad\r\n\x1b[31m" + "y" * 10_000)
    text = str(p)
    assert "\n" not in text and "\r" not in text and "\x1b" not in text and len(text) < MAX_LINE
    assert text.startswith("f.yaml\\n:3: group 'we\\nb': key 'k\\x00ey': bad\\r\\n\\x1b[31m")



@pytest.mark.parametrize("raw", [
    '{"web": {"default_attributes": {"x": NaN}}}',
    '{"web": {"default_attributes": {"x": -Infinity}}}',
    '{"web": {"default_attributes": {"x": ' + "[" * 100 + "]" * 100 + "}}}",
    '{"web": {"default_attributes": {"x": ' + "[" * 5000 + "]" * 5000 + "}}}",
])
def test_pulumi_config_json_is_bounded_like_a_stack_file(raw):
    """`pulumi up` reads fleet:groups as JSON from Pulumi's config: the same limits as a stack file,
    so the program reports one line instead of building (or crashing on) what validate refuses."""
    from components.program import stack_values_from_config
    from fleet.spec.errors import SpecError
    from fleet.spec.stack import stack_from_values

    values = stack_values_from_config(get={"fleet:groups": raw}.get, keys=[])
    assert values["fleet:groups"] == raw  # left as the string, for fleet.spec.stack to report
    with pytest.raises(SpecError) as err:
        stack_from_values("s", values, "Pulumi.s.yaml")
    assert [str(p) for p in err.value.problems] == ["Pulumi.s.yaml: key 'fleet:groups': must be a mapping, not str"]
