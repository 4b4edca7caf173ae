"""SIGTERM / SIGINT during a build, as a user or CI sends them: real `python -m fleet image build`
subprocesses against the moto server (and real Packer), signalled mid-build. Each must clean up
(incomplete snapshot, converted temp file, Packer's build instance), print one line, and exit
128 + signal (143 / 130).

Packer against moto finishes in under a second, so its test puts a slow network between them: a
TCP proxy in this process that holds every chunk Packer and the build send for a moment.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"


def own_snapshots(ec2) -> list[dict]:
    return [s for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"] if s["OwnerId"] == ACCOUNT]


def start_build(project: Path, endpoint: str, tmpdir: Path) -> subprocess.Popen:
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "TMPDIR": str(tmpdir)}
    return subprocess.Popen([sys.executable, "-m", "fleet", "--nodes", str(project / "nodes.yaml"), "image", "build",
                             "g", "--endpoint-url", endpoint], cwd=project, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(what: str, check, proc: subprocess.Popen, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        assert proc.poll() is None, f"the build ended before {what}: {proc.communicate()}"
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"timed out waiting for {what}")


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def raw_project(tmp_path: Path, fmt: str) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    raw = project / "disk.raw"
    raw.write_bytes(os.urandom(4 << 20))  # 8192 of moto's 512-byte blocks: an upload of many seconds
    name = "disk.raw"
    if fmt == "qcow2":
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(project / "disk.qcow2")],
                       check=True)
        raw.unlink()
        name = "disk.qcow2"
    (project / "nodes.yaml").write_text(f"g:\n  instance_type: t3.micro\n  image: {{builder: raw, path: {name}}}\n")
    return project


@pytest.mark.parametrize("fmt, signum, status", [
    ("raw", signal.SIGTERM, 143), ("raw", signal.SIGINT, 130), ("qcow2", signal.SIGTERM, 143),
    ("qcow2", signal.SIGINT, 130)])
def test_signal_during_a_raw_upload_cleans_up_and_says_so_in_one_line(aws, tmp_path, fmt, signum, status):
    ec2 = boto3.client("ec2")
    project, tmpdir = raw_project(tmp_path, fmt), tmp_path / "tmp"
    tmpdir.mkdir()
    proc = start_build(project, aws, tmpdir)
    snap = wait_for("the upload to start", lambda: own_snapshots(ec2), proc)[0]
    assert {"Key": "fleet:group", "Value": "g"} in snap["Tags"]  # (moto reports it `completed` at once)
    if fmt == "qcow2":  # the converted raw copy is there while uploading
        assert [p.name for p in tmpdir.glob("fleet-raw-*/*")] == ["disk.raw"]
    time.sleep(0.5)
    proc.send_signal(signum)
    code, out, err = finish(proc)
    name = signal.Signals(signum).name
    assert code == status, err
    assert out == "" and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last == (f"fleet image build g: interrupted by {name}; upload stopped at PutSnapshotBlock, snapshot "
                    f"{snap['SnapshotId']} deleted; temporary files removed")
    assert sum("interrupted" in line for line in err.splitlines()) == 1
    assert own_snapshots(ec2) == [], "the incomplete snapshot must be deleted"
    assert ec2.describe_images(Owners=["self"])["Images"] == []
    assert list(tmpdir.iterdir()) == [], "the converted temp file must be removed"


class SlowProxy:
    """A TCP proxy to 127.0.0.1:`port` that holds every chunk a client sends for `delay` s."""

    def __init__(self, port: int, delay: float):
        self.port, self.delay = port, delay
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.server.settimeout(0.2)
        while not self.stop.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                continue
            upstream = socket.create_connection(("127.0.0.1", self.port))
            threading.Thread(target=self._pump, args=(client, upstream, self.delay), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, 0.0), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, delay: float) -> None:
        try:
            while chunk := src.recv(65536):
                time.sleep(delay)
                dst.sendall(chunk)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.stop.set()
        self.server.close()


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_during_packer_stops_packer_which_cleans_up(aws, tmp_path, signum, status):
    ec2 = boto3.client("ec2")
    source = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    project = tmp_path / "project"
    (project / "cookbooks").mkdir(parents=True)
    (project / "nodes.yaml").write_text(
        f"g:\n  instance_type: t3.micro\n  source_ami: {source}\n  image: {{builder: packer, communicator: none}}\n"
        "  run_list: ['recipe[app]']\n")
    proxy = SlowProxy(int(aws.rsplit(":", 1)[1]), 0.3)
    try:
        proc = start_build(project, proxy.url, tmp_path)

        def build_instances(states=("pending", "running")):
            return [i for r in ec2.describe_instances(Filters=[
                {"Name": "tag:fleet:purpose", "Values": ["image-build"]}])["Reservations"]
                for i in r["Instances"] if i["State"]["Name"] in states]

        wait_for("Packer's build instance", build_instances, proc, timeout=120)
        proc.send_signal(signum)
        code, out, err = finish(proc)
    finally:
        proxy.close()
    name = signal.Signals(signum).name
    assert code == status, err
    assert out == "" and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"fleet image build g: interrupted by {name}; packer stopped (exit ") and \
        last.endswith(") after cleaning up its build instance"), last
    assert build_instances() == [], "Packer must terminate its build instance"
    assert ec2.describe_images(Owners=["self"])["Images"] == []


# -- the windows around registration, signalled in-process (a real signal, at a chosen point) ----------

def small_raw_project(tmp_path: Path) -> Path:
    project = tmp_path / "small"
    project.mkdir()
    (project / "disk.raw").write_bytes(os.urandom(64 << 10))
    (project / "nodes.yaml").write_text("g:\n  instance_type: t3.micro\n  image: {builder: raw, path: disk.raw}\n")
    return project


def signal_after(monkeypatch, target, name: str, signum: int = signal.SIGTERM, *, before: bool = False):
    """Replace `target.name` by a wrapper that sends this process `signum` right after (or before) the real
    call: the build's own handler then raises in that very window."""
    real = getattr(target, name)

    def wrapper(*args, **kwargs):
        if before:
            os.kill(os.getpid(), signum)
        out = real(*args, **kwargs)
        if not before:
            os.kill(os.getpid(), signum)
        return out

    monkeypatch.setattr(target, name, wrapper)


def run_small(project: Path, endpoint: str) -> int:
    from image_builds import build

    return build.run("g", nodes=str(project / "nodes.yaml"), stack=None, region="us-east-1", endpoint_url=endpoint,
                     project_dir=project)


@pytest.mark.parametrize("window", ["temporary files removed", "before RegisterImage"])
def test_a_signal_right_after_the_last_block_deletes_the_unregistered_snapshot(aws, tmp_path, monkeypatch, capsys,
                                                                                window):
    """The upload is complete (the snapshot `completed`), no AMI yet: while the temporary directory is
    removed, or just before RegisterImage. The snapshot must not be left behind."""
    import tempfile

    from image_builds import register

    if window == "before RegisterImage":
        signal_after(monkeypatch, register, "register", before=True)
    else:
        signal_after(monkeypatch, tempfile.TemporaryDirectory, "cleanup")
    code = run_small(small_raw_project(tmp_path), aws)
    out, err = capsys.readouterr()
    ec2 = boto3.client("ec2")
    assert code == 143 and out == "", err
    last = err.strip().splitlines()[-1]
    assert last.startswith("fleet image build g: interrupted by SIGTERM; ") and last.endswith(
        "(uploaded, not yet registered) deleted"), last
    assert own_snapshots(ec2) == [] and ec2.describe_images(Owners=["self"])["Images"] == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_after_registration_prints_the_result(aws, tmp_path, monkeypatch, capsys, signum):
    """The AMI is registered, available and tagged with its hash: the signal keeps it, and the result line
    (with a warning) still comes out, so the caller learns the AMI it made."""
    import json

    from image_builds import registry

    real = registry.tag_image

    def tag_image(ec2, ami, tags, **kwargs):  # the build's own tag after RegisterImage (register tags first)
        if "fleet:built-at" in tags:
            os.kill(os.getpid(), signum)
        return real(ec2, ami, tags, **kwargs)

    monkeypatch.setattr(registry, "tag_image", tag_image)
    code = run_small(small_raw_project(tmp_path), aws)
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in err, err
    result = json.loads(out.strip().splitlines()[-1])
    (image,) = boto3.client("ec2").describe_images(Owners=["self"])["Images"]
    assert result["ami_id"] == image["ImageId"] and result["cached"] is False
    name = signal.Signals(signum).name
    assert result["warnings"] == [f"interrupted by {name} after its AMI was registered; it is kept"]


def test_a_signal_during_retention_still_prints_the_result(aws, tmp_path, monkeypatch, capsys):
    import json

    from image_builds import build

    signal_after(monkeypatch, build.clean, "run", signal.SIGINT, before=True)
    code = run_small(small_raw_project(tmp_path), aws)
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in err and "KeyboardInterrupt" not in err, err
    result = json.loads(out.strip().splitlines()[-1])
    (image,) = boto3.client("ec2").describe_images(Owners=["self"])["Images"]
    assert result["ami_id"] == image["ImageId"]
    assert result["warnings"] == ["retention after the bake was interrupted by SIGINT; run `fleet image clean g`"]
