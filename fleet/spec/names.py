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


def rule_priorities(groups: Iterable[tuple[str, int | None]]) -> dict[str, int]:
    """Listener-rule priority per group: the explicit one, else a hash of the name.

    Hash-derived priorities do not move when other groups are added or removed (a sorted
    index would renumber every rule). Collisions are resolved by probing upwards, visiting
    groups in name order so the result is deterministic.
    """
    items = sorted(groups)
    taken = {p for _, p in items if p is not None}
    result = {name: p for name, p in items if p is not None}
    for name, explicit in items:
        if explicit is not None:
            continue
        p = zlib.crc32(name.encode()) % (RULE_PRIORITY_SPACE - 1000) + 1000
        while p in taken:
            p = p + 1 if p < RULE_PRIORITY_SPACE else 1000
        taken.add(p)
        result[name] = p
    return result
