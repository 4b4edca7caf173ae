"""BakedImage: a group's AMI id (`ami_id`), baked or reused by the image pipeline.

- `pin` (from `fleet:amis`): that AMI, no Command (previews, emergency rollbacks;
  a Command's stdout is unknown in previews).
- `image.builder: ami`: the source AMI is the image. An `ami-...` id is used as is; a
  `{name, owners}` filter is its locked image from nodes.lock.json (id and root device; `fleet lock`,
  fleet/spec/lock.py): no "most recent" lookup at deploy, which would change the launch template
  whenever the owner publishes.
- otherwise: a `pulumi_command.local.Command` runs
  `.venv/bin/python -m image_builds.build GROUP --stack STACK --region REGION --expect-hash HASH`,
  re-run only when `triggers=[image_hash]` changes (a Command's create runs once otherwise); its last stdout line is
  `{"ami_id", "image_hash", "cached", "root_device_name"}` and nothing secret is printed (stdout shows in diffs).
  The interpreter is the project's virtualenv by a relative path, and the Command sets no `dir` and
  no `environment`, so nothing in its inputs depends on where the checkout is and it runs whether or
  not the venv is activated (components/project_python.py).

`root_device_name` is the AMI's own root device, for the launch template's encrypted root volume
(a mapping on another name adds an empty disk and leaves the real root unencrypted).
Nothing assumes a distribution: a built image's comes from the build's result line (DescribeImages
after the bake or on a cache hit), a filtered `ami` image's from the lock, and a pinned or literal
AMI id's from a lookup of that one id (which never changes its answer).
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_command as command

from components.project_python import python_module_command
from fleet.spec.model import Group, SourceAmiFilter
from fleet.spec.names import slug

# One AMI lookup per distinct id per program run: keyed by the run's root Stack resource,
# so a new run (or a new test under mocks) never reuses another run's Outputs.
_LOOKUPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def parse_build_result(stdout: str) -> dict:
    """The build's result from its stdout: the last line is the result JSON."""
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    if not lines:
        raise ValueError("the image build printed nothing on stdout (expected a JSON line with ami_id)")
    result = json.loads(lines[-1])
    if "root_device_name" not in result:
        raise ValueError("the image build's result line has no root_device_name (an older image_builds?)")
    return result


def report_build_warnings(result: dict, warn) -> dict:
    """Hand every warning of the build's result line (e.g. retention that failed after a bake) to `warn`
    (pulumi.log.warn in the component), so `pulumi up` shows it; returns the result unchanged."""
    for warning in result.get("warnings") or []:
        warn(f"image build: {warning}")
    return result


def parse_build_output(stdout: str) -> str:
    """The AMI id from the build's stdout."""
    return parse_build_result(stdout)["ami_id"]


def build_command_line(project_dir: Path, group: str, stack: str, region: str, image_hash: str,
                       nodes_file: str = "nodes.yaml", skip_zero_blocks: bool = False) -> str:
    """The build's command line. `--expect-hash`: the build refuses to run for inputs other than the
    ones that triggered it; `--nodes` (relative to the project) only for a stack whose `fleet:nodesFile`
    is not the default."""
    args = [group, "--stack", stack, "--region", region, "--expect-hash", image_hash]
    if nodes_file != "nodes.yaml":
        args += ["--nodes", nodes_file]
    if skip_zero_blocks:
        # visible in the plan, where the raw-upload-every-block guardrail refuses it (encrypted volumes)
        args.append("--skip-zero-blocks-unsafe-if-encrypted")
    return python_module_command(project_dir, "image_builds.build", args)


def lookup_ami_id(ami_id: str) -> pulumi.Output:
    """`aws.ec2.get_ami_output` for one AMI id (its root device): the answer never moves."""
    root = pulumi.runtime.get_root_resource()
    cache = _LOOKUPS.setdefault(root, {}) if root is not None else {}
    if ami_id not in cache:
        cache[ami_id] = aws.ec2.get_ami_output(
            include_deprecated=True, filters=[aws.ec2.GetAmiFilterArgs(name="image-id", values=[ami_id])])
    return cache[ami_id]


@dataclass
class BakedImageArgs:
    group: Group
    image_hash: str
    stack: str
    region: str
    pin: str | None
    project_dir: Path
    nodes_file: str = "nodes.yaml"  # relative to project_dir, as `fleet:nodesFile`


class BakedImage(pulumi.ComponentResource):
    ami_id: pulumi.Output[str]
    root_device_name: pulumi.Output[str]
    command: command.local.Command | None

    def __init__(self, name: str, args: BakedImageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleet:baked_image:BakedImage", name, None, opts)
        group = args.group
        self.command = None
        self.source = "build"
        if args.pin or (group.image.builder == "ami" and isinstance(group.source_ami, str)):
            self.source = "pin" if args.pin else "source_ami"
            ami_id = pulumi.Output.from_input(args.pin or group.source_ami)
            root_device = lookup_ami_id(args.pin or group.source_ami).root_device_name
        elif group.image.builder == "ami" and isinstance(group.source_ami, SourceAmiFilter):
            locked = group.source_ami.locked
            if locked is None:  # fleet.spec.load refuses an unlocked filter before any resource
                raise ValueError(f"group {group.name}: source_ami filter {group.source_ami.name!r} is not locked: "
                                 "run `fleet lock`")
            self.source = "lock"
            ami_id = pulumi.Output.from_input(locked.ami_id)
            root_device = pulumi.Output.from_input(locked.root_device_name)
        else:
            self.command = command.local.Command(f"{slug(group.name)}-image", command.local.CommandArgs(
                create=build_command_line(args.project_dir, group.name, args.stack, args.region, args.image_hash,
                                          args.nodes_file, group.image.skip_zero_blocks_unsafe_if_encrypted),
                triggers=[args.image_hash],
                add_previous_output_in_env=False,  # its output never comes back as environment variables
            ), opts=pulumi.ResourceOptions(parent=self))
            result = self.command.stdout.apply(parse_build_result).apply(
                lambda r: report_build_warnings(r, lambda text: pulumi.log.warn(text, resource=self)))
            ami_id = result.apply(lambda r: r["ami_id"])
            root_device = result.apply(lambda r: r["root_device_name"])
        self.ami_id = ami_id
        self.root_device_name = root_device
        self.register_outputs({"ami_id": self.ami_id, "root_device_name": self.root_device_name})
