"""`fleet lock`: resolve every `source_ami` name filter into nodes.lock.json (fleet/spec/lock.py).

    fleet lock [--stack S] [--update [GROUP]] [--endpoint-url URL]
    fleet lock --check [--stack S] [--endpoint-url URL]

For every stack of the project (Pulumi.<stack>.yaml; or only --stack S) the groups' filters are
collected per region; a filter with no entry is resolved (DescribeImages with its owners and name,
available images only, the newest by creation date) and added. `--update` re-resolves every
entry, `--update GROUP` only the filters GROUP uses. Entries nothing uses any more are dropped.
One line per entry on stdout says what it is and what changed; the file is written only when
something changed. Exit 0; 1 when a filter matches no image (the lock is left as it was).
Each entry records the EC2 endpoint it was resolved at (`resolved_at`).

`--check` (the deploy workflow runs it before `pulumi up`) changes nothing: every entry the stack(s)
use must be locked, resolved at AWS when the stack targets AWS, and exist in its region with the
locked name and one of the filter's owners (DescribeImages with the credentials at hand). One line
per entry on stdout, `ok` or why not; exit 1 when any is not ok.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TextIO

from botocore.exceptions import BotoCoreError, ClientError

from fleet.ops.aws import client
from fleet.spec.errors import Problem, SpecError, did_you_mean
from fleet.spec.load import load_fleet, project_dir_of
from fleet.spec.lock import Lock, filter_key, local_entry, lock_path, read_lock
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
                       creation_date=newest.get("CreationDate", ""), root_device_name=newest["RootDeviceName"],
                       resolved_at=ec2.meta.endpoint_url)


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


def check_entry(ec2, source: SourceAmiFilter, image: LockedImage) -> str | None:
    """Why the locked image is not there (id, name, owner) at the endpoint `ec2` asks, or None."""
    try:
        found = ec2.describe_images(ImageIds=[image.ami_id], Owners=list(source.owners))["Images"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("InvalidAMIID.NotFound", "InvalidAMIID.Malformed"):
            raise
        found = []
    owner = {found[0].get("OwnerId"), found[0].get("ImageOwnerAlias")} if found else set()
    # AWS applies Owners itself (`self` included); the explicit ids and aliases are compared here too
    if not found or not (owner & set(source.owners) or "self" in source.owners):
        return f"{image.ami_id} does not exist here, or is not owned by {', '.join(source.owners)}"
    if found[0].get("Name") != image.name:
        return f"{image.ami_id} is named {found[0].get('Name')!r}, the lock says {image.name!r}"
    return None


def check(nodes: str | Path, *, stack: str | None = None, endpoint_url: str | None = None,
          out: TextIO | None = None) -> int:
    """`fleet lock --check`: 0 when every entry the stack(s) use is locked, from AWS where the stack
    targets AWS, and exists with its name and owner; else 1 with one line per entry that is not."""
    out = out or sys.stdout
    entries: dict[tuple[str, str], tuple[SourceAmiFilter, list[str], list[str], str | None]] = {}
    lock_file = read_lock(lock_path(nodes))
    for s in ([stack] if stack else project_stacks(nodes) or [None]):
        fleet = load_fleet(nodes, s, require_lock=False)
        region = fleet.stack.region if fleet.stack else os.environ.get("AWS_REGION", "us-east-1")
        for name, group in fleet.groups.items():
            if isinstance(group.source_ami, SourceAmiFilter):
                source = SourceAmiFilter(group.source_ami.name, group.source_ami.owners)
                _, names, aws_stacks, where = entries.setdefault(
                    (region, filter_key(source)), (source, [], [], fleet.stack.aws_endpoint if fleet.stack else None))
                if name not in names:
                    names.append(name)
                if fleet.stack is not None and fleet.stack.targets_aws and fleet.stack.name not in aws_stacks:
                    aws_stacks.append(fleet.stack.name)
    failed = 0
    clients: dict[str, object] = {}
    for (region, key), (source, names, aws_stacks, stack_endpoint) in sorted(entries.items()):
        image = lock_file.images.get(region, {}).get(key)
        if image is None:
            why = f"not locked in {lock_file.path.name}: run `fleet lock`"
        else:
            why = next((w for w in (local_entry(image, s) for s in aws_stacks) if w), None)
            if why is None:
                # --endpoint-url, else AWS_ENDPOINT_URL, else a sandbox stack's own endpoint, else AWS
                url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or (None if aws_stacks else stack_endpoint)
                ec2 = clients.setdefault(region, client("ec2", region=region, endpoint_url=url, max_attempts=3))
                try:
                    why = check_entry(ec2, source, image)
                except (ClientError, BotoCoreError) as exc:
                    why = f"could not be checked at {ec2.meta.endpoint_url}: {' '.join(str(exc).split())}"
        failed += why is not None
        what = image.ami_id if image else "-"
        print(f"{region} {key}: {what} for {', '.join(names)}: {why or 'ok'}", file=out)
    if failed:
        print(f"fleet lock --check: {failed} of {len(entries)} base image(s) not usable: see above", file=sys.stderr)
        return 1
    return 0
