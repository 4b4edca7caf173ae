"""Benchmark: `fleet image build` when the AMI for the image hash already exists (a cache hit).

Goal: under 2 s wall clock for the whole command (interpreter start, imports, nodes.yaml, hash,
one DescribeImages call) and exactly one AWS API call. Runs against a moto server started here
on 127.0.0.1 in a separate process. Not a test: run `python bench/bench_cache_hit.py`.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
RUNS = 7


def start_moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.1)
    raise SystemExit("moto did not start")


def main() -> None:
    proc, url = start_moto()
    env = {**os.environ, "AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(env)
    try:
        from fleet.image_hash import image_hash
        from fleet.spec.load import load_fleet
        from image_builds.build import build

        group = load_fleet(ROOT / "nodes.yaml", "staging").groups["12_04-www"]
        h = image_hash(group, ROOT)
        ec2 = boto3.client("ec2")
        snap = ec2.create_snapshot(VolumeId=ec2.create_volume(Size=8, AvailabilityZone="us-east-1a")["VolumeId"])
        ami = ec2.register_image(Name="fleet-bench", RootDeviceName="/dev/xvda", BlockDeviceMappings=[
            {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snap["SnapshotId"]}}])["ImageId"]
        ec2.create_tags(Resources=[ami], Tags=[{"Key": "fleet:image-hash", "Value": h}])

        calls: list[str] = []
        import fleet.ops.aws as fa

        real_client = fa.client

        def counting_client(*a, **kw):
            c = real_client(*a, **kw)
            c.meta.events.register("before-call", lambda model, **_: calls.append(model.name))
            return c

        import image_builds.build as b
        b.client = counting_client
        out = build(group, region="us-east-1", endpoint_url=url, project_dir=ROOT, log=open(os.devnull, "w"))
        assert out["cached"] and out["ami_id"] == ami, out

        times = []
        with tempfile.TemporaryFile() as sink:
            for _ in range(RUNS):
                t0 = time.perf_counter()
                r = subprocess.run([sys.executable, "-m", "fleet", "--stack", "staging", "image", "build", "12_04-www"],
                                   cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=sink, check=True)
                times.append(time.perf_counter() - t0)
                assert json.loads(r.stdout.splitlines()[-1])["cached"] is True
        print(f"cache hit, in process: {len(calls)} AWS call(s): {calls}")
        print(f"cache hit, `python -m fleet image build` x{RUNS}: median {statistics.median(times):.2f} s, "
              f"min {min(times):.2f} s, max {max(times):.2f} s (goal < 2 s)")
    finally:
        proc.terminate()


if __name__ == "__main__":
    main()
