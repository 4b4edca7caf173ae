"""Every command that talks to AWS fails in one line: no credentials, an endpoint that is not there or
never answers, an expired token, access denied, throttling past the retries. Retries say so while
they happen, and a call that gets no answer at all gives up within 20 s. Real HTTP throughout: the
moto server, a closed port, a socket that accepts and never answers, and a small server that answers
with AWS's own error documents."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from pathlib import Path

import pytest

import fleet.ops.aws as aws_layer
from fleet.cli import main

NODES = """\
__base__: {instance_type: t3.micro, image: {builder: packer, communicator: none}}
web:
  source_ami: {name: "base-web-*", owners: [self]}
  autoscale: {node_min: 1, node_max: 2}
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "Pulumi.yaml").write_text("name: firsthour\nruntime: python\n")
    (tmp_path / "Pulumi.staging.yaml").write_text("config:\n  aws:region: us-east-1\n")
    (tmp_path / "nodes.yaml").write_text(NODES)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def dummy_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _stderr_lines(capsys) -> tuple[str, list[str]]:
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return out, err.strip().splitlines()


def test_lock_without_nodes_uses_the_project_it_stands_in(project, aws, capsys):
    import boto3

    ec2 = boto3.client("ec2")
    snap = ec2.create_snapshot(VolumeId=ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"])
    ami = ec2.register_image(Name="base-web-1", RootDeviceName="/dev/sda1", BlockDeviceMappings=[
        {"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": snap["SnapshotId"]}}])["ImageId"]
    assert main(["lock"]) == 0, capsys.readouterr().err
    assert ami in (project / "nodes.lock.json").read_text()


@pytest.mark.parametrize("command", [
    ["lock"],
    ["image", "build", "web"],
    ["image", "clean", "web", "--keep", "1"],
    ["image", "delete", "web", "--dry-run"],
    ["deploy", "web", "--stack", "staging"],
])
def test_no_credentials_is_one_line_for_every_aws_command(project, no_credentials, capsys, command):
    if command[0] != "lock":  # the others load the fleet first, which refuses an unlocked filter
        (project / "nodes.yaml").write_text(NODES.replace('{name: "base-web-*", owners: [self]}', "ami-12c6146b"))
    assert main(command) == 1
    out, lines = _stderr_lines(capsys)
    assert out == ""
    last = lines[-1]
    prefix = "fleet " + " ".join(w for w in command if not w.startswith("-") and w not in ("1", "staging"))
    assert last.startswith(prefix + ": "), (prefix, last)
    assert "no AWS credentials found" in last and "AWS_ACCESS_KEY_ID" in last, last
    assert ":Describe" in last  # names the operation


def test_a_closed_port_retries_out_loud_then_gives_up_in_one_line(project, dummy_credentials, capsys, monkeypatch):
    monkeypatch.setattr(aws_layer, "NO_ANSWER_BACKOFF", (0.01, 0.02, 0.04, 0.08))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    assert main(["lock", "--endpoint-url", f"http://127.0.0.1:{port}"]) == 1
    _, lines = _stderr_lines(capsys)
    retries = [line for line in lines if "retrying (" in line]
    n = aws_layer.MAX_ATTEMPTS - 1
    assert retries == [f'fleet: ec2:DescribeImages (Could not connect to the endpoint URL: '
                       f'"http://127.0.0.1:{port}/"): retrying ({i}/{n}) ...' for i in range(1, n + 1)]
    assert lines[-1].startswith(f"fleet lock: ec2:DescribeImages: no answer from http://127.0.0.1:{port}/")
    assert "--endpoint-url" in lines[-1]


def test_an_endpoint_that_never_answers_gives_up_within_its_budget(project, dummy_credentials, capsys, monkeypatch):
    monkeypatch.setattr(aws_layer, "READ_TIMEOUT", 0.3)
    monkeypatch.setattr(aws_layer, "NO_ANSWER_BUDGET", 1.5)
    monkeypatch.setattr(aws_layer, "NO_ANSWER_BACKOFF", (0.1, 0.2, 0.4, 0.8))
    held = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        server.settimeout(0.1)
        stop = threading.Event()

        def accept():
            while not stop.is_set():
                try:
                    held.append(server.accept()[0])  # accept, then say nothing
                except OSError:
                    pass

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        started = time.monotonic()
        code = main(["lock", "--endpoint-url", f"http://127.0.0.1:{server.getsockname()[1]}"])
        took = time.monotonic() - started
        stop.set()
        thread.join()
    for conn in held:
        conn.close()
    assert code == 1
    _, lines = _stderr_lines(capsys)
    assert took < 1.5 + 0.3 + 4.0, took  # the budget, the last read timeout, loading the project on a busy machine
    assert any("Read timeout" in line and "retrying (1/" in line for line in lines), lines
    assert "no answer from" in lines[-1] and "Read timeout" in lines[-1], lines[-1]


@pytest.mark.parametrize("kind,cost", [("refused", 0.0), ("connect timeout", aws_layer.CONNECT_TIMEOUT),
                                        ("read timeout", aws_layer.READ_TIMEOUT)])
def test_default_schedule_gives_up_within_20_seconds(kind, cost):
    """The defaults themselves: attempts that each take `cost` seconds and never get an answer end
    within 20 s (the slowest jitter counted), after at least one announced retry."""
    elapsed, attempt = cost, 1
    while (delay := aws_layer.no_answer_delay(attempt, elapsed, cost)) is not None:
        elapsed += delay * 1.1 + cost
        attempt += 1
    assert attempt >= 2, kind
    assert elapsed <= 20, (kind, elapsed)


class _AwsErrors(http.server.BaseHTTPRequestHandler):
    """Answers every EC2 query with the error document EC2 sends for `code`, with `status`."""

    code, status, calls = "RequestExpired", 400, 0

    def do_POST(self):  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).calls += 1
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{self.code}</Code>'
                f"<Message>said by the test server</Message></Error></Errors><RequestID>r-1</RequestID>"
                "</Response>").encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def error_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AwsErrors)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("code,status,says", [
    ("RequestExpired", 400, "the AWS credentials have expired"),
    ("ExpiredToken", 400, "the AWS credentials have expired"),
    ("UnauthorizedOperation", 403, "access denied"),
    ("AuthFailure", 401, "AWS did not accept the credentials"),
    ("RequestLimitExceeded", 503, "throttled by AWS after 2 attempts"),
])
def test_aws_error_answers_are_one_line_with_what_to_do(project, dummy_credentials, error_server, capsys,
                                                        monkeypatch, code, status, says):
    monkeypatch.setattr(aws_layer, "MAX_ATTEMPTS", 2)  # one retry: botocore's backoff stays under 2 s
    monkeypatch.setattr(_AwsErrors, "code", code)
    monkeypatch.setattr(_AwsErrors, "status", status)
    monkeypatch.setattr(_AwsErrors, "calls", 0)
    assert main(["lock", "--endpoint-url", error_server]) == 1
    _, lines = _stderr_lines(capsys)
    last = lines[-1]
    assert last.startswith(f"fleet lock: ec2:DescribeImages: {says} ({code}: said by the test server)"), last
    throttled = code == "RequestLimitExceeded"
    assert _AwsErrors.calls == (2 if throttled else 1)
    assert [line for line in lines if "retrying" in line] == (
        ["fleet: ec2:DescribeImages (RequestLimitExceeded): retrying (1/1) ..."] if throttled else [])


def test_failure_line_names_what_to_do_for_each_kind():
    from botocore.exceptions import NoRegionError, ProfileNotFound

    assert "pass --region or set AWS_REGION" in aws_layer.failure_line(NoRegionError())
    assert "AWS_PROFILE" in aws_layer.failure_line(ProfileNotFound(profile="nope"))


def test_image_build_script_reports_aws_failures_in_one_line(project, no_credentials, capsys):
    """What the image Command runs (python -m image_builds.build) keeps the same contract."""
    from image_builds.build import main as build_main

    (project / "nodes.yaml").write_text(NODES.replace('{name: "base-web-*", owners: [self]}', "ami-12c6146b"))
    assert build_main(["web", "--nodes", str(Path(project) / "nodes.yaml")]) == 1
    _, lines = _stderr_lines(capsys)
    assert lines[-1].startswith("fleet image build web: ec2:DescribeImages: no AWS credentials found"), lines


@pytest.mark.parametrize("module,argv,prefix", [
    ("fleet.ops.rollout", ["--asg", "web-spot", "--launch-template-id", "lt-1", "--version", "2"], "rollout failed"),
    ("fleet.ops.gate", ["--group", "web", "--asg", "web-spot", "--timeout", "1"], "health gate failed"),
])
def test_what_the_commands_run_reports_aws_failures_in_one_line(no_credentials, capsys, module, argv, prefix):
    """The rollout and health gate scripts `pulumi up` runs as Commands keep the same contract."""
    import importlib

    assert importlib.import_module(module).main(argv) == 1
    _, lines = _stderr_lines(capsys)
    assert lines[-1].startswith(f"{prefix}: autoscaling:") and "no AWS credentials found" in lines[-1], lines
