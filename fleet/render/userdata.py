"""cloud-init user data: who this instance is (group, stack, environment), nothing secret.

Secrets are fetched at boot with the instance role (SSM Parameter Store / KMS); user data is
readable by anyone who can describe the instance, so it carries names only.

Groups that converge at boot (`Group.converges`) also get `/etc/fleet/boot.json` (the stack's
artifacts bucket, the bundle's key and sha256, the role, the chef package if any, the launching
lifecycle hook's name and heartbeat for autoscaled groups) and the boot program itself
(boot/fleet_boot.py, Python 3.8+ standard library only), which `runcmd` runs once. Its module
docstring, comment lines and blank lines are left out (`shipped_program`, a plain line filter: same
file, same text) and the rest travels bz2-compressed, base64 in the YAML (`encoding: b64`), which
keeps the user data under EC2's 16 KB limit (tests/test_boot.py measures 200 generated groups).
Why bz2 and not gzip: the same bytes must give the same user data on every deploy machine, or each
machine would make a new launch template version (and a rollout). zlib's output differs between
zlib, zlib-ng and vendors' forks; libbzip2's compressor has not changed its output since 1.0, and
tests/test_boot.py pins it. `runcmd` decompresses and runs it with python3 (no file to unpack).
"""

from __future__ import annotations

import base64
import bz2
import json
from dataclasses import dataclass
from pathlib import Path

from fleet.render.role import role_name
from fleet.spec.model import Group
from fleet.spec.readiness import (  # the boot program completes the hook of this name
    LAUNCH_HOOK_NAME,
    launch_hook_heartbeat,
)

BOOT_PROGRAM = Path(__file__).resolve().parent.parent.parent / "boot" / "fleet_boot.py"
BOOT_PATH, BOOT_CONFIG = "/usr/local/sbin/fleet-boot.py.bz2", "/etc/fleet/boot.json"
# python3 -c RUN BOOT_PATH BOOT_CONFIG: the program runs as __main__ with argv [BOOT_PATH, BOOT_CONFIG]
RUN = "import bz2,sys;sys.argv=sys.argv[1:];exec(compile(bz2.open(sys.argv[0]).read(),sys.argv[0],'exec'))"
USER_DATA_LIMIT = 16 * 1024  # EC2's limit on raw user data


@dataclass(frozen=True)
class BootArtifacts:
    """Where a converging group's boot finds its files (plain values: rendered inside an apply)."""

    bucket: str
    bundle_key: str
    bundle_sha256: str
    chef_package_key: str | None = None
    chef_package_sha256: str | None = None


def boot_config(group: Group, stack: str, environment: str, artifacts: BootArtifacts) -> dict:
    package = None
    if artifacts.chef_package_key:
        package = {"key": artifacts.chef_package_key, "sha256": artifacts.chef_package_sha256}
    return {
        "group": group.name, "stack": stack, "environment": environment, "role": role_name(group),
        "converge": True, "bucket": artifacts.bucket,
        "bundle": {"key": artifacts.bundle_key, "sha256": artifacts.bundle_sha256},
        "chef_package": package,
        # one-off instances have no Auto Scaling group: the program runs without a hook (and its own bound)
        "hook": LAUNCH_HOOK_NAME if group.autoscale is not None else None,
        # the hook's own heartbeat: the program's deadline, counted from the launch like the hook's
        "heartbeat": launch_hook_heartbeat(group) if group.autoscale is not None else None,
    }


def shipped_program() -> str:
    """boot/fleet_boot.py as it travels in user data: without its module docstring, comment lines and blank lines."""
    text = BOOT_PROGRAM.read_text()
    start = text.index('"""')
    text = text[:start] + text[text.index('"""', start + 3) + 3:]
    keep = [line for line in text.splitlines()
            if line.startswith("#!") or (line.strip() and not line.lstrip().startswith("#"))]
    return "\n".join([keep[0], "# fleet-boot: boot/fleet_boot.py of the fleet repository", *keep[1:]]) + "\n"


def packed_program() -> str:
    """shipped_program() as it is written in user data: bz2 (level 9), then base64."""
    return base64.b64encode(bz2.compress(shipped_program().encode(), 9)).decode()


def render_user_data(group: Group, stack: str, environment: str, artifacts: BootArtifacts | None = None) -> str:
    node = {"group": group.name, "stack": stack, "environment": environment}
    if group.http:
        node["port"] = group.http.port
    lines = [
        "#cloud-config",
        "write_files:",
        "  - path: /etc/fleet/node.json",
        "    permissions: '0644'",
        "    content: " + json.dumps(json.dumps(node, sort_keys=True)),
    ]
    if artifacts is None:
        lines += [
            "runcmd:",
            "  - [sh, -c, 'test -x /usr/local/bin/fleet-boot && /usr/local/bin/fleet-boot || true']",
        ]
        return "\n".join(lines) + "\n"
    config = boot_config(group, stack, environment, artifacts)
    lines += [
        f"  - path: {BOOT_CONFIG}",
        "    permissions: '0644'",
        "    content: " + json.dumps(json.dumps(config, sort_keys=True)),
        f"  - path: {BOOT_PATH}",
        "    permissions: '0644'",
        "    encoding: b64",
        "    content: " + packed_program(),
        "runcmd:",
        f"  - [python3, -c, {json.dumps(RUN)}, {BOOT_PATH}, {BOOT_CONFIG}]",
    ]
    return "\n".join(lines) + "\n"
