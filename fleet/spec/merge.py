"""The seed-001 merge rules, applied parent -> child.

- lists are appended (parent items first, then the child's);
- dicts are merged at level 1 (child keys win; a nested dict under a key is replaced whole);
- anything else, or two values of different types: the child wins.
"""

from __future__ import annotations

from typing import Any, Mapping


def merge_value(parent: Any, child: Any) -> Any:
    """Merge one key's value (the rules above, one level)."""
    if isinstance(parent, list) and isinstance(child, list):
        return [*parent, *child]
    if isinstance(parent, dict) and isinstance(child, dict):
        return {**parent, **child}
    return child


def merge_group(parent: Mapping[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    """Merge a group's mapping onto its parent's: each top-level key by `merge_value`."""
    merged = dict(parent)
    for key, value in child.items():
        merged[key] = merge_value(parent[key], value) if key in parent else value
    return merged
