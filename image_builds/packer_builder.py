"""Bake an AMI with Packer (JSON templates: Debian's 1.6.6 and current releases read them).

Before anything starts, `check_packer` reads Packer's version: a provisioned (SSH) bake needs 1.8.1+
(older ones cannot log in to current Ubuntu images, whose sshd refuses ssh-rsa signatures), and
Packer 1.10+ bundles no plugins, so the amazon plugin must be installed: a missing one is one line
naming the command that installs it (the deploy workflow pins both).

Runs `packer build -machine-readable` in a scratch directory holding the rendered template and
the converge's files (fleet/render/packer.py), writes Packer's whole output to a log file next to
the build (`.fleet/logs/` in the project; its path is printed, and a failure's last error line),
and reads the AMI id from the manifest post-processor. The log never goes to stdout/stderr: the
BakedImage Command's output is kept in Pulumi's state. On interrupt (SIGINT/SIGTERM) Packer gets SIGTERM, which lets it
terminate its build instance and delete its key pair and security group (SIGKILL would leave
them behind, pitfall 23); a failed Packer run cleans up after itself the same way.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, TextIO

from fleet.render.packer import MANIFEST, bake_files, render_packer
from fleet.spec.model import Group
from fleet.spec.names import slug
from image_builds import interrupts

PACKER = "packer"
STOP_GRACE = 300  # seconds Packer gets to clean up after SIGTERM
AMAZON_PLUGIN = "github.com/hashicorp/amazon"
AMAZON_PLUGIN_VERSION = "v1.3.3"  # the deploy workflow installs this one
SSH_MIN_VERSION = (1, 8, 1)  # older Packer cannot log in to images whose sshd refuses ssh-rsa (Ubuntu 22.04+)
UNBUNDLED_FROM = (1, 10, 0)  # Packer 1.10+ ships no plugins
LOG_DIR = Path(".fleet") / "logs"


class PackerError(RuntimeError):
    """Packer failed; the message is its last error line."""


def packer_path() -> str:
    found = shutil.which(PACKER)
    if not found:
        raise PackerError("packer is not installed: install Packer >= 1.8.1 (https://developer.hashicorp.com/"
                          f"packer/install), then `packer plugins install {AMAZON_PLUGIN} {AMAZON_PLUGIN_VERSION}`")
    return found


def packer_version(packer: str) -> tuple[int, int, int]:
    """(major, minor, patch) from `packer version` ("Packer v1.6.6", also "1.11.2")."""
    out = subprocess.run([packer, "version"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "CHECKPOINT_DISABLE": "1"}).stdout
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    if not found:
        raise PackerError(f"`{packer} version` printed no version: {out.strip()[:100]!r}")
    return tuple(int(x) for x in found.groups())  # type: ignore[return-value]


def check_packer(group: Group) -> str:
    """Packer's path, once its version can bake this group and the amazon builder is there."""
    packer = packer_path()
    version = packer_version(packer)
    shown = ".".join(map(str, version))
    if group.image.communicator != "none" and version < SSH_MIN_VERSION:
        raise PackerError(f"packer {shown} cannot log in to current images over SSH (their sshd refuses ssh-rsa "
                          "signatures): install Packer >= 1.8.1")
    if version >= UNBUNDLED_FROM:
        listed = subprocess.run([packer, "plugins", "installed"], capture_output=True, text=True, timeout=60,
                                env={**os.environ, "CHECKPOINT_DISABLE": "1"}).stdout
        if AMAZON_PLUGIN not in listed:
            raise PackerError(f"packer {shown} has no amazon plugin (Packer 1.10+ bundles none): run "
                              f"`packer plugins install {AMAZON_PLUGIN} {AMAZON_PLUGIN_VERSION}`")
    return packer


def stage(group: Group, workdir: Path, *, region: str, image_hash: str, project_dir: Path,
          endpoint_url: str | None) -> Path:
    """Stage the converge's files (the boot bundle, the boot program, its bake config; fleet/render/packer.py)
    and template.json in `workdir`; return the template path."""
    bake = bake_files(group, project_dir)
    for name, data in bake.files.items():
        (workdir / name).write_bytes(data)
    template = render_packer(group, region=region, image_hash=image_hash, bake=bake, endpoint_url=endpoint_url,
                             manifest=str(workdir / MANIFEST))
    path = workdir / "template.json"
    path.write_text(json.dumps(template, indent=2))
    return path


def log_path(project_dir: Path, group: Group, image_hash: str) -> Path:
    """`.fleet/logs/packer-<group>-<hash12>-<UTC time>-<pid>.log` in the project (created)."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = Path(project_dir) / LOG_DIR / f"packer-{slug(group.name)[:60]}-{image_hash[:12]}-{stamp}-{os.getpid()}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def ui_line(raw: str) -> tuple[str | None, str]:
    """(kind, text) of a machine-readable line `time,target,type,data...` ('ui' messages unescaped)."""
    parts = raw.rstrip("\n").split(",", 4)
    if len(parts) < 4:
        return None, raw.rstrip("\n")
    kind = parts[2]
    data = parts[3:] if kind != "ui" else parts[4:] if len(parts) > 4 else []
    text = ",".join(data).replace("%!(PACKER_COMMA)", ",").replace("\\n", "\n").replace("\\r", "")
    return kind, text


def ami_from_manifest(manifest: Path) -> str:
    """The AMI id of the last build in Packer's manifest (`artifact_id` is `region:ami-...`)."""
    builds = json.loads(manifest.read_text()).get("builds") or []
    if not builds:
        raise PackerError(f"packer wrote no build to {manifest}")
    artifact = builds[-1]["artifact_id"]
    return artifact.split(",")[-1].split(":")[-1]


def run_packer(template: Path, *, log: TextIO, env: dict | None = None, popen: Callable = subprocess.Popen,
               packer: str | None = None) -> None:
    """Run `packer build`, its UI lines into `log` (a file); raise PackerError with its last error line."""
    cmd = [packer or packer_path(), "build", "-machine-readable", "-color=false", template.name]
    proc_env = {**os.environ, "CHECKPOINT_DISABLE": "1", **(env or {})}
    proc = popen(cmd, cwd=template.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                 env=proc_env, start_new_session=True)
    last_error = ""

    def stop(signum, _frame):
        for s in (signal.SIGINT, signal.SIGTERM):  # a second signal must not cut Packer's clean-up short
            signal.signal(s, signal.SIG_IGN)
        proc.send_signal(signal.SIGTERM)
        raise interrupts.Interrupted(signum)

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for s in previous:
            signal.signal(s, stop)
        for raw in proc.stdout:
            kind, text = ui_line(raw)
            if kind in ("ui", None) and text.strip():
                for line in text.strip().splitlines():
                    print(line, file=log, flush=True)
                    if "error" in line.lower():
                        last_error = line.strip()
            elif kind == "error":
                last_error = text.strip()
        code = proc.wait()
    except BaseException as exc:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                interrupts.note(exc, f"packer did not stop within {STOP_GRACE}s and was killed: check for "
                                "a leftover build instance (tag fleet:purpose=image-build)")
                raise
        interrupts.note(exc, f"packer stopped (exit {proc.returncode}) after cleaning up its build instance")
        raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if code != 0:
        raise PackerError(f"packer build failed (exit {code}): {last_error or 'no error line'} "
                          f"(full log: {getattr(log, 'name', 'above')})")


def bake(group: Group, *, region: str, image_hash: str, project_dir: Path, endpoint_url: str | None = None,
         log: TextIO = sys.stderr) -> str:
    """Bake the group's image with Packer; return the new AMI id (tagged by Packer itself). `log` gets
    two lines (where Packer's log is, and how it ended); Packer's own output goes to that file."""
    packer = check_packer(group)
    path = log_path(project_dir, group, image_hash)
    print(f"packer: baking {group.name}; full log: {path}", file=log, flush=True)
    with tempfile.TemporaryDirectory(prefix=f"fleet-packer-{image_hash[:8]}-") as tmp, path.open("w") as out:
        template = stage(group, Path(tmp), region=region, image_hash=image_hash,
                         project_dir=project_dir, endpoint_url=endpoint_url)
        run_packer(template, log=out, packer=packer)
        ami = ami_from_manifest(Path(tmp) / MANIFEST)
    print(f"packer: {group.name} baked {ami}", file=log, flush=True)
    return ami
