"""Upload a raw disk image into a new EBS snapshot with the EBS direct APIs, like coldsnap.

    result = upload("disk.raw", description="web 2024-05-01", tags={"fleet:group": "web"})
    result.snapshot_id  # completed snapshot, ready for register.register_image

StartSnapshot (volume size = image size rounded up to whole GiB, ClientToken, Timeout) -> up to
`workers` threads (as many in flight as the round trip needs, `in_flight.InFlightLimit`), each
reading its own blocks with os.pread at the BlockSize StartSnapshot returned -> PutSnapshotBlock of
EVERY block (holes and written zeros included) with the block's SHA-256 -> CompleteSnapshot with
ChangedBlocksCount and the LINEAR aggregate checksum -> wait for the snapshot to be `completed`.
Every call has connect/read timeouts and goes through `retry.call` (throttling, 5xx, and "snapshot
does not exist" for up to `NOT_FOUND_WINDOW` s after StartSnapshot).
Any failure after StartSnapshot deletes the incomplete snapshot and raises `UploadError`.

Why every block: launch templates encrypt the root volume, and on an encrypted volume a block that
is missing from the snapshot reads back as the decryption of zeros, i.e. garbage, not zeros
(awslabs/coldsnap#395, #470; coldsnap stopped skipping zero blocks by default in PR #396). Skipping
holes and all-zero blocks stays available only as `skip_zero_blocks_unsafe_if_encrypted=True`, for
images launched on unencrypted volumes; the plan's guardrails refuse it for encrypted groups.

One thin function per AWS operation (`start_snapshot`, `put_snapshot_block`, `complete_snapshot`,
`describe_snapshot`, `list_snapshot_blocks`, `get_snapshot_block`); `upload`
orchestrates them, `verify_snapshot` reads a snapshot back and compares it with the file.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from fleet.ops.aws import client as make_client
from image_builds import blocks, in_flight, interrupts, put_block, retry
from image_builds.progress import Progress
from image_builds.registry import delete_snapshot, tag_list

DEFAULT_WORKERS = 64
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
NOT_FOUND_WINDOW = 120.0          # seconds after StartSnapshot: "does not exist" is retried (coldsnap#43)
SNAPSHOT_TIMEOUT_MINUTES = 10     # AWS cancels a started snapshot idle this long (min 10)
WAIT_TIMEOUT = 900.0              # bound on waiting for `completed`
WAIT_INTERVAL = 5.0
SHA256 = "SHA256"
LINEAR = "LINEAR"


class UploadError(RuntimeError):
    """The upload failed; `snapshot_id` (if one was started) was deleted unless `leftover` says not."""

    def __init__(self, message: str, *, snapshot_id: str | None = None, step: str = "",
                 leftover: str | None = None):
        super().__init__(message)
        self.snapshot_id = snapshot_id
        self.step = step
        self.leftover = leftover


class SnapshotMismatch(AssertionError):
    """verify_snapshot found a block that differs from the file, or a missing/extra block."""


@dataclass(frozen=True)
class UploadResult:
    """What `upload` did. `bytes_sent` counts block payloads only (full padded blocks)."""

    snapshot_id: str
    block_size: int
    volume_size_gib: int
    image_bytes: int
    blocks_total: int
    blocks_read: int
    blocks_sent: int
    bytes_sent: int
    checksum: str
    seconds: float
    retries: Mapping[str, int] = field(default_factory=dict)
    peak_in_flight: int = 0


# ---------------------------------------------------------------- clients


def make_clients(*, region: str | None = None, endpoint_url: str | None = None, workers: int = DEFAULT_WORKERS,
                 connect_timeout: float = CONNECT_TIMEOUT, read_timeout: float = READ_TIMEOUT):
    """(ebs, ec2) clients with explicit timeouts, a connection pool as large as the worker pool,
    and botocore's retries off: `retry.call` is the only retry layer."""
    common = dict(region=region, endpoint_url=endpoint_url, connect_timeout=connect_timeout,
                  read_timeout=read_timeout, max_attempts=1)
    ebs = make_client("ebs", max_pool_connections=max(10, workers), **common)
    ec2 = make_client("ec2", **common)
    return ebs, ec2


# ---------------------------------------------------------------- one function per AWS operation


def start_snapshot(ebs, *, volume_size_gib: int, description: str, tags: Mapping[str, str] | None,
                   client_token: str, timeout_minutes: int = SNAPSHOT_TIMEOUT_MINUTES) -> dict[str, Any]:
    """StartSnapshot; returns the response (SnapshotId, BlockSize, Status, ...). Idempotent per
    `client_token`, so retrying after a lost response returns the same snapshot."""
    kwargs: dict[str, Any] = dict(VolumeSize=volume_size_gib, Description=description,
                                  ClientToken=client_token, Timeout=timeout_minutes)
    if tags:
        kwargs["Tags"] = tag_list(tags)
    return ebs.start_snapshot(**kwargs)


def put_snapshot_block(ebs, snapshot_id: str, index: int, data: bytes, checksum_b64: str) -> dict[str, Any]:
    """PutSnapshotBlock of one full block with its base64 SHA-256."""
    return ebs.put_snapshot_block(SnapshotId=snapshot_id, BlockIndex=index, BlockData=data,
                                  DataLength=len(data), Checksum=checksum_b64, ChecksumAlgorithm=SHA256)


def complete_snapshot(ebs, snapshot_id: str, changed_blocks: int, aggregate_b64: str) -> str:
    """CompleteSnapshot with the LINEAR SHA-256 aggregate; returns the status it reports."""
    resp = ebs.complete_snapshot(SnapshotId=snapshot_id, ChangedBlocksCount=changed_blocks,
                                 Checksum=aggregate_b64, ChecksumAlgorithm=SHA256,
                                 ChecksumAggregationMethod=LINEAR)
    return resp.get("Status", "")


def describe_snapshot(ec2, snapshot_id: str) -> dict[str, Any]:
    """DescribeSnapshots for one id; the snapshot dict (State, Progress, ...)."""
    snaps = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    if not snaps:
        raise LookupError(f"snapshot {snapshot_id} not found")
    return snaps[0]


def list_snapshot_blocks(ebs, snapshot_id: str) -> tuple[int, list[tuple[int, str]]]:
    """ListSnapshotBlocks, all pages: (block size, [(block index, block token), ...])."""
    out: list[tuple[int, str]] = []
    block_size = 0
    token = None
    while True:
        kwargs: dict[str, Any] = {"SnapshotId": snapshot_id}
        if token:
            kwargs["NextToken"] = token
        page = ebs.list_snapshot_blocks(**kwargs)
        block_size = page.get("BlockSize", block_size)
        out.extend((b["BlockIndex"], b.get("BlockToken", "")) for b in page.get("Blocks", []))
        token = page.get("NextToken")
        if not token:
            return block_size, out


def get_snapshot_block(ebs, snapshot_id: str, index: int, block_token: str) -> bytes:
    """GetSnapshotBlock; the block's bytes."""
    resp = ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=index, BlockToken=block_token)
    with resp["BlockData"] as body:
        return body.read()


# ---------------------------------------------------------------- orchestration


def wait_completed(ec2, snapshot_id: str, *, timeout: float = WAIT_TIMEOUT, interval: float = WAIT_INTERVAL,
                   policy: retry.RetryPolicy | None = None) -> dict[str, Any]:
    """Poll DescribeSnapshots until the snapshot is `completed` (bounded by `timeout`)."""
    policy = policy or retry.RetryPolicy()
    deadline = time.monotonic() + timeout
    while True:
        snap = retry.call(lambda: describe_snapshot(ec2, snapshot_id), policy=policy,
                          what=f"DescribeSnapshots {snapshot_id}")
        state = snap.get("State")
        if state == "completed":
            return snap
        if state == "error":
            raise RuntimeError(f"snapshot {snapshot_id} went to state 'error': {snap.get('StateMessage', '')}")
        if time.monotonic() + interval > deadline:
            raise TimeoutError(f"snapshot {snapshot_id} still '{state}' ({snap.get('Progress', '?')}) "
                               f"after {timeout:.0f}s")
        time.sleep(interval)


class _frozen_heap:
    """While the blocks are sent, the objects that already exist (botocore's service models, the
    caller's data: hundreds of thousands with boto3 loaded) are kept out of the cyclic garbage
    collector, so the collections that the per-block garbage triggers scan only that garbage. A full
    collection over the SDK's heap in the middle of an upload cost 15-18 % of its CPU. Only when no
    one else froze objects (then unfreezing is ours to do); they are handed back afterwards."""

    def __enter__(self):
        self.ours = gc.isenabled() and gc.get_freeze_count() == 0
        if self.ours:
            gc.freeze()
        return self

    def __exit__(self, *exc):
        if self.ours:
            gc.unfreeze()
        return False


def _run_workers(count: int, indices: Iterator[int], job: Callable[[int], bool], cancel: threading.Event,
                 limiter: in_flight.InFlightLimit | in_flight.FixedLimit | None = None) -> int:
    """Run `job(index)` for every index on up to `count` threads, keeping at most `limiter.limit`
    jobs in flight (re-read after every job; a job returns True when it sent a block, and only
    those are fed to the limiter). Threads are started as the limit first needs them; those beyond
    a lowered limit wait on a condition (no CPU) until it rises again or the indices run out. The
    first error cancels the rest and is re-raised after every thread has stopped (in-flight calls
    end within their read timeout). Returns the most jobs that were ever in flight at once."""
    limiter = limiter or in_flight.FixedLimit(count)
    cond = threading.Condition()
    errors: list[BaseException] = []
    threads: list[threading.Thread] = []
    state = {"active": 0, "peak": 0, "done": False}

    def spawn() -> None:  # with cond held
        while not (state["done"] or cancel.is_set()) and len(threads) < min(count, max(1, limiter.limit)):
            t = threading.Thread(target=worker, name=f"ebs-upload-{len(threads)}", daemon=True)
            threads.append(t)
            t.start()

    def worker() -> None:
        while True:
            with cond:
                while (state["active"] >= limiter.limit and not state["done"] and not cancel.is_set()):
                    cond.wait(0.5)  # parked; the timeout only notices a cancel set from outside
                if state["done"] or cancel.is_set():
                    return
                index = next(indices, None)
                if index is None:
                    state["done"] = True
                    cond.notify_all()
                    return
                state["active"] += 1
                crowd = state["active"]
                state["peak"] = max(state["peak"], crowd)
            began, cpu0 = time.perf_counter(), time.thread_time()
            try:
                sent = job(index)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                with cond:
                    state["active"] -= 1
                    errors.append(exc)
                    cancel.set()
                    cond.notify_all()
                return
            cpu = time.thread_time() - cpu0
            now = time.perf_counter()
            with cond:
                state["active"] -= 1
                if sent:
                    limiter.observe(now - began - cpu, cpu, crowd, now)
                spawn()
                room = limiter.limit - state["active"]
                if room > 1:
                    cond.notify(room - 1)  # this thread takes one slot itself

    with cond:
        spawn()
    try:
        joined = 0
        while True:
            with cond:
                if joined >= len(threads):
                    break
                t = threads[joined]
            while t.is_alive():
                t.join(0.5)
            joined += 1
    except BaseException:
        with cond:
            cancel.set()
            cond.notify_all()
            running = list(threads)
        for t in running:
            t.join()
        raise
    if errors:
        real = [e for e in errors if not isinstance(e, retry.Cancelled)]
        raise (real or errors)[0]
    return state["peak"]


def upload(path: str | os.PathLike, *, description: str | None = None, tags: Mapping[str, str] | None = None,
           workers: int = DEFAULT_WORKERS, volume_size_gib: int | None = None, ebs=None, ec2=None,
           region: str | None = None, endpoint_url: str | None = None, wait: bool = True,
           wait_timeout: float = WAIT_TIMEOUT, wait_interval: float = WAIT_INTERVAL,
           policy: retry.RetryPolicy | None = None, not_found_window: float = NOT_FOUND_WINDOW,
           timeout_minutes: int = SNAPSHOT_TIMEOUT_MINUTES, progress: Progress | bool | None = True,
           skip_zero_blocks_unsafe_if_encrypted: bool = False, lean: bool = True,
           adaptive: bool = True) -> UploadResult:
    """Upload the raw image at `path` into a new EBS snapshot and return an `UploadResult`.

    `ebs`/`ec2`: clients to use (default: `make_clients`; tests pass their own to inject faults).
    `volume_size_gib`: at least the image size rounded up to whole GiB (the default).
    `progress`: True = report on stderr, False/None = silent, or a `Progress` to use.
    `skip_zero_blocks_unsafe_if_encrypted`: do not send holes and all-zero blocks. The snapshot then
    reads back as zeros there only when launched UNENCRYPTED (see the module doc); default off.
    `lean`: PutSnapshotBlock through `put_block.BlockPutter` (signed with botocore's signer and the
    client's credentials, ~1/3 of botocore's CPU per call) when the client allows it; else botocore.
    `workers`: at most this many PutSnapshotBlock calls in flight. `adaptive` (default): only as many
    as the round trip seen needs (`in_flight.InFlightLimit`: a few against a near endpoint, up to
    `workers` at tens of ms), the other threads parked or never started; False: always `workers`.
    On any failure after StartSnapshot the snapshot is deleted and `UploadError` raised (chained)."""
    if workers < 1:
        raise ValueError("workers must be >= 1")
    path = os.fspath(path)
    policy = policy or retry.RetryPolicy()
    if ebs is None or ec2 is None:
        made_ebs, made_ec2 = make_clients(region=region, endpoint_url=endpoint_url, workers=workers)
        ebs, ec2 = ebs or made_ebs, ec2 or made_ec2
    retries: dict[str, int] = {}
    retries_lock = threading.Lock()

    def count_retry(kind: str, _exc: BaseException) -> None:
        with retries_lock:
            retries[kind] = retries.get(kind, 0) + 1

    began = time.monotonic()
    fd = os.open(path, os.O_RDONLY)
    try:
        size = blocks.image_size(fd)
        needed = blocks.volume_size_gib(size)
        volume = volume_size_gib or needed
        if volume < needed:
            raise ValueError(f"volume size {volume} GiB is too small for {path} ({size} bytes needs {needed} GiB)")
        token = str(uuid.uuid4())
        desc = description if description is not None else os.path.basename(path)
        try:
            started = retry.call(
                lambda: start_snapshot(ebs, volume_size_gib=volume, description=desc, tags=tags,
                                       client_token=token, timeout_minutes=timeout_minutes),
                policy=policy, what="StartSnapshot", on_retry=count_retry)
        except Exception as exc:
            raise UploadError(f"EBS upload of {path} failed at StartSnapshot: {exc} (no snapshot was started)",
                              step="StartSnapshot") from exc
        snapshot_id = started["SnapshotId"]
        step = "StartSnapshot response"
        try:
            block_size = int(started.get("BlockSize") or 0)
            if block_size <= 0:
                raise RuntimeError(f"StartSnapshot returned no usable BlockSize: {started.get('BlockSize')!r}")
            not_found_deadline = policy.clock() + not_found_window
            total = blocks.block_count(size, block_size)
            skip = skip_zero_blocks_unsafe_if_encrypted
            ranges = (blocks.blocks_of_extents(blocks.data_extents(fd, size), block_size) if skip
                      else [range(total)] if total else [])
            to_read = sum(len(r) for r in ranges)
            if isinstance(progress, Progress):
                bar = progress
            elif progress:
                bar = Progress(f"upload {snapshot_id}", total)
                bar.add(total - to_read)  # holes skipped without reading (opt-in only)
            else:
                bar = None
            digests: dict[int, bytes] = {}
            cancel = threading.Event()
            putter = put_block.BlockPutter(ebs) if lean and put_block.usable(ebs) else None

            def send(index: int, data: bytes, digest: bytes, checksum: str) -> Any:
                if putter is not None:
                    return putter.put(snapshot_id, index, data, digest, checksum)
                return put_snapshot_block(ebs, snapshot_id, index, data, checksum)

            def put_one(index: int) -> bool:
                data = blocks.read_block(fd, index, block_size, size)
                if skip and blocks.is_zero(data):
                    if bar:
                        bar.add(1)
                    return False
                digest = blocks.block_digest(data)
                checksum = blocks.b64(digest)
                retry.call(lambda: send(index, data, digest, checksum),
                           policy=policy, what=f"PutSnapshotBlock {snapshot_id} #{index}",
                           not_found_deadline=not_found_deadline, cancel=cancel, on_retry=count_retry)
                digests[index] = digest
                if bar:
                    bar.add(1, len(data))
                return True

            step = "PutSnapshotBlock"
            peak = 0
            if to_read:
                count = min(workers, to_read)
                limiter = in_flight.InFlightLimit(cap=count, floor=min(in_flight.FLOOR, count)) if adaptive \
                    else in_flight.FixedLimit(count)
                with _frozen_heap():
                    peak = _run_workers(count, blocks.iter_indices(ranges), put_one, cancel, limiter)
            step = "CompleteSnapshot"
            aggregate = blocks.aggregate_checksum(digests)
            status = retry.call(lambda: complete_snapshot(ebs, snapshot_id, len(digests), aggregate),
                                policy=policy, what=f"CompleteSnapshot {snapshot_id}",
                                not_found_deadline=not_found_deadline, on_retry=count_retry)
            if status == "error":
                raise RuntimeError(f"CompleteSnapshot reported status 'error' for {snapshot_id}")
            if wait:
                step = "wait for completed"
                wait_completed(ec2, snapshot_id, timeout=wait_timeout, interval=wait_interval, policy=policy)
            if bar:
                bar.finish("completed")
        except BaseException as exc:
            leftover = _cleanup(ec2, snapshot_id, policy)
            what = f"snapshot {snapshot_id} deleted" if leftover is None else leftover
            if not isinstance(exc, Exception):  # Interrupted, KeyboardInterrupt: cleaned up, re-raise as is
                interrupts.note(exc, f"upload stopped at {step}, {what}")
                raise
            raise UploadError(f"EBS upload of {path} failed at {step}: {exc} ({what})",
                              snapshot_id=snapshot_id, step=step, leftover=leftover) from exc
    finally:
        os.close(fd)
    return UploadResult(snapshot_id=snapshot_id, block_size=block_size, volume_size_gib=volume, image_bytes=size,
                        blocks_total=total, blocks_read=to_read, blocks_sent=len(digests),
                        bytes_sent=len(digests) * block_size, checksum=aggregate,
                        seconds=time.monotonic() - began, retries=dict(retries), peak_in_flight=peak)


def _cleanup(ec2, snapshot_id: str, policy: retry.RetryPolicy) -> str | None:
    """Delete an incomplete snapshot; None when gone, else a sentence saying what is left."""
    try:
        retry.call(lambda: delete_snapshot(ec2, snapshot_id), policy=policy, what=f"DeleteSnapshot {snapshot_id}")
        return None
    except Exception as exc:  # noqa: BLE001 - reported in the UploadError message
        return (f"could NOT delete incomplete snapshot {snapshot_id}: {exc}; `fleet image clean GROUP` removes it "
                "once it is older than its grace period (tagged fleet:group, no AMI), or delete it by hand")


def verify_snapshot(ebs, snapshot_id: str, path: str | os.PathLike, *, threads: int = 16,
                    policy: retry.RetryPolicy | None = None, dense: bool = True) -> int:
    """Read every block of the snapshot back (ListSnapshotBlocks + GetSnapshotBlock) and compare it
    with the file at the snapshot's block size; also check that every block of the file is present
    (`dense`, the default upload) or exactly its non-zero blocks (a zero-skipping upload). Returns
    the number of blocks checked; raises SnapshotMismatch. (Useful where the server does not verify
    checksums, e.g. moto.)"""
    policy = policy or retry.RetryPolicy()
    block_size, listed = retry.call(lambda: list_snapshot_blocks(ebs, snapshot_id), policy=policy,
                                    what=f"ListSnapshotBlocks {snapshot_id}")
    if dense:
        with open(path, "rb") as f:
            expected = set(range(blocks.block_count(blocks.image_size(f.fileno()), block_size)))
    else:
        expected = set(blocks.nonzero_blocks(path, block_size))
    present = {i for i, _ in listed}
    if present != expected:
        missing = sorted(expected - present)[:5]
        extra = sorted(present - expected)[:5]
        raise SnapshotMismatch(f"{snapshot_id}: blocks missing {missing}..., unexpected {extra}...")
    fd = os.open(path, os.O_RDONLY)
    try:
        size = blocks.image_size(fd)

        def check(item: tuple[int, str]) -> None:
            index, token = item
            got = retry.call(lambda: get_snapshot_block(ebs, snapshot_id, index, token), policy=policy,
                             what=f"GetSnapshotBlock {snapshot_id} #{index}")
            want = blocks.read_block(fd, index, block_size, size)
            if got != want:
                raise SnapshotMismatch(f"{snapshot_id}: block {index} differs from {path}")

        with ThreadPoolExecutor(max_workers=threads) as pool:
            for _ in pool.map(check, listed):
                pass
    finally:
        os.close(fd)
    return len(listed)
