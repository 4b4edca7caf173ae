"""Bake or reuse a group's image; what the BakedImage Command runs.

    python -m image_builds.build GROUP [--stack S] [--region R] [--nodes PATH] [--endpoint-url URL]

1. hash the group's image inputs (fleet.image_hash);
2. look up an available AMI of this account tagged fleet:image-hash=<hash>: reuse it (this is how
   staging's AMI reaches prod unchanged);
3. otherwise bake with the group's builder and tag the AMI and its snapshots;
4. print ONE JSON line last on stdout: {"ami_id", "image_hash", "cached", "root_device_name"}; the root
   device is the image's own (DescribeImages, after the bake or on a cache hit), for the launch
   template's encrypted root volume mapping (another device name would add a second,
   empty volume). Logs go to stderr.

`builder: ami` bakes nothing: the group's source_ami (an id, or the newest image matching the
name pattern and owners) is the image, reported with "cached": true.
Exit 0 ok; 1 the build failed (nothing left behind); 2 bad input.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator, TextIO

from fleet.image_hash import image_hash
from fleet.ops.aws import client, failure_line, is_aws_error
from fleet.render.packer import ami_name, image_tags
from fleet.spec.errors import SpecError
from fleet.spec.load import load_fleet, project_dir_of
from fleet.spec.model import Group, SourceAmiFilter
from image_builds import clean, ebs_upload, interrupts, packer_builder, register, registry
from image_builds.convert import ensure_raw

PROJECT_DIR = Path(__file__).resolve().parent.parent


class BuildError(RuntimeError):
    """The image could not be made; nothing was left behind."""


def resolve_source(ec2, source: str | SourceAmiFilter) -> str:
    """An AMI id: the id itself, a filter's locked image (nodes.lock.json), else the newest match."""
    if isinstance(source, str):
        return source
    if source.locked:
        return source.locked.ami_id
    images = ec2.describe_images(Owners=list(source.owners), Filters=[
        {"Name": "name", "Values": [source.name]}, {"Name": "state", "Values": ["available"]}])["Images"]
    if not images:
        raise BuildError(f"no available image named {source.name!r} owned by {', '.join(source.owners)}")
    return registry.newest_first(images)[0]["ImageId"]


def raw_image_path(group: Group, project_dir: Path, log: TextIO) -> Path:
    """The group's raw image: `image.path`, or the last stdout line of `image.command`."""
    if group.image.path:
        path = project_dir / group.image.path
    else:
        print(f"running image command: {group.image.command}", file=log)
        proc = subprocess.run(shlex.split(group.image.command), cwd=project_dir, stdout=subprocess.PIPE,
                              stderr=log if hasattr(log, "fileno") else None, text=True)
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise BuildError(f"image.command exited {proc.returncode} without printing an image path")
        path = project_dir / lines[-1].strip()
    if not path.is_file():
        raise BuildError(f"raw image {path} does not exist")
    return path


def bake_raw(group: Group, h: str, *, region: str, endpoint_url: str | None, project_dir: Path,
             log: TextIO, skip_zero_blocks: bool = False) -> tuple[str, bool]:
    """Upload the raw image into a snapshot with the EBS direct APIs (every block, unless the
    group opts into the unsafe zero skipping) and register it: (AMI id, False), or (the AMI another
    build of the same hash registered first, True)."""
    path = raw_image_path(group, project_dir, log)
    tags = {**image_tags(group, h), "fleet:source": f"sha256:{file_sha256(path)}"}
    result = None
    try:
        with tempfile.TemporaryDirectory(prefix="fleet-raw-") as tmp:
            raw = ensure_raw(path, tmp)  # qemu-img converts qcow2/vmdk/...; a raw file is used in place
            skip = skip_zero_blocks or group.image.skip_zero_blocks_unsafe_if_encrypted
            result = ebs_upload.upload(raw, description=f"fleet {group.name} {h[:12]}", tags=tags,
                                       region=region, endpoint_url=endpoint_url, progress=True,
                                       skip_zero_blocks_unsafe_if_encrypted=skip)
    except interrupts.Interrupted as exc:
        interrupts.note(exc, "temporary files removed")
        if result is not None:  # uploaded and completed (the temp dir was being removed): no AMI uses it
            _delete_unregistered(client("ec2", region=region, endpoint_url=endpoint_url), result.snapshot_id, exc)
        raise
    ec2 = None
    try:  # the completed snapshot has no AMI yet: a signal here must not leave it behind
        print(f"uploaded {result.blocks_sent} of {result.blocks_total} blocks ({result.bytes_sent} bytes) "
              f"into {result.snapshot_id}", file=log)
        ec2 = client("ec2", region=region, endpoint_url=endpoint_url)
    except interrupts.Interrupted as exc:
        _delete_unregistered(ec2 or client("ec2", region=region, endpoint_url=endpoint_url), result.snapshot_id, exc)
        raise
    try:
        ami = register.register(ec2, snapshot_id=result.snapshot_id, name=ami_name(group, h),
                                architecture=group.image.architecture, boot_mode=group.image.boot_mode, tags=tags,
                                volume_size_gib=result.volume_size_gib)
    except register.NameTaken as exc:  # another build of this hash registered first: use its AMI
        return converge(ec2, group, h, exc.existing, f"{exc}", log), True
    except interrupts.Interrupted as exc:  # before register began its own clean-up, or after it (then: gone)
        _delete_unregistered(ec2, result.snapshot_id, exc)
        raise
    with registered(ec2, ami, h):  # registered, available and tagged with its hash: a result from here on
        registry.tag_image(ec2, ami, {"fleet:built-at": _now()})  # register waited for `available`
    return ami, False


def _delete_unregistered(ec2, snapshot_id: str, exc: interrupts.Interrupted) -> None:
    """An interrupted build's completed snapshot that no AMI uses yet: delete it, and say so."""
    try:
        if registry.delete_snapshot(ec2, snapshot_id):  # False: already deleted (by register's clean-up)
            interrupts.note(exc, f"snapshot {snapshot_id} (uploaded, not yet registered) deleted")
    except Exception as e:  # noqa: BLE001 - reported in the interrupted line
        interrupts.note(exc, f"could NOT delete snapshot {snapshot_id}: {' '.join(str(e).split())}; "
                        "delete it by hand")


@contextlib.contextmanager
def registered(ec2, ami: str, h: str) -> Iterator[None]:
    """Steps after the AMI is registered, available and carries its image hash: a signal here does not
    undo it (a later build would find it by its hash anyway), the build's result is attached to the
    interruption and printed (`run`)."""
    try:
        yield
    except interrupts.Interrupted as exc:
        exc.result = result_line(ec2, ami, h, False)
        raise


def converge(ec2, group: Group, h: str, existing: str, why: str, log: TextIO) -> str:
    """Another build of the same image hash made `existing` first: wait for it, make sure it carries
    the hash tag (its build may have died before tagging), and use it."""
    print(f"{group.name}: another build of image hash {h[:12]} made {existing} first; using it ({why})", file=log)
    image = register.wait_available(ec2, existing)
    if registry.tags_of(image).get(registry.IMAGE_HASH_TAG) != h:
        registry.tag_image(ec2, existing, image_tags(group, h))
    return existing


def file_sha256(path: Path) -> str:
    """sha256 hex of a file (the raw builder's `fleet:source`: exactly which image was uploaded)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def describe_source(ec2, ami_id: str) -> str:
    """'ami-… (its name)' for the `fleet:source` tag; the id alone if it cannot be described."""
    try:
        name = registry.describe_image(ec2, ami_id).get("Name")
    except Exception:  # noqa: BLE001 - the tag is informative; Packer has just used the image
        name = None
    return f"{ami_id} ({name})" if name else ami_id


def result_line(ec2, ami: str, h: str, cached: bool) -> dict[str, Any]:
    """The build's result line, with the AMI's own root device name (/dev/sda1, /dev/xvda, ...)."""
    [image] = ec2.describe_images(ImageIds=[ami])["Images"]
    return {"ami_id": ami, "image_hash": h, "cached": cached, "root_device_name": image["RootDeviceName"]}


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build(group: Group, *, region: str, project_dir: Path, endpoint_url: str | None = None,
          log: TextIO | None = None, expect_hash: str | None = None,
          skip_zero_blocks: bool = False) -> dict[str, Any]:
    """Bake or reuse the group's image; return {"ami_id", "image_hash", "cached"}. `log`: default
    the current sys.stderr (read at call time, not import time)."""
    log = log if log is not None else sys.stderr
    # boto3 reads AWS_ENDPOINT_URL by itself, Packer does not: hand it over explicitly.
    endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
    h = image_hash(group, project_dir)
    if expect_hash and h != expect_hash:
        # the program triggered this build for other inputs than the ones on disk now: tagging the
        # result with either hash would let a later build reuse the wrong image
        raise BuildError(f"image inputs changed since the program ran: it expected image hash "
                         f"{expect_hash[:12]}, the files give {h[:12]}; run pulumi up again")
    ec2 = client("ec2", region=region, endpoint_url=endpoint_url)
    if group.image.builder == "ami":
        return result_line(ec2, resolve_source(ec2, group.source_ami), h, True)
    cached = registry.find_cached_image(ec2, h)
    if cached:  # the lookup's answer has the root device: one AWS call in all
        print(f"{group.name}: reusing {cached['ImageId']} (fleet:image-hash={h[:12]})", file=log)
        return {"ami_id": cached["ImageId"], "image_hash": h, "cached": True,
                "root_device_name": cached["RootDeviceName"]}
    print(f"{group.name}: no image with fleet:image-hash={h[:12]}; baking with {group.image.builder}", file=log)
    if group.image.builder == "packer":
        # resolve a {name, owners} filter here and hand Packer the id: the tag then names the
        # image Packer really started from, never a filter it might have resolved differently
        source = resolve_source(ec2, group.source_ami)
        try:
            ami = packer_builder.bake(dataclasses.replace(group, source_ami=source), region=region, image_hash=h,
                                      project_dir=project_dir, endpoint_url=endpoint_url, log=log)
        except packer_builder.PackerError as exc:
            # the AMI name is taken (Packer's pre-validation or CreateImage): another build of this
            # hash won; Packer has cleaned up its own instance. Any other failure: no such AMI.
            existing = register.find_image_by_name(ec2, ami_name(group, h))
            if existing is None:
                raise
            return result_line(ec2, converge(ec2, group, h, existing, f"packer: {exc}", log), h, True)
        with registered(ec2, ami, h):
            registry.tag_image(ec2, ami, {**image_tags(group, h), "fleet:source": describe_source(ec2, source),
                                          "fleet:built-at": _now()})  # Packer waited for `available`
    else:
        ami, reused = bake_raw(group, h, region=region, endpoint_url=endpoint_url, project_dir=project_dir,
                               log=log, skip_zero_blocks=skip_zero_blocks)
        return result_line(ec2, ami, h, reused)
    return result_line(ec2, ami, h, False)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--region", default=None, help="AWS region (default: the stack's aws:region)")
    p.add_argument("--endpoint-url", default=None, help="AWS endpoint (a local moto server); else AWS_ENDPOINT_URL")


def run(group_name: str, *, nodes: str, stack: str | None, region: str | None, endpoint_url: str | None,
        expect_hash: str | None = None, skip_zero_blocks: bool = False, project_dir: Path | None = None) -> int:
    """Load, build, print the JSON line; the exit status of `fleet image build`. `project_dir`: the
    project whose stack files and cookbooks count (default: the nodes file's, `project_dir_of`)."""
    project_dir = project_dir if project_dir is not None else project_dir_of(nodes)
    fleet = load_fleet(nodes, stack, project_dir=project_dir)
    group = fleet.group(group_name)
    region = region or (fleet.stack.region if fleet.stack else "us-east-1")
    try:
        with interrupts.raising_on_signals():
            result = build(group, region=region, endpoint_url=endpoint_url,
                           project_dir=project_dir, expect_hash=expect_hash,
                           skip_zero_blocks=skip_zero_blocks)
    except interrupts.Interrupted as exc:  # cleaned up on the way here: one line, 130/143
        if getattr(exc, "result", None) is None:
            print(f"fleet image build {group_name}: {exc.line()}", file=sys.stderr, flush=True)
            return exc.exit_status
        # the AMI was registered before the signal: it is the build's result, printed as such
        result, warning = exc.result, f"{exc.line()} after its AMI was registered; it is kept"
        print(f"warning: fleet image build {group_name}: {warning}", file=sys.stderr, flush=True)
        print(json.dumps({**result, "warnings": [warning]}), flush=True)
        return 0
    except (BuildError, packer_builder.PackerError, ebs_upload.UploadError, register.RegisterError) as exc:
        print(f"fleet image build {group_name}: {exc}", file=sys.stderr)
        return 1
    if not result["cached"]:
        try:
            with interrupts.raising_on_signals():
                warning = retain(group_name, nodes=nodes, stack=stack, region=region, endpoint_url=endpoint_url)
        except interrupts.Interrupted as exc:  # the AMI exists: its result still comes out
            warning = f"retention after the bake was {exc.line()}; run `fleet image clean {group_name}`"
        if warning:
            # the build made its image (exit 0), but old AMIs may pile up: said on stderr, and carried in
            # the result line, which the BakedImage component turns into a warning of `pulumi up`
            print(f"warning: fleet image build {group_name}: {warning}", file=sys.stderr, flush=True)
            result["warnings"] = [warning]
    print(json.dumps(result), flush=True)
    return 0


def retain(group_name: str, *, nodes: str, stack: str | None, region: str, endpoint_url: str | None) -> str | None:
    """Retention after a bake, with the group's image.keep (what `fleet image clean` does; the new
    AMI is the current image, so it stays). Its lines go to stderr. Returns None, or the warning when
    retention failed: the build, which made its image, still succeeds."""
    try:
        status = clean.run(group_name, nodes=nodes, stack=stack, keep=None, dry_run=False, region=region,
                           endpoint_url=endpoint_url, out=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - retention must not fail a build that made its image
        line = failure_line(exc) if is_aws_error(exc) else " ".join(str(exc).split())
        return f"retention after the bake did not run to the end ({line}); run `fleet image clean {group_name}`"
    if status != 0:
        return (f"retention after the bake could not remove every old AMI (see the lines above); run "
                f"`fleet image clean {group_name}`")
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m image_builds.build", description=__doc__.split("\n\n")[0])
    p.add_argument("group")
    p.add_argument("--stack", default=None)
    p.add_argument("--expect-hash", default=None, help="fail unless the group's image hash is this one "
                   "(the BakedImage Command passes the hash that triggered it)")
    p.add_argument("--nodes", default=str(PROJECT_DIR / "nodes.yaml"))
    p.add_argument("--skip-zero-blocks-unsafe-if-encrypted", dest="skip_zero_blocks", action="store_true",
                   help="raw builds: do not send holes and all-zero blocks; on an encrypted volume they "
                   "read back as garbage (the plan refuses it for encrypted groups)")
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args.group, nodes=args.nodes, stack=args.stack, region=args.region,
                   endpoint_url=args.endpoint_url, expect_hash=args.expect_hash,
                   skip_zero_blocks=args.skip_zero_blocks)
    except SpecError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except Exception as exc:  # the Command's stderr shows in `pulumi up`: one line, like the CLI
        if not is_aws_error(exc):
            raise
        print(f"fleet image build {args.group}: {failure_line(exc)}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
