"""Retention of a group's AMIs: keep the newest `keep`, never remove one in use, and delete the
snapshots of every AMI deregistered (pitfall 20: deregistering alone leaves them, and their cost).

Candidates: AMIs owned by this account tagged fleet:group=<group> (state `pending` is never touched),
newest first by CreationDate (ties: Name, then ImageId; see `registry.sort_key`).

In use (never removed, even beyond `keep`):
- an AMI in the launch template version an Auto Scaling group uses (LaunchTemplate, MixedInstancesPolicy
  template and per-override templates; $Latest/$Default resolved to version numbers through
  DescribeLaunchTemplates), or in its launch configuration;
- an AMI in the latest or default version of any launch template tagged fleet:group=<group>;
- an AMI of an instance that is pending, running, stopping or stopped;
- the AMI of the group's current image hash for nodes.yaml and for every stack, and an AMI pinned
  in a stack's `fleet:amis` (image_builds.clean passes them): "revert and redeploy" needs them.

AMIs in use are kept and never counted against `keep`: `keep` is how many unused ones stay.

Orphaned snapshots: a snapshot tagged fleet:group=<group> that no AMI of this account uses and
that is older than a grace period (`ORPHAN_GRACE`, longer than any build, so an upload still in
progress is never touched). Builds leave them when they cannot delete what they made (the network
went away mid-upload, the process was killed with SIGKILL); `clean` and `delete` remove them.
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from image_builds import registry, retry

LIVE_INSTANCE_STATES = ("pending", "running", "stopping", "stopped")
_CHUNK = 190  # filter values per DescribeInstances call (AWS allows 200)
ORPHAN_GRACE = dt.timedelta(hours=6)  # a build's own snapshot is younger than this while it runs


@dataclass(frozen=True)
class Image:
    """One of the group's AMIs; `in_use` says why it must stay ('' when it need not)."""

    image_id: str
    name: str
    creation_date: str
    snapshot_ids: tuple[str, ...]
    state: str = "available"
    in_use: str = ""

    @classmethod
    def from_description(cls, image: Mapping[str, Any], in_use: str = "") -> Image:
        return cls(image_id=image["ImageId"], name=image.get("Name", ""), creation_date=image.get("CreationDate", ""),
                   snapshot_ids=tuple(registry.snapshot_ids(image)), state=image.get("State", ""), in_use=in_use)


@dataclass(frozen=True)
class Removed:
    """What `clean` removed (or would remove, on a dry run); `errors` lists what failed."""

    image_id: str
    name: str
    snapshot_ids: tuple[str, ...]
    errors: tuple[str, ...] = field(default=())


# ---------------------------------------------------------------- pure selection


def select(images: Sequence[Mapping[str, Any]], keep: int,
           in_use: Mapping[str, str]) -> tuple[list[Image], list[Image]]:
    """(keep_list, remove_list), both newest first: every image in `in_use` (image id -> reason) is
    kept, and so are the newest `keep` of the others; pending images are never removed. Pure."""
    if keep < 0:
        raise ValueError("keep must be >= 0")
    kept: list[Image] = []
    removed: list[Image] = []
    unused = 0
    for desc in registry.newest_first(images):
        reason = in_use.get(desc["ImageId"], "")
        if not reason and desc.get("State") == "pending":
            reason = "pending (being created)"
        image = Image.from_description(desc, reason)
        if not reason:
            unused += 1
        (kept if reason or unused <= keep else removed).append(image)
    return kept, removed


def orphans(snapshots: Iterable[Mapping[str, Any]], used: set[str], now: dt.datetime,
            grace: dt.timedelta) -> list[Mapping[str, Any]]:
    """The snapshots (DescribeSnapshots entries) that no AMI uses (`used`: snapshot ids in any AMI's
    mappings) and that started more than `grace` before `now`, oldest first. Pure."""
    out = []
    for snap in snapshots:
        started = snap.get("StartTime")
        if snap["SnapshotId"] in used or not isinstance(started, dt.datetime):
            continue
        if started.tzinfo is None:
            started = started.replace(tzinfo=dt.UTC)
        if now - started > grace:
            out.append(snap)
    return sorted(out, key=lambda s: (s["StartTime"], s["SnapshotId"]))


def template_refs(groups: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(ASG name, launch template id or name, version string) for every launch template an ASG uses:
    LaunchTemplate, MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification and its
    overrides' LaunchTemplateSpecification. A missing version means $Default. Pure."""
    out: list[tuple[str, str, str]] = []

    def add(asg: str, spec: Mapping[str, Any] | None) -> None:
        if not spec:
            return
        ref = spec.get("LaunchTemplateId") or spec.get("LaunchTemplateName")
        if ref:
            out.append((asg, ref, str(spec.get("Version") or "$Default")))

    for g in groups:
        name = g.get("AutoScalingGroupName", "?")
        add(name, g.get("LaunchTemplate"))
        mip_lt = (g.get("MixedInstancesPolicy") or {}).get("LaunchTemplate") or {}
        add(name, mip_lt.get("LaunchTemplateSpecification"))
        for override in mip_lt.get("Overrides") or []:
            add(name, override.get("LaunchTemplateSpecification"))
    return out


def resolve_version(version: str, template: Mapping[str, Any]) -> int:
    """'$Latest' / '$Default' / '3' -> a version number, from a DescribeLaunchTemplates entry. Pure."""
    if version == "$Latest":
        return int(template["LatestVersionNumber"])
    if version == "$Default":
        return int(template["DefaultVersionNumber"])
    return int(version)


# ---------------------------------------------------------------- AWS reads (thin)


def _pages(client, operation: str, key: str, **kwargs) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in client.get_paginator(operation).paginate(**kwargs):
        out.extend(page.get(key, []))
    return out


def group_images(ec2, group: str) -> list[dict[str, Any]]:
    """DescribeImages: AMIs owned by self tagged fleet:group=<group>."""
    return _pages(ec2, "describe_images", "Images", Owners=["self"],
                  Filters=[{"Name": f"tag:{registry.GROUP_TAG}", "Values": [group]}])


def group_snapshots(ec2, group: str) -> list[dict[str, Any]]:
    """DescribeSnapshots: snapshots owned by self tagged fleet:group=<group>."""
    return _pages(ec2, "describe_snapshots", "Snapshots", OwnerIds=["self"],
                  Filters=[{"Name": f"tag:{registry.GROUP_TAG}", "Values": [group]}])


def snapshots_in_amis(ec2) -> set[str]:
    """DescribeImages: every snapshot id any AMI of this account (any group, any state) maps."""
    return {sid for image in _pages(ec2, "describe_images", "Images", Owners=["self"])
            for sid in registry.snapshot_ids(image)}


def auto_scaling_groups(autoscaling) -> list[dict[str, Any]]:
    """DescribeAutoScalingGroups: every ASG of the account and region."""
    return _pages(autoscaling, "describe_auto_scaling_groups", "AutoScalingGroups")


def launch_templates(ec2) -> list[dict[str, Any]]:
    """DescribeLaunchTemplates: every launch template (ids, names, latest/default numbers, tags)."""
    return _pages(ec2, "describe_launch_templates", "LaunchTemplates")


def template_version_images(ec2, template_id: str, versions: Iterable[int]) -> dict[int, str]:
    """DescribeLaunchTemplateVersions: version number -> ImageId for the given versions."""
    wanted = sorted({int(v) for v in versions})
    out: dict[int, str] = {}
    for i in range(0, len(wanted), 100):
        resp = ec2.describe_launch_template_versions(LaunchTemplateId=template_id,
                                                     Versions=[str(v) for v in wanted[i:i + 100]])
        for v in resp.get("LaunchTemplateVersions", []):
            image = (v.get("LaunchTemplateData") or {}).get("ImageId")
            if image:
                out[int(v["VersionNumber"])] = image
    return out


def launch_configuration_images(autoscaling, names: Iterable[str]) -> dict[str, str]:
    """DescribeLaunchConfigurations: name -> ImageId (legacy ASGs)."""
    names = sorted(set(names))
    out: dict[str, str] = {}
    for i in range(0, len(names), 50):
        for lc in _pages(autoscaling, "describe_launch_configurations", "LaunchConfigurations",
                         LaunchConfigurationNames=names[i:i + 50]):
            out[lc["LaunchConfigurationName"]] = lc.get("ImageId", "")
    return out


def instance_images(ec2, image_ids: Iterable[str]) -> dict[str, str]:
    """DescribeInstances (image-id filter, live states): image id -> an instance id using it."""
    ids = sorted(set(image_ids))
    out: dict[str, str] = {}
    for i in range(0, len(ids), _CHUNK):
        for res in _pages(ec2, "describe_instances", "Reservations", Filters=[
                {"Name": "image-id", "Values": ids[i:i + _CHUNK]},
                {"Name": "instance-state-name", "Values": list(LIVE_INSTANCE_STATES)}]):
            for inst in res.get("Instances", []):
                if (inst.get("State") or {}).get("Name", "running") in LIVE_INSTANCE_STATES:
                    out.setdefault(inst["ImageId"], inst["InstanceId"])
    return out


def images_in_use(ec2, autoscaling, group: str, image_ids: Iterable[str]) -> dict[str, str]:
    """Image id -> why it is in use, for the given candidates (see module doc)."""
    candidates = set(image_ids)
    reasons: dict[str, str] = {}

    def mark(image: str, why: str) -> None:
        if image in candidates:
            reasons.setdefault(image, why)

    templates = launch_templates(ec2)
    by_ref = {t["LaunchTemplateId"]: t for t in templates}
    by_ref.update({t["LaunchTemplateName"]: t for t in templates})
    wanted: dict[str, dict[int, list[str]]] = {}  # template id -> version -> reasons
    groups = auto_scaling_groups(autoscaling)
    for asg, ref, version in template_refs(groups):
        template = by_ref.get(ref)
        if template is None:
            continue  # the ASG points at a template that is gone: it references no image
        number = resolve_version(version, template)
        wanted.setdefault(template["LaunchTemplateId"], {}).setdefault(number, []).append(
            f"launch template {template['LaunchTemplateName']} v{number} used by ASG {asg}")
    for template in templates:
        if registry.tags_of(template).get(registry.GROUP_TAG) != group:
            continue
        for label, key in (("latest", "LatestVersionNumber"), ("default", "DefaultVersionNumber")):
            wanted.setdefault(template["LaunchTemplateId"], {}).setdefault(int(template[key]), []).append(
                f"{label} version of launch template {template['LaunchTemplateName']}")
    for template_id, versions in wanted.items():
        for number, image in template_version_images(ec2, template_id, versions).items():
            mark(image, versions[number][0])
    lc_names = {g["LaunchConfigurationName"]: g["AutoScalingGroupName"] for g in groups
                if g.get("LaunchConfigurationName")}
    if lc_names:
        for lc, image in launch_configuration_images(autoscaling, lc_names).items():
            mark(image, f"launch configuration {lc} used by ASG {lc_names[lc]}")
    for image, instance in instance_images(ec2, candidates).items():
        mark(image, f"instance {instance}")
    return reasons


# ---------------------------------------------------------------- plan and act


def plan_clean(ec2, autoscaling, group: str, keep: int, *, current_hashes: Mapping[str, str] | None = None,
               pinned: Mapping[str, str] | None = None) -> tuple[list[Image], list[Image]]:
    """(keep_list, remove_list) for the group's AMIs, newest first, in-use ones always kept.
    `current_hashes`: image hash -> why it is current (an AMI tagged with it stays); `pinned`:
    AMI id -> where it is pinned (it stays)."""
    images = group_images(ec2, group)
    in_use = images_in_use(ec2, autoscaling, group, [i["ImageId"] for i in images]) if images else {}
    for image in images:
        h = registry.tags_of(image).get(registry.IMAGE_HASH_TAG)
        if current_hashes and h in current_hashes:
            in_use.setdefault(image["ImageId"], current_hashes[h])
        if pinned and image["ImageId"] in pinned:
            in_use.setdefault(image["ImageId"], pinned[image["ImageId"]])
    return select(images, keep, in_use)


def remove_image(ec2, image: Image, *, policy: retry.RetryPolicy | None = None) -> Removed:
    """Deregister one AMI, then delete its snapshots; failures are collected in `Removed.errors`."""
    policy = policy or retry.RetryPolicy()
    errors: list[str] = []
    try:
        retry.call(lambda: registry.deregister_image(ec2, image.image_id), policy=policy,
                   what=f"DeregisterImage {image.image_id}")
    except Exception as exc:  # noqa: BLE001 - reported, snapshots then stay (they still back the AMI)
        return Removed(image.image_id, image.name, (), (f"deregister {image.image_id}: {exc}",))
    deleted = []
    for sid in image.snapshot_ids:
        try:
            retry.call(lambda sid=sid: registry.delete_snapshot(ec2, sid), policy=policy, what=f"DeleteSnapshot {sid}")
            deleted.append(sid)
        except Exception as exc:  # noqa: BLE001 - e.g. InvalidSnapshot.InUse by another AMI
            errors.append(f"delete {sid}: {exc}")
    return Removed(image.image_id, image.name, tuple(deleted), tuple(errors))


def remove_all(ec2, group: str, remove: Sequence[Image], *, dry_run: bool = False,
               policy: retry.RetryPolicy | None = None) -> list[Removed]:
    """Deregister every image in `remove` and delete its snapshots (nothing with `dry_run`: the
    would-be removals are returned). Errors are reported on stderr and in `Removed.errors`; the
    others are still removed."""
    if dry_run:
        return [Removed(i.image_id, i.name, i.snapshot_ids) for i in remove]
    out = []
    for image in remove:
        result = remove_image(ec2, image, policy=policy)
        for err in result.errors:
            print(f"fleet image clean {group}: {err}", file=sys.stderr)
        out.append(result)
    return out


def orphaned_snapshots(ec2, group: str, *, grace: dt.timedelta = ORPHAN_GRACE,
                       now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """The group's snapshots that no AMI uses and that are older than `grace` (see module doc)."""
    snaps = group_snapshots(ec2, group)
    if not snaps:
        return []
    return orphans(snaps, snapshots_in_amis(ec2), now or dt.datetime.now(dt.UTC), grace)


def remove_orphans(ec2, group: str, snapshots: Sequence[Mapping[str, Any]], *, dry_run: bool = False,
                   policy: retry.RetryPolicy | None = None) -> tuple[list[str], list[str]]:
    """Delete the given orphaned snapshots (nothing with `dry_run`); (removed ids, errors)."""
    if dry_run:
        return [s["SnapshotId"] for s in snapshots], []
    policy = policy or retry.RetryPolicy()
    removed, errors = [], []
    for snap in snapshots:
        sid = snap["SnapshotId"]
        try:
            retry.call(lambda sid=sid: registry.delete_snapshot(ec2, sid), policy=policy, what=f"DeleteSnapshot {sid}")
            removed.append(sid)
        except Exception as exc:  # noqa: BLE001 - e.g. InvalidSnapshot.InUse by an AMI registered meanwhile
            errors.append(f"delete {sid}: {exc}")
            print(f"fleet image clean {group}: delete {sid}: {exc}", file=sys.stderr)
    return removed, errors
