#!/usr/bin/env python3
"""fleet-boot: make this instance its group's node, then let Auto Scaling put it in service.

Runs once at first boot from user data (Python 3.8+ standard library only: every image the README
supports has it; nothing to install, nothing fetched but this stack's own bundle, so no mirror or
GitHub outage can stop a boot).

1. IMDSv2 token; region, partition domain, instance id, the instance role's credentials, the launch
   time (the identity document's pendingTime) and, with a hook, the Auto Scaling group's name (the
   instance's `aws:autoscaling:groupName` tag in IMDS).
2. GET the cookbook bundle `s3://<bucket>/bundles/<sha256>.tar.gz` (SigV4, the instance role), streamed
   to disk and its sha256 checked; unpack it (at most MAX_BUNDLE_MEMBERS members and MAX_BUNDLE_BYTES
   unpacked, checked while reading, so a compressed bomb stops at the limit) into a fresh directory
   that is renamed into place only when complete.
3. chef-solo from the image, else the stack's copy of `boot.chef_package` (sha256 checked, dpkg/rpm).
4. chef-solo with the group's role (`role[role-<group>]`), cookbooks, roles and data bags from the
   bundle; its output goes to chef.log, of which only the last line is read back.
5. Readiness marker (written to a temporary name, then renamed).
6. With a launching lifecycle hook: CompleteLifecycleAction CONTINUE, or ABANDON on any failure, so
   the instance enters its target group only once converged. One-off instances skip this.

Time: one deadline for the whole run. With a hook it is the hook's heartbeat (`heartbeat` in
boot.json, the same number the hook is given) counted from the launch, less RESERVE kept for the
ABANDON; without one, NO_HOOK_BUDGET. Every step gets what is left (request timeouts, retries and
their pauses, chef-solo's run), and SIGALRM at the deadline stops whatever still runs (an answer that
trickles in byte by byte); chef-solo's whole process group is stopped. Running out is a failure
like any other: ABANDON, and the reason says which step ran out.

Auto Scaling's answers: "No active Lifecycle Action" means there is nothing to complete (the group has
no launching hook, or an earlier attempt whose answer was lost already did it): the program says so
and reads the instance's target lifecycle state from IMDS, so it never reports ready for an instance
Auto Scaling is terminating. Throttling, 5xx and lost connections are retried (IMDS too).

Local mode (`local_dir` in the config), the image bake: Packer uploads the same bundle (and chef
package), this program and its config into `local_dir`; steps 2-5 read the files from there. No IMDS,
no S3, no hook.

On failure: one line `fleet-boot: FAILED: <why>` on stderr (and in the log), no marker, no unpacked
bundle, exit 1. Endpoints follow the AWS SDK variables (AWS_EC2_METADATA_SERVICE_ENDPOINT,
AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_AUTO_SCALING, AWS_ENDPOINT_URL) so tests run it for real
against local stand-ins.
"""

import datetime
import gzip
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

IMDS_TTL = "21600"
SESSION_HEADER = "X-aws-ec2-metadata-token"
RETRIES = 5
RESERVE = 20  # seconds of the heartbeat kept for stopping chef and sending ABANDON (at most a tenth of it)
NO_HOOK_BUDGET = 3600  # the bound of a run without a launching hook (one-off instances)
GRACE = 1.0  # the alarm fires this long after the deadline: the steps' own bounds come first
MAX_DOWNLOAD = 512 << 20  # bytes of one object (bundle, chef package)
MAX_ANSWER = 1 << 20  # bytes of an IMDS or API answer
MAX_BUNDLE_BYTES = 128 << 20  # the bundle unpacked (tar stream, headers included)
MAX_BUNDLE_MEMBERS = 10000
NO_ACTION = "No active Lifecycle Action"
CHUNK = 1 << 16


class BootError(Exception):
    pass


class OutOfTime(BootError):
    pass


class ApiError(BootError):
    def __init__(self, message, detail, attempt):
        super().__init__(message)
        self.detail, self.attempt = detail, attempt


def log(line):
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def one_line(text):
    text = " ".join(str(text).split())
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)[:600]


class Deadline:
    """The run's one time bound. Steps ask `bound(t)` for their own timeouts; SIGALRM stops what is
    still running GRACE seconds past it."""

    def __init__(self, seconds, why):
        self.at, self.why, self.step, self.armed = time.monotonic() + seconds, why, "starting", False

    def left(self):
        return self.at - time.monotonic()

    def bound(self, seconds):
        left = self.left()
        if left <= 0:
            raise self.expired()
        return min(seconds, left)

    def expired(self):
        return OutOfTime(f"out of time during {self.step}: {self.why} ran out")

    def tighten(self, seconds, why):
        if seconds < self.left():
            self.at, self.why = time.monotonic() + seconds, why
        if self.armed:
            self.arm()

    def arm(self):
        signal.signal(signal.SIGALRM, self._alarm)
        self.armed = True
        signal.setitimer(signal.ITIMER_REAL, max(0.01, self.left() + GRACE))

    def disarm(self):
        self.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)

    def _alarm(self, signum, frame):
        if self.armed:
            self.armed = False
            raise self.expired()


def pause(seconds, deadline):
    time.sleep(deadline.bound(seconds))


def _open(req, timeout, deadline, dest=None):
    """The answer's body (or, with `dest`, its sha256 after writing it there), read in chunks: the
    whole answer must arrive within `timeout` (and the deadline), however slowly it trickles."""
    until = time.monotonic() + deadline.bound(timeout)
    limit = MAX_DOWNLOAD if dest else MAX_ANSWER
    with urllib.request.urlopen(req, timeout=until - time.monotonic()) as resp:
        if int(resp.headers.get("Content-Length") or 0) > limit:
            raise BootError(f"{req.full_url}: answer of {resp.headers['Content-Length']} bytes, over {limit}")
        digest, parts, size = hashlib.sha256(), [], 0
        out = open(dest, "wb") if dest else None
        try:
            while True:
                if time.monotonic() > until:
                    raise TimeoutError(f"answer not complete within {timeout:g} s")
                chunk = resp.read1(CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise BootError(f"{req.full_url}: answer over {limit} bytes")
                digest.update(chunk)
                if out:
                    out.write(chunk)
                else:
                    parts.append(chunk)
            if resp.length:
                raise ConnectionError(f"answer cut short, {resp.length} bytes missing")
        finally:
            if out:
                out.close()
    return digest.hexdigest() if dest else b"".join(parts)


# -- IMDSv2 -------------------------------------------------------------------------------------

class Imds:
    def __init__(self, endpoint, deadline, delay):
        self.endpoint, self.deadline, self.delay, self.session = endpoint.rstrip("/"), deadline, delay, None

    def get(self, path, missing_ok=False):
        """The value at `path`; 5xx, throttling, lost connections and an expired session are retried."""
        for attempt in range(RETRIES):
            try:
                if self.session is None:
                    req = urllib.request.Request(self.endpoint + "/latest/api/token", method="PUT",
                                                 headers={"X-aws-ec2-metadata-token-ttl-seconds": IMDS_TTL})
                    self.session = _open(req, 5, self.deadline).decode()
                req = urllib.request.Request(self.endpoint + "/latest/" + path, headers={SESSION_HEADER: self.session})
                return _open(req, 5, self.deadline).decode()
            except urllib.error.HTTPError as exc:
                if missing_ok and exc.code == 404:
                    return None
                if exc.code == 401:
                    self.session = None
                elif exc.code < 500 and exc.code != 429:
                    raise BootError(f"IMDS {path}: HTTP {exc.code}") from None
                last = f"HTTP {exc.code}"
            except OSError as exc:
                last = str(exc)
            if attempt == RETRIES - 1:
                raise BootError(f"IMDS {path}: {last} ({RETRIES} tries)")
            pause(self.delay * 2 ** attempt, self.deadline)


# -- SigV4 (the instance role's temporary credentials) ---------------------------------------------

def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sign(method, url, region, service, creds, body=b"", headers=None, now=None):
    """Headers for a SigV4-signed request (AWS Signature Version 4, header form)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    parts = urllib.parse.urlsplit(url)
    payload = hashlib.sha256(body).hexdigest()
    hdrs = dict(headers or {})
    hdrs.update({"host": parts.netloc, "x-amz-date": amz_date, "x-amz-content-sha256": payload})
    if creds.get("Token"):
        hdrs["x-amz-security-token"] = creds["Token"]
    lower = {k.lower(): " ".join(str(v).split()) for k, v in hdrs.items()}
    names = sorted(lower)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    canonical_query = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
                               for k, v in sorted(query))
    canonical = "\n".join([method, parts.path or "/", canonical_query,  # the path is sent already quoted
                           "".join(f"{n}:{lower[n]}\n" for n in names), ";".join(names), payload])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(("AWS4" + creds["SecretAccessKey"]).encode(), day), region), service),
                "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    hdrs["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={creds['AccessKeyId']}/{scope}, "
                             f"SignedHeaders={';'.join(names)}, Signature={signature}")
    hdrs.pop("host")
    return hdrs


def call(method, url, region, service, creds, body=b"", headers=None, delay=1.0, deadline=None, dest=None):
    """The response body (with `dest`: its sha256, the body written there); retried on throttling, 5xx,
    403 (a new role's policy may still be propagating) and connection errors, within the deadline.
    404 and other 4xx are final (ApiError, with the service's answer)."""
    deadline = deadline or Deadline(NO_HOOK_BUDGET, "the default bound")
    where = urllib.parse.urlsplit(url).path
    for attempt in range(RETRIES):
        req = urllib.request.Request(url, data=body or None, method=method,
                                     headers=sign(method, url, region, service, creds, body, headers))
        try:
            return _open(req, 120 if dest else 30, deadline, dest)
        except urllib.error.HTTPError as exc:
            detail = one_line(exc.read(2000).decode(errors="replace"))
            transient = exc.code >= 500 or exc.code in (403, 429) or "<Code>Throttling</Code>" in detail
            if exc.code == 404 or not transient or attempt == RETRIES - 1:
                hint = ""
                if service == "s3" and exc.code == 403:
                    hint = " (a missing object reads as 403 without s3:ListBucket)"
                raise ApiError(f"{service} {method} {where}: HTTP {exc.code}{hint} {detail[:300]}", detail,
                               attempt) from None
        except OSError as exc:
            if attempt == RETRIES - 1:
                raise BootError(f"{service} {method} {where}: {exc}") from None
        pause(delay * 2 ** attempt, deadline)


def endpoint(service_env, service, region, domain):
    url = os.environ.get("AWS_ENDPOINT_URL_" + service_env) or os.environ.get("AWS_ENDPOINT_URL")
    return url.rstrip("/") if url else f"https://{service}.{region}.{domain}"


# -- the boot config ----------------------------------------------------------------------------

def _text(v):
    return isinstance(v, str) and v.strip() != "" and v.isprintable()


def _seconds(v, most):
    return type(v) in (int, float) and 0 < v <= most


def _artifact(v):
    return (isinstance(v, dict) and _text(v.get("key"))
            and isinstance(v.get("sha256"), str) and re.fullmatch("[0-9a-f]{64}", v["sha256"]) is not None)


CHECKS = (
    ("converge", lambda v: v in (None, True, False), "true or false"),
    ("hook", lambda v: v is None or _text(v), "a lifecycle hook name or null"),
    ("heartbeat", lambda v: v is None or _seconds(v, 7200), "seconds (at most 7200) or null"),
    ("retry_delay", lambda v: v is None or _seconds(v, 60), "seconds"),
    ("root", lambda v: v is None or _text(v), "a directory"),
    ("marker", lambda v: v is None or _text(v), "a file path"),
    ("local_dir", lambda v: v is None or _text(v), "a directory (local mode: the bake) or null"),
)
CONVERGE_CHECKS = (
    ("bucket", _text, "a bucket name"),
    ("role", _text, "a role name"),
    ("bundle", _artifact, 'an object {"key", "sha256"}'),
    ("chef_package", lambda v: v is None or _artifact(v), 'an object {"key", "sha256"} or null'),
)


def load_config(path):
    try:
        with open(path, "rb") as f:
            cfg = json.loads(f.read(MAX_ANSWER).decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise BootError(f"{path}: cannot read the boot config: {exc}") from None
    if not isinstance(cfg, dict):
        raise BootError(f"{path}: the boot config is not a JSON object")
    for key, ok, what in CHECKS + (CONVERGE_CHECKS if cfg.get("converge", True) else ()):
        if not ok(cfg.get(key)) and not (key == "bucket" and cfg.get("local_dir")):
            raise BootError(f"{path}: {key} must be {what}, not {json.dumps(cfg.get(key))[:80]}")
    return cfg


# -- the steps ----------------------------------------------------------------------------------

def fetch(cfg, env, key, sha256, dest, deadline):
    """Download s3://bucket/key to `dest` (streamed) and check its sha256; local mode: copy the uploaded file."""
    if cfg.get("local_dir"):
        digest = hashlib.sha256()
        with open(os.path.join(cfg["local_dir"], os.path.basename(key)), "rb") as src, open(dest, "wb") as out:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
        got = digest.hexdigest()
    else:
        url = f"{env['s3']}/{cfg['bucket']}/{urllib.parse.quote(key)}"
        got = call("GET", url, env["region"], "s3", env["creds"], delay=env["delay"], deadline=deadline, dest=dest)
    if got != sha256:
        raise BootError(f"s3://{cfg['bucket']}/{key}: sha256 {got} does not match the expected {sha256}")


class Capped:
    """The bundle's decompressed tar stream, refused past MAX_BUNDLE_BYTES."""

    def __init__(self, f):
        self.f, self.size = f, 0

    def read(self, n=-1):
        data = self.f.read(n if n >= 0 else MAX_BUNDLE_BYTES + 1)
        self.size += len(data)
        if self.size > MAX_BUNDLE_BYTES:
            raise BootError(f"the bundle unpacks to more than {MAX_BUNDLE_BYTES} bytes")
        return data


def unpack(archive, final):
    """Extract into a sibling temporary directory, then rename: `final` exists only when complete."""
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".unpack-", dir=parent)
    try:
        with gzip.open(archive) as gz, tarfile.open(fileobj=Capped(gz), mode="r|") as tar:
            for count, m in enumerate(tar, 1):
                parts = [p for p in m.name.split("/") if p not in ("", ".")]
                if count > MAX_BUNDLE_MEMBERS:
                    raise BootError(f"the bundle has more than {MAX_BUNDLE_MEMBERS} members")
                if not (m.isfile() or m.isdir()) or m.name.startswith("/") or ".." in parts:
                    raise BootError(f"bundle member {m.name!r} is not a plain relative file")
                path = os.path.join(tmp, *parts)
                if m.isdir():
                    os.makedirs(path, exist_ok=True)
                    continue
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with tar.extractfile(m) as src, open(path, "wb") as out:
                    shutil.copyfileobj(src, out)
                os.chmod(path, 0o755 if m.mode & 0o111 else 0o644)
        if os.path.isdir(final):
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, (tarfile.TarError, EOFError, zlib.error, OSError)):
            raise BootError(f"cannot unpack the bundle: {exc}") from None
        raise


def chef_solo(cfg, env, work, deadline):
    found = shutil.which("chef-solo")
    if found:
        return found
    pkg = cfg.get("chef_package")
    if not pkg:
        raise BootError("chef-solo is not in the image and boot.chef_package is not set")
    path = os.path.join(work, os.path.basename(pkg["key"]))
    deadline.step = "downloading the chef package"
    fetch(cfg, env, pkg["key"], pkg["sha256"], path, deadline)
    cmd = ["dpkg", "-i", path] if path.endswith(".deb") else ["rpm", "-U", "--replacepkgs", path]
    run(cmd, "installing the chef package", os.path.join(os.path.dirname(work), "chef.log"), deadline)
    found = shutil.which("chef-solo") or next(
        (p for p in ("/opt/chef/bin/chef-solo", "/opt/cinc/bin/chef-solo", "/opt/cinc/bin/cinc-solo")
         if os.path.exists(p)), None)
    if not found:
        raise BootError(f"{os.path.basename(path)} installed no chef-solo")
    return found


def last_line(path):
    """The last non-empty line of a log, read from its end (the log may be large)."""
    with open(path, "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - 8192))
        lines = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1].strip()[:200] if lines else "no output"


def stop(proc):
    """SIGTERM to the step's whole process group (chef's children too), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except OSError:
            pass
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # what the leader left behind
            except OSError:
                pass
        return


def run(cmd, what, output, deadline, env=None):
    """Run `cmd` with its output appended to the file `output`, within what is left of the deadline."""
    deadline.step = what
    with open(output, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        code = proc.wait(timeout=max(0.01, deadline.left()))
    except BaseException as exc:
        deadline.disarm()
        stop(proc)
        if isinstance(exc, subprocess.TimeoutExpired):
            raise deadline.expired() from None
        raise
    if code != 0:
        raise BootError(f"{what} failed (exit {code}): {last_line(output)} (full output: {output})")


def converge(cfg, env, root, deadline):
    work = os.path.join(root, "work")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    archive = os.path.join(work, "bundle.tar.gz")
    deadline.step = "downloading the bundle"
    fetch(cfg, env, cfg["bundle"]["key"], cfg["bundle"]["sha256"], archive, deadline)
    bundle = os.path.join(root, "bundle")
    deadline.step = "unpacking the bundle"
    unpack(archive, bundle)
    solo = chef_solo(cfg, env, work, deadline)
    config = os.path.join(work, "solo.rb")
    with open(config, "w") as f:
        f.write("".join(f"{k} {json.dumps(os.path.join(bundle, v))}\n" for k, v in (
            ("cookbook_path", "cookbooks"), ("role_path", "roles"), ("data_bag_path", "data_bags"))))
        f.write(f"file_cache_path {json.dumps(os.path.join(work, 'cache'))}\n")
    node = os.path.join(work, "node.json")
    with open(node, "w") as f:
        json.dump({"run_list": [f"role[{cfg['role']}]"],
                   "fleet": {k: cfg.get(k) for k in ("group", "stack", "environment")}}, f)
    run([solo, "--config", config, "--json-attributes", node, "--no-color"], "chef-solo",
        os.path.join(root, "chef.log"), deadline, env=dict(os.environ, CHEF_LICENSE="accept-silent"))


def asg_name(env):
    """The instance's Auto Scaling group from its `aws:autoscaling:groupName` tag in IMDS (instance
    metadata tags are on); retried, since the tag may lag the launch by a moment."""
    for attempt in range(RETRIES):
        name = env["imds"].get("meta-data/tags/instance/aws:autoscaling:groupName", missing_ok=True)
        if name:
            return name
        if attempt < RETRIES - 1:
            pause(env["delay"] * 2 ** attempt, env["imds"].deadline)
    raise BootError("no aws:autoscaling:groupName tag in IMDS: cannot complete the lifecycle hook")


def complete_hook(cfg, env, result, deadline):
    deadline.step = f"CompleteLifecycleAction {result}"
    body = urllib.parse.urlencode({
        "Action": "CompleteLifecycleAction", "Version": "2011-01-01", "AutoScalingGroupName": env["asg"],
        "LifecycleHookName": cfg["hook"], "InstanceId": env["instance_id"], "LifecycleActionResult": result,
    }).encode()
    try:
        call("POST", env["autoscaling"] + "/", env["region"], "autoscaling", env["creds"], body,
             {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}, delay=env["delay"],
             deadline=deadline)
    except ApiError as exc:
        if NO_ACTION not in exc.detail:
            raise
        env["imds"].deadline = deadline
        state = env["imds"].get("meta-data/autoscaling/target-lifecycle-state", missing_ok=True) or "unknown"
        if result == "CONTINUE" and state == "Terminated":
            raise BootError("no lifecycle action left to CONTINUE and Auto Scaling is terminating this instance "
                            "(the launching hook's heartbeat ran out)") from None
        why = ("an earlier attempt's answer was lost, so it was already recorded" if exc.attempt
               else "no launching hook is waiting for this instance")
        log(f"fleet-boot: nothing to {result}: {why} (target lifecycle state: {state})")


def launched_at(document):
    """The launch time (epoch seconds) from the instance identity document's pendingTime, or None."""
    try:
        stamp = json.loads(document)["pendingTime"]
        return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except (TypeError, ValueError, KeyError):
        return None


def environment(cfg, deadline):
    delay = cfg.get("retry_delay") or 1.0
    imds = Imds(os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254"), deadline, delay)
    deadline.step = "reading instance metadata"
    region = imds.get("meta-data/placement/region")
    domain = imds.get("meta-data/services/domain", missing_ok=True) or "amazonaws.com"
    role = imds.get("meta-data/iam/security-credentials/").split("\n")[0].strip()
    try:
        creds = json.loads(imds.get("meta-data/iam/security-credentials/" + role))
    except ValueError:
        creds = None
    if not isinstance(creds, dict) or not all(_text(creds.get(k)) for k in ("AccessKeyId", "SecretAccessKey")):
        raise BootError(f"IMDS: no usable credentials for the instance role {role!r}")
    env = {
        "region": region, "creds": creds, "instance_id": imds.get("meta-data/instance-id"), "imds": imds,
        "delay": delay, "asg": None,
        "s3": endpoint("S3", "s3", region, domain),
        "autoscaling": endpoint("AUTO_SCALING", "autoscaling", region, domain),
    }
    if cfg.get("hook"):
        env["asg"] = asg_name(env)
    heartbeat = cfg.get("heartbeat")
    if heartbeat:  # the hook's heartbeat runs from the launch: what the OS boot took is gone
        launch = launched_at(imds.get("dynamic/instance-identity/document", missing_ok=True))
        if launch is not None:
            deadline.tighten(launch + heartbeat - reserve(heartbeat) - time.time(),
                             f"the launching hook's {heartbeat:g} s heartbeat since the launch")
    return env


def reserve(heartbeat):
    return min(RESERVE, heartbeat / 10)


def main(argv):
    cfg_path = argv[1] if len(argv) > 1 else "/etc/fleet/boot.json"
    deadline, cfg, env, root = Deadline(NO_HOOK_BUDGET, "the boot program's own bound"), {}, None, None
    try:
        cfg = load_config(cfg_path)
        heartbeat = cfg.get("heartbeat")
        if heartbeat:
            deadline = Deadline(heartbeat - reserve(heartbeat), f"the launching hook's {heartbeat:g} s heartbeat")
        else:
            deadline.why = f"the boot program's own {NO_HOOK_BUDGET} s bound (no launching hook)"
        deadline.arm()
        marker = cfg.get("marker") or os.path.join(cfg.get("root") or "/var/lib/fleet", "ready")
        root = cfg.get("root") or "/var/lib/fleet"
        os.makedirs(root, exist_ok=True)
        if os.path.exists(marker):
            os.remove(marker)
        env = {"asg": None, "delay": 0} if cfg.get("local_dir") else environment(cfg, deadline)  # local: the bake
        if cfg.get("converge", True):
            converge(cfg, env, root, deadline)
        deadline.step = "writing the readiness marker"
        tmp = marker + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"bundle": (cfg.get("bundle") or {}).get("sha256"), "at": int(time.time())}, f)
        os.rename(tmp, marker)
        if cfg.get("hook"):
            complete_hook(cfg, env, "CONTINUE", deadline)
        deadline.disarm()
        log(f"fleet-boot: ready: group {cfg.get('group')} bundle {(cfg.get('bundle') or {}).get('sha256', '-')}")
        return 0
    except Exception as exc:  # noqa: BLE001 - every failure is one line and ABANDON
        deadline.disarm()
        if root is not None:
            for path in (marker, marker + ".tmp"):
                if os.path.exists(path):
                    os.remove(path)
            shutil.rmtree(os.path.join(root, "bundle"), ignore_errors=True)
            shutil.rmtree(os.path.join(root, "work"), ignore_errors=True)
        reason = str(exc) if isinstance(exc, BootError) else f"{type(exc).__name__}: {exc}"
        log(f"fleet-boot: FAILED: {one_line(reason)}")
        if env is not None and env["asg"]:
            last = Deadline(reserve(cfg.get("heartbeat") or NO_HOOK_BUDGET), "the time kept for ABANDON")
            try:
                last.arm()
                complete_hook(cfg, env, "ABANDON", last)
            except Exception as hook_exc:  # noqa: BLE001 - the hook's timeout abandons it anyway
                log(f"fleet-boot: could not complete the lifecycle hook (its timeout will abandon): "
                    f"{one_line(hook_exc)}")
            finally:
                last.disarm()
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
