"""Chef role JSON for a group, in seed 001's shape.

run_list = the merged run_list (base items first, then the group's), then the merged
post_run_list, so notify/sudo style recipes always run last.
"""

from __future__ import annotations

from typing import Any

from fleet.spec.model import Group, to_plain


def role_name(group: Group) -> str:
    return f"role-{group.name}"


def render_role(group: Group) -> dict[str, Any]:
    return {
        "name": role_name(group),
        "chef_type": "role",
        "json_class": "Chef::Role",
        "description": group.description,
        "override_attributes": {},
        "default_attributes": to_plain(group.default_attributes),
        "run_list": [*group.run_list, *group.post_run_list],
    }

