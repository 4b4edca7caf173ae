"""Small pure helpers for names and tags shared by the components (no Pulumi imports)."""

from __future__ import annotations

import re
from typing import Mapping

from fleet.spec.model import Group
from fleet.spec.names import SHORT_NAME, fit, name_prefix, slug

SHORT_NAME_RE = re.compile(r"^(?!internal-)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$")


def short_logical_name(base: str) -> str:
    """A logical name whose autoname (name + 8 chars) fits a 32-character AWS name (shortened with a
    hash of the whole name when needed, fleet.spec.names.fit)."""
    return fit(slug(base), SHORT_NAME)


def alarm_prefix(stack: str, group: str) -> str:
    """Prefix of every CloudWatch alarm of a group: `fleet-<stack>-<group-slug>-`.

    Health alarms (the rollout's gate) continue with `health-` (fleet.spec.names.health_alarm_prefix);
    scaling alarms continue with their capacity (`spot-`, `on-demand-`) and never with `health-`.
    """
    return f"fleet-{stack}-{slug(group)}-"


def resource_prefix(stack: str, group: str) -> str:
    """`name_prefix` of a group's launch template and security group (at most 100 characters)."""
    return name_prefix("fleet", slug(stack), slug(group))


def group_tags(group: Group, stack: str) -> dict[str, str]:
    """Tags on every resource of a group: the group's own, then fleet's (which win)."""
    tags: dict[str, str] = {str(k): str(v) for k, v in dict(group.tags).items()}
    tags.update({"fleet:group": group.name, "fleet:stack": stack})
    return tags


def stack_tags(stack: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Tags on shared (per-stack) resources."""
    return {**dict(extra or {}), "fleet:stack": stack}
