"""Packer JSON template (seed 001's shape) for a group's image: what every Packer has, nothing more.

The builder is `amazon-ebs` (bundled up to Packer 1.9, the `github.com/hashicorp/amazon` plugin from
1.10 on: `image_builds.packer_builder` checks it is installed) and the only provisioners are `file`
and `shell`, which every Packer ships: no chef provisioner (they live in an archived plugin). The
converge at bake time is the boot path's own: `file` uploads the group's content-addressed cookbook
bundle (fleet/render/bundle.py, the very bytes the artifacts bucket serves at boot), the boot program
(boot/fleet_boot.py) and its config, and `shell` runs the program in its local mode, which reads the
bundle from the uploaded directory instead of S3 and completes no lifecycle hook. One converge, two
moments: a cookbook behaves the same baked in and converged at boot.

No credentials in the template: Packer reads them from the environment like the AWS CLI.
`endpoint_url` (tests, local moto) adds the custom endpoint and the skip_* switches.
`communicator: none` builds without connecting to the instance, so no provisioner runs
(used against a local AWS API that starts no real machines).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.render.bundle import build_bundle
from fleet.render.role import role_name
from fleet.render.userdata import BOOT_PROGRAM
from fleet.spec.model import Group, SourceAmiFilter
from fleet.spec.names import slug

MANIFEST = "manifest.json"
REMOTE_DIR = "/tmp/fleet-bake"  # where `file` uploads on the build instance
BAKE_ROOT = "/var/lib/fleet-bake"  # the boot program's working directory at bake time, removed afterwards
PROGRAM, CONFIG = "fleet_boot.py", "bake.json"

def ami_name(group: Group, image_hash: str) -> str:
    """The one AMI name of an image hash. AWS refuses a second AMI with a name in use
    (InvalidAMIName.Duplicate), so two builds of one hash at once (two stacks deploying together)
    cannot both register: the loser reuses the winner's AMI (image_builds.build)."""
    return f"fleet-{slug(group.name)[:100]}-{image_hash[:20]}"


def image_tags(group: Group, image_hash: str) -> dict[str, str]:
    source = group.source_ami if isinstance(group.source_ami, str) else getattr(group.source_ami, "name", "")
    return {
        "Name": f"fleet-{slug(group.name)}",
        "fleet:group": group.name,
        "fleet:image-hash": image_hash,
        "fleet:builder": group.image.builder,
        "fleet:source": source or "",
    }


@dataclass(frozen=True)
class BakeFiles:
    """What the bake's converge uploads: local file names (relative to the template's directory) -> bytes."""

    bundle: str  # <sha256>.tar.gz: the boot bundle's own name in the artifacts bucket
    files: dict[str, bytes]
    chef_package: str | None = None


def bake_config(group: Group, bundle_name: str, bundle_sha256: str, chef_package: tuple[str, str] | None) -> dict:
    """The boot program's config for the bake: its local mode (files in REMOTE_DIR, no hook, no stack)."""
    return {
        "group": group.name, "stack": None, "environment": None, "role": role_name(group), "converge": True,
        "local_dir": REMOTE_DIR, "root": BAKE_ROOT, "hook": None,
        "bundle": {"key": bundle_name, "sha256": bundle_sha256},
        "chef_package": {"key": chef_package[0], "sha256": chef_package[1]} if chef_package else None,
    }


def bake_files(group: Group, project_dir: Path) -> BakeFiles:
    """The bundle, the boot program, its config and the chef package (when the group names one)."""
    bundle = build_bundle(group, project_dir)
    name = bundle.key.rsplit("/", 1)[-1]
    files = {name: bundle.data, PROGRAM: BOOT_PROGRAM.read_bytes()}
    package = None
    if group.boot.chef_package:
        data = (Path(project_dir) / group.boot.chef_package).read_bytes()
        package = (Path(group.boot.chef_package).name, hashlib.sha256(data).hexdigest())
        files[package[0]] = data
    config = bake_config(group, name, bundle.sha256, package)
    files[CONFIG] = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
    return BakeFiles(bundle=name, files=files, chef_package=package[0] if package else None)


def provisioners(bake: BakeFiles) -> list[dict[str, Any]]:
    """mkdir, one `file` upload per file, then the converge; the converge's chef log is printed (into
    Packer's log file) and the uploaded and working files are removed from the image either way."""
    uploads = [{"type": "file", "source": name, "destination": f"{REMOTE_DIR}/{name}"} for name in sorted(bake.files)]
    converge = (f"if sudo python3 {REMOTE_DIR}/{PROGRAM} {REMOTE_DIR}/{CONFIG}; then status=0; else status=$?; fi; "
                f"sudo cat {BAKE_ROOT}/chef.log 2>/dev/null; sudo rm -rf {REMOTE_DIR} {BAKE_ROOT}; exit $status")
    return [{"type": "shell", "inline": [f"mkdir -p {REMOTE_DIR}"]}, *uploads, {"type": "shell", "inline": [converge]}]


def render_packer(group: Group, *, region: str, image_hash: str, bake: BakeFiles | None = None,
                  endpoint_url: str | None = None, manifest: str = MANIFEST) -> dict[str, Any]:
    """The template; `bake` (bake_files) is required when the group's image is provisioned over SSH."""
    builder: dict[str, Any] = {
        "type": "amazon-ebs",
        "region": region,
        "instance_type": group.instance_type,
        "ssh_username": group.image.ssh_username,
        "communicator": group.image.communicator,
        "ami_name": ami_name(group, image_hash),
        "ami_description": f"fleet image for {group.name} ({image_hash[:12]})",
        "ena_support": True,
        "tags": {**image_tags(group, image_hash), "fleet:built-at": "{{isotime \"2006-01-02T15:04:05Z07:00\"}}"},
        "snapshot_tags": image_tags(group, image_hash),
        "run_tags": {"fleet:group": group.name, "fleet:purpose": "image-build"},
    }
    if isinstance(group.source_ami, SourceAmiFilter) and group.source_ami.locked:
        builder["source_ami"] = group.source_ami.locked.ami_id  # nodes.lock.json: never a moving "most recent"
    elif isinstance(group.source_ami, SourceAmiFilter):
        builder["source_ami_filter"] = {
            "filters": {"name": group.source_ami.name, "virtualization-type": "hvm", "root-device-type": "ebs"},
            "owners": list(group.source_ami.owners),
            "most_recent": True,
        }
    else:
        builder["source_ami"] = group.source_ami
    if endpoint_url:
        builder.update({
            "custom_endpoint_ec2": endpoint_url,
            "skip_credential_validation": True,
            "skip_metadata_api_check": True,
            "skip_region_validation": True,
        })
    template: dict[str, Any] = {
        "description": f"fleet: image for group {group.name}",
        "builders": [builder],
        "provisioners": [],
        "post-processors": [{"type": "manifest", "output": manifest, "strip_path": True}],
    }
    if group.image.communicator != "none":
        if bake is None:
            raise ValueError(f"group {group.name}: a provisioned bake needs its files (fleet.render.packer.bake_files)")
        template["provisioners"] = provisioners(bake)
    return template
