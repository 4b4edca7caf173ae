"""`fleet image clean GROUP --keep N` and `fleet image delete GROUP` (seed 001 packer:clean/delete).

The group need not be in nodes.yaml any more (deleting a retired group's images is the point of
`delete`); only the region comes from the stack. AMIs in use by a launch template version or an
instance are never removed (image_builds.retention).
"""

from __future__ import annotations

import sys

from fleet.ops.aws import client
from fleet.spec.load import load_fleet
from image_builds import retention


def run(group: str, *, nodes: str, stack: str | None, keep: int, dry_run: bool, region: str | None,
        endpoint_url: str | None) -> int:
    """Print what was (or would be) removed, one line per AMI; exit 1 if anything failed."""
    if region is None:
        region = load_fleet(nodes, stack).stack.region if stack else "us-east-1"
    ec2 = client("ec2", region=region, endpoint_url=endpoint_url)
    autoscaling = client("autoscaling", region=region, endpoint_url=endpoint_url)
    kept, remove = retention.plan_clean(ec2, autoscaling, group, keep)
    removed = retention.remove_all(ec2, group, remove, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for r in removed:
        snaps = ", ".join(r.snapshot_ids) or "no snapshots"
        print(f"{verb} {r.image_id} ({r.name}) and {snaps}" + (f"; errors: {'; '.join(r.errors)}" if r.errors else ""))
    for image in kept:
        if image.in_use:
            print(f"kept {image.image_id} ({image.name}): in use by {image.in_use}")
    print(f"{group}: {len(removed)} AMIs {verb}, {len(kept)} kept", file=sys.stderr)
    return 1 if any(r.errors for r in removed) else 0
