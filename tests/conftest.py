"""Shared fixtures. `moto_server`: a real moto server over HTTP on 127.0.0.1, one per session,
with AWS_ENDPOINT_URL and dummy credentials pointing every boto3 client (and Packer) at it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from hypothesis import settings

from tests.aws_calls import deploy_calls_are_allowed  # noqa: F401  (autouse: the deploy policy covers every call)

# Test runs leave no __pycache__ in the tree. (The spot capacity Lambda no longer depends on this: its
# code is an explicit list of files by content, tests/test_components_spot_capacity.py.)
sys.dont_write_bytecode = True

# Property tests check logic, not speed: no per-example deadline on a noisy 2-core machine.
settings.register_profile("fleet", deadline=None, max_examples=200)
settings.load_profile("fleet")

ROOT = Path(__file__).resolve().parent.parent

# How long a fixture waits for its server (start, reset, stop). A fixed few seconds errors tests on a
# loaded machine (a full run beside other work on 2 cores once took 45 minutes, and resets timed out at
# 5 s); a healthy server answers in milliseconds, so a long bound costs nothing when all is well.
SERVER_WAIT = float(os.environ.get("FLEET_TEST_SERVER_WAIT", "300"))

# The CLI sizes its tables for a pipe when COLUMNS is unset (whole rows, not squeezed to 80 columns);
# pytest-xdist's workers set COLUMNS=80 and LINES=24, which would make a parallel run see a terminal
# width a serial run never sees. Tests that need a width set it themselves.
for _var in ("COLUMNS", "LINES"):
    os.environ.pop(_var, None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server():
    """Start `moto_server` on a free loopback port; yield its URL; stop it at the end."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_WAIT
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=5)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.1)
    yield url
    proc.terminate()
    try:  # werkzeug may take a while to stop on a loaded machine; never fail a run over teardown
        proc.wait(timeout=SERVER_WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def reset_server(url: str) -> None:
    """Reset moto's state, waiting as long as a loaded machine needs (SERVER_WAIT), not a few seconds."""
    urllib.request.urlopen(urllib.request.Request(url + "/moto-api/reset", method="POST"), timeout=SERVER_WAIT)


@pytest.fixture
def aws(moto_server, monkeypatch):
    """Environment for one test against a freshly reset moto server."""
    reset_server(moto_server)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    return moto_server
