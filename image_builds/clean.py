"""`fleet image clean GROUP --keep N` and `fleet image delete GROUP` (seed 001 packer:clean/delete).

The group need not be in nodes.yaml any more (deleting a retired group's images is the point of
`delete`); only the region comes from the stack. AMIs in use by a launch template version or an
instance are never removed (image_builds.retention). Both also remove the group's orphaned
snapshots: tagged fleet:group=<group>, used by no AMI, older than the grace period (a build that
could not delete its incomplete snapshot leaves one).

What stays besides what AWS says is in use (`protections`): the AMI of the group's current image
hash for nodes.yaml and for every stack (Pulumi.<stack>.yaml beside nodes.yaml or in the project),
and any AMI a stack pins in `fleet:amis`: reverting nodes.yaml and redeploying reuses those without
a rebuild. `--keep` defaults to the group's `image.keep`; the build runs the same retention after
every bake. A stack file that does not load is an error (exit 2): guessing could remove what it uses.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import TextIO

from fleet.image_hash import image_hash
from fleet.ops.aws import client
from fleet.spec.errors import Problem, SpecError, did_you_mean
from fleet.spec.load import load_fleet, project_dir_of
from fleet.spec.model import Image
from image_builds import retention


def stacks_of(nodes: str | Path) -> list[str]:
    """Stack names with a Pulumi.<stack>.yaml beside nodes.yaml or in its project directory."""
    dirs = {Path(nodes).resolve().parent, project_dir_of(nodes)}
    return sorted({p.name[len("Pulumi."):-len(".yaml")] for d in dirs for p in d.glob("Pulumi.*.yaml")})


def protections(group: str, nodes: str | Path) -> tuple[dict[str, str], dict[str, str], int]:
    """(current image hash -> why, pinned AMI id -> where, the group's image.keep) over nodes.yaml
    alone and every stack. A group no longer in nodes.yaml has no current hash (keep: the default)."""
    hashes: dict[str, str] = {}
    pinned: dict[str, str] = {}
    keep = Image().keep
    project = project_dir_of(nodes)
    for stack in [None, *stacks_of(nodes)]:
        fleet = load_fleet(nodes, stack)
        where = f"stack {stack}" if stack else "nodes.yaml"
        if group in fleet.groups:
            hashes.setdefault(image_hash(fleet.groups[group], project), f"the current image of {where}")
            if stack is None:
                keep = fleet.groups[group].image.keep
        if fleet.stack and group in fleet.stack.amis:
            pinned.setdefault(fleet.stack.amis[group], f"pinned in Pulumi.{stack}.yaml fleet:amis")
    return hashes, pinned, keep


def run(group: str, *, nodes: str, stack: str | None, keep: int | None, dry_run: bool, region: str | None,
        endpoint_url: str | None, orphan_grace_hours: float | None = None, out: TextIO | None = None,
        project_dir: Path | None = None) -> int:
    """Print what was (or would be) removed, one line per AMI and orphaned snapshot, and a summary
    ("removed 2 AMIs, kept 2; removed 1 orphaned snapshot"); exit 1 if anything failed. `keep`
    None: the group's image.keep. `out`: where the per-AMI lines go (stdout; the build: stderr)."""
    out = out or sys.stdout
    current, pinned, default_keep = protections(group, nodes)
    keep = default_keep if keep is None else keep
    orphan_grace = retention.ORPHAN_GRACE if orphan_grace_hours is None else dt.timedelta(hours=orphan_grace_hours)
    if region is None:
        region = load_fleet(nodes, stack, project_dir=project_dir).stack.region if stack else "us-east-1"
    ec2 = client("ec2", region=region, endpoint_url=endpoint_url)
    autoscaling = client("autoscaling", region=region, endpoint_url=endpoint_url)
    kept, remove = retention.plan_clean(ec2, autoscaling, group, keep, current_hashes=current, pinned=pinned)
    if not kept and not remove:
        _check_known(group, nodes, ec2)
    removed = retention.remove_all(ec2, group, remove, dry_run=dry_run)
    verb, kept_verb = ("would remove", "keep") if dry_run else ("removed", "kept")
    for r in removed:
        snaps = ", ".join(r.snapshot_ids) or "no snapshots"
        print(f"{verb} {r.image_id} ({r.name}) and {snaps}" + (f"; errors: {'; '.join(r.errors)}" if r.errors else ""),
              file=out)
    for image in kept:
        if image.in_use:
            print(f"kept {image.image_id} ({image.name}): in use by {image.in_use}", file=out)
    # after the AMIs: the snapshots of the AMIs just deregistered are gone, and no AMI is half-removed
    orphans = retention.orphaned_snapshots(ec2, group, grace=orphan_grace)
    gone, errors = retention.remove_orphans(ec2, group, orphans, dry_run=dry_run)
    for sid in gone:
        print(f"{verb} orphaned snapshot {sid} (no AMI uses it)", file=out)
    hours = f"{orphan_grace.total_seconds() / 3600:g}h"
    print(f"{group}: {verb} {len(removed)} {_amis(len(removed))}, {kept_verb} {len(kept)}; {verb} {len(gone)} "
          f"orphaned {_snapshots(len(gone))} (tagged fleet:group={group}, no AMI, older than {hours})",
          file=sys.stderr)
    return 1 if errors or any(r.errors for r in removed) else 0


def _check_known(group: str, nodes: str | Path, ec2) -> None:
    """A group with no AMI is either a typo or already clean: a group nodes.yaml does not name that has
    no snapshot either is reported as bad input, with "did you mean" (a retired group with images left is
    exactly what `delete` is for, so one with AMIs or snapshots is never refused)."""
    names = list(load_fleet(nodes, None).groups)
    if group in names or retention.group_snapshots(ec2, group):
        return
    raise SpecError([Problem(str(nodes), None, group, None, "no such group in nodes.yaml, and no AMI or snapshot "
                             f"tagged fleet:group={group}{did_you_mean(group, names)}")])


def _amis(n: int) -> str:
    return "AMI" if n == 1 else "AMIs"


def _snapshots(n: int) -> str:
    return "snapshot" if n == 1 else "snapshots"
