"""Register an AMI from an EBS snapshot (pitfall 22): ENA on, explicit boot mode, hvm, IMDSv2 only,
root device ROOT_DEVICE_NAME (the launch template's block device mapping uses the same name),
gp3 root volume deleted on termination; then tag the AMI and the snapshot.

If RegisterImage or anything after it fails, the half-made AMI is deregistered and the snapshot
deleted (unless `delete_snapshot_on_failure=False`), then `RegisterError` is raised.
"""

from __future__ import annotations

import re
import time
from typing import Any, Mapping

from botocore.exceptions import ClientError

from image_builds import interrupts, registry, retry

ROOT_DEVICE_NAME = "/dev/xvda"
ARCHITECTURES = ("x86_64", "arm64")
BOOT_MODES = ("uefi", "legacy-bios", "uefi-preferred")
VOLUME_TYPE = "gp3"
IMDS_SUPPORT = "v2.0"
WAIT_TIMEOUT = 600.0
_NAME = re.compile(r"^[A-Za-z0-9()\[\] ./\-'@_]{3,128}$")


class RegisterError(RuntimeError):
    """Registration failed; `leftover` lists anything that could not be cleaned up (else None)."""

    def __init__(self, message: str, *, leftover: str | None = None):
        super().__init__(message)
        self.leftover = leftover


class NameTaken(RegisterError):
    """Another AMI (`existing`) already has the name: another build of the same image hash won the
    race. Our snapshot was deleted (unless `leftover` says otherwise)."""

    def __init__(self, message: str, *, existing: str, leftover: str | None = None):
        super().__init__(message, leftover=leftover)
        self.existing = existing


def image_request(*, name: str, snapshot_id: str, architecture: str, boot_mode: str,
                  description: str | None = None, volume_size_gib: int | None = None) -> dict[str, Any]:
    """The RegisterImage parameters (pure; validated). ValueError on a bad name, architecture or boot
    mode (arm64 cannot boot legacy BIOS)."""
    if not _NAME.fullmatch(name or ""):
        raise ValueError(f"bad AMI name {name!r}: 3-128 characters of letters, digits, ()[] ./-'@_")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, not {architecture!r}")
    if boot_mode not in BOOT_MODES:
        raise ValueError(f"boot mode must be one of {', '.join(BOOT_MODES)}, not {boot_mode!r}")
    if architecture == "arm64" and boot_mode == "legacy-bios":
        raise ValueError("arm64 images boot with UEFI only; use boot mode 'uefi'")
    ebs: dict[str, Any] = {"SnapshotId": snapshot_id, "VolumeType": VOLUME_TYPE, "DeleteOnTermination": True}
    if volume_size_gib is not None:
        ebs["VolumeSize"] = int(volume_size_gib)
    req: dict[str, Any] = {
        "Name": name,
        "Architecture": architecture,
        "RootDeviceName": ROOT_DEVICE_NAME,
        "BlockDeviceMappings": [{"DeviceName": ROOT_DEVICE_NAME, "Ebs": ebs}],
        "VirtualizationType": "hvm",
        "EnaSupport": True,
        "BootMode": boot_mode,
        "ImdsSupport": IMDS_SUPPORT,
    }
    if description:
        req["Description"] = description
    return req


def register_image(ec2, request: Mapping[str, Any]) -> str:
    """RegisterImage with `request` (from `image_request`); the new AMI id."""
    return ec2.register_image(**request)["ImageId"]


def find_image_by_name(ec2, name: str) -> str | None:
    """The id of this account's AMI named `name` (any state but deregistered), else None."""
    images = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [name]}]).get("Images", [])
    return registry.newest_first(images)[-1]["ImageId"] if images else None


def find_own_image(ec2, name: str, snapshot_id: str) -> str | None:
    """An AMI owned by this account named `name` whose mappings use `snapshot_id` (one a lost
    RegisterImage response may have made), else None."""
    images = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [name]}]).get("Images", [])
    for image in images:
        if snapshot_id in registry.snapshot_ids(image):
            return image["ImageId"]
    return None


def wait_available(ec2, ami_id: str, *, timeout: float = WAIT_TIMEOUT, interval: float = 5.0,
                   policy: retry.RetryPolicy | None = None) -> dict[str, Any]:
    """Poll DescribeImages until the AMI is `available`; RuntimeError on failed/error states."""
    policy = policy or retry.RetryPolicy()
    deadline = time.monotonic() + timeout
    while True:
        image = retry.call(lambda: registry.describe_image(ec2, ami_id), policy=policy,
                           what=f"DescribeImages {ami_id}")
        state = image.get("State")
        if state == "available":
            return image
        if state in ("failed", "error", "invalid", "deregistered"):
            reason = (image.get("StateReason") or {}).get("Message", "")
            raise RuntimeError(f"image {ami_id} is '{state}': {reason}")
        if time.monotonic() + interval > deadline:
            raise TimeoutError(f"image {ami_id} still '{state}' after {timeout:.0f}s")
        time.sleep(interval)


def register(ec2, *, snapshot_id: str, name: str, architecture: str, boot_mode: str,
             tags: Mapping[str, str] | None = None, description: str | None = None,
             volume_size_gib: int | None = None, wait: bool = True, wait_timeout: float = WAIT_TIMEOUT,
             policy: retry.RetryPolicy | None = None, delete_snapshot_on_failure: bool = True) -> str:
    """Register `snapshot_id` as an AMI, tag the AMI and the snapshot with `tags`, optionally wait
    until it is available; returns the AMI id. Leaves nothing behind on failure (see module doc)."""
    policy = policy or retry.RetryPolicy()
    request = image_request(name=name, snapshot_id=snapshot_id, architecture=architecture, boot_mode=boot_mode,
                            description=description, volume_size_gib=volume_size_gib)
    ami_id: str | None = None
    step = "RegisterImage"
    attempts = 0

    def register_once() -> str:
        nonlocal attempts
        attempts += 1
        try:
            return register_image(ec2, request)
        except ClientError as exc:
            # A retried call after a lost response: the first one made the image; use it.
            if attempts > 1 and retry.error_code(exc) == "InvalidAMIName.Duplicate":
                found = find_own_image(ec2, name, snapshot_id)
                if found:
                    return found
            raise

    try:
        ami_id = retry.call(register_once, policy=policy, what=f"RegisterImage {name}")
        step = "CreateTags"
        registry.tag_image(ec2, ami_id, tags or {}, snapshot_ids_extra=[snapshot_id], policy=policy)
        if wait:
            step = "wait for available"
            wait_available(ec2, ami_id, timeout=wait_timeout, policy=policy)
        return ami_id
    except BaseException as exc:  # Interrupted too: nothing half-made is left behind
        leftover = _cleanup(ec2, ami_id, name, snapshot_id, policy, delete_snapshot_on_failure)
        done = [f"AMI {ami_id} deregistered" if ami_id else "no AMI left"]
        if delete_snapshot_on_failure:
            done.append(f"snapshot {snapshot_id} deleted")
        what = "; ".join(done) if leftover is None else leftover
        if not isinstance(exc, Exception):
            interrupts.note(exc, f"registration stopped at {step}, {what}")
            raise
        if ami_id is None and retry.error_code(exc) == "InvalidAMIName.Duplicate":
            existing = retry.call(lambda: find_image_by_name(ec2, name), policy=policy, what=f"DescribeImages {name}")
            if existing:
                raise NameTaken(f"AMI name {name} is taken by {existing} ({what})", existing=existing,
                                leftover=leftover) from exc
        raise RegisterError(f"registering {name} from {snapshot_id} failed at {step}: {exc} ({what})",
                            leftover=leftover) from exc


def _cleanup(ec2, ami_id: str | None, name: str, snapshot_id: str, policy: retry.RetryPolicy,
             delete_snapshot: bool) -> str | None:
    """Deregister the AMI (looked up by name + snapshot when the id is unknown), then delete the
    snapshot and any other snapshot the AMI's mappings name (pitfall 20). None when all is gone,
    else what is left."""
    problems = []
    snapshots = [snapshot_id]
    try:
        if ami_id is None:
            ami_id = retry.call(lambda: find_own_image(ec2, name, snapshot_id), policy=policy,
                                what=f"DescribeImages {name}")
        if ami_id is not None:
            try:
                image = retry.call(lambda: registry.describe_image(ec2, ami_id), policy=policy,
                                   what=f"DescribeImages {ami_id}")
                snapshots += [s for s in registry.snapshot_ids(image) if s not in snapshots]
            except Exception:  # noqa: BLE001 - not described: deregister anyway, delete what we know
                pass
            retry.call(lambda: registry.deregister_image(ec2, ami_id), policy=policy, what=f"DeregisterImage {ami_id}")
    except Exception as exc:  # noqa: BLE001 - reported to the caller
        problems.append(f"could NOT deregister {ami_id or name}: {exc}")
        snapshots = [snapshot_id]  # harmless if an AMI still uses it: AWS refuses (InvalidSnapshot.InUse)
    if delete_snapshot:
        for sid in snapshots:
            try:
                retry.call(lambda sid=sid: registry.delete_snapshot(ec2, sid), policy=policy,
                           what=f"DeleteSnapshot {sid}")
            except Exception as exc:  # noqa: BLE001 - reported to the caller
                problems.append(f"could NOT delete snapshot {sid}: {exc}")
    return "; ".join(problems) + "; clean up by hand" if problems else None
