#!/usr/bin/env python3
"""fleet-boot: make this instance its group's node, then let Auto Scaling put it in service.

Runs once at first boot from user data (Python 3 standard library only: nothing to install, nothing
fetched but this stack's own bundle, so no mirror or GitHub outage can stop a boot).

1. IMDSv2 token; region, partition domain, instance id and the instance role's credentials.
2. GET the cookbook bundle `s3://<bucket>/bundles/<sha256>.tar.gz` (SigV4, the instance role) and
   check its sha256; unpack it into a fresh directory that is renamed into place only when complete.
3. chef-solo from the image, else the stack's copy of `boot.chef_package` (sha256 checked, dpkg/rpm).
4. chef-solo with the group's role (`role[role-<group>]`), cookbooks, roles and data bags from the bundle.
5. Readiness marker (written to a temporary name, then renamed).
6. With a launching lifecycle hook (instances of an Auto Scaling group, found by the instance's
   `aws:autoscaling:groupName` tag in IMDS): CompleteLifecycleAction CONTINUE, or ABANDON on any
   failure, so the instance enters its target group only once converged. One-off instances skip this.

On failure: one line `fleet-boot: FAILED: <why>` on stderr and in the log, no marker, no unpacked
bundle, exit 1. Endpoints follow the AWS SDK variables (AWS_EC2_METADATA_SERVICE_ENDPOINT,
AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_AUTO_SCALING, AWS_ENDPOINT_URL) so tests run it for real
against local stand-ins.
"""

import datetime
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

IMDS_TTL = "21600"
SESSION_HEADER = "X-aws-ec2-metadata-token"
RETRIES = 5


class BootError(Exception):
    pass


def log(line):
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


# -- IMDSv2 -------------------------------------------------------------------------------------

class Imds:
    def __init__(self, endpoint):
        self.endpoint = endpoint.rstrip("/")
        req = urllib.request.Request(self.endpoint + "/latest/api/token", method="PUT",
                                     headers={"X-aws-ec2-metadata-token-ttl-seconds": IMDS_TTL})
        self.session = _open(req, 5).decode()

    def get(self, path, missing_ok=False):
        req = urllib.request.Request(self.endpoint + "/latest/" + path,
                                     headers={SESSION_HEADER: self.session})
        try:
            return _open(req, 5).decode()
        except urllib.error.HTTPError as exc:
            if missing_ok and exc.code == 404:
                return None
            raise


def _open(req, timeout, data=None):
    with urllib.request.urlopen(req, data=data, timeout=timeout) as resp:
        return resp.read()


# -- SigV4 (the instance role's temporary credentials) ---------------------------------------------

def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sign(method, url, region, service, creds, body=b"", headers=None, now=None):
    """Headers for a SigV4-signed request (AWS Signature Version 4, header form)."""
    now = now or datetime.datetime.now(datetime.UTC)
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


def call(method, url, region, service, creds, body=b"", headers=None, delay=1.0):
    """The response body; retried on throttling, 5xx, 403 (a new role's policy may still be propagating)
    and connection errors. 404 is final."""
    for attempt in range(RETRIES):
        req = urllib.request.Request(url, data=body or None, method=method,
                                     headers=sign(method, url, region, service, creds, body, headers))
        try:
            return _open(req, 30)
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode(errors="replace").replace("\n", " ")
            if exc.code == 404 or (exc.code < 500 and exc.code not in (403, 429)) or attempt == RETRIES - 1:
                where = urllib.parse.urlsplit(url).path
                hint = ""
                if service == "s3" and exc.code == 403:
                    hint = " (a missing object reads as 403 without s3:ListBucket)"
                raise BootError(f"{service} {method} {where}: HTTP {exc.code}{hint} {detail}") from None
        except OSError as exc:
            if attempt == RETRIES - 1:
                raise BootError(f"{service} {method}: {exc}") from None
        time.sleep(delay * 2 ** attempt)


def endpoint(service_env, service, region, domain):
    url = os.environ.get("AWS_ENDPOINT_URL_" + service_env) or os.environ.get("AWS_ENDPOINT_URL")
    return url.rstrip("/") if url else f"https://{service}.{region}.{domain}"


# -- the steps ----------------------------------------------------------------------------------

def fetch(cfg, env, key, sha256, dest):
    """Download s3://bucket/key to `dest` and check its sha256."""
    url = f"{env['s3']}/{cfg['bucket']}/{urllib.parse.quote(key)}"
    data = call("GET", url, env["region"], "s3", env["creds"], delay=cfg.get("retry_delay", 1.0))
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise BootError(f"s3://{cfg['bucket']}/{key}: sha256 {got} does not match the expected {sha256}")
    with open(dest, "wb") as f:
        f.write(data)


def unpack(archive, final):
    """Extract into a sibling temporary directory, then rename: `final` exists only when complete."""
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".unpack-", dir=parent)
    try:
        with tarfile.open(archive) as tar:
            for m in tar.getmembers():
                if not (m.isfile() or m.isdir()) or m.name.startswith("/") or ".." in m.name.split("/"):
                    raise BootError(f"bundle member {m.name!r} is not a plain relative file")
            tar.extractall(tmp)
        if os.path.isdir(final):
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def chef_solo(cfg, env, work):
    found = shutil.which("chef-solo")
    if found:
        return found
    pkg = cfg.get("chef_package")
    if not pkg:
        raise BootError("chef-solo is not in the image and boot.chef_package is not set")
    path = os.path.join(work, os.path.basename(pkg["key"]))
    fetch(cfg, env, pkg["key"], pkg["sha256"], path)
    cmd = ["dpkg", "-i", path] if path.endswith(".deb") else ["rpm", "-U", "--replacepkgs", path]
    run(cmd, "installing the chef package", os.path.join(os.path.dirname(work), "chef.log"))
    found = shutil.which("chef-solo") or next(
        (p for p in ("/opt/chef/bin/chef-solo", "/opt/cinc/bin/chef-solo", "/opt/cinc/bin/cinc-solo")
         if os.path.exists(p)), None)
    if not found:
        raise BootError(f"{os.path.basename(path)} installed no chef-solo")
    return found


def run(cmd, what, output, env=None):
    """Run `cmd` with its output appended to the file `output` (the boot log keeps one line per outcome)."""
    with open(output, "a") as out:
        code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    if code != 0:
        with open(output, errors="replace") as f:
            last = [ln for ln in f.read().splitlines() if ln.strip()][-1:] or ["no output"]
        raise BootError(f"{what} failed (exit {code}): {last[0].strip()[:200]} (full output: {output})")


def converge(cfg, env, root):
    work = os.path.join(root, "work")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    archive = os.path.join(work, "bundle.tar.gz")
    fetch(cfg, env, cfg["bundle"]["key"], cfg["bundle"]["sha256"], archive)
    bundle = os.path.join(root, "bundle")
    unpack(archive, bundle)
    solo = chef_solo(cfg, env, work)
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
        os.path.join(root, "chef.log"), env=dict(os.environ, CHEF_LICENSE="accept-silent"))


def asg_name(cfg, env):
    """The instance's Auto Scaling group from its `aws:autoscaling:groupName` tag in IMDS (instance
    metadata tags are on); retried, since the tag may lag the launch by a moment."""
    if env.get("asg") is None:
        for attempt in range(RETRIES):
            env["asg"] = env["imds"].get("meta-data/tags/instance/aws:autoscaling:groupName", missing_ok=True)
            if env["asg"]:
                break
            time.sleep(cfg.get("retry_delay", 1.0) * 2 ** attempt)
    if not env["asg"]:
        raise BootError("no aws:autoscaling:groupName tag in IMDS: cannot complete the lifecycle hook")
    return env["asg"]


def complete_hook(cfg, env, result):
    if not cfg.get("hook"):
        return  # a one-off instance: no Auto Scaling group, no hook
    body = urllib.parse.urlencode({
        "Action": "CompleteLifecycleAction", "Version": "2011-01-01", "AutoScalingGroupName": asg_name(cfg, env),
        "LifecycleHookName": cfg["hook"], "InstanceId": env["instance_id"], "LifecycleActionResult": result,
    }).encode()
    call("POST", env["autoscaling"] + "/", env["region"], "autoscaling", env["creds"], body,
         {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}, delay=cfg.get("retry_delay", 1.0))


def environment():
    imds = Imds(os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254"))
    region = imds.get("meta-data/placement/region")
    domain = imds.get("meta-data/services/domain", missing_ok=True) or "amazonaws.com"
    role = imds.get("meta-data/iam/security-credentials/").split("\n")[0].strip()
    creds = json.loads(imds.get("meta-data/iam/security-credentials/" + role))
    return {
        "region": region, "creds": creds, "instance_id": imds.get("meta-data/instance-id"), "imds": imds,
        "asg": None,
        "s3": endpoint("S3", "s3", region, domain),
        "autoscaling": endpoint("AUTO_SCALING", "autoscaling", region, domain),
    }


def main(argv):
    cfg_path = argv[1] if len(argv) > 1 else "/etc/fleet/boot.json"
    with open(cfg_path) as f:
        cfg = json.load(f)
    root = cfg.get("root", "/var/lib/fleet")
    marker = cfg.get("marker", os.path.join(root, "ready"))
    os.makedirs(root, exist_ok=True)
    if os.path.exists(marker):
        os.remove(marker)
    env = None
    try:
        env = environment()
        if cfg.get("converge", True):
            converge(cfg, env, root)
        tmp = marker + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"bundle": cfg.get("bundle", {}).get("sha256"), "at": int(time.time())}, f)
        os.rename(tmp, marker)
        complete_hook(cfg, env, "CONTINUE")
        log(f"fleet-boot: ready: group {cfg.get('group')} bundle {cfg.get('bundle', {}).get('sha256', '-')}")
        return 0
    except Exception as exc:  # noqa: BLE001 - every failure is one line and ABANDON
        for path in (marker, marker + ".tmp"):
            if os.path.exists(path):
                os.remove(path)
        shutil.rmtree(os.path.join(root, "bundle"), ignore_errors=True)
        shutil.rmtree(os.path.join(root, "work"), ignore_errors=True)
        reason = str(exc) if isinstance(exc, BootError) else f"{type(exc).__name__}: {exc}"
        log(f"fleet-boot: FAILED: {reason}")
        if env is not None:
            try:
                complete_hook(cfg, env, "ABANDON")
            except Exception as hook_exc:  # noqa: BLE001 - the hook's timeout abandons it anyway
                log(f"fleet-boot: could not complete the lifecycle hook (its timeout will abandon): {hook_exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
