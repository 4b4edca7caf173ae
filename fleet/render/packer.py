"""Packer JSON template (seed 001's shape, Packer 1.6 JSON) for a group's image.

No credentials in the template: Packer reads them from the environment like the AWS CLI.
`endpoint_url` (tests, local moto) adds the custom endpoint and the skip_* switches.
`communicator: none` builds without connecting to the instance, so no provisioner runs
(used against a local AWS API that starts no real machines).
"""

from __future__ import annotations

from typing import Any

from fleet.render.role import role_name
from fleet.spec.model import Group, SourceAmiFilter
from fleet.spec.names import slug

MANIFEST = "manifest.json"


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


def render_packer(group: Group, *, region: str, image_hash: str, roles_path: str = "roles",
                  cookbook_paths: tuple[str, ...] = ("cookbooks",), data_bags_path: str | None = None,
                  endpoint_url: str | None = None, manifest: str = MANIFEST) -> dict[str, Any]:
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
        chef: dict[str, Any] = {
            "type": "chef-solo",
            "cookbook_paths": list(cookbook_paths),
            "roles_path": roles_path,
            "run_list": [f"role[{role_name(group)}]"],
        }
        if data_bags_path:
            chef["data_bags_path"] = data_bags_path  # seed 001's recipes call data_bag_item
        template["provisioners"].append(chef)
    return template
