"""Bad nodes.yaml and stack files: exit 2, one line per problem naming file, group and key, no traceback.

Each case also states whether the published JSON Schema rejects it on its own (structure) or
whether only `fleet validate` can (cross-field rules, merged values, duplicates, instance types);
tests/test_schema.py holds the schema to that.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleet.cli import main

ROOT = Path(__file__).resolve().parent.parent
BASE = "__base__: {instance_type: m5.large, source_ami: ami-12345678}\n"


@dataclass
class Case:
    id: str
    nodes: str
    expect: tuple[str, ...]  # substrings of the one line: group and key and what is wrong
    schema_rejects: bool  # does the JSON Schema alone reject the file?
    stack: str | None = None  # Pulumi.s.yaml content, used with --stack s


CASES = [
    Case("unknown-key", BASE + "web: {instance_typ: m5.large}", ("group 'web'", "key 'instance_typ'",
         "did you mean 'instance_type'"), True),
    Case("unknown-nested-key", BASE + "web: {autoscale: {node_mni: 1}}", ("group 'web'", "key 'autoscale.node_mni'",
         "did you mean 'node_min'"), True),
    Case("wrong-type", BASE + "web: {instances: two}", ("group 'web'", "key 'instances'", "must be an integer"), True),
    Case("wrong-type-list", BASE + "web: {security_groups: www}", ("group 'web'", "key 'security_groups'",
         "must be a list"), True),
    Case("autoscale-true", BASE + "web: {autoscale: true}", ("group 'web'", "key 'autoscale'", "must be false"), True),
    Case("negative-size", BASE + "web: {volume: {size: -5}}", ("group 'web'", "key 'volume.size'", ">= 1"), True),
    Case("negative-bake-time", BASE + "web: {rollout: {bake_time: -1}}",
         ("group 'web'", "key 'rollout.bake_time'", ">= 0"), True),
    Case("bake-time-misspelt", BASE + "web: {rollout: {bake: 60}}", ("group 'web'", "key 'rollout.bake'"), True),
    Case("node-min-above-max", BASE + "web: {autoscale: {node_min: 5, node_max: 2}}",
         ("group 'web'", "key 'autoscale.node_min'", "above node_max"), False),
    Case("on-demand-base-above-max", BASE + "web: {autoscale: {on_demand: {base: 3, max: 1}}}",
         ("group 'web'", "key 'autoscale.on_demand.base'", "above on_demand.max"), False),
    Case("unknown-instance-type", BASE + "web: {instance_type: m5.larg}",
         ("group 'web'", "key 'instance_type'", "did you mean 'm5.large'"), False),
    Case("unknown-spot-type", BASE + "web: {autoscale: {spot: {instance_types: [m5.large, c9.huge]}}}",
         ("group 'web'", "key 'autoscale.spot.instance_types[1]'", "c9.huge"), False),
    Case("unknown-builder", BASE + "web: {image: {builder: packr}}",
         ("group 'web'", "key 'image.builder'", "did you mean 'packer'"), True),
    Case("raw-without-path", BASE + "web: {image: {builder: raw}}", ("group 'web'", "key 'image'", "path"), False),
    Case("path-with-packer", BASE + "web: {image: {path: disk.img}}", ("group 'web'", "key 'image.path'",
         "only applies to image.builder raw"), False),
    Case("reserved-name", BASE + "__web__: {}", ("group '__web__'", "reserved"), True),
    Case("invalid-name", BASE + "'web server': {}", ("group 'web server'", "letters, digits"), True),
    Case("too-long-name", BASE + "a" * 129 + ": {}", ("group '" + "a" * 129 + "'", "longer than 128"), True),
    Case("name-read-as-int", BASE + "12_04: {}", ("nodes.yaml:2", "group '12_04'", "read by YAML as a number",
                                                  "quote it"), False),
    Case("slug-collision", BASE + "a_b: {}\na-b: {}", ("group 'a-b'", "same AWS names as group 'a_b'"), False),
    Case("health-in-name", BASE + "api-health-x: {}", ("group 'api-health-x'", "health"), False),
    Case("empty-file", "", ("empty",), True),
    Case("not-a-mapping", "- a\n- b\n", ("must be a mapping",), True),
    Case("syntax-error", BASE + "web: {instance_type: [m5.large}\n", ("YAML syntax error", "column"), True),
    Case("duplicate-key", BASE + "web:\n  instance_type: m5.large\n  instance_type: m5.xlarge\n",
         ("group 'web'", "key 'instance_type'", "duplicate key", "first defined on line 3"), False),
    Case("duplicate-group", BASE + "web: {}\nweb: {}\n", ("group 'web'", "duplicate entry", "line 2"), False),
    Case("missing-instance-type", "web: {source_ami: ami-12345678}", ("group 'web'", "key 'instance_type'",
         "is required"), False),
    Case("bad-ami-id", BASE + "web: {source_ami: ami-xyz}", ("group 'web'", "key 'source_ami'", "AMI id"), True),
    Case("bad-run-list-item", BASE + "web: {run_list: [nginx]}", ("group 'web'", "key 'run_list[0]'",
         "recipe["), True),
    Case("hc-timeout-not-below-interval",
         BASE + "web: {autoscale: {}, http: {port: 80, hosts: [a.io], health_check: {interval: 5, timeout: 5}}}",
         ("group 'web'", "key 'http.health_check.timeout'", "shorter than interval"), False),
    Case("http-without-rule", BASE + "web: {autoscale: {}, http: {port: 80}}", ("group 'web'", "key 'http'",
         "hosts or paths"), False),
    Case("http-on-one-off", BASE + "web: {http: {port: 80, hosts: [a.io]}}", ("group 'web'", "key 'http'",
         "needs autoscale"), False),
    Case("port-out-of-range", BASE + "web: {autoscale: {}, http: {port: 70000, hosts: [a.io]}}",
         ("group 'web'", "key 'http.port'", "<= 65535"), True),
    Case("scaling-order", BASE + "web: {scaling: {target_cpu: 90}}", ("group 'web'", "key 'scaling'",
         "scale_in.cpu < target_cpu < burst.cpu"), False),
    Case("on-demand-scales-first", BASE + "web: {scaling: {on_demand: {target_cpu: 40}}}",
         ("group 'web'", "key 'scaling.on_demand.target_cpu'", "fallback must scale later"), False),
    Case("reserved-tag", BASE + "web: {tags: {'aws:x': y}}", ("group 'web'", "key 'tags'", "reserved"), True),
    Case("stack-unknown-group", BASE + "web: {}", ("Pulumi.s.yaml", "group 'wbe'", "did you mean 'web'"), False,
         stack="config:\n  fleet:groups:\n    wbe: {instances: 2}\n"),
    Case("stack-bad-override", BASE + "web: {}", ("Pulumi.s.yaml", "group 'web'", "key 'autoscale.node_min'"), False,
         stack="config:\n  fleet:groups:\n    web: {autoscale: {node_min: -1}}\n"),
    Case("stack-override-breaks-rule", BASE + "web: {autoscale: {node_min: 1, node_max: 2}}",
         ("Pulumi.s.yaml:4", "group 'web'", "key 'autoscale.node_min'", "above node_max"), False,
         stack="config:\n  fleet:groups:\n    web:\n      autoscale: {node_min: 3}\n"),
    Case("stack-unknown-config-key", BASE + "web: {}", ("Pulumi.s.yaml", "key 'fleet:grups'",
         "did you mean 'fleet:groups'"), False, stack="config:\n  fleet:grups: {}\n"),
    Case("stack-bad-ami-pin", BASE + "web: {}", ("Pulumi.s.yaml", "group 'web'", "key 'fleet:amis'", "not an AMI id"),
         False, stack="config:\n  fleet:amis: {web: ami-nope}\n"),
    Case("stack-pin-unknown-group", BASE + "web: {}", ("Pulumi.s.yaml", "group 'wbe'", "key 'fleet:amis'"), False,
         stack="config:\n  fleet:amis: {wbe: ami-12345678}\n"),
    Case("stack-bad-region", BASE + "web: {}", ("Pulumi.s.yaml", "key 'aws:region'"), False,
         stack="config:\n  aws:region: mars-1\n"),
]


def run_cli(tmp_path: Path, case: Case, capsys) -> tuple[int, str, str]:
    nodes = tmp_path / "nodes.yaml"
    nodes.write_text(textwrap.dedent(case.nodes))
    args = ["--project", str(tmp_path), "validate"]
    if case.stack is not None:
        (tmp_path / "Pulumi.s.yaml").write_text(case.stack)
        args += ["--stack", "s"]
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_there_are_at_least_twenty_cases():
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(tmp_path, capsys, case):
    code, out, err = run_cli(tmp_path, case, capsys)
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines, "no problem printed"
    matching = [line for line in lines if all(s in line for s in case.expect)]
    assert matching, f"no line has all of {case.expect}:\n{err}"
    file = "Pulumi.s.yaml" if case.expect[0].startswith("Pulumi.s.yaml") else "nodes.yaml"
    assert all(file in line or "Pulumi.s.yaml" in line for line in lines)


def test_real_entry_point_exits_2_without_traceback(tmp_path):
    nodes = tmp_path / "nodes.yaml"
    nodes.write_text(BASE + "web: {instance_typ: m5.large}\n")
    proc = subprocess.run([sys.executable, "-m", "fleet", "--nodes", str(nodes), "validate"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    context, problem = proc.stderr.strip().splitlines()
    assert context == (f"fleet: project {tmp_path}, nodes nodes.yaml, "
                       "stack staging (no Pulumi.staging.yaml: stack defaults)")
    assert problem == "nodes.yaml:2: group 'web': key 'instance_typ': unknown key (did you mean 'instance_type'?)"
    assert proc.stdout == ""


def test_unknown_group_on_the_command_line(capsys):
    assert main(["--nodes", str(ROOT / "nodes.yaml"), "show", "12_04-be"]) == 2
    assert "no such group (did you mean '12_04-bee'?)" in capsys.readouterr().err


def test_missing_stack_file(tmp_path, capsys):
    (tmp_path / "nodes.yaml").write_text(BASE + "web: {}\n")
    assert main(["--nodes", str(tmp_path / "nodes.yaml"), "validate", "--stack", "nope"]) == 2
    assert "no stack file for stack 'nope'" in capsys.readouterr().err


def test_bad_argument_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err
