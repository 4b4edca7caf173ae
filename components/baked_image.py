"""BakedImage: a group's AMI id (`ami_id`), baked or reused by the image pipeline.

- `pin` (from `fleet:amis`): that AMI, no Command (previews, emergency rollbacks; PITFALLS 10).
- `image.builder: ami`: the source AMI is the image. An `ami-...` id is used as is; a
  `{name, owners}` filter is resolved with `aws.ec2.get_ami_output(most_recent=True)`, invoked
  once per distinct filter in the whole program run (groups sharing a filter share the lookup).
- otherwise: a `pulumi_command.local.Command` runs
  `.venv/bin/python -m image_builds.build GROUP --stack STACK --region REGION --expect-hash HASH`,
  re-run only when `triggers=[image_hash]` changes (PITFALLS 9); its last stdout line is
  `{"ami_id": ..., "image_hash": ..., "cached": ...}` and nothing secret is printed (PITFALLS 11).
  The interpreter is the project's virtualenv by a relative path, and the Command sets no `dir` and
  no `environment`, so nothing in its inputs depends on where the checkout is and it runs whether or
  not the venv is activated (components/project_python.py; PITFALLS 31, 32).

`root_device_name` is the AMI's root device, for the launch template's encrypted root volume:
from the lookup for filtered `ami` images, else per builder: `raw` images are registered by
image_builds with /dev/xvda (image_builds.register.ROOT_DEVICE_NAME); packer and `ami` images
come from Ubuntu sources, whose root device is /dev/sda1 (packer keeps the source's name).
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

RAW_ROOT_DEVICE = "/dev/xvda"  # must equal image_builds.register.ROOT_DEVICE_NAME
UBUNTU_ROOT_DEVICE = "/dev/sda1"

# One AMI lookup per distinct filter per program run: keyed by the run's root Stack resource,
# so a new run (or a new test under mocks) never reuses another run's Outputs.
_LOOKUPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def root_device_for(builder: str) -> str:
    return RAW_ROOT_DEVICE if builder == "raw" else UBUNTU_ROOT_DEVICE


def parse_build_output(stdout: str) -> str:
    """The AMI id from the build's stdout: the last line is the result JSON."""
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    if not lines:
        raise ValueError("the image build printed nothing on stdout (expected a JSON line with ami_id)")
    return json.loads(lines[-1])["ami_id"]


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


def lookup_ami(source: SourceAmiFilter) -> pulumi.Output:
    """`aws.ec2.get_ami_output` for a name filter, shared by every group of this run that uses it."""
    root = pulumi.runtime.get_root_resource()
    cache = _LOOKUPS.setdefault(root, {}) if root is not None else {}
    key = (source.name, tuple(source.owners))
    if key not in cache:
        cache[key] = aws.ec2.get_ami_output(
            most_recent=True, owners=list(source.owners),
            filters=[aws.ec2.GetAmiFilterArgs(name="name", values=[source.name]),
                     aws.ec2.GetAmiFilterArgs(name="state", values=["available"])])
    return cache[key]


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
        root_device = pulumi.Output.from_input(root_device_for(group.image.builder))
        if args.pin:
            self.source = "pin"
            ami_id = pulumi.Output.from_input(args.pin)
        elif group.image.builder == "ami" and isinstance(group.source_ami, str):
            self.source = "source_ami"
            ami_id = pulumi.Output.from_input(group.source_ami)
        elif group.image.builder == "ami" and isinstance(group.source_ami, SourceAmiFilter):
            self.source = "lookup"
            found = lookup_ami(group.source_ami)
            ami_id = found.id
            root_device = found.root_device_name
        else:
            self.command = command.local.Command(f"{slug(group.name)}-image", command.local.CommandArgs(
                create=build_command_line(args.project_dir, group.name, args.stack, args.region, args.image_hash,
                                          args.nodes_file, group.image.skip_zero_blocks_unsafe_if_encrypted),
                triggers=[args.image_hash],
            ), opts=pulumi.ResourceOptions(parent=self))
            ami_id = self.command.stdout.apply(parse_build_output)
        self.ami_id = ami_id
        self.root_device_name = root_device
        self.register_outputs({"ami_id": self.ami_id, "root_device_name": self.root_device_name})
