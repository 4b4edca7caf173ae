"""AWS-safe names derived from group names, and stable listener-rule priorities.

Group names follow seed 001 (`12_04-bee`: digits, underscores, hyphens). Several AWS names
allow only letters, digits and hyphens (target groups, load balancers: at most 32 characters,
and Pulumi's autonaming appends '-' plus 7 characters), so resources are named from `slug()`.
"""

from __future__ import annotations

import re
import zlib
from typing import Iterable

GROUP_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,23}$")
MAX_GROUP_NAME = 24
RULE_PRIORITY_SPACE = 50000


def slug(name: str) -> str:
    """`12_04-bee` -> `12-04-bee`: lower case, letters, digits and single hyphens, no edge hyphens."""
    s = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return s or "x"


def derived_priority(name: str) -> int:
    """A group's listener-rule priority when `http.priority` is unset: a hash of its own name only,
    1000+ (explicit ones are 1-999), so no other group's arrival or departure can ever move it."""
    return zlib.crc32(name.encode()) % (RULE_PRIORITY_SPACE - 1000) + 1000


def rule_priorities(groups: Iterable[tuple[str, int | None]]) -> dict[str, int]:
    """Listener-rule priority per group: the explicit one, else `derived_priority(name)`.

    Never probes: a collision (PriorityInUse at apply) is a validate error asking for an explicit
    priority (fleet.spec.rules.priority_clashes), so a valid fleet has distinct values here.
    """
    return {name: explicit if explicit is not None else derived_priority(name) for name, explicit in groups}


def health_alarm_prefix(group: str, stack: str) -> str:
    """Name prefix of a group's health alarms (5xx, unhealthy hosts): the ones that gate a rollout.
    Scaling alarms (CPU) never use it, or a busy hour would roll every deploy back. Here, not in
    fleet.ops.rollout, so the program names its alarms without importing boto3."""
    return f"fleet-{stack}-{slug(group)}-health-"
