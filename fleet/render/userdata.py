"""cloud-init user data: who this instance is (group, stack, environment), nothing secret.

Secrets are fetched at boot with the instance role (SSM Parameter Store / KMS); user data is
readable by anyone who can describe the instance, so it carries names only.

Groups that converge at boot (`Group.converges`) also get `/etc/fleet/boot.json` (the stack's
artifacts bucket, the bundle's key and sha256, the role, the chef package if any, the launching
lifecycle hook's name for autoscaled groups) and the boot program itself (boot/fleet_boot.py,
Python 3 standard library only), which `runcmd` runs once. The program travels as plain text in
a YAML block, not gzip: compressed bytes could differ between zlib versions and every such
difference would be a new launch template version. Its module docstring, comment lines and blank
lines are left out (`shipped_program`, a plain line filter: same file, same text), which keeps the
user data under EC2's 16 KB limit (tests/test_boot.py measures 200 generated groups).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fleet.render.role import role_name
from fleet.spec.model import Group

BOOT_PROGRAM = Path(__file__).resolve().parent.parent.parent / "boot" / "fleet_boot.py"
BOOT_PATH, BOOT_CONFIG = "/usr/local/sbin/fleet-boot", "/etc/fleet/boot.json"
LAUNCH_HOOK_NAME = "fleet-launch"
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
        # one-off instances have no Auto Scaling group: the program runs without a hook
        "hook": LAUNCH_HOOK_NAME if group.autoscale is not None else None,
    }


def shipped_program() -> str:
    """boot/fleet_boot.py as it travels in user data: without its module docstring, comment lines and blank lines."""
    text = BOOT_PROGRAM.read_text()
    start = text.index('"""')
    text = text[:start] + text[text.index('"""', start + 3) + 3:]
    keep = [line for line in text.splitlines()
            if line.startswith("#!") or (line.strip() and not line.lstrip().startswith("#"))]
    return "\n".join([keep[0], "# fleet-boot: boot/fleet_boot.py of the fleet repository", *keep[1:]]) + "\n"


def _block(text: str, indent: str = "      ") -> str:
    return "\n".join(indent + line if line else "" for line in text.splitlines())


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
        "    permissions: '0755'",
        "    content: |",
        _block(shipped_program()),
        "runcmd:",
        f"  - [python3, {BOOT_PATH}, {BOOT_CONFIG}]",
    ]
    return "\n".join(lines) + "\n"
