"""AWS-safe names derived from group names, and stable listener-rule priorities.

Group names follow seed 001 (`12_04-bee`: digits, underscores, hyphens), up to 128 characters.
Several AWS names allow only letters, digits and hyphens and are short (target groups and load
balancers 32 characters, IAM roles 64, launch template and security group name prefixes about
100; Pulumi's autonaming appends '-' plus 7 characters), so resources are named from `slug()`,
which is at most SLUG_MAX characters, and names with a tighter budget go through `fit()`. Both
shorten only what is too long, by keeping the head and appending a hash of the whole name: stable,
distinct for distinct names, and today's short names (and so their URNs) unchanged.
fleet.spec.rules rejects the astronomically unlikely case of two groups deriving one name.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from typing import Iterable

GROUP_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
MAX_GROUP_NAME = 128
# IAM role names: at most 64 = slug + "-node" + Pulumi's 8-character autoname suffix
SLUG_MAX = 51
SHORT_NAME = 24  # target groups and load balancers: 32 = name + Pulumi's 8-character autoname suffix
NAME_PREFIX_MAX = 99  # launch template / security group name_prefix (+ "-"; AWS adds 26 characters)
HASH_LEN = 8
RULE_PRIORITY_SPACE = 50000


def fit(name: str, limit: int) -> str:
    """`name` when it has at most `limit` characters, else its head, '-' and 8 hex characters of
    the whole name's sha256 (exactly `limit` characters or fewer)."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:HASH_LEN]
    return f"{name[:limit - HASH_LEN - 1].rstrip('-')}-{digest}"


def raw_slug(name: str) -> str:
    """`12_04-bee` -> `12-04-bee`: lower case, letters, digits and single hyphens, no edge hyphens."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "x"


def slug(name: str) -> str:
    """`raw_slug(name)`, fitted to SLUG_MAX characters: what every logical and AWS name of a group
    starts from (`customer_facing_frontend_web_servers_v2` -> `customer-facing-frontend-web-servers-v2`)."""
    return fit(raw_slug(name), SLUG_MAX)


def name_prefix(*parts: str) -> str:
    """A `name_prefix` (launch templates, security groups) from slugged parts, fitted: `fleet-staging-api-`."""
    return fit("-".join(parts), NAME_PREFIX_MAX) + "-"


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
