"""`--compare KEY=VALUE`: the same group with one setting changed, as nodes.yaml would spell it
(`scaling.burst.cpu=90`, `autoscale.node_max=8`, `boot.converge=true`, `image.builder=ami`), plus one
key of the model's own: `market=on-demand` buys the spot ASG's instances on demand (no warnings, no
shortages): the same fleet without spot, for the cost comparison."""

from __future__ import annotations

import dataclasses
import re

import yaml

from fleet.spec import rules
from fleet.spec.errors import Problem, SpecError, did_you_mean
from fleet.spec.model import Group

MARKET = "market"


def _bad(group: str, key: str, message: str) -> SpecError:
    return SpecError([Problem("--compare", None, group, key, message)])


def _coerce(group: str, key: str, current, value):
    if isinstance(current, bool) or (current is None and isinstance(value, bool)):
        if not isinstance(value, bool):
            raise _bad(group, key, f"{value!r} is not true/false")
        return value
    if isinstance(current, (int, float)) and not isinstance(current, bool):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad(group, key, f"{value!r} is not a number")
        return value if isinstance(current, float) or isinstance(value, float) else int(value)
    if isinstance(current, tuple):
        if not isinstance(value, list):
            raise _bad(group, key, f"{value!r} is not a list")
        return tuple(value)
    if isinstance(current, str) or current is None:
        if isinstance(value, (dict, list)):
            raise _bad(group, key, f"{value!r} is not a single value")
        return value
    raise _bad(group, key, "only single values and lists can be compared")


def _set(obj, parts: list[str], value, group: str, key: str):
    if not dataclasses.is_dataclass(obj):
        raise _bad(group, key, "no such setting")
    names = [f.name for f in dataclasses.fields(obj)]
    head = parts[0]
    if head not in names:
        raise _bad(group, key, f"no such setting{did_you_mean(head, names)}")
    current = getattr(obj, head)
    if len(parts) == 1:
        return dataclasses.replace(obj, **{head: _coerce(group, key, current, value)})
    if current is None:
        raise _bad(group, key, f"the group has no {head} to change")
    return dataclasses.replace(obj, **{head: _set(current, parts[1:], value, group, key)})


def parse(text: str, group: Group) -> tuple[str, Group, bool]:
    """(label, changed group, all on-demand) for one `KEY=VALUE`, or several changed together:
    `KEY=VALUE,KEY=VALUE` (e.g. `image.builder=ami,autoscale.timeout=900`)."""
    parts = re.split(r",(?=\s*[A-Za-z_][\w.]*\s*=)", text)
    on_demand, changed = False, group
    for part in parts:
        _, changed, market = _one(part, changed)
        on_demand = on_demand or market
    # the nodes.yaml rules the changed group breaks and the configured one does not (e.g. a target
    # above the burst threshold) make the variant bad input, as they would in nodes.yaml
    for key, message in sorted(set(rules.check_merged(_plain(changed))) - set(rules.check_merged(_plain(group)))):
        raise _bad(group.name, key, f"with --compare {text.strip()}: {message}")
    return text.strip(), changed, on_demand


def _plain(group: Group) -> dict:
    """The group as a merged nodes.yaml mapping (unset optional keys left out)."""
    def prune(value):
        if isinstance(value, dict):
            return {k: prune(v) for k, v in value.items() if v is not None}
        return [prune(v) for v in value] if isinstance(value, list) else value
    return prune(group.to_dict())


def _one(text: str, group: Group) -> tuple[str, Group, bool]:
    if "=" not in text:
        raise _bad(group.name, text, "expected KEY=VALUE, e.g. scaling.burst.cpu=90")
    key, raw = (s.strip() for s in text.split("=", 1))
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        raise _bad(group.name, key, f"{raw!r} is not a YAML value") from None
    if key == MARKET:
        if value not in ("on-demand", "spot"):
            raise _bad(group.name, key, f"{raw!r}: market is on-demand or spot")
        return f"{key}={raw}", group, value == "on-demand"
    changed = _set(group, key.split("."), value, group.name, key)
    if changed.autoscale is not None and changed.autoscale.node_min > changed.autoscale.node_max:
        raise _bad(group.name, key, "node_min would exceed node_max")
    return f"{key}={raw}", changed, False
