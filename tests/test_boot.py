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

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
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

from fleet.render.bundle import build_bundle
from fleet.render.userdata import BOOT_CONFIG, BOOT_PATH, USER_DATA_LIMIT, BootArtifacts, render_user_data
from fleet.spec.model import build_group
from fleet.spec.names import MAX_GROUP_NAME
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
        data = {
            "/latest/meta-data/placement/region": REGION,
            "/latest/meta-data/services/domain": "amazonaws.com",
            "/latest/meta-data/instance-id": INSTANCE,
            "/latest/meta-data/iam/security-credentials/": "fleet-node-role",
            "/latest/meta-data/iam/security-credentials/fleet-node-role": json.dumps(CREDS),
        }
        if self.server.asg:
            data["/latest/meta-data/tags/instance/aws:autoscaling:groupName"] = self.server.asg
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
exit "${FLEET_TEST_CHEF_EXIT:-0}"
"""


# -- fixtures ----------------------------------------------------------------------------------------

@pytest.fixture
def imds():
    server = _Server(ImdsHandler)
    server.httpd.asg = ASG_NAME
    yield server
    server.close()


@pytest.fixture
def autoscaling():
    server = _Server(AutoScalingHandler)
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

    def boot(*, chef_exit=0, with_chef=True, **overrides):
        """The program and its config exactly as the rendered user data writes them (plus a local root)."""
        text = render_user_data(project_groups("staging")["api"], "staging", "staging",
                                BootArtifacts("fleet-artifacts", bundle.key, bundle.sha256))
        cloud = yaml.safe_load(text)
        assert cloud["runcmd"] == [["python3", BOOT_PATH, BOOT_CONFIG]]
        files = {f["path"]: f["content"] for f in cloud["write_files"]}
        (tmp_path / "fleet-boot").write_text(files[BOOT_PATH])
        cfg = {**json.loads(files[BOOT_CONFIG]), "root": str(root), "retry_delay": 0.01, **overrides}
        (tmp_path / "boot.json").write_text(json.dumps(cfg))
        extra = os.environ.get("FLEET_TEST_EXTRA_PATH")
        env = {"PATH": (f"{bin_dir}:" if with_chef else "") + (f"{extra}:" if extra else "") + "/usr/bin:/bin",
               "FLEET_TEST_CHEF": os.environ.get("FLEET_TEST_CHEF", ""),
               "FLEET_TEST_INSTALL": os.environ.get("FLEET_TEST_INSTALL", ""),
               "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url, "AWS_ENDPOINT_URL_S3": aws,
               "AWS_ENDPOINT_URL_AUTO_SCALING": autoscaling.url, "FLEET_TEST_RECORD": str(record),
               "FLEET_TEST_CHEF_EXIT": str(chef_exit)}
        return subprocess.run([sys.executable, str(tmp_path / "fleet-boot"), str(tmp_path / "boot.json")], env=env,
                              capture_output=True, text=True, timeout=60)

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

def _generated(i: int):
    """A converging group with names and lists as long as nodes.yaml allows."""
    name = f"g{i:03d}-" + "x" * (MAX_GROUP_NAME - 5)
    return build_group(name, {
        "instance_type": "m5.large", "source_ami": "ami-0123456789abcdef0", "image": {"builder": "ami"},
        "run_list": [f"recipe[cookbook-{j}::recipe-{j}]" for j in range(20)],
        "autoscale": {"node_min": 1, "node_max": 4, "timeout": 600},
        "http": {"port": 8080, "hosts": ["a.example.com"]}})


def test_user_data_is_under_16_kb_for_200_generated_groups():
    bucket = "fleet-" + "p" * 20 + "-artifacts-" + "0" * 26  # the longest bucket_prefix + suffix: 63
    sizes = []
    for i in range(200):
        sha = hashlib.sha256(str(i).encode()).hexdigest()
        files = BootArtifacts(bucket, f"bundles/{sha}.tar.gz", sha, f"packages/{sha}/{'c' * 100}.deb", sha)
        sizes.append(len(render_user_data(_generated(i), "p" * 20, "e" * 40, files).encode()))
    assert max(sizes) < USER_DATA_LIMIT, max(sizes)


def test_user_data_passes_cloud_init_schema(tmp_path):
    """Debian's cloud-init checks it (`make tools` installs it; no skipping: a missing tool fails here)."""
    assert shutil.which("cloud-init"), "install Debian's cloud-init: make tools"
    groups = project_groups("staging")
    texts = {
        "api": render_user_data(groups["api"], "staging", "staging",
                                BootArtifacts("b", "bundles/" + "a" * 64 + ".tar.gz", "a" * 64)),
        "cron": render_user_data(groups["12_04-cron"], "staging", "staging",
                                 BootArtifacts("b", "bundles/" + "b" * 64 + ".tar.gz", "b" * 64)),
        "baked": render_user_data(groups["12_04-bee"], "staging", "staging"),
        "generated": render_user_data(_generated(199), "p", "e", BootArtifacts("b", "k", "c" * 64, "p.deb", "d" * 64)),
        "broken (must fail)": "#cloud-config\nwrite_files: 5\n",
    }
    for name, text in texts.items():
        path = tmp_path / "user-data"
        path.write_text(text)
        proc = subprocess.run(["cloud-init", "schema", "-c", str(path)], capture_output=True, text=True)
        assert (proc.returncode == 0) == (name != "broken (must fail)"), name + proc.stdout + proc.stderr


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
