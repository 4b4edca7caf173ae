"""The boot program (boot/fleet_boot.py) run for real on this machine.

Real parts: the moto server over HTTP for S3 (the bundle is uploaded and fetched through it), the
program as a subprocess with the machine's python3, and botocore's own SigV4 code to check the
program's signatures. Stand-ins, named as such because this machine has no EC2 or Chef:
- `imds`: a tiny IMDSv2 endpoint on 127.0.0.1 (PUT token, then GETs that must carry it);
- `autoscaling`: moto 5.2 does not implement CompleteLifecycleAction (test below proves it), so a
  tiny Query-API endpoint on 127.0.0.1 records the call, checks its parameters against botocore's
  Auto Scaling model and checks its SigV4 signature with botocore. No Stubber: the program is
  stdlib HTTP, not boto3.
- `chef-solo`: a script on PATH that records its arguments and the files it was given; it tests
  the boot flow, not Chef.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import botocore.session
import pytest
import yaml
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bench.bench_user_data import generated, worst_case_sizes
from fleet.render.bundle import build_bundle
from fleet.render.userdata import BOOT_CONFIG, BOOT_PATH, USER_DATA_LIMIT, BootArtifacts, render_user_data
from tests.pulumi_mocks import ROOT, project_groups

BOOT = ROOT / "boot" / "fleet_boot.py"
REGION = "us-east-1"
CREDS = {"AccessKeyId": "ASIATESTTESTTESTTEST", "SecretAccessKey": "standin-secret", "Token": "standin-session"}
INSTANCE = "i-0123456789abcdef0"
ASG_NAME = "api-spot-1234567"

sys.path.insert(0, str(BOOT.parent))
import fleet_boot  # noqa: E402  - the program under test, imported for its signer

# -- stand-ins ---------------------------------------------------------------------------------------

class _Server:
    def __init__(self, handler):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.calls = []
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def calls(self):
        return self.httpd.calls

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class ImdsHandler(BaseHTTPRequestHandler):
    """Stand-in IMDSv2: PUT /latest/api/token, then GETs with X-aws-ec2-metadata-token (else 401)."""

    session = "standin-imds-session"

    def log_message(self, *a):
        pass

    def _reply(self, code, body=b""):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self._reply(200, self.session.encode())
        self._reply(400)

    def do_GET(self):
        self.server.calls.append(self.path)
        if self.headers.get("X-aws-ec2-metadata-token") != self.session:
            return self._reply(401)
        launched = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.server.launched))
        data = {
            "/latest/meta-data/placement/region": REGION,
            "/latest/meta-data/services/domain": "amazonaws.com",
            "/latest/meta-data/instance-id": INSTANCE,
            "/latest/meta-data/iam/security-credentials/": "fleet-node-role",
            "/latest/meta-data/iam/security-credentials/fleet-node-role": json.dumps(CREDS),
            "/latest/dynamic/instance-identity/document": json.dumps(
                {"instanceId": INSTANCE, "region": REGION, "pendingTime": launched}),
            "/latest/meta-data/autoscaling/target-lifecycle-state": self.server.target_state,
        }
        if self.server.asg:
            data["/latest/meta-data/tags/instance/aws:autoscaling:groupName"] = self.server.asg
        faults = self.server.faults.get(self.path)
        fault = faults.pop(0) if faults else None
        if fault == "trickle":  # an answer that arrives one byte at a time, never faster than a timeout
            body = data[self.path].encode().ljust(400)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for i in range(len(body)):
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
                time.sleep(0.5)
            return
        if fault is not None:
            return self._reply(fault, b"standin fault")
        if self.path in data:
            return self._reply(200, data[self.path].encode())
        self._reply(404)


def botocore_signature(method, url, headers, body, service, s3=False) -> str:
    """The signature botocore computes for this request at its x-amz-date."""
    signed = headers.get("Authorization", headers.get("authorization", "")).split("SignedHeaders=")[1].split(",")[0]
    names = set(signed.split(";")) - {"host"}
    req = AWSRequest(method=method, url=url, data=body,
                     headers={k: v for k, v in headers.items() if k.lower() in names})
    req.context["timestamp"] = headers["x-amz-date"] if "x-amz-date" in headers else headers["X-Amz-Date"]
    cls = S3SigV4Auth if s3 else SigV4Auth
    auth = cls(Credentials(CREDS["AccessKeyId"], CREDS["SecretAccessKey"], CREDS["Token"]), service, REGION)
    canonical = auth.canonical_request(req)
    return auth.signature(auth.string_to_sign(req, canonical), req)


class AutoScalingHandler(BaseHTTPRequestHandler):
    """Stand-in for Auto Scaling's CompleteLifecycleAction (moto lacks it): records, validates, verifies."""

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        params = dict(urllib.parse.parse_qsl(body.decode()))
        headers = {k.lower(): v for k, v in self.headers.items()}
        sent = headers["authorization"].rsplit("Signature=", 1)[1]
        url = f"http://{self.headers['Host']}{self.path}"
        signed = botocore_signature("POST", url, headers, body, "autoscaling") == sent
        op = botocore.session.get_session().get_service_model("autoscaling").operation_model(params.get("Action", ""))
        missing = [m for m in op.input_shape.required_members if m not in params]
        self.server.calls.append({"params": params, "signed": signed, "missing": missing,
                                  "version_ok": params.get("Version") == op.service_model.api_version,
                                  "scope_ok": f"/{REGION}/autoscaling/aws4_request" in headers["authorization"]})
        status = 200 if signed and not missing else 400
        out = (b"<CompleteLifecycleActionResponse><ResponseMetadata><RequestId>standin</RequestId>"
               b"</ResponseMetadata></CompleteLifecycleActionResponse>")
        answer = self.server.answers.pop(0) if self.server.answers else "ok"
        if answer == "lost":  # applied, but the answer never reaches the instance
            self.server.pending = False
            self.close_connection = True
            return
        if answer == "ok" and not self.server.pending:
            answer = "no action"  # completed before (or never waiting): what Auto Scaling answers
        if answer == "no action":
            status = 400
            out = (b"<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code><Message>No active "
                   b"Lifecycle Action found with instance ID " + INSTANCE.encode() + b"</Message></Error>"
                   b"<RequestId>standin</RequestId></ErrorResponse>")
        elif status == 200:
            self.server.pending = False
        self.send_response(status)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


CHEF_STANDIN = """#!/bin/sh
# STAND-IN for chef-solo (tests only): records its arguments and the files it was given.
# It tests the boot flow, not Chef.
rec="$FLEET_TEST_RECORD"
mkdir -p "$rec"
printf '%s\\n' "$@" > "$rec/argv"
printf '%s\\n' "$CHEF_LICENSE" > "$rec/license"
cp "$2" "$rec/solo.rb"
cp "$4" "$rec/node.json"
bundle=$(sed -n 's/^cookbook_path "\\(.*\\)\\/cookbooks"$/\\1/p' "$2")
(cd "$bundle" && find . -type f | sort) > "$rec/bundle-files"
echo "standin chef-solo run"
case "$FLEET_TEST_CHEF_MODE" in
  hang)  # a converge that never ends, with a child of its own
    sleep 1000 & echo $! > "$rec/child"; wait ;;
  loud)  # 100 MB of output, then the line that says why it failed
    yes "standin chef-solo: a long line of resource output, again and again and again" | head -c 100000000
    echo; echo "standin chef-solo: the last line" ;;
esac
exit "${FLEET_TEST_CHEF_EXIT:-0}"
"""


# -- fixtures ----------------------------------------------------------------------------------------

@pytest.fixture
def imds():
    server = _Server(ImdsHandler)
    server.httpd.asg = ASG_NAME
    server.httpd.launched = time.time()  # the identity document's pendingTime: launched just now
    server.httpd.target_state = "InService"
    server.httpd.faults = {}  # path -> [HTTP status | "trickle", ...], one per GET
    yield server
    server.close()


@pytest.fixture
def autoscaling():
    server = _Server(AutoScalingHandler)
    server.httpd.answers = []  # "ok" | "lost" | "no action", one per call
    server.httpd.pending = True  # a lifecycle action waits for this instance
    yield server
    server.close()


@pytest.fixture
def bundle():
    return build_bundle(project_groups("staging")["api"], ROOT)


@pytest.fixture
def s3(aws, bundle):
    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket="fleet-artifacts")
    return client


@pytest.fixture
def machine(tmp_path, aws, imds, autoscaling, bundle):
    """Run the boot program like cloud-init's runcmd would, against the local stand-ins."""
    bin_dir = tmp_path / "standin-bin"
    bin_dir.mkdir()
    chef = bin_dir / "chef-solo"
    chef.write_text(CHEF_STANDIN)
    chef.chmod(0o755)
    root = tmp_path / "var-lib-fleet"
    record = tmp_path / "chef-record"

    def boot(*, chef_exit=0, with_chef=True, config_text=None, wrap=(), timeout=60, **overrides):
        """The program and its config exactly as the rendered user data writes them (plus a local root),
        run by the user data's own runcmd (cloud-init decodes `encoding: b64` files the same way)."""
        text = render_user_data(project_groups("staging")["api"], "staging", "staging",
                                BootArtifacts("fleet-artifacts", bundle.key, bundle.sha256))
        cloud = yaml.safe_load(text)
        (runcmd,) = cloud["runcmd"]
        assert runcmd[:2] == ["python3", "-c"] and runcmd[3:] == [BOOT_PATH, BOOT_CONFIG]
        files = {f["path"]: f for f in cloud["write_files"]}
        assert files[BOOT_PATH]["encoding"] == "b64"
        (tmp_path / "fleet-boot.py.bz2").write_bytes(base64.b64decode(files[BOOT_PATH]["content"]))
        cfg = {**json.loads(files[BOOT_CONFIG]["content"]), "root": str(root), "retry_delay": 0.01, **overrides}
        (tmp_path / "boot.json").write_text(config_text if config_text is not None else json.dumps(cfg))
        extra = os.environ.get("FLEET_TEST_EXTRA_PATH")
        env = {"PATH": (f"{bin_dir}:" if with_chef else "") + (f"{extra}:" if extra else "") + "/usr/bin:/bin",
               "FLEET_TEST_CHEF": os.environ.get("FLEET_TEST_CHEF", ""),
               "FLEET_TEST_INSTALL": os.environ.get("FLEET_TEST_INSTALL", ""),
               "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url, "AWS_ENDPOINT_URL_S3": aws,
               "AWS_ENDPOINT_URL_AUTO_SCALING": autoscaling.url, "FLEET_TEST_RECORD": str(record),
               "FLEET_TEST_CHEF_EXIT": str(chef_exit),
               "FLEET_TEST_CHEF_MODE": os.environ.get("FLEET_TEST_CHEF_MODE", "")}
        cmd = [*wrap, sys.executable, "-c", runcmd[2], str(tmp_path / "fleet-boot.py.bz2"), str(tmp_path / "boot.json")]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)

    boot.root, boot.record = root, record
    return boot


def _results(autoscaling):
    return [c["params"]["LifecycleActionResult"] for c in autoscaling.calls]


def _nothing_half_done(root: Path):
    assert not (root / "ready").exists() and not (root / "ready.tmp").exists()
    assert not (root / "bundle").exists() and not (root / "work").exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".unpack-")]


# -- tests -------------------------------------------------------------------------------------------

def test_moto_lacks_complete_lifecycle_action(aws):
    """Why Auto Scaling's side is a stand-in: moto answers CompleteLifecycleAction with an error."""
    from botocore.config import Config
    from botocore.exceptions import ClientError
    from botocore.parsers import ResponseParserError

    client = boto3.client("autoscaling", region_name=REGION, config=Config(retries={"total_max_attempts": 1}))
    with pytest.raises((ClientError, ResponseParserError)):
        client.complete_lifecycle_action(LifecycleHookName="h", AutoScalingGroupName="g",
                                         LifecycleActionResult="CONTINUE", InstanceId=INSTANCE)


def test_success_converges_marks_ready_and_continues(machine, s3, bundle, autoscaling, imds):
    s3.put_object(Bucket="fleet-artifacts", Key=bundle.key, Body=bundle.data)
    proc = machine()
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"fleet-boot: ready: group api bundle {bundle.sha256}"]
    ready = json.loads((machine.root / "ready").read_text())
    assert ready["bundle"] == bundle.sha256
    (call,) = autoscaling.calls
    assert call["params"] == {"Action": "CompleteLifecycleAction", "Version": "2011-01-01",
                              "AutoScalingGroupName": ASG_NAME, "LifecycleHookName": "fleet-launch",
                              "InstanceId": INSTANCE, "LifecycleActionResult": "CONTINUE"}
    assert call["signed"] and not call["missing"] and call["version_ok"] and call["scope_ok"]
    argv = (machine.record / "argv").read_text().split()
    assert argv[0] == "--config" and argv[2] == "--json-attributes" and argv[4] == "--no-color"
    assert json.loads((machine.record / "node.json").read_text())["run_list"] == ["role[role-api]"]
    solo = (machine.record / "solo.rb").read_text()
    bundle_dir = machine.root / "bundle"
    for key, sub in (("cookbook_path", "cookbooks"), ("role_path", "roles"), ("data_bag_path", "data_bags")):
        assert f'{key} "{bundle_dir / sub}"' in solo
    files = (machine.record / "bundle-files").read_text().split()
    assert "./roles/role-api.json" in files and "./cookbooks/seatgeek-service/recipes/api.rb" in files
    assert "./data_bags/services/cronq.json" in files  # seatgeek-service's cronq recipe reads it
    assert (machine.record / "license").read_text().strip() == "accept-silent"
    assert all(p.startswith("/latest/") for p in imds.calls)  # every GET carried the IMDSv2 session


@pytest.mark.parametrize("case", ["corrupted bundle", "failing chef", "missing bundle", "no chef"])
def test_failures_abandon_with_one_line_and_nothing_half_done(machine, s3, bundle, autoscaling, case):
    if case == "corrupted bundle":
        mid = len(bundle.data) // 2  # one flipped byte
        s3.put_object(Bucket="fleet-artifacts", Key=bundle.key,
                      Body=bundle.data[:mid] + bytes([bundle.data[mid] ^ 0xFF]) + bundle.data[mid + 1:])
    elif case != "missing bundle":
        s3.put_object(Bucket="fleet-artifacts", Key=bundle.key, Body=bundle.data)
    proc = machine(chef_exit=1 if case == "failing chef" else 0, with_chef=case != "no chef")
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("fleet-boot: FAILED: ")
    expected = {"corrupted bundle": "does not match the expected", "failing chef": "chef-solo failed (exit 1)",
                "missing bundle": "HTTP 404", "no chef": "chef-solo is not in the image"}[case]
    assert expected in line
    assert _results(autoscaling) == ["ABANDON"] and autoscaling.calls[0]["signed"]
    _nothing_half_done(machine.root)
    assert (machine.record / "argv").exists() == (case == "failing chef"), "chef runs only on a verified bundle"


def test_one_off_instance_runs_without_a_hook(machine, s3, bundle, autoscaling, imds):
    imds.httpd.asg = None
    s3.put_object(Bucket="fleet-artifacts", Key=bundle.key, Body=bundle.data)
    proc = machine(hook=None)
    assert proc.returncode == 0, proc.stderr
    assert (machine.root / "ready").exists() and autoscaling.calls == []


def test_signatures_match_botocore():
    """The program's SigV4 against botocore's, for both calls it makes (moto does not check signatures)."""
    import datetime

    now = datetime.datetime(2026, 11, 30, 1, 2, 3, tzinfo=datetime.UTC)
    url = "https://autoscaling.us-east-1.amazonaws.com/"
    body = b"Action=CompleteLifecycleAction&Version=2011-01-01&InstanceId=i-1"
    headers = fleet_boot.sign("POST", url, REGION, "autoscaling", CREDS, body,
                              {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}, now=now)
    sent = headers["Authorization"].rsplit("Signature=", 1)[1]
    assert sent == botocore_signature("POST", url, headers, body, "autoscaling")
    url = "https://s3.us-east-1.amazonaws.com/fleet-artifacts/bundles/" + "a" * 64 + ".tar.gz"
    headers = fleet_boot.sign("GET", url, REGION, "s3", CREDS, now=now)
    sent = headers["Authorization"].rsplit("Signature=", 1)[1]
    assert sent == botocore_signature("GET", url, headers, b"", "s3", s3=True)
    assert hashlib.sha256(b"").hexdigest() == headers["x-amz-content-sha256"]


# -- user data: cloud-init's own schema check, and the size limit --------------------------------

def test_user_data_is_under_16_kb_for_200_generated_groups():
    assert max(worst_case_sizes()) < USER_DATA_LIMIT, max(worst_case_sizes())


CLOUD_INIT_SCHEMA = Path(os.environ.get("FLEET_CLOUD_INIT_SCHEMA", ROOT / ".venv" / "cloud-init-schema.json"))


def cloud_config_errors(text: str) -> list[str]:
    """What `cloud-init schema -c` says of a user data text, with cloud-init's own schema (Debian's
    package, unpacked by `make test` without installing it): the `#cloud-config` header, YAML, and
    every schema violation."""
    import jsonschema
    import yaml

    if not text.startswith("#cloud-config\n"):
        return ["no #cloud-config header"]
    schema = json.loads(CLOUD_INIT_SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(yaml.safe_load(text))]


def test_user_data_passes_cloud_init_schema():
    """cloud-init's own schema checks it (no skipping: a missing schema fails here)."""
    assert CLOUD_INIT_SCHEMA.is_file(), f"{CLOUD_INIT_SCHEMA} missing: `make test` (or `make {CLOUD_INIT_SCHEMA}`)"
    groups = project_groups("staging")
    texts = {
        "api": render_user_data(groups["api"], "staging", "staging",
                                BootArtifacts("b", "bundles/" + "a" * 64 + ".tar.gz", "a" * 64)),
        "cron": render_user_data(groups["12_04-cron"], "staging", "staging",
                                 BootArtifacts("b", "bundles/" + "b" * 64 + ".tar.gz", "b" * 64)),
        "baked": render_user_data(groups["12_04-bee"], "staging", "staging"),
        "generated": render_user_data(generated(199), "p", "e", BootArtifacts("b", "k", "c" * 64, "p.deb", "d" * 64)),
        "broken (must fail)": "#cloud-config\nwrite_files: 5\n",
    }
    for name, text in texts.items():
        errors = cloud_config_errors(text)
        assert (not errors) == (name != "broken (must fail)"), (name, errors)


DPKG_STANDIN = """#!/bin/sh
# STAND-IN for dpkg (tests only): "installs" the package by putting the chef-solo stand-in on PATH.
printf '%s\\n' "$@" > "$FLEET_TEST_RECORD.dpkg"
cp "$FLEET_TEST_CHEF" "$FLEET_TEST_INSTALL/chef-solo"
"""


@pytest.mark.parametrize("intact", [True, False])
def test_chef_package_from_the_bucket_when_the_image_has_no_chef(tmp_path, machine, s3, bundle, autoscaling,
                                                                 monkeypatch, intact):
    """`boot.chef_package`: fetched from the stack's bucket, sha256 checked, installed (stand-in dpkg)."""
    package = b"chef package bytes"
    sha = hashlib.sha256(package).hexdigest()
    key = f"packages/{sha}/cinc_18_amd64.deb"
    s3.put_object(Bucket="fleet-artifacts", Key=bundle.key, Body=bundle.data)
    s3.put_object(Bucket="fleet-artifacts", Key=key, Body=package if intact else package + b"!")
    tools, installed = tmp_path / "tools", tmp_path / "installed"
    tools.mkdir()
    installed.mkdir()
    (tools / "dpkg").write_text(DPKG_STANDIN)
    (tools / "dpkg").chmod(0o755)
    monkeypatch.setenv("FLEET_TEST_EXTRA_PATH", f"{tools}:{installed}")
    monkeypatch.setenv("FLEET_TEST_CHEF", str(tmp_path / "standin-bin" / "chef-solo"))
    monkeypatch.setenv("FLEET_TEST_INSTALL", str(installed))
    proc = machine(with_chef=False, chef_package={"key": key, "sha256": sha})
    if intact:
        assert proc.returncode == 0, proc.stderr
        assert (machine.root / "ready").exists() and _results(autoscaling) == ["CONTINUE"]
        argv = Path(str(machine.record) + ".dpkg").read_text().split()
        assert argv[0] == "-i" and argv[1].endswith("/cinc_18_amd64.deb")
    else:
        assert proc.returncode == 1 and "does not match the expected" in proc.stderr
        assert not (installed / "chef-solo").exists() and _results(autoscaling) == ["ABANDON"]
        _nothing_half_done(machine.root)


def test_hook_without_a_group_tag_fails_clearly(machine, s3, bundle, autoscaling, imds):
    """An ASG instance whose IMDS has no aws:autoscaling:groupName tag cannot complete its hook: it says so,
    leaves no marker, and the hook's timeout abandons it."""
    imds.httpd.asg = None
    s3.put_object(Bucket="fleet-artifacts", Key=bundle.key, Body=bundle.data)
    proc = machine()
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == (
        "fleet-boot: FAILED: no aws:autoscaling:groupName tag in IMDS: cannot complete the lifecycle hook")
    assert autoscaling.calls == []
    _nothing_half_done(machine.root)


class DenyHandler(BaseHTTPRequestHandler):
    """Answers every request 403, as S3 does for a missing key when the role lacks s3:ListBucket."""

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.server.calls.append(self.path)
        self.send_response(403)
        self.send_header("Content-Length", "13")
        self.end_headers()
        self.wfile.write(b"AccessDenied.")


def test_s3_403_is_retried_then_reported_with_its_likely_cause():
    server = _Server(DenyHandler)
    try:
        with pytest.raises(fleet_boot.BootError) as err:
            fleet_boot.call("GET", server.url + "/b/bundles/x.tar.gz", REGION, "s3", CREDS, delay=0.001)
    finally:
        server.close()
    assert len(server.calls) == fleet_boot.RETRIES  # a new role's policy may still be propagating
    assert "HTTP 403 (a missing object reads as 403 without s3:ListBucket)" in str(err.value)


# -- bounded and truthful: the deadline, Auto Scaling's answers, memory and disk ----------------------

def _one_failed_line(proc) -> str:
    (line,) = [ln for ln in proc.stderr.splitlines() if "FAILED" in ln]
    assert proc.stderr.count("\n") == 1 or not proc.stderr.strip().splitlines()[0].startswith("Traceback")
    assert line.startswith("fleet-boot: FAILED: ")
    return line


def test_a_hanging_chef_is_stopped_at_the_deadline_and_abandoned(machine, s3, bundle, autoscaling, monkeypatch):
    """chef-solo that never ends: the run ends at the heartbeat's deadline, chef's whole process group
    is stopped, and the hook is abandoned with the reason."""
    s3.put_object(Bucket="fleet-artifacts", Key=bundle.key, Body=bundle.data)
    monkeypatch.setenv("FLEET_TEST_CHEF_MODE", "hang")
    started = time.monotonic()
    proc = machine(heartbeat=6, timeout=30)
    took = time.monotonic() - started
    assert proc.returncode == 1 and took < 12, (took, proc.stderr)
    line = _one_failed_line(proc)
    assert "out of time during chef-solo" in line and "6 s heartbeat" in line
    assert _results(autoscaling) == ["ABANDON"]
    child = int((machine.record / "child").read_text())
    time.sleep(0.2)
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]
    _nothing_half_done(machine.root)


def test_a_trickling_metadata_answer_cannot_outlast_the_deadline(machine, s3, bundle, imds, autoscaling):
    """An IMDS answer that arrives a byte every half second (200 s in all) stops at the deadline."""
    s3.put_object(Bucket="fleet-artifacts", Key=bundle.key, Body=bundle.data)
    imds.httpd.faults = {"/latest/meta-data/placement/region": ["trickle"] * 10}
    started = time.monotonic()
    proc = machine(heartbeat=8, timeout=60)
    took = time.monotonic() - started
    assert proc.returncode == 1 and took < 14, (took, proc.stderr)
    assert "out of time during reading instance metadata" in _one_failed_line(proc)
    assert not (machine.record / "argv").exists()


def test_the_deadline_counts_from_the_launch(machine, s3, bundle, imds, autoscaling):
    """The heartbeat started at launch (the identity document's pendingTime): an instance whose
    heartbeat is already spent does not start chef, it abandons at once and says why."""
    s3.put_object(Bucket="fleet-artifacts", Key=bundle.key, Body=bundle.data)
    imds.httpd.launched = time.time() - 600
    proc = machine(heartbeat=390)
    assert proc.returncode == 1
    assert "390 s heartbeat since the launch ran out" in _one_failed_line(proc)
    assert not (machine.record / "argv").exists() and _results(autoscaling) == ["ABANDON"]


def test_continue_applied_but_its_answer_lost_is_success(machine, s3, bundle, autoscaling):
    """Auto Scaling applied CONTINUE but the answer was lost: the retry hears "No active Lifecycle
    Action", which here means done. The instance is InService: ready, marker kept, no ABANDON."""
    s3.put_object(Bucket="fleet-artifacts", Key=bundle.key, Body=bundle.data)
    autoscaling.httpd.answers = ["lost"]
    proc = machine()
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == ("fleet-boot: nothing to CONTINUE: an earlier attempt's answer was lost, so it was "
                        "already recorded (target lifecycle state: InService)")
    assert lines[1].startswith("fleet-boot: ready: ")
    assert _results(autoscaling) == ["CONTINUE", "CONTINUE"] and (machine.root / "ready").exists()


def test_no_hook_waiting_is_nothing_to_complete(machine, s3, bundle, autoscaling):
    """Converge turned on for a group whose hook is not (yet) there: nothing to complete, not a failure."""
    s3.put_object(Bucket="fleet-artifacts", Key=bundle.key, Body=bundle.data)
    autoscaling.httpd.pending = False
    proc = machine()
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[0] == ("fleet-boot: nothing to CONTINUE: no launching hook is waiting for "
                                           "this instance (target lifecycle state: InService)")
    assert _results(autoscaling) == ["CONTINUE"] and (machine.root / "ready").exists()


def test_no_action_while_auto_scaling_terminates_the_instance_is_a_failure(machine, s3, bundle, imds, autoscaling):
    """The hook timed out (ABANDON by default): never claim ready for an instance on its way out."""
    s3.put_object(Bucket="fleet-artifacts", Key=bundle.key, Body=bundle.data)
    autoscaling.httpd.pending = False
    imds.httpd.target_state = "Terminated"
    proc = machine()
    assert proc.returncode == 1
    assert "Auto Scaling is terminating this instance" in _one_failed_line(proc)
    _nothing_half_done(machine.root)


def test_transient_metadata_errors_are_retried(machine, s3, bundle, imds, autoscaling):
    """One IMDS 500 (and an expired session's 401) on the way: retried, the instance still converges."""
    s3.put_object(Bucket="fleet-artifacts", Key=bundle.key, Body=bundle.data)
    imds.httpd.faults = {"/latest/meta-data/tags/instance/aws:autoscaling:groupName": [500],
                         "/latest/meta-data/instance-id": [401, 503]}
    proc = machine()
    assert proc.returncode == 0, proc.stderr
    assert _results(autoscaling) == ["CONTINUE"]


def test_chef_output_is_streamed_not_read_whole(tmp_path, machine, s3, bundle, autoscaling, monkeypatch):
    """100 MB of chef output: the program's memory stays small and the last line is the reason."""
    s3.put_object(Bucket="fleet-artifacts", Key=bundle.key, Body=bundle.data)
    monkeypatch.setenv("FLEET_TEST_CHEF_MODE", "loud")
    measure = ("import resource,subprocess,sys; subprocess.run(sys.argv[1:]); "
               "sys.stdout.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))")
    proc = machine(chef_exit=1, wrap=(sys.executable, "-c", measure), timeout=120)
    max_rss_kib = int(proc.stdout)
    assert "chef-solo failed (exit 1): standin chef-solo: the last line" in _one_failed_line(proc)
    assert max_rss_kib < 60 * 1024, f"{max_rss_kib} KiB"
    assert (machine.root / "chef.log").stat().st_size > 100_000_000


def _tar_gz(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue())


def _bomb() -> bytes:
    """About 1 MB of gzip that unpacks to a 1 GiB file: gzip members of 1 MiB of zeros, concatenated."""
    info = tarfile.TarInfo("cookbooks/x/files/big")
    info.size = 1 << 30
    zeros = gzip.compress(bytes(1 << 20))
    return gzip.compress(info.tobuf()) + zeros * 1024 + gzip.compress(bytes(1024))


def _many() -> bytes:
    members = []
    for i in range(10001):
        info = tarfile.TarInfo(f"cookbooks/x/files/f{i}")
        members.append((info, b""))
    return _tar_gz(members)


@pytest.mark.parametrize("case", ["1 GiB from 1 MB", "10,001 members", "not a tar", "a symlink"])
def test_bundle_extraction_is_capped_and_every_failure_one_line(machine, s3, autoscaling, case):
    link = tarfile.TarInfo("cookbooks/x/link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
    data = {"1 GiB from 1 MB": _bomb, "10,001 members": _many, "not a tar": lambda: b"<html>not a tar</html>",
            "a symlink": lambda: _tar_gz([(link, b"")])}[case]()
    sha = hashlib.sha256(data).hexdigest()
    s3.put_object(Bucket="fleet-artifacts", Key=f"bundles/{sha}.tar.gz", Body=data)
    proc = machine(bundle={"key": f"bundles/{sha}.tar.gz", "sha256": sha})
    assert proc.returncode == 1
    line = _one_failed_line(proc)
    assert proc.stderr.strip().splitlines() == [line]
    expected = {"1 GiB from 1 MB": "unpacks to more than 134217728 bytes",
                "10,001 members": "has more than 10000 members", "not a tar": "cannot unpack the bundle",
                "a symlink": "'cookbooks/x/link' is not a plain relative file"}[case]
    assert expected in line
    assert _results(autoscaling) == ["ABANDON"]
    _nothing_half_done(machine.root)
    assert sum(p.stat().st_size for p in machine.root.rglob("*") if p.is_file()) < 1 << 20


@pytest.mark.parametrize("text, expected", [
    ("{not json", "cannot read the boot config"),
    ("[1, 2]", "the boot config is not a JSON object"),
    (json.dumps({"bucket": "b", "role": "r", "hook": None}), "bundle must be an object"),
    (json.dumps({"bucket": "b", "role": "r", "bundle": {"key": "k", "sha256": "a" * 64}, "heartbeat": "600"}),
     'heartbeat must be seconds (at most 7200) or null, not "600"'),
])
def test_a_malformed_boot_config_is_one_line(machine, text, expected):
    proc = machine(config_text=text)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [_one_failed_line(proc)]
    assert expected in proc.stderr


def test_bz2_output_is_pinned():
    """User data must be the same bytes on every deploy machine (else every deploy from another machine
    is a new launch template version): libbzip2's output for a fixed input, pinned."""
    import bz2

    data = b"".join(f"line {i}: fleet-boot golden input for libbzip2\n".encode() for i in range(2000))
    packed = bz2.compress(data, 9)
    assert (len(packed), hashlib.sha256(packed).hexdigest()) == (
        2620, "7cc6f6ed037954465a28b0da43f86eff59103a4d61c3f59e94a7f4b0911529cf")
