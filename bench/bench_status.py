"""Benchmark: `fleet status` of a deployed-looking fleet of N groups on a moto server over HTTP.

Builds the fleet with boto3 (tests/status_fleet.py: per group an AMI tagged with its image hash, a
launch template, the spot and the on-demand ASG with one instance each; every `--http-every`-th group
also a target group behind the stack's listener), then times the whole command as the user runs it
(load nodes.yaml, hash the images, read AWS, join, render the table into a buffer), `--repeat` times,
and prints the median and the AWS calls per operation, for each N. Not a test: run
`python bench/bench_status.py` (prints the table that bench/RESULTS.md holds).

moto has no DescribeInstanceRefreshes: the read stops at its probe (one call). Against AWS that API
adds one call per ASG, made 8 at a time (fleet/ops/status_read.py WORKERS).
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402

from fleet.ops.status_read import read_stack  # noqa: E402
from fleet.spec.load import load_fleet  # noqa: E402
from fleet.status.cli import declared_of  # noqa: E402
from fleet.status.join import exit_code, report  # noqa: E402
from fleet.status.view import render  # noqa: E402
from tests.status_fleet import STACK, FleetMaker, declared_hashes, write_project  # noqa: E402


def moto(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return proc
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("moto server did not start") from None
            time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_once(project: Path, endpoint: str) -> tuple[float, dict, int]:
    """The command's work, timed from loading the nodes file to the rendered table."""
    t0 = time.perf_counter()
    fleet = load_fleet(project / "nodes.yaml", STACK, project_dir=project)
    live = read_stack(STACK, endpoint_url=endpoint,
                      instance_groups=[n for n, g in fleet.groups.items() if g.autoscale is None])
    rep = report(STACK, declared_of(fleet, project), live)
    Console(file=io.StringIO(), width=160).print(render(rep))
    return time.perf_counter() - t0, live.calls_by_operation, exit_code(rep)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--http-every", type=int, default=2, help="every Nth group has a target group (default 2)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      AWS_EC2_METADATA_DISABLED="true")
    rows = []
    for n in args.groups:
        port = free_port()
        server = moto(port)
        endpoint = f"http://127.0.0.1:{port}"
        try:
            with tempfile.TemporaryDirectory() as tmp:
                names = {f"g{i:03d}": i % args.http_every == 0 for i in range(n)}
                project = write_project(Path(tmp) / "project", names)
                hashes = declared_hashes(project)
                maker = FleetMaker(endpoint)
                t0 = time.perf_counter()
                for i, (name, http) in enumerate(names.items()):
                    maker.group(name, hashes[name], http=http, priority=i + 1)
                built = time.perf_counter() - t0
                runs = [status_once(project, endpoint) for _ in range(args.repeat)]
        finally:
            server.terminate()
            server.wait(timeout=30)
        times = [r[0] for r in runs]
        calls = runs[-1][1]
        assert all(r[2] == 0 for r in runs), "the bench fleet matches its nodes.yaml"
        rows.append((n, sum(names.values()), statistics.median(times), max(times), calls, built))
    print(f"fleet status against moto over HTTP, median of {args.repeat} (python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cpus)")
    print(f"{'groups':>6} {'http':>5} {'median s':>9} {'max s':>7} {'calls':>6}  calls per operation")
    for n, http, med, worst, calls, _ in rows:
        per = ", ".join(f"{k} {v}" for k, v in sorted(calls.items()))
        print(f"{n:>6} {http:>5} {med:>9.2f} {worst:>7.2f} {sum(calls.values()):>6}  {per}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
