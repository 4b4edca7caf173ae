"""A resource's tag from its registered inputs, in both shapes pulumi-aws uses (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def tag_value(inputs: Mapping[str, Any], key: str) -> Any:
    """`tags[key]` of a map of tags, or the value of `{key, value, propagateAtLaunch}` in an ASG's list."""
    tags = inputs.get("tags")
    if isinstance(tags, Mapping):
        return tags.get(key)
    if isinstance(tags, list):
        for t in tags:
            if isinstance(t, Mapping) and t.get("key") == key:
                return t.get("value")
    return None
