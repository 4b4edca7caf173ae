"""Spot instance types for a group: the listed ones, or ones derived from its instance_type.

Spot must be diversified over 3+ instance types (a shortage of one type then leaves the others).
When a group lists fewer, the
list is completed with types of the same class and size from neighbouring families that run
the same image: same architecture, no local-disk (`d`), flex or special variants.
m5.large -> m5.large, m5a.large, m6i.large, m5n.large. Only types in botocore's EC2 model count.
"""

from __future__ import annotations

import functools
import re

from fleet.spec.instance_types import family_of, known_instance_types, size_of
from fleet.spec.limits import MIN_SPOT_TYPES
from fleet.spec.model import Group

__all__ = ["MIN_SPOT_TYPES", "derived_types", "spot_instance_types"]
DERIVED_SPOT_TYPES = 4
_FAMILY_RE = re.compile(r"^([a-z]+?)(\d+)([a-z]*)$")
# attribute letters after the generation: i (Intel), a (AMD), n (network); g = Graviton (arm64)
_X86_ATTRS = {"": 0, "i": 0, "a": 1, "n": 2, "in": 2, "an": 2}
_ARM_ATTRS = {"g": 0, "gn": 2}


def _parse(family: str) -> tuple[str, int, str] | None:
    m = _FAMILY_RE.match(family)
    return (m.group(1), int(m.group(2)), m.group(3)) if m else None


def derived_types(instance_type: str, architecture: str = "x86_64", widen: bool = False) -> list[str]:
    """instance_type first, then its nearest neighbours (same class and size, one generation apart
    at most), best first; with `widen`, then the farther generations of the class, nearest first
    (a previous-generation type such as seed 001's m1.large has no near neighbours)."""
    return list(_derived(instance_type, architecture, widen))


@functools.cache
def _derived(instance_type: str, architecture: str, widen: bool) -> tuple[str, ...]:
    """derived_types, kept per argument: it ranks every EC2 type botocore knows (about a thousand),
    twice per group and load, the same few answers over and over in a large fleet."""
    parsed = _parse(family_of(instance_type))
    if parsed is None:
        return (instance_type,)
    cls, gen, _ = parsed
    size = size_of(instance_type)
    attrs = _ARM_ATTRS if architecture == "arm64" else _X86_ATTRS
    ranked = []
    for t in known_instance_types():
        if t == instance_type or "." not in t or size_of(t) != size:
            continue
        other = _parse(family_of(t))
        if other is None or other[0] != cls or other[2] not in attrs:
            continue
        dist = other[1] - gen
        far = dist not in (-1, 0, 1)
        if far and not widen:
            continue
        penalty = attrs[other[2]] + (abs(dist) if dist >= 0 else 2)
        ranked.append((far, abs(dist) if far else penalty, abs(dist), t))
    return (instance_type, *(t for *_, t in sorted(ranked)))


def spot_instance_types(group: Group) -> list[str]:
    """The spot ASG's instance types: the group's list when it has 3+, else completed to 4 from the
    near neighbours, or to 3 from farther generations of the class when the near ones are too few."""
    listed = list(group.autoscale.spot.instance_types) if group.autoscale else []
    if len(listed) >= MIN_SPOT_TYPES:
        return listed
    result = listed or [group.instance_type]
    for t in derived_types(group.instance_type, group.image.architecture):
        if len(result) >= DERIVED_SPOT_TYPES:
            break
        if t not in result:
            result.append(t)
    for t in derived_types(group.instance_type, group.image.architecture, widen=True):
        if len(result) >= MIN_SPOT_TYPES:  # only when the near ones are too few: farther generations
            break
        if t not in result:
            result.append(t)
    return result
