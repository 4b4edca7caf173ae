"""cloud-init user data: who this instance is (group, stack, environment), nothing secret.

Secrets are fetched at boot with the instance role (SSM Parameter Store / KMS); user data is
readable by anyone who can describe the instance, so it carries names only.
"""

from __future__ import annotations

import json

from fleet.spec.model import Group


def render_user_data(group: Group, stack: str, environment: str) -> str:
    node = {"group": group.name, "stack": stack, "environment": environment}
    if group.http:
        node["port"] = group.http.port
    lines = [
        "#cloud-config",
        "write_files:",
        "  - path: /etc/fleet/node.json",
        "    permissions: '0644'",
        "    content: " + json.dumps(json.dumps(node, sort_keys=True)),
        "runcmd:",
        "  - [sh, -c, 'test -x /usr/local/bin/fleet-boot && /usr/local/bin/fleet-boot || true']",
    ]
    return "\n".join(lines) + "\n"
