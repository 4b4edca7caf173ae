"""`fleet lock`: resolve every `source_ami` name filter into nodes.lock.json (fleet/spec/lock.py).

    fleet lock [--stack S] [--update [GROUP]] [--endpoint-url URL]

For every stack of the project (Pulumi.<stack>.yaml; or only --stack S) the groups' filters are
collected per region; a filter with no entry is resolved (DescribeImages with its owners and name,
available images only, the newest by creation date) and added. `--update` re-resolves every
entry, `--update GROUP` only the filters GROUP uses. Entries nothing uses any more are dropped.
One line per entry on stdout says what it is and what changed; the file is written only when
something changed. Exit 0; 1 when a filter matches no image (the lock is left as it was).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TextIO

from fleet.ops.aws import client
from fleet.spec.errors import Problem, SpecError, did_you_mean
from fleet.spec.load import load_fleet, project_dir_of
from fleet.spec.lock import Lock, filter_key, lock_path, read_lock
from fleet.spec.model import LockedImage, SourceAmiFilter


class LockError(RuntimeError):
    """A filter matched no available image."""


def resolve_filter(ec2, source: SourceAmiFilter) -> LockedImage:
    """The newest available image matching the filter, as a lock entry."""
    images = ec2.describe_images(Owners=list(source.owners), Filters=[
        {"Name": "name", "Values": [source.name]}, {"Name": "state", "Values": ["available"]}])["Images"]
    if not images:
        raise LockError(f"no available image named {source.name!r} owned by {', '.join(source.owners)}")
    newest = max(images, key=lambda i: (i.get("CreationDate") or "", i.get("Name") or "", i["ImageId"]))
    return LockedImage(ami_id=newest["ImageId"], name=newest.get("Name", ""),
                       creation_date=newest.get("CreationDate", ""), root_device_name=newest["RootDeviceName"])


def project_stacks(nodes: str | Path) -> list[str]:
    """The stacks whose Pulumi.<stack>.yaml sits beside the nodes file or in its project."""
    dirs = {Path(nodes).resolve().parent, project_dir_of(nodes)}
    return sorted({p.name[len("Pulumi."):-len(".yaml")] for d in dirs for p in d.glob("Pulumi.*.yaml")})


def wanted_filters(nodes: str | Path, stack: str | None) -> dict[tuple[str, str], tuple[SourceAmiFilter, list[str]]]:
    """(region, filter key) -> (filter, groups using it), over the stack or every stack of the project."""
    wanted: dict[tuple[str, str], tuple[SourceAmiFilter, list[str]]] = {}
    stacks = [stack] if stack else project_stacks(nodes) or [None]
    for s in stacks:
        fleet = load_fleet(nodes, s, require_lock=False)
        region = fleet.stack.region if fleet.stack else os.environ.get("AWS_REGION", "us-east-1")
        for name, group in fleet.groups.items():
            source = group.source_ami
            if isinstance(source, SourceAmiFilter):
                source = SourceAmiFilter(source.name, source.owners)
                entry = wanted.setdefault((region, filter_key(source)), (source, []))
                if name not in entry[1]:
                    entry[1].append(name)
    return wanted


def lock(nodes: str | Path, *, stack: str | None = None, update: bool = False, group: str | None = None,
         endpoint_url: str | None = None, out: TextIO | None = None) -> int:
    wanted = wanted_filters(nodes, stack)
    if group is not None and not any(group in names for _, names in wanted.values()):
        groups = sorted({n for _, names in wanted.values() for n in names})
        raise SpecError([Problem(str(nodes), None, group, "source_ami",
                                 f"no group with a source_ami name filter{did_you_mean(group, groups)}")])
    old = read_lock(lock_path(nodes))
    new = Lock(old.path)
    clients: dict[str, object] = {}
    lines = []
    for (region, key), (source, names) in sorted(wanted.items()):
        before = old.images.get(region, {}).get(key)
        if before is None or (update and (group is None or group in names)):
            ec2 = clients.setdefault(region, client("ec2", region=region, endpoint_url=endpoint_url))
            try:
                image = resolve_filter(ec2, source)
            except LockError as exc:
                print(f"fleet lock: {', '.join(names)}: {exc} in {region}; {old.path.name} unchanged", file=sys.stderr)
                return 1
        else:
            image = before
        new.put(source, region, image)
        change = ("added" if before is None else "unchanged" if before == image
                  else f"updated from {before.ami_id} ({before.name})")
        lines.append(f"{region} {key}: {image.ami_id} {image.name} ({image.creation_date}, root "
                     f"{image.root_device_name}) for {', '.join(names)}: {change}")
    for region, keys in sorted(old.images.items()):
        for key in sorted(set(keys) - set(new.images.get(region, {}))):
            lines.append(f"{region} {key}: dropped (no group uses it)")
    for line in lines:
        print(line, file=out or sys.stdout)
    if new.to_json() != (old.path.read_text() if old.path.exists() else None):
        new.write()
        print(f"wrote {new.path}", file=sys.stderr)
    return 0
