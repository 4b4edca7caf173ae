"""`fleet image clean GROUP --keep N` and `fleet image delete GROUP` (seed 001 packer:clean/delete).

The group need not be in nodes.yaml any more (deleting a retired group's images is the point of
`delete`); only the region comes from the stack. AMIs in use by a launch template version or an
instance are never removed (image_builds.retention). Both also remove the group's orphaned
snapshots: tagged fleet:group=<group>, used by no AMI, older than the grace period (a build that
could not delete its incomplete snapshot leaves one).
"""

from __future__ import annotations

import datetime as dt
import sys

from fleet.ops.aws import client
from fleet.spec.load import load_fleet
from image_builds import retention


def run(group: str, *, nodes: str, stack: str | None, keep: int, dry_run: bool, region: str | None,
        endpoint_url: str | None, orphan_grace_hours: float | None = None) -> int:
    """Print what was (or would be) removed, one line per AMI and orphaned snapshot, and a summary
    ("removed 2 AMIs, kept 2; removed 1 orphaned snapshot"); exit 1 if anything failed."""
    orphan_grace = retention.ORPHAN_GRACE if orphan_grace_hours is None else dt.timedelta(hours=orphan_grace_hours)
    if region is None:
        region = load_fleet(nodes, stack).stack.region if stack else "us-east-1"
    ec2 = client("ec2", region=region, endpoint_url=endpoint_url)
    autoscaling = client("autoscaling", region=region, endpoint_url=endpoint_url)
    kept, remove = retention.plan_clean(ec2, autoscaling, group, keep)
    removed = retention.remove_all(ec2, group, remove, dry_run=dry_run)
    verb, kept_verb = ("would remove", "keep") if dry_run else ("removed", "kept")
    for r in removed:
        snaps = ", ".join(r.snapshot_ids) or "no snapshots"
        print(f"{verb} {r.image_id} ({r.name}) and {snaps}" + (f"; errors: {'; '.join(r.errors)}" if r.errors else ""))
    for image in kept:
        if image.in_use:
            print(f"kept {image.image_id} ({image.name}): in use by {image.in_use}")
    # after the AMIs: the snapshots of the AMIs just deregistered are gone, and no AMI is half-removed
    orphans = retention.orphaned_snapshots(ec2, group, grace=orphan_grace)
    gone, errors = retention.remove_orphans(ec2, group, orphans, dry_run=dry_run)
    for sid in gone:
        print(f"{verb} orphaned snapshot {sid} (no AMI uses it)")
    hours = f"{orphan_grace.total_seconds() / 3600:g}h"
    print(f"{group}: {verb} {len(removed)} {_amis(len(removed))}, {kept_verb} {len(kept)}; {verb} {len(gone)} "
          f"orphaned {_snapshots(len(gone))} (tagged fleet:group={group}, no AMI, older than {hours})",
          file=sys.stderr)
    return 1 if errors or any(r.errors for r in removed) else 0


def _amis(n: int) -> str:
    return "AMI" if n == 1 else "AMIs"


def _snapshots(n: int) -> str:
    return "snapshot" if n == 1 else "snapshots"
