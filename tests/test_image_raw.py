"""Raw image pipeline: pure block/checksum/retry logic, then EBS direct upload + RegisterImage against
the moto server over HTTP, with faults injected at every step through botocore event hooks.

moto gaps this file works around (see bench/RESULTS.md and the image_builds docstrings):
- the EBS direct API reports a 512-byte block size (AWS: 512 KiB) and never checks checksums, so
  every block is read back and compared with the file, and the checksums we send are recomputed here;
- RegisterImage keeps only Name/Description (no ENA, boot mode, root device, mappings): the request
  is checked as sent (botocore has validated it against the real EC2 model), tags as stored;
- DescribeSnapshots(OwnerIds=["self"]) also returns moto's ~1300 public snapshots: we filter on our
  account id and compare with a baseline taken before the test.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from image_builds import blocks, convert, ebs_upload, register, registry, retry
from image_builds.progress import Progress

ACCOUNT = "123456789012"
FAST = retry.RetryPolicy(max_attempts=6, base_delay=0.001, max_delay=0.01)


# ---------------------------------------------------------------- helpers


def client_error(code: str, status: int = 400, message: str = "injected") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "Injected")


def error_response(code: str, status: int, message: str = "injected"):
    """What a before-call handler returns to short-circuit the HTTP call with an error response."""
    return (SimpleNamespace(status_code=status, headers={}),
            {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}})


class Faults:
    """A before-call hook: the first len(plan) calls (that `when(params)` selects) get the planned
    fault, an exception to raise or an (http, parsed) tuple to return; with `repeat`, the last fault
    is injected forever. Other calls go through to moto."""

    def __init__(self, *plan, repeat: bool = False, when=None):
        self.plan = list(plan)
        self.repeat = repeat
        self.when = when
        self.injected = 0
        self.lock = threading.Lock()

    def __call__(self, params=None, **_):
        with self.lock:
            if not self.plan or (self.when is not None and not self.when(params)):
                return None
            fault = self.plan[0] if self.repeat and len(self.plan) == 1 else self.plan.pop(0)
            self.injected += 1
        if isinstance(fault, BaseException):
            raise fault
        return fault


def own_snapshots(ec2) -> set[str]:
    return {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"] if s["OwnerId"] == ACCOUNT}


def own_images(ec2) -> set[str]:
    return {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]}


def write_blocks(path, block_size: int, nblocks: int, data_blocks: dict[int, bytes], tail: int = 0) -> None:
    """A sparse file of nblocks*block_size (+ tail) bytes with `data_blocks` written in."""
    with open(path, "wb") as f:
        f.truncate(nblocks * block_size + tail)
        for index, data in data_blocks.items():
            f.seek(index * block_size)
            f.write(data)


@pytest.fixture
def small_image(tmp_path):
    """24 blocks of 512 B (+ a 100-byte tail): 7 data blocks, one all-zero block written explicitly."""
    path = tmp_path / "small.raw"
    data = {i: os.urandom(512) for i in (0, 1, 5, 9, 10, 17)}
    data[3] = bytes(512)                   # written zeros: read, but never sent
    data[24] = b"tail" + os.urandom(96)    # the partial last block is padded
    with open(path, "wb") as f:
        f.truncate(24 * 512 + 100)
        for index, chunk in data.items():
            f.seek(index * 512)
            f.write(chunk)
    return path


@pytest.fixture
def ext4_image(tmp_path):
    """A real, sparse 256 KiB ext4 image with a few files, made by mkfs.ext4 -d (small: moto's 512-byte
    blocks make every 256 KiB 512 PutSnapshotBlock calls, and every block is sent)."""
    # `make test` installs e2fsprogs: a missing mkfs.ext4 is a broken setup, not a reason to skip
    assert shutil.which("mkfs.ext4"), "mkfs.ext4 not installed (Debian: e2fsprogs; `make test` installs it)"
    content = tmp_path / "root"
    (content / "etc").mkdir(parents=True)
    (content / "etc" / "hostname").write_text("web-1\n")
    (content / "srv").mkdir()
    (content / "srv" / "app.bin").write_bytes(os.urandom(40_000))
    (content / "srv" / "numbers.txt").write_text("".join(f"{i}\n" for i in range(2_000)))
    img = tmp_path / "root.img"
    subprocess.run(["truncate", "-s", "256K", str(img)], check=True)
    subprocess.run(["mkfs.ext4", "-F", "-q", "-O", "^has_journal", "-d", str(content), str(img)], check=True)
    assert os.stat(img).st_blocks * 512 < 256 << 10, "the image should be sparse"
    return img


@pytest.fixture
def clients(aws):
    return ebs_upload.make_clients(workers=16)


def read_back(ebs, snapshot_id: str) -> tuple[int, dict[int, bytes]]:
    """Every block of a snapshot, with plain boto3 calls (not the code under test)."""
    listed = ebs.list_snapshot_blocks(SnapshotId=snapshot_id)
    assert "NextToken" not in listed

    def get(b):
        got = ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=b["BlockIndex"], BlockToken=b["BlockToken"])
        return b["BlockIndex"], got["BlockData"].read()

    with ThreadPoolExecutor(max_workers=8) as pool:
        return listed["BlockSize"], dict(pool.map(get, listed["Blocks"]))


def file_blocks(path, block_size: int) -> dict[int, bytes]:
    """Non-zero blocks of a file, padded, computed the simple way."""
    data = open(path, "rb").read()
    out = {}
    for i in range(0, len(data), block_size):
        chunk = data[i:i + block_size]
        if any(chunk):
            out[i // block_size] = chunk + bytes(block_size - len(chunk))
    return out


def all_blocks(path, block_size: int) -> dict[int, bytes]:
    """Every block of a file (holes and zeros included), the last one padded, the simple way."""
    data = open(path, "rb").read()
    return {i // block_size: data[i:i + block_size].ljust(block_size, b"\0") for i in range(0, len(data), block_size)}


# ---------------------------------------------------------------- pure logic


def test_volume_size_rounds_up_to_whole_gib():
    assert [blocks.volume_size_gib(n) for n in (0, 1, 1 << 30, (1 << 30) + 1, 5 * (1 << 30) - 1)] == [1, 1, 1, 2, 5]


def test_block_ranges_merge_and_cover_extents():
    ranges = blocks.blocks_of_extents([(0, 1), (100, 600), (2048, 2049), (5000, 6000)], 512)
    assert ranges == [range(0, 2), range(4, 5), range(9, 12)]
    assert list(blocks.iter_indices(ranges)) == [0, 1, 4, 9, 10, 11]


def test_data_extents_skip_holes(tmp_path):
    path = tmp_path / "sparse.raw"
    write_blocks(path, 512, 4096, {0: b"a" * 512, 2048: b"b" * 100})  # 2 MiB, data at 0 and 1 MiB
    fd = os.open(path, os.O_RDONLY)
    try:
        size = blocks.image_size(fd)
        indices = list(blocks.iter_indices(blocks.blocks_of_extents(blocks.data_extents(fd, size), 512)))
    finally:
        os.close(fd)
    assert {0, 2048} <= set(indices) and indices == sorted(indices)
    assert len(indices) <= 2 * 8 * 2  # only the file system blocks around the data (4 KiB each here)
    assert blocks.nonzero_blocks(path, 512) == [0, 2048]


def test_read_block_pads_the_last_partial_block(small_image):
    fd = os.open(small_image, os.O_RDONLY)
    try:
        last = blocks.read_block(fd, 24, 512, blocks.image_size(fd))
    finally:
        os.close(fd)
    assert len(last) == 512 and last.startswith(b"tail") and last[100:] == bytes(412)


def test_zero_detection():
    assert blocks.is_zero(bytes(4096)) and not blocks.is_zero(bytes(4095) + b"\x01") and blocks.is_zero(b"")


def test_linear_aggregate_is_sha256_of_digests_in_index_order():
    data = {7: b"c" * 512, 1: b"a" * 512, 3: b"b" * 512}
    digests = {i: hashlib.sha256(d).digest() for i, d in data.items()}
    expected = base64.b64encode(hashlib.sha256(digests[1] + digests[3] + digests[7]).digest()).decode()
    assert blocks.aggregate_checksum(digests) == expected
    assert blocks.b64(blocks.block_digest(b"x")) == base64.b64encode(hashlib.sha256(b"x").digest()).decode()


@pytest.mark.parametrize("exc, kind", [
    (client_error("ThrottlingException"), retry.THROTTLE),
    (client_error("RequestThrottledException"), retry.THROTTLE),
    (client_error("Whatever", 429), retry.THROTTLE),
    (client_error("ServiceUnavailable", 503), retry.TRANSIENT),
    (client_error("InternalServerException", 500), retry.TRANSIENT),
    (client_error("Odd", 502), retry.TRANSIENT),
    (client_error("ResourceNotFoundException", 404), retry.NOT_FOUND),
    (client_error("ValidationException", 400, "The snapshot 'snap-1' does not exist."), retry.NOT_FOUND),
    (client_error("ValidationException", 400, "bad checksum"), None),
    (client_error("AccessDeniedException", 403), None),
    (ReadTimeoutError(endpoint_url="http://x"), retry.TRANSIENT),
    (EndpointConnectionError(endpoint_url="http://x"), retry.TRANSIENT),
    (ValueError("no"), None),
])
def test_classify(exc, kind):
    assert retry.classify(exc) == kind


def test_backoff_is_full_jitter_and_capped():
    import random
    rng = random.Random(1)
    delays = [retry.backoff_delay(a, base=0.5, cap=4, rng=rng) for a in range(10) for _ in range(50)]
    assert all(0 <= d <= 4 for d in delays) and max(delays) > 3
    assert all(0 <= retry.backoff_delay(0, base=0.5, cap=4, rng=rng) <= 0.5 for _ in range(50))


def test_retry_call_counts_attempts_and_honours_the_not_found_deadline():
    now = [0.0]
    slept = []
    policy = retry.RetryPolicy(max_attempts=3, base_delay=1, max_delay=8,
                               sleep=lambda d: (slept.append(d), now.__setitem__(0, now[0] + d)),
                               clock=lambda: now[0])
    fails = [client_error("ThrottlingException")] * 2

    def flaky():
        if fails:
            raise fails.pop()
        return "ok"

    assert retry.call(flaky, policy=policy, what="t") == "ok" and len(slept) == 2
    with pytest.raises(ClientError):  # 3 attempts max for throttling
        retry.call(lambda: (_ for _ in ()).throw(client_error("ThrottlingException")), policy=policy, what="t")
    with pytest.raises(ClientError):  # permanent: no retry at all
        slept.clear()
        retry.call(lambda: (_ for _ in ()).throw(client_error("AccessDeniedException", 403)), policy=policy, what="t")
    assert slept == []
    # not-found: retried past max_attempts, until the deadline (120 s on the fake clock), never beyond
    now[0] = 0.0
    slept.clear()
    with pytest.raises(ClientError):
        retry.call(lambda: (_ for _ in ()).throw(client_error("ResourceNotFoundException", 404)), policy=policy,
                   what="t", not_found_deadline=120.0)
    assert len(slept) > 3 and now[0] <= 120.0
    with pytest.raises(ClientError):  # without a deadline not-found is permanent
        retry.call(lambda: (_ for _ in ()).throw(client_error("ResourceNotFoundException", 404)), policy=policy,
                   what="t")


def test_progress_plain_lines_when_not_a_tty_and_a_bar_on_a_tty():
    plain = io.StringIO()
    p = Progress("upload snap-1", 4, stream=plain, tty=False, interval=0)
    p.add(1, 512)
    p.add(3, 0)
    p.finish("completed")
    lines = plain.getvalue().splitlines()
    assert lines[-1].startswith("upload snap-1: 4/4 blocks (100%)") and lines[-1].endswith("completed")
    assert "\r" not in plain.getvalue()
    tty = io.StringIO()
    p = Progress("upload snap-1", 2, stream=tty, tty=True, interval=0)
    p.add(1)
    p.finish()
    assert tty.getvalue().startswith("\r\033[K[") and tty.getvalue().endswith("\n")


def test_image_request_is_explicit_and_validated():
    req = register.image_request(name="web-20240501-1200", snapshot_id="snap-1", architecture="arm64",
                                 boot_mode="uefi")
    assert req["RootDeviceName"] == register.ROOT_DEVICE_NAME == "/dev/xvda"
    assert req["BlockDeviceMappings"] == [{"DeviceName": "/dev/xvda", "Ebs": {
        "SnapshotId": "snap-1", "VolumeType": "gp3", "DeleteOnTermination": True}}]
    assert req["EnaSupport"] is True and req["BootMode"] == "uefi" and req["VirtualizationType"] == "hvm"
    assert req["ImdsSupport"] == "v2.0"
    for bad in (dict(architecture="i386"), dict(boot_mode="bios"), dict(architecture="arm64", boot_mode="legacy-bios"),
                dict(name="x")):
        kwargs = dict(name="web-1", snapshot_id="snap-1", architecture="x86_64", boot_mode="uefi") | bad
        with pytest.raises(ValueError):
            register.image_request(**kwargs)


# ---------------------------------------------------------------- conversion


def test_convert_qcow2_to_raw(tmp_path, small_image):
    assert shutil.which("qemu-img"), "qemu-img not installed (Debian: qemu-utils; `make test` installs it)"
    qcow = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(small_image), str(qcow)], check=True)
    assert convert.image_format(qcow) == "qcow2"
    (tmp_path / "out").mkdir()
    raw = convert.ensure_raw(qcow, tmp_path / "out")
    assert raw == tmp_path / "out" / "disk.raw" and convert.image_format(raw) == "raw"
    original, converted = small_image.read_bytes(), raw.read_bytes()
    # qcow2 rounds the virtual size up to whole sectors: same data, zero padding at the end
    assert converted[:len(original)] == original and not any(converted[len(original):])
    assert convert.ensure_raw(small_image) == small_image  # raw stays as is
    with pytest.raises(convert.ConvertError):
        convert.image_format(tmp_path / "missing.img")


# ---------------------------------------------------------------- upload + register against moto


def test_upload_real_ext4_image_then_register(clients, ext4_image):
    ebs, ec2 = clients
    before = own_snapshots(ec2)
    puts, completes = [], []
    ebs.meta.events.register("provide-client-params.ebs.PutSnapshotBlock",
                             lambda params, **_: puts.append(dict(params)))
    ebs.meta.events.register("provide-client-params.ebs.CompleteSnapshot",
                             lambda params, **_: completes.append(dict(params)))
    starts = []
    ebs.meta.events.register("provide-client-params.ebs.StartSnapshot",
                             lambda params, **_: starts.append(dict(params)))

    result = ebs_upload.upload(ext4_image, description="web test image", tags={"fleet:group": "web"},
                               ebs=ebs, ec2=ec2, policy=FAST, wait_interval=0.1, progress=False)

    # StartSnapshot: size in whole GiB, token, timeout, tags; the block size used is the one returned (512)
    assert starts[0]["VolumeSize"] == 1 and starts[0]["ClientToken"] and starts[0]["Timeout"] >= 10
    assert starts[0]["Tags"] == [{"Key": "fleet:group", "Value": "web"}]
    assert result.block_size == 512 and result.volume_size_gib == 1 and result.image_bytes == 256 << 10
    expected = all_blocks(ext4_image, result.block_size)
    # every block is sent, holes and zeros too (an encrypted volume reads a missing block as garbage)
    assert len(puts) == result.blocks_sent == result.blocks_read == result.blocks_total == len(expected) == 512
    assert sorted(p["BlockIndex"] for p in puts) == list(range(512))
    # every checksum sent is the block's SHA-256; the aggregate is LINEAR over them in index order
    for p in puts:
        assert p["Checksum"] == base64.b64encode(hashlib.sha256(p["BlockData"]).digest()).decode()
        assert p["ChecksumAlgorithm"] == "SHA256" and p["DataLength"] == len(p["BlockData"]) == 512
    linear = hashlib.sha256(b"".join(hashlib.sha256(expected[i]).digest() for i in sorted(expected))).digest()
    assert completes == [{"SnapshotId": result.snapshot_id, "ChangedBlocksCount": len(expected),
                          "Checksum": base64.b64encode(linear).decode(), "ChecksumAlgorithm": "SHA256",
                          "ChecksumAggregationMethod": "LINEAR"}]
    # read every block back: the snapshot holds exactly the file's non-zero blocks
    block_size, stored = read_back(ebs, result.snapshot_id)
    assert block_size == result.block_size
    assert stored.keys() == expected.keys()
    assert all(stored[i] == expected[i] for i in expected)
    snap = ebs_upload.describe_snapshot(ec2, result.snapshot_id)
    assert snap["State"] == "completed" and snap["Description"] == "web test image"
    assert own_snapshots(ec2) - before == {result.snapshot_id}

    sent = []
    ec2.meta.events.register("provide-client-params.ec2.RegisterImage", lambda params, **_: sent.append(dict(params)))
    ami = register.register(ec2, snapshot_id=result.snapshot_id, name="web-20240501-120000", architecture="x86_64",
                            boot_mode="uefi", tags={"fleet:group": "web", "fleet:image-hash": "abc123"},
                            policy=FAST)
    # what AWS gets (moto drops all but Name): ENA, boot mode, root device = mapping device, gp3
    (req,) = sent
    assert req["EnaSupport"] is True and req["BootMode"] == "uefi" and req["VirtualizationType"] == "hvm"
    assert req["RootDeviceName"] == register.ROOT_DEVICE_NAME == req["BlockDeviceMappings"][0]["DeviceName"]
    assert req["BlockDeviceMappings"][0]["Ebs"] == {"SnapshotId": result.snapshot_id, "VolumeType": "gp3",
                                                    "DeleteOnTermination": True}
    assert req["Architecture"] == "x86_64" and req["ImdsSupport"] == "v2.0"
    image = registry.describe_image(ec2, ami)
    assert image["Name"] == "web-20240501-120000" and image["State"] == "available" and image["BootMode"] == "uefi"
    assert registry.tags_of(image) == {"fleet:group": "web", "fleet:image-hash": "abc123"}
    assert registry.tags_of(ebs_upload.describe_snapshot(ec2, result.snapshot_id))["fleet:image-hash"] == "abc123"
    assert registry.find_cached(ec2, "abc123") == ami and registry.find_cached(ec2, "other") is None


def test_upload_is_quiet_on_stdout_and_reports_plain_lines_on_stderr(clients, small_image, capsys):
    ebs, ec2 = clients
    ebs_upload.upload(small_image, ebs=ebs, ec2=ec2, policy=FAST, wait_interval=0.1)
    out, err = capsys.readouterr()
    assert out == "" and "blocks (100%)" in err and "\r" not in err


# ---------------------------------------------------------------- byte-exact read-back


def test_every_block_is_uploaded_and_reads_back_byte_for_byte(clients, small_image):
    """Data, written zeros (block 3) and holes (the rest): ListSnapshotBlocks lists every block of
    the image and GetSnapshotBlock returns exactly the image's bytes (last block zero-padded)."""
    ebs, ec2 = clients
    result = ebs_upload.upload(small_image, ebs=ebs, ec2=ec2, policy=FAST, progress=False, wait_interval=0.1)
    block_size, stored = read_back(ebs, result.snapshot_id)
    want = all_blocks(small_image, block_size)
    assert sorted(stored) == list(range(25)) == sorted(want)
    assert stored == want
    assert stored[3] == bytes(512) and stored[2] == bytes(512)  # written zeros and a hole, both sent
    assert result.blocks_total == result.blocks_read == result.blocks_sent == 25
    assert ebs_upload.verify_snapshot(ebs, result.snapshot_id, small_image) == 25


def test_a_qcow2_image_reads_back_as_its_raw_bytes(clients, small_image, tmp_path):
    assert shutil.which("qemu-img"), "qemu-img not installed (Debian: qemu-utils; `make test` installs it)"
    ebs, ec2 = clients
    qcow = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(small_image), str(qcow)], check=True)
    (tmp_path / "work").mkdir()
    raw = convert.ensure_raw(qcow, tmp_path / "work")
    result = ebs_upload.upload(raw, ebs=ebs, ec2=ec2, policy=FAST, progress=False, wait_interval=0.1)
    block_size, stored = read_back(ebs, result.snapshot_id)
    assert stored == all_blocks(small_image, block_size)  # the original image's bytes, every block


def test_skipping_zero_blocks_is_an_explicit_unsafe_opt_in(clients, small_image):
    ebs, ec2 = clients
    result = ebs_upload.upload(small_image, ebs=ebs, ec2=ec2, policy=FAST, progress=False, wait_interval=0.1,
                               skip_zero_blocks_unsafe_if_encrypted=True)
    block_size, stored = read_back(ebs, result.snapshot_id)
    assert stored == file_blocks(small_image, block_size) and result.blocks_sent == 7
    assert ebs_upload.verify_snapshot(ebs, result.snapshot_id, small_image, dense=False) == 7
    with pytest.raises(ebs_upload.SnapshotMismatch, match="missing"):
        ebs_upload.verify_snapshot(ebs, result.snapshot_id, small_image)


def test_progress_counts_agree_at_the_end_and_show_an_eta(clients, small_image, capsys):
    ebs, ec2 = clients
    result = ebs_upload.upload(small_image, ebs=ebs, ec2=ec2, policy=FAST, wait_interval=0.1)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"upload {result.snapshot_id}: 25/25 blocks (100%), 25 sent (12.5 KiB)" in last
    assert last.endswith("completed") and "ETA" not in last
    p = Progress("upload snap-1", 10, stream=io.StringIO(), tty=False, interval=0)
    p._start -= 4.0  # 4 s in, 2 of 10 blocks done: 16 s to go at that rate
    p.add(2, 1024)
    assert "2/10 blocks (20%), 2 sent (1.0 KiB)" in p.stream.getvalue() and "ETA 16." in p.stream.getvalue()


NOT_THERE = error_response("ResourceNotFoundException", 404, "The snapshot 'snap-x' does not exist.")


@pytest.mark.parametrize("operation, plan", [
    ("StartSnapshot", [client_error("ThrottlingException"), error_response("ServiceUnavailable", 503)]),
    ("PutSnapshotBlock", [client_error("RequestThrottledException")] * 3
     + [error_response("InternalServerException", 500), NOT_THERE, NOT_THERE,
        EndpointConnectionError(endpoint_url="http://x")]),
    ("CompleteSnapshot", [error_response("ThrottlingException", 400), NOT_THERE]),
])
def test_transient_upload_faults_are_retried(clients, small_image, operation, plan):
    ebs, ec2 = clients
    faults = Faults(*plan)
    ebs.meta.events.register(f"before-call.ebs.{operation}", faults)
    result = ebs_upload.upload(small_image, ebs=ebs, ec2=ec2, policy=FAST, progress=False, wait_interval=0.1)
    assert faults.injected == len(plan) and sum(result.retries.values()) == len(plan)
    assert ebs_upload.verify_snapshot(ebs, result.snapshot_id, small_image) == result.blocks_sent == 25


@pytest.mark.parametrize("operation, fault, step, cause", [
    ("StartSnapshot", client_error("AccessDeniedException", 403), "StartSnapshot", "AccessDenied"),
    ("PutSnapshotBlock", error_response("ValidationException", 400, "checksum mismatch"), "PutSnapshotBlock",
     "checksum mismatch"),
    ("PutSnapshotBlock", "throttled forever", "PutSnapshotBlock", "ThrottlingException"),
    ("PutSnapshotBlock", "not found past the window", "PutSnapshotBlock", "ResourceNotFound"),
    ("CompleteSnapshot", error_response("ValidationException", 400, "bad aggregate"), "CompleteSnapshot",
     "bad aggregate"),
    ("DescribeSnapshots", client_error("UnauthorizedOperation", 403), "wait for completed", "Unauthorized"),
])
def test_permanent_upload_faults_leave_no_snapshot(clients, small_image, operation, fault, step, cause):
    ebs, ec2 = clients
    before = own_snapshots(ec2)
    window = ebs_upload.NOT_FOUND_WINDOW
    if fault == "throttled forever":  # one block only (its URL path ends in /blocks/9); the others go through
        hook = Faults(client_error("ThrottlingException"), repeat=True,
                      when=lambda request: request["url_path"].endswith("/blocks/9"))
    elif fault == "not found past the window":
        hook, window = Faults(client_error("ResourceNotFoundException", 404), repeat=True), 0.05
    else:
        hook = Faults(fault, repeat=True)
    service = "ec2" if operation == "DescribeSnapshots" else "ebs"
    client = ec2 if service == "ec2" else ebs
    client.meta.events.register(f"before-call.{service}.{operation}", hook)
    with pytest.raises(ebs_upload.UploadError) as err:
        ebs_upload.upload(small_image, ebs=ebs, ec2=ec2, policy=FAST, progress=False, wait_interval=0.1,
                          not_found_window=window)
    client.meta.events.unregister(f"before-call.{service}.{operation}", hook)
    assert err.value.step == step and err.value.leftover is None and hook.injected >= 1
    assert step in str(err.value) and cause in str(err.value)
    assert ("deleted" in str(err.value)) != (step == "StartSnapshot")
    assert own_snapshots(ec2) == before, "the incomplete snapshot must be deleted"


def test_read_timeout_is_set_on_every_call(aws, small_image):
    """An endpoint that accepts connections and never answers: the upload fails in bounded time."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        ebs, ec2 = ebs_upload.make_clients(endpoint_url=f"http://127.0.0.1:{server.getsockname()[1]}",
                                           read_timeout=0.3, connect_timeout=0.3)
        began = time.monotonic()
        with pytest.raises(ebs_upload.UploadError, match="StartSnapshot.*(timeout|timed out)"):
            ebs_upload.upload(small_image, ebs=ebs, ec2=ec2, progress=False,
                              policy=retry.RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02))
        assert time.monotonic() - began < 5
    finally:
        stop.set()
        t.join()
        for c in held:
            c.close()
        server.close()


def test_transient_register_faults_are_retried(clients, small_image):
    ebs, ec2 = clients
    up = ebs_upload.upload(small_image, ebs=ebs, ec2=ec2, policy=FAST, progress=False, wait_interval=0.1)
    faults = Faults(client_error("RequestLimitExceeded"), error_response("InternalError", 500))
    tag_faults = Faults(error_response("RequestLimitExceeded", 503))
    ec2.meta.events.register("before-call.ec2.RegisterImage", faults)
    ec2.meta.events.register("before-call.ec2.CreateTags", tag_faults)
    ami = register.register(ec2, snapshot_id=up.snapshot_id, name="web-transient", architecture="arm64",
                            boot_mode="uefi", tags={"fleet:group": "web"}, policy=FAST)
    assert faults.injected == 2 and tag_faults.injected == 1
    assert registry.tags_of(registry.describe_image(ec2, ami)) == {"fleet:group": "web"}


@pytest.mark.parametrize("operation", ["RegisterImage", "CreateTags", "DescribeImages"])
def test_permanent_register_faults_leave_no_ami_and_no_snapshot(clients, small_image, operation):
    ebs, ec2 = clients
    snaps_before, images_before = own_snapshots(ec2), own_images(ec2)
    up = ebs_upload.upload(small_image, ebs=ebs, ec2=ec2, policy=FAST, progress=False, wait_interval=0.1)
    hook = Faults(client_error("InvalidParameterValue", 400), repeat=True)
    if operation == "DescribeImages":  # let tag_image's lookup through, fail the wait for `available`
        hook = Faults(None, client_error("UnauthorizedOperation", 403))
    ec2.meta.events.register(f"before-call.ec2.{operation}", hook)
    with pytest.raises(register.RegisterError) as err:
        register.register(ec2, snapshot_id=up.snapshot_id, name="web-broken", architecture="x86_64",
                          boot_mode="legacy-bios", tags={"fleet:group": "web"}, policy=FAST)
    assert err.value.leftover is None, str(err.value)
    ec2.meta.events.unregister(f"before-call.ec2.{operation}", hook)
    assert own_images(ec2) == images_before, "the half-made AMI must be deregistered"
    assert own_snapshots(ec2) == snaps_before, "the snapshot (and moto's own copy) must be deleted"


def test_the_heap_before_the_blocks_is_kept_out_of_garbage_collection_while_they_are_sent(clients, small_image):
    """Collections the per-block garbage triggers must not rescan botocore's models on every full
    pass: the objects alive at the start are frozen while blocks are sent, handed back afterwards,
    and a caller's own frozen objects are left as they were."""
    import gc

    ebs, ec2 = clients
    puts: list[int] = []
    seen: list[int] = []

    def on_put(**_):
        # counting the frozen objects walks them all (millions late in a test run): the first, a middle
        # and the last of the 25 blocks
        puts.append(1)
        if len(puts) in (1, 13, 25):
            seen.append(gc.get_freeze_count())

    ebs.meta.events.register("provide-client-params.ebs.PutSnapshotBlock", on_put)
    assert gc.get_freeze_count() == 0
    ebs_upload.upload(small_image, ebs=ebs, ec2=ec2, policy=FAST, progress=False, wait_interval=0.1)
    assert len(puts) == 25 and len(seen) == 3 and min(seen) > 10_000  # boto3 and moto's client objects, at least
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        theirs = gc.get_freeze_count()
        puts.clear()
        seen.clear()
        ebs_upload.upload(small_image, ebs=ebs, ec2=ec2, policy=FAST, progress=False, wait_interval=0.1)
        assert len(seen) == 3 and max(seen) <= theirs  # nothing frozen on top of the caller's
        assert gc.get_freeze_count() > theirs - 1000  # and theirs still frozen (a few may have been freed)
    finally:
        gc.unfreeze()
