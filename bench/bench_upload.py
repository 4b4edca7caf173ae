"""Benchmark (not a test): image_builds.ebs_upload vs a straightforward sequential boto3
put_snapshot_block loop, a bare http.client PUT loop (the floor for one connection: no SDK, the
same signed request as ours, SigV4 with UNSIGNED-PAYLOAD, which the sink counts), ebs_upload
through botocore's put_snapshot_block (`lean=False`) and ebs_upload with a fixed pool of `--workers`
PUTs in flight (`adaptive=False`, what it did before the limit followed the round trip), side by
side in one run, against
bench_upload_sink.py in a separate process (AWS's 512 KiB block size by default, a per-PUT latency
standing in for the network), pinned to a core of its own where there are 2+ (`--pin`).

Measures per uploader: wall-clock seconds, client CPU seconds (time.process_time of this process,
all threads; the sink's CPU is not counted) per GiB of image, PUT calls and bytes the sink
received, and the most PUTs ours had in flight. Prints a Markdown table (and JSON with --json).

    .venv/bin/python bench/bench_upload.py --suite            # what bench/RESULTS.md records
    .venv/bin/python bench/bench_upload.py --size-mib 1024 --data-percent 10 --layout aligned \\
        --latency-ms 10 --block-size 524288 --baselines loop,loop-skip

Image layouts: `aligned` = data in random runs of whole blocks (so bytes needed = data exactly);
`fs` = runs of 4 KiB-aligned lengths at 4 KiB-aligned offsets, like a file system (blocks at run
edges are partly data); `dense` = random data everywhere. `--zeros holes` leaves the rest sparse,
`written` writes the zeros out (no holes: the uploader must read and compare every block).
"""

from __future__ import annotations

import argparse
import base64
import gc
import hashlib
import hmac
import http.client
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402

from image_builds import blocks, ebs_upload  # noqa: E402

MIB = 1 << 20
FIXED = "ebs_upload, fixed"  # ours with adaptive=False: always `--workers` PUTs in flight
ALL_CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []  # as started


# ---------------------------------------------------------------- image


def make_image(path: Path, *, size: int, data_percent: float, layout: str, zeros: str, block_size: int,
               seed: int = 1) -> int:
    """Write the test image; returns the number of data bytes written."""
    rng = random.Random(seed)
    with open(path, "wb") as f:
        if zeros == "written":
            chunk = bytes(8 * MIB)
            for off in range(0, size, len(chunk)):
                f.write(chunk[:min(len(chunk), size - off)])
        else:
            f.truncate(size)
        if layout == "dense":
            for off in range(0, size, 8 * MIB):
                f.seek(off)
                f.write(rng.randbytes(min(8 * MIB, size - off)))
            return size
        target = int(size * data_percent / 100)
        unit = block_size if layout == "aligned" else 4096
        units = size // unit
        taken = bytearray(units)
        written = 0
        while written < target:
            length = rng.randint(1, 16) if layout == "aligned" else rng.randint(4, 512)  # 16 KiB .. 2 MiB in fs
            length = min(length, (target - written + unit - 1) // unit)
            start = rng.randrange(0, units - length)
            if any(taken[start - 1 if start else 0:start + length + 1]):
                continue
            taken[start:start + length] = b"\x01" * length
            f.seek(start * unit)
            f.write(rng.randbytes(length * unit))
            written += length * unit
        return written


# ---------------------------------------------------------------- uploaders


def loop_upload(path: Path, ebs, *, skip_zeros: bool) -> str:
    """The straightforward way: read the file block by block and PUT each one, in order."""
    size = path.stat().st_size
    started = ebs.start_snapshot(VolumeSize=blocks.volume_size_gib(size), Description="bench loop",
                                 ClientToken=str(uuid.uuid4()))
    sid, bs = started["SnapshotId"], started["BlockSize"]
    digests = []
    with open(path, "rb") as f:
        index = 0
        while True:
            data = f.read(bs)
            if not data:
                break
            if len(data) < bs:
                data += bytes(bs - len(data))
            if not (skip_zeros and data == bytes(bs)):
                digest = hashlib.sha256(data).digest()
                ebs.put_snapshot_block(SnapshotId=sid, BlockIndex=index, BlockData=data, DataLength=bs,
                                       Checksum=base64.b64encode(digest).decode(), ChecksumAlgorithm="SHA256")
                digests.append(digest)
            index += 1
    ebs.complete_snapshot(SnapshotId=sid, ChangedBlocksCount=len(digests),
                          Checksum=base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode(),
                          ChecksumAlgorithm="SHA256", ChecksumAggregationMethod="LINEAR")
    return sid


def sigv4(method: str, host: str, path: str, headers: dict[str, str], *, access_key: str, secret_key: str,
          region: str = "us-east-1", service: str = "ebs", keys: dict | None = None) -> dict[str, str]:
    """A minimal SigV4 (what any client must compute per request): `headers` + Host, X-Amz-Date and
    Authorization; the payload hash is the X-Amz-Content-SHA256 header. `keys` caches the day's key."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    day = stamp[:8]
    key = (keys or {}).get(day)
    if key is None:
        key = f"AWS4{secret_key}".encode()
        for part in (day, region, service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        if keys is not None:
            keys[day] = key
    out = {"Host": host, **headers, "X-Amz-Date": stamp}
    canon = sorted((k.lower(), v.strip()) for k, v in out.items())
    names = ";".join(k for k, _ in canon)
    canonical = "\n".join((method, path, "", "".join(f"{k}:{v}\n" for k, v in canon), names,
                           headers["X-Amz-Content-SHA256"]))
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["Authorization"] = f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={names}, Signature={sig}"
    return out


def bare_upload(path: Path, url: str) -> str:
    """The floor for one connection: pread -> SHA-256 -> a bare http.client PUT of every block, in
    order, no SDK: the same request as ebs_upload sends (the same headers, SigV4 with
    UNSIGNED-PAYLOAD, the SHA-256 in x-amz-Checksum, which the sink checks), one connection, each
    PUT waiting for its answer."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    access_key, secret_key = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    keys: dict = {}

    def call(method: str, target: str, body: bytes = b"", headers: dict | None = None) -> bytes:
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        assert resp.status < 300, (resp.status, data)
        return data

    size = path.stat().st_size
    started = json.loads(call("POST", "/snapshots", json.dumps({"VolumeSize": blocks.volume_size_gib(size)}).encode(),
                              {"Content-Type": "application/json"}))
    sid, bs = started["SnapshotId"], started["BlockSize"]
    digests = []
    fd = os.open(path, os.O_RDONLY)
    try:
        for index in range(blocks.block_count(size, bs)):
            data = blocks.read_block(fd, index, bs, size)
            digest = hashlib.sha256(data).digest()
            target = f"/snapshots/{sid}/blocks/{index}"
            call("PUT", target, data, sigv4("PUT", host, target, {
                "x-amz-Data-Length": str(bs), "x-amz-Checksum": base64.b64encode(digest).decode(),
                "x-amz-Checksum-Algorithm": "SHA256", "Content-Type": "application/octet-stream",
                "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}, access_key=access_key, secret_key=secret_key, keys=keys))
            digests.append(digest)
    finally:
        os.close(fd)
    call("POST", f"/snapshots/completion/{sid}", b"", {
        "x-amz-ChangedBlocksCount": str(len(digests)), "x-amz-Checksum-Algorithm": "SHA256",
        "x-amz-Checksum": base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode(),
        "x-amz-Checksum-Aggregation-Method": "LINEAR"})
    conn.close()
    return sid


def without_sdk_heap(fn, *args):
    """Run the floor as if in a process of its own: a bare program has no SDK heap (this process
    holds boto3's models for the other uploaders), so what exists now is frozen out of garbage
    collection meanwhile, as ebs_upload freezes it for its own blocks."""
    gc.freeze()
    try:
        return fn(*args)
    finally:
        gc.unfreeze()


@dataclass
class Run:
    scenario: str
    uploader: str
    wall_s: float
    cpu_s: float
    cpu_s_per_gib: float
    user_s: float
    sys_s: float
    puts: int
    bytes_sent: int
    sent_ratio: float
    unsigned_payload_puts: int = 0
    round: int = 0
    peak_in_flight: int = 0


def stats(url: str, sid: str) -> dict:
    with urllib.request.urlopen(f"{url}/stats/{sid}", timeout=10) as r:
        return json.load(r)


def measure(scenario: str, name: str, fn, url: str, image_size: int) -> Run:
    ru0, cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.process_time(), time.perf_counter()
    result = fn()
    wall, cpu, ru1 = time.perf_counter() - t0, time.process_time() - cpu0, resource.getrusage(resource.RUSAGE_SELF)
    st = stats(url, getattr(result, "snapshot_id", result))
    assert st["status"] == "completed", st
    return Run(scenario, name, wall, cpu, cpu / (image_size / (1 << 30)), ru1.ru_utime - ru0.ru_utime,
               ru1.ru_stime - ru0.ru_stime, st["puts"], st["bytes"], st["bytes"] / image_size,
               st.get("signed_unsigned_payload", 0), peak_in_flight=getattr(result, "peak_in_flight", 1))


def pinning(spec: str) -> tuple[set[int], set[int]] | None:
    """(client CPUs, sink CPUs) or None. `auto`: the sink on the last CPU this process may use, the
    client on the others (needs 2+); `none`; or `CLIENT/SINK` lists such as `0/1` or `0-2/3`."""
    allowed = ALL_CPUS
    if spec == "none" or (spec == "auto" and len(allowed) < 2):
        return None
    if spec == "auto":
        return set(allowed[:-1]), {allowed[-1]}

    def cpus(text: str) -> set[int]:
        out: set[int] = set()
        for part in text.split(","):
            a, _, b = part.partition("-")
            out.update(range(int(a), int(b or a) + 1))
        return out

    client, _, sink = spec.partition("/")
    return cpus(client), cpus(sink)


def start_sink(block_size: int, latency_ms: float, cpus: set[int] | None = None) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "bench_upload_sink.py"), "--port", "0",
                             "--block-size", str(block_size), "--latency-ms", str(latency_ms)],
                            stdout=subprocess.PIPE, text=True)
    if cpus:
        os.sched_setaffinity(proc.pid, cpus)
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}"


def scenario(args, name: str, *, size_mib: int, data_percent: float, layout: str, zeros: str, latency_ms: float,
             baselines: list[str], workdir: Path, pin: str) -> list[Run]:
    size = size_mib * MIB
    pins = pinning(pin)
    if ALL_CPUS:
        os.sched_setaffinity(0, pins[0] if pins else ALL_CPUS)
    where = (f"client on CPU {','.join(map(str, sorted(pins[0])))}, sink on CPU {','.join(map(str, sorted(pins[1])))}"
             if pins else "client and sink unpinned")
    image = workdir / f"{name}.img"
    data = make_image(image, size=size, data_percent=data_percent, layout=layout, zeros=zeros,
                      block_size=args.block_size)
    needed = len(blocks.nonzero_blocks(image, args.block_size)) * args.block_size
    label = (f"{name}: {size_mib} MiB, {layout} {data_percent if layout != 'dense' else 100:g}% data "
             f"({data / size:.2%} of bytes; non-zero {args.block_size // 1024} KiB blocks = {needed / size:.2%}), "
             f"zeros {zeros}, latency {latency_ms:g} ms, {where}")
    print(f"# {label}", file=sys.stderr)
    proc, url = start_sink(args.block_size, latency_ms, pins[1] if pins else None)
    runs: list[Run] = []
    try:
        # Clients are made outside the timed part for both (a fixed cost, mostly loading service models).
        loop_ebs = boto3.session.Session().client("ebs", endpoint_url=url, region_name="us-east-1")
        ebs, ec2 = ebs_upload.make_clients(endpoint_url=url, workers=args.workers)
        uploaders = []
        for b in baselines:
            if b == "bare":
                uploaders.append(("bare http.client PUT loop", lambda: without_sdk_heap(bare_upload, image, url)))
            elif b == "botocore":
                uploaders.append((f"ebs_upload via botocore (adaptive, <= {args.workers})", lambda: ebs_upload.upload(
                    image, workers=args.workers, ebs=ebs, ec2=ec2, progress=False, wait_interval=0.05,
                    lean=False)))
            elif b == "fixed":
                uploaders.append((f"{FIXED} {args.workers} workers", lambda: ebs_upload.upload(
                    image, workers=args.workers, ebs=ebs, ec2=ec2, progress=False, wait_interval=0.05,
                    adaptive=False)))
            else:
                uploaders.append((b, lambda skip=(b == "loop-skip"): loop_upload(image, loop_ebs, skip_zeros=skip)))
        uploaders.append((f"ebs_upload (adaptive, <= {args.workers})", lambda: ebs_upload.upload(
            image, workers=args.workers, ebs=ebs, ec2=ec2, progress=False, wait_interval=0.05)))
        for rnd in range(args.repeat):
            for uname, fn in uploaders:
                run = measure(name, uname, fn, url, size)
                run.round = rnd
                if uname.startswith(("bare", "ebs_upload (", FIXED)):  # the same signed request, checked by the sink
                    assert run.unsigned_payload_puts == run.puts, (uname, run)
                print(f"  {uname}: {run.wall_s:.2f}s wall, {run.cpu_s:.2f}s cpu, {run.puts} PUTs, "
                      f"at most {run.peak_in_flight} in flight", file=sys.stderr)
                runs.append(run)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        image.unlink(missing_ok=True)
    for r in runs:
        r.scenario = label
    return runs


def median_runs(runs: list[Run]) -> list[Run]:
    out: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        out.setdefault((r.scenario, r.uploader), []).append(r)
    merged = []
    for (sc, up), rs in out.items():
        med = {k: statistics.median(getattr(r, k) for r in rs)
               for k in ("wall_s", "cpu_s", "cpu_s_per_gib", "user_s", "sys_s")}
        merged.append(Run(sc, up, puts=rs[0].puts, bytes_sent=rs[0].bytes_sent, sent_ratio=rs[0].sent_ratio, **med))
    return merged


def ratios(runs: list[Run]) -> list[str]:
    """Per round, ours (adaptive, and with a fixed pool when measured) against the bare loop (they
    ran back to back, so the load was alike): CPU per GiB and wall throughput, min / median / max
    over the rounds, and the most PUTs ours had in flight."""
    def mmm(xs, fmt="{:.2f}"):
        return " / ".join(fmt.format(x) for x in (min(xs), statistics.median(xs), max(xs)))

    lines = []
    for sc in dict.fromkeys(r.scenario for r in runs):
        rows = [r for r in runs if r.scenario == sc]
        for who, prefix in (("ebs_upload (adaptive)", "ebs_upload ("), ("ebs_upload, fixed pool", FIXED)):
            cpu, thr, peak = [], [], []
            for rnd in sorted({r.round for r in rows}):
                ours = [r for r in rows if r.round == rnd and r.uploader.startswith(prefix)]
                bare = [r for r in rows if r.round == rnd and r.uploader.startswith("bare")]
                if ours and bare:
                    cpu.append(ours[0].cpu_s_per_gib / bare[0].cpu_s_per_gib)
                    thr.append(bare[0].wall_s / ours[0].wall_s)
                    peak.append(ours[0].peak_in_flight)
            if cpu:
                lines.append(f"- {sc.split(':')[0]}, {who} / bare loop per round (min / median / max of "
                             f"{len(cpu)}): CPU per GiB {mmm(cpu)}x; wall throughput {mmm(thr)}x; "
                             f"at most {mmm(peak, '{:d}')} PUTs in flight")
    return lines


def markdown(runs: list[Run]) -> str:
    lines = []
    for sc in dict.fromkeys(r.scenario for r in runs):
        rows = [r for r in runs if r.scenario == sc]
        ours = next(r for r in rows if r.uploader.startswith("ebs_upload ("))
        lines += [f"**{sc}**", "",
                  "| uploader | wall s | client CPU s/GiB (total user + sys s) | PUTs | bytes sent / image "
                  "| wall / ours' | CPU / ours' |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r.uploader} | {r.wall_s:.2f} | {r.cpu_s_per_gib:.3f} ({r.user_s:.2f}+{r.sys_s:.2f} s) "
                         f"| {r.puts} | {r.sent_ratio:.2%} | {r.wall_s / ours.wall_s:.1f}x "
                         f"| {r.cpu_s_per_gib / max(ours.cpu_s_per_gib, 1e-9):.1f}x |")
        lines.append("")
    return "\n".join(lines)


SUITE = [
    # name, size MiB, data %, layout, zeros, latency ms, baselines, pinning
    # every block is sent (byte-exact snapshots), so dense throughput is the figure that matters;
    # D0 with the sink on a core of its own (the goal's setting) and sharing both cores with us (D0s)
    ("D0", 512, 100, "dense", "holes", 0, ["bare", "loop", "botocore", "fixed"], "auto"),
    ("D0s", 512, 100, "dense", "holes", 0, ["bare", "fixed"], "none"),
    ("D10", 512, 100, "dense", "holes", 10, ["bare", "loop", "botocore", "fixed"], "auto"),
    ("S10", 512, 10, "aligned", "holes", 10, ["loop"], "auto"),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="EBS direct upload benchmark (see module docstring)")
    ap.add_argument("--suite", action="store_true", help="run scenarios D0, D0s, D10, S10 (what RESULTS.md records)")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--data-percent", type=float, default=10)
    ap.add_argument("--layout", choices=["aligned", "fs", "dense"], default="aligned")
    ap.add_argument("--zeros", choices=["holes", "written"], default="holes")
    ap.add_argument("--block-size", type=int, choices=[512, 524288], default=524288,
                    help="BlockSize the sink's StartSnapshot returns: 524288 = AWS, 512 = moto")
    ap.add_argument("--latency-ms", type=float, default=10)
    ap.add_argument("--workers", type=int, default=ebs_upload.DEFAULT_WORKERS)
    ap.add_argument("--baselines", default="bare,loop", help="comma list of bare (http.client PUT loop), loop "
                    "(sequential boto3), loop-skip, botocore (ebs_upload with lean=False), fixed (ebs_upload with "
                    "adaptive=False: always --workers in flight); or empty")
    ap.add_argument("--repeat", type=int, default=1, help="runs per uploader; the table shows medians")
    ap.add_argument("--pin", default="auto", help="CPU affinity: auto (the sink on the last CPU, this process "
                    "on the others, when there are 2+), none, or CLIENT/SINK lists like 0/1")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--dir", default=None, help="where to write the image (default: a temp dir)")
    args = ap.parse_args(argv)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.pop("AWS_ENDPOINT_URL", None)
    load0 = os.getloadavg()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        plan = SUITE if args.suite else [("run", args.size_mib, args.data_percent, args.layout, args.zeros,
                                          args.latency_ms, [b for b in args.baselines.split(",") if b], args.pin)]
        for name, size_mib, pct, layout, zeros, latency, baselines, pin in plan:
            runs += scenario(args, name, size_mib=size_mib, data_percent=pct, layout=layout, zeros=zeros,
                             latency_ms=latency, baselines=baselines, workdir=Path(tmp), pin=pin)
    load1 = os.getloadavg()
    per_round = ratios(runs)
    runs = median_runs(runs)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"boto3 {boto3.__version__}; block size {args.block_size}, repeat {args.repeat}; "
          f"load average (1 min) {load0[0]:.1f} before, {load1[0]:.1f} after\n")
    print(markdown(runs))
    if per_round:
        print("\n".join(per_round) + "\n")
    if args.json:
        print(json.dumps([asdict(r) for r in runs], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
