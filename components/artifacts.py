"""Artifacts: the stack's private bucket for what instances fetch at boot, and the objects in it.

Bucket (one per stack, created when a group converges at boot): autonamed (`bucket_prefix`),
versioned, SSE-S3 encrypted with a bucket key, every public access blocked, ACLs disabled
(BucketOwnerEnforced), a policy that denies any request not made over TLS, and a lifecycle that
expires noncurrent versions (a bundle no group uses any more is deleted by Pulumi and so becomes
noncurrent) after `noncurrent_days`, removes the delete markers left behind and aborts incomplete
multipart uploads after a day.

Objects are content-addressed: `bundles/<sha256>.tar.gz` (fleet/render/bundle.py) and
`packages/<sha256>/<file>` (a group's `boot.chef_package`), one `BucketObjectv2` per distinct
content, named by its hash. So an object is uploaded once, when it is missing, never rewritten,
and shared by every group that needs the same bytes. Objects are written only after the bucket's
versioning, encryption and policy are in place, and every launch template, rollout and one-off
instance that boots from an object depends on it (`objects_for`): a first boot never races the
upload (a missing key is a 403 to an instance role without s3:ListBucket).

Retention rule: a bundle stays in the bucket as long as a launch template version that a rollback
may return to still names it: the previous version (AWS's rollback of the next rollout, a blue/green
standby slot, a refresh back by hand), or any older one an operator restores. Pulumi cannot know
which versions those are, so it never deletes a bundle object (`retain_on_delete`): one that no
group uses any more only leaves Pulumi's state. Deleting it would also remove every version of it
at once (the provider deletes all versions of an object in a versioned bucket), so no noncurrent
copy would be left for the lifecycle's `noncurrent_days` either. Bundles are small and
content-addressed (the same inputs reuse the same key), so what stays is a few files per change of
a group's cookbooks or role.

The object's `source` is a `FileAsset` with a path relative to the project (`.fleet/bundles/...`,
written by `stage_file`), never an absolute checkout path, so the same content
gives the same inputs from any checkout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import pulumi
import pulumi_aws as aws

STAGE_DIR = ".fleet"  # under the project, git-ignored: what the program uploads
NONCURRENT_DAYS = 30


def stage_file(project_dir: Path, key: str, data: bytes) -> str:
    """Write `data` to `<project>/.fleet/<key>` unless it is already there; return the project-relative path."""
    rel = f"{STAGE_DIR}/{key}"
    path = Path(project_dir) / rel
    if not path.is_file() or path.read_bytes() != data:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return rel


def tls_only_policy(bucket_arn: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}


@dataclass(frozen=True)
class ArtifactFile:
    """One content-addressed object: its key, the sha256 of its bytes, and the project-relative file."""

    key: str
    sha256: str
    source: str
    content_type: str = "application/octet-stream"


@dataclass
class ArtifactsArgs:
    stack: str
    files: Sequence[ArtifactFile] = ()
    noncurrent_days: int = NONCURRENT_DAYS
    tags: Mapping[str, str] = field(default_factory=dict)


class Artifacts(pulumi.ComponentResource):
    bucket: aws.s3.Bucket
    objects: dict[str, aws.s3.BucketObjectv2]

    def objects_for(self, entry: Mapping[str, str | None]) -> list[aws.s3.BucketObjectv2]:
        """The objects a group's boot names (`bundle_key`, `chef_package_key`), for its `depends_on`."""
        keys = [entry.get("bundle_key"), entry.get("chef_package_key")]
        return [self.objects[k] for k in keys if k]

    def __init__(self, name: str, args: ArtifactsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleet:artifacts:Artifacts", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {**dict(args.tags), "fleet:stack": args.stack}
        self.bucket = aws.s3.Bucket(f"{name}-bucket", aws.s3.BucketArgs(
            bucket_prefix=f"fleet-{args.stack}-artifacts-"[:37].lower(), tags=tags), opts=child)
        bucket = self.bucket.id
        self.versioning = aws.s3.BucketVersioning(f"{name}-versioning", aws.s3.BucketVersioningInitArgs(
            bucket=bucket, versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                status="Enabled")), opts=child)
        self.encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption", aws.s3.BucketServerSideEncryptionConfigurationInitArgs(
                bucket=bucket, rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=(
                        aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                            sse_algorithm="AES256")),
                    bucket_key_enabled=True)]), opts=child)
        self.public_access_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block", aws.s3.BucketPublicAccessBlockArgs(
                bucket=bucket, block_public_acls=True, block_public_policy=True, ignore_public_acls=True,
                restrict_public_buckets=True), opts=child)
        self.ownership = aws.s3.BucketOwnershipControls(f"{name}-ownership", aws.s3.BucketOwnershipControlsArgs(
            bucket=bucket, rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced")),
            opts=child)
        self.policy = aws.s3.BucketPolicy(f"{name}-policy", aws.s3.BucketPolicyArgs(
            bucket=bucket, policy=self.bucket.arn.apply(lambda arn: json.dumps(tls_only_policy(arn)))),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.public_access_block]))
        self.lifecycle = aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle", aws.s3.BucketLifecycleConfigurationArgs(
                bucket=bucket, rules=[aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="old-artifacts", status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    noncurrent_version_expiration=(
                        aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                            noncurrent_days=args.noncurrent_days)),
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                        expired_object_delete_marker=True),
                    abort_incomplete_multipart_upload=(
                        aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                            days_after_initiation=1)))]),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.versioning]))
        self.objects = {}
        for f in args.files:  # one resource per key however many groups need it
            if f.key not in self.objects:
                self.objects[f.key] = aws.s3.BucketObjectv2(f"artifact-{f.sha256[:16]}", aws.s3.BucketObjectv2Args(
                    bucket=bucket, key=f.key, source=pulumi.FileAsset(f.source), content_type=f.content_type,
                    checksum_algorithm="SHA256", tags={**tags, "fleet:sha256": f.sha256}),
                    opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True,
                                                depends_on=[self.versioning, self.encryption, self.policy]))
        self.register_outputs({"bucket": self.bucket.id, "arn": self.bucket.arn})
