"""Bake an AMI with Packer (Debian's 1.6.6 reads JSON templates).

Runs `packer build -machine-readable` in a scratch directory holding the rendered template
and the group's Chef role, streams Packer's UI lines to stderr, and reads the AMI id from the
manifest post-processor. On interrupt (SIGINT/SIGTERM) Packer gets SIGTERM, which lets it
terminate its build instance and delete its key pair and security group (SIGKILL would leave
them behind, pitfall 23); a failed Packer run cleans up after itself the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, TextIO

from fleet.render.bundle import bundle_files
from fleet.render.packer import MANIFEST, render_packer
from fleet.spec.cookbooks import COOKBOOKS, DATA_BAGS, ROLES
from fleet.spec.model import Group
from image_builds import interrupts

PACKER = "packer"
STOP_GRACE = 300  # seconds Packer gets to clean up after SIGTERM


class PackerError(RuntimeError):
    """Packer failed; the message is its last error line."""


def packer_path() -> str:
    found = shutil.which(PACKER)
    if not found:
        raise PackerError("packer is not installed (Debian: apt-get install packer)")
    return found


def stage(group: Group, workdir: Path, *, region: str, image_hash: str, project_dir: Path,
          endpoint_url: str | None) -> Path:
    """Stage what chef-solo gets (the boot bundle's files: the run list's cookbook closure, its roles
    and data bags, and roles/role-<group>.json) and template.json in `workdir`; return the template path."""
    files, _ = bundle_files(group, project_dir)
    for name, data, executable in files:
        path = workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if executable:
            path.chmod(0o755)
    for sub in (COOKBOOKS, ROLES):
        (workdir / sub).mkdir(exist_ok=True)
    bags = workdir / DATA_BAGS
    template = render_packer(group, region=region, image_hash=image_hash, roles_path=str(workdir / ROLES),
                             cookbook_paths=(str(workdir / COOKBOOKS),),
                             data_bags_path=str(bags) if bags.is_dir() else None, endpoint_url=endpoint_url,
                             manifest=str(workdir / MANIFEST))
    path = workdir / "template.json"
    path.write_text(json.dumps(template, indent=2))
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


def run_packer(template: Path, *, log: TextIO = sys.stderr, env: dict | None = None,
               popen: Callable = subprocess.Popen) -> None:
    """Run `packer build`; raise PackerError with its last error line when it fails."""
    cmd = [packer_path(), "build", "-machine-readable", "-color=false", template.name]
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
                    print(f"packer: {line}", file=log, flush=True)
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
        raise PackerError(f"packer build failed (exit {code}): {last_error or 'see the log above'}")


def bake(group: Group, *, region: str, image_hash: str, project_dir: Path, endpoint_url: str | None = None,
         log: TextIO = sys.stderr) -> str:
    """Bake the group's image with Packer; return the new AMI id (tagged by Packer itself)."""
    with tempfile.TemporaryDirectory(prefix=f"fleet-packer-{image_hash[:8]}-") as tmp:
        template = stage(group, Path(tmp), region=region, image_hash=image_hash,
                         project_dir=project_dir, endpoint_url=endpoint_url)
        run_packer(template, log=log)
        return ami_from_manifest(Path(tmp) / MANIFEST)
