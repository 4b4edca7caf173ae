"""Find, tag and delete fleet AMIs and their snapshots (one thin function per EC2 operation).

Tags used by the image pipeline: `fleet:image-hash` (content hash of everything that makes the
image; the cache key: staging and prod share one AMI) and `fleet:group` (retention works per group).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from botocore.exceptions import ClientError

from image_builds import retry

IMAGE_HASH_TAG = "fleet:image-hash"
GROUP_TAG = "fleet:group"


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """{'k': 'v'} -> [{'Key': 'k', 'Value': 'v'}] (values as strings, keys sorted)."""
    return [{"Key": str(k), "Value": str(v)} for k, v in sorted(tags.items())]


def tags_of(resource: Mapping[str, Any]) -> dict[str, str]:
    """The Tags list of a described resource as a dict."""
    return {t["Key"]: t.get("Value", "") for t in resource.get("Tags") or []}


def snapshot_ids(image: Mapping[str, Any]) -> list[str]:
    """Snapshot ids in an image's EBS block device mappings, in mapping order, without duplicates."""
    out: list[str] = []
    for mapping in image.get("BlockDeviceMappings") or []:
        sid = (mapping.get("Ebs") or {}).get("SnapshotId")
        if sid and sid not in out:
            out.append(sid)
    return out


def sort_key(image: Mapping[str, Any]) -> tuple[str, str, str]:
    """Order of age: CreationDate (ISO 8601, sorts as text), then Name, then ImageId.

    AWS gives CreationDate to the millisecond; moto only to the second, so images made in the same
    second tie there and fall back to Name and ImageId (fleet names are one per image hash)."""
    return (image.get("CreationDate") or "", image.get("Name") or "", image.get("ImageId") or "")


def newest_first(images: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Images sorted newest first by `sort_key`."""
    return sorted(images, key=sort_key, reverse=True)


def find_cached(ec2, image_hash: str, *, policy: retry.RetryPolicy | None = None) -> str | None:
    """The id of the newest available AMI owned by this account tagged fleet:image-hash=<image_hash>,
    or None. One DescribeImages call."""
    image = find_cached_image(ec2, image_hash, policy=policy)
    return image["ImageId"] if image else None


def find_cached_image(ec2, image_hash: str, *, policy: retry.RetryPolicy | None = None) -> dict[str, Any] | None:
    """find_cached's image as DescribeImages describes it (its root device too, so a cache hit needs no
    second call), or None. One DescribeImages call."""
    resp = retry.call(
        lambda: ec2.describe_images(Owners=["self"], Filters=[
            {"Name": f"tag:{IMAGE_HASH_TAG}", "Values": [image_hash]},
            {"Name": "state", "Values": ["available"]},
        ]),
        policy=policy or retry.RetryPolicy(), what="DescribeImages (cache lookup)")
    images = [i for i in resp.get("Images", []) if i.get("State", "available") == "available"]
    return newest_first(images)[0] if images else None


def describe_image(ec2, ami_id: str) -> dict[str, Any]:
    """DescribeImages for one id; LookupError when it does not exist."""
    images = ec2.describe_images(ImageIds=[ami_id]).get("Images", [])
    if not images:
        raise LookupError(f"image {ami_id} not found")
    return images[0]


def tag_image(ec2, ami_id: str, tags: Mapping[str, str], *, snapshot_ids_extra: Iterable[str] = (),
              policy: retry.RetryPolicy | None = None) -> list[str]:
    """Tag the AMI and every snapshot of its block device mappings (plus `snapshot_ids_extra`) with one
    CreateTags call; returns the resource ids tagged."""
    policy = policy or retry.RetryPolicy()
    image = retry.call(lambda: describe_image(ec2, ami_id), policy=policy, what=f"DescribeImages {ami_id}")
    resources = [ami_id]
    for sid in [*snapshot_ids(image), *snapshot_ids_extra]:
        if sid not in resources:
            resources.append(sid)
    if tags:
        retry.call(lambda: ec2.create_tags(Resources=resources, Tags=tag_list(tags)), policy=policy,
                   what=f"CreateTags {ami_id}")
    return resources


def deregister_image(ec2, ami_id: str) -> bool:
    """DeregisterImage; False if it was already gone. Does not delete snapshots (pitfall 20):
    call `delete_snapshot` for each of `snapshot_ids(image)` afterwards."""
    try:
        ec2.deregister_image(ImageId=ami_id)
        return True
    except ClientError as exc:
        if retry.error_code(exc) in ("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"):
            return False
        raise


def delete_snapshot(ec2, snapshot_id: str) -> bool:
    """DeleteSnapshot; False if it was already gone, True if deleted."""
    try:
        ec2.delete_snapshot(SnapshotId=snapshot_id)
        return True
    except ClientError as exc:
        if retry.error_code(exc) == "InvalidSnapshot.NotFound":
            return False
        raise
