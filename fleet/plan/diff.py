"""`fleet plan diff OLD.json NEW.json`: what `pulumi up` would do, from two offline plans (pure: no Pulumi).

Resources are matched by (type, parent, name). For each pair the diff lists every changed input
path with its old -> new value (`healthCheck.interval: 5 -> 10`; long values shortened in the
middle; base64 user data decoded and shown as a text diff) and changed options as
`options.<name>`. On top of that it says what the changes start:

- REPLACE: the provider deletes and creates the resource. Which inputs force that, per type, and what
  it risks, is the table in fleet.plan.replacements (from the provider's schema, each entry with its
  source); the resource option `replaceOnChanges` counts too. A resource whose parent or type changed
  under the same name is a delete and a create under Pulumi (new URN) unless it carries an alias:
  "moved" / "retyped". A one-off instance is replaced whenever its launch template gets a new
  version (the provider forces a new instance when `launch_template.version` changes).
- ROLLOUT: a change to a launch template that creates a new version (anything but its tags,
  description and default-version settings) rolls the group's ASGs to it, on-demand canary first
  (fleet.ops.rollout), and replaces the group's one-off instances.
- Changes to paths the new resource lists in `ignoreChanges` are shown with `(ignored)`: `pulumi up`
  will not apply them, and they start nothing.

`fleet plan diff --fail-on-replace` exits 3 when anything is replaced (fleet.plan.cli).
Offline plans see inputs, not provider state: a value only the provider computes (the new target
group's ARN in the listener rule, the launch template's version number in the ASG) shows no change
here; the REPLACE and ROLLOUT lines say what follows from it.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.plan.replacements import (
    ASG,
    INSTANCE,
    LAUNCH_TEMPLATE,
    LT_NO_VERSION,
    REPLACE_ON_CHANGES,
    forcing_fields,
    matches,
    rule_for,
)
from fleet.plan.tags import tag_value
from fleet.spec.errors import Problem, SpecError, one_line
from fleet.spec.jsonfile import JsonError, read_json

TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
NODE_GROUP = "fleet:node_group:NodeGroup"
# Replacements that hurt most: a summary line names them.
CRITICAL = {ASG: "ASG", TARGET_GROUP: "target group", LOAD_BALANCER: "load balancer", INSTANCE: "instance"}
# input (top level, camelCase) -> replaced when it changes: the table's fields, by type (kept for callers)
REPLACE_ON: dict[str, frozenset[str]] = {t: r.fields for t, r in REPLACE_ON_CHANGES.items()}
USER_DATA = ("userData", "userDataBase64")
LT_VERSION = "launchTemplate.version"


class _Missing:
    def __repr__(self) -> str:
        return "(unset)"


MISSING: Any = _Missing()  # the value of a path on the side where it does not exist

Key = tuple[str, str | None, str]  # (type, parent, name)


@dataclass
class Change:
    type: str
    name: str
    parent: str | None
    paths: list[str] = field(default_factory=list)  # changed input/option paths
    ignored: list[str] = field(default_factory=list)  # the subset under ignoreChanges
    replace: list[str] = field(default_factory=list)  # paths that force a replacement ([] = update in place)
    note: str = ""  # "moved: parent X -> Y", "retyped: ...", "new launch template version"
    values: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # path -> (old, new), MISSING if absent
    group: str | None = None  # the node group it belongs to (None: shared)
    risk: str = ""  # what the replacement risks (fleet.plan.replacements)
    delete_first: bool = False  # deleteBeforeReplace: the old one goes before the new one exists
    slot: str | None = None  # a blue/green group's slot the resource belongs to (its fleet:slot tag)

    @property
    def critical(self) -> bool:
        return bool(self.replace) and self.type in CRITICAL

    @property
    def label(self) -> str:
        rule = rule_for(self.type)
        return rule.label if rule else self.type.rsplit(":", 1)[-1]


@dataclass
class Rollout:
    """A new launch template version for a group: its ASGs roll to it, its one-off instances are replaced."""

    group: str
    template: str
    paths: list[str]  # the template's changed inputs that make the new version
    asgs: list[str]  # in rollout order (on-demand canary first)
    instances: list[str]
    slots: dict[str, list[str]] = field(default_factory=dict)  # blue/green: slot -> its ASGs (none: refresh)


@dataclass
class PlanDiff:
    stack: str
    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    changed: list[Change]
    new_violations: list[dict[str, str]]
    fixed_violations: list[dict[str, str]]
    rollouts: list[Rollout] = field(default_factory=list)
    added_groups: list[str] = field(default_factory=list)
    removed_groups: list[str] = field(default_factory=list)

    @property
    def replacements(self) -> list[Change]:
        return [c for c in self.changed if c.replace]

    def as_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "added": [_ref(r) for r in self.added],
            "removed": [_ref(r) for r in self.removed],
            "changed": [{"type": c.type, "name": c.name, "parent": c.parent, "group": c.group, "paths": c.paths,
                         "ignored": c.ignored, "replace": c.replace, "risk": c.risk, "note": c.note,
                         "slot": c.slot,
                         "values": {p: [_plain(o), _plain(n)] for p, (o, n) in c.values.items()}}
                        for c in self.changed],
            "rollouts": [vars(r) for r in self.rollouts],
            "groups": {"added": self.added_groups, "removed": self.removed_groups},
            "violations": {"new": self.new_violations, "fixed": self.fixed_violations},
        }


def _plain(v: Any) -> Any:
    return None if v is MISSING else v


def _ref(r: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": r["type"], "name": r["name"], "parent": r.get("parent")}


MAX_PLAN_BYTES = 128 * 1024 * 1024  # a 10,000-resource plan is ~25 MB
MAX_PLAN_DEPTH = 64
MAX_PLAN_VALUES = 10_000_000
MAX_PROBLEMS = 20  # lines about one malformed plan file; the rest are counted


def plan_problems(data: Any) -> list[str]:
    """What makes `data` not a fleet plan (`fleet plan --json`'s shape), one line each ([] = a plan)."""
    if not isinstance(data, dict):
        return [f"a plan is a JSON object, not {_kind(data)}"]
    out: list[str] = []
    for key in ("project", "stack"):
        if key in data and not isinstance(data[key], str):
            out.append(f"{key}: must be a string, not {_kind(data[key])}")
    resources = data.get("resources")
    if not isinstance(resources, list):
        out.append(f"resources: must be a list of resources, not {_kind(resources)}")
        resources = []
    for i, r in enumerate(resources):
        at = f"resources[{i}]"
        if not isinstance(r, dict):
            out.append(f"{at}: must be an object (type, name, parent, inputs, options), not {_kind(r)}")
            continue
        for key in ("type", "name"):
            if not isinstance(r.get(key), str) or not r[key]:
                out.append(f"{at}.{key}: must be a non-empty string, not {_kind(r.get(key))}")
        if r.get("parent") is not None and not isinstance(r["parent"], str):
            out.append(f"{at}.parent: must be a name (string) or null, not {_kind(r['parent'])}")
        for key in ("inputs", "options"):
            if r.get(key) is not None and not isinstance(r[key], dict):
                out.append(f"{at}.{key}: must be an object, not {_kind(r[key])}")
        options = r.get("options") if isinstance(r.get("options"), dict) else {}
        for key in ("ignoreChanges", "replaceOnChanges", "aliases", "dependsOn"):
            value = options.get(key)
            if value is not None and not isinstance(value, list):
                out.append(f"{at}.options.{key}: must be a list, not {_kind(value)}")
            elif key in ("ignoreChanges", "replaceOnChanges") and value and not all(isinstance(v, str) for v in value):
                out.append(f"{at}.options.{key}: must list input names (strings)")
    if data.get("outputs") is not None and not isinstance(data["outputs"], dict):
        out.append(f"outputs: must be an object, not {_kind(data['outputs'])}")
    violations = data.get("violations", [])
    if not isinstance(violations, list):
        out.append(f"violations: must be a list, not {_kind(violations)}")
        violations = []
    for i, v in enumerate(violations):
        if not isinstance(v, dict) or not all(isinstance(v.get(k, ""), str) for k in ("policy", "resource", "message")):
            out.append(f"violations[{i}]: must be an object of strings (policy, resource, message)")
    return out


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def load_plan(path: str | Path) -> dict[str, Any]:
    """A plan JSON file, checked on load (fleet/spec/jsonfile.py's limits, then the plan's shape);
    SpecError with one line per problem when it is missing, unreadable or not a plan."""
    where = str(path)
    try:
        data = read_json(path, max_bytes=MAX_PLAN_BYTES, max_depth=MAX_PLAN_DEPTH, max_values=MAX_PLAN_VALUES)
    except JsonError as exc:
        raise SpecError([Problem(where, None, None, None, f"not a fleet plan: {exc}")]) from None
    problems = plan_problems(data)
    if problems:
        lines = [Problem(where, None, None, None, f"not a fleet plan: {p}") for p in problems[:MAX_PROBLEMS]]
        if len(problems) > MAX_PROBLEMS:
            lines.append(Problem(where, None, None, None, f"not a fleet plan: ... {len(problems) - MAX_PROBLEMS} "
                                 "more problems"))
        raise SpecError(lines)
    return data


def other_stack(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """Why two plans are not of one stack of one project (None when they are): such a diff is not what
    `pulumi up` would do to either stack."""
    a = (old.get("project"), old.get("stack"))
    b = (new.get("project"), new.get("stack"))
    if a == b:
        return None
    return f"the plans are of different stacks: project {a[0]}, stack {a[1]} -> project {b[0]}, stack {b[1]}"


def value_changes(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(path, old, new) where two JSON values differ: `a.b`, `a[2].c`; a whole value when the kinds
    differ; MISSING for the side where a key or list item does not exist."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: list[tuple[str, Any, Any]] = []
        for k in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{k}" if prefix else str(k)
            if k not in old or k not in new:
                out.append((path, old.get(k, MISSING), new.get(k, MISSING)))
            else:
                out += value_changes(old[k], new[k], path)
        return out
    if isinstance(old, list) and isinstance(new, list):
        out = []
        for i in range(max(len(old), len(new))):
            path = f"{prefix}[{i}]"
            if i >= len(old) or i >= len(new):
                out.append((path, old[i] if i < len(old) else MISSING, new[i] if i < len(new) else MISSING))
            else:
                out += value_changes(old[i], new[i], path)
        return out
    return [] if _same(old, new) else [(prefix or "(value)", old, new)]


def changed_paths(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Paths where two JSON values differ: `a.b`, `a[2].c`; a whole value when the kinds differ."""
    return [p for p, _, _ in value_changes(old, new, prefix)]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b  # 2 and 2.0 are the same number
    return type(a) is type(b) and a == b


def _top(path: str) -> str:
    return path.split(".", 1)[0].split("[", 1)[0]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def _ignored(path: str, ignore_changes: list[str]) -> bool:
    return any(matches(path, _camel(ig)) for ig in ignore_changes)


def replace_reasons(typ: str, old: Mapping[str, Any], new: Mapping[str, Any], paths: list[str],
                    replace_on_changes: list[str] = ()) -> list[str]:
    """The paths among `paths` whose change makes the provider (or the resource option
    `replaceOnChanges`) replace the resource."""
    forcing = forcing_fields(typ, dict(old), dict(new)) | {_camel(f) for f in replace_on_changes}
    return [p for p in paths if any(matches(p, f) for f in forcing)]


def _keyed(resources: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    out: dict[Key, dict[str, Any]] = {}
    seen: Counter[Key] = Counter()
    for r in resources:
        key: Key = (r["type"], r.get("parent"), r["name"])
        base = key
        while key in out:  # the same (type, parent name, name) twice: keep both, in file order
            seen[base] += 1
            key = (r["type"], r.get("parent"), f"{r['name']}#{seen[base] + 1}")
        out[key] = r
    return out


def resource_groups(resources: list[dict[str, Any]]) -> list[str | None]:
    """Each resource's node group (None: shared): its `fleet:group` tag, else the group of the top-level
    NodeGroup it sits under (by parent names; the NodeGroup's group is the tag found below it).
    Linear in the number of resources."""
    tops = {r["name"] for r in resources if r.get("parent") is None and r["type"] == NODE_GROUP}
    up: dict[str, str] = {}  # component name -> its parent's name
    for r in resources:
        if r["type"].startswith("fleet:") and r.get("parent") not in (None, r["name"]):
            up.setdefault(r["name"], r["parent"])
    memo: dict[str, str | None] = {}

    def top(name: str | None) -> str | None:
        path: list[str] = []
        while name is not None and name not in tops and name not in memo:
            if name in path:
                name = None
                break
            path.append(name)
            name = up.get(name)
        found = memo[name] if name in memo else (name if name in tops else None)
        for p in path:
            memo[p] = found
        return found

    homes = [r["name"] if r["type"] == NODE_GROUP and r.get("parent") is None else top(r.get("parent"))
             for r in resources]
    tags = [tag_value(r.get("inputs") or {}, "fleet:group") for r in resources]
    real: dict[str, str] = {}
    for home, tag in zip(homes, tags, strict=True):
        if home is not None and isinstance(tag, str):
            real.setdefault(home, tag)
    return [tag if isinstance(tag, str) else (real.get(home, home) if home is not None else None)
            for home, tag in zip(homes, tags, strict=True)]


def diff_plans(old: Mapping[str, Any], new: Mapping[str, Any]) -> PlanDiff:
    old_list, new_list = list(old.get("resources") or []), list(new.get("resources") or [])
    before, after = _keyed(old_list), _keyed(new_list)
    group_of: dict[int, str | None] = {}
    for side in (old_list, new_list):
        for r, g in zip(side, resource_groups(side), strict=True):
            group_of[id(r)] = g
    added = [after[k] for k in after if k not in before]
    removed = [before[k] for k in before if k not in after]
    changed: list[Change] = []
    for k in after:
        if k not in before:
            continue
        o, n = before[k], after[k]
        o_in, n_in = o.get("inputs") or {}, n.get("inputs") or {}
        n_opts = n.get("options") or {}
        triples = value_changes(o_in, n_in)
        triples += [("options." + p, a, b) for p, a, b in value_changes(o.get("options") or {}, n_opts)]
        if not triples:
            continue
        paths = [p for p, _, _ in triples]
        ignore = list(n_opts.get("ignoreChanges") or [])
        ignored = [p for p in paths if not p.startswith("options.") and _ignored(p, ignore)]
        skip = set(ignored)
        live = [p for p in paths if p not in skip and not p.startswith("options.")]
        replace = replace_reasons(n["type"], o_in, n_in, live, list(n_opts.get("replaceOnChanges") or []))
        changed.append(_change(n, paths, ignored, replace, {p: (a, b) for p, a, b in triples}, group_of[id(n)]))

    # the same name under another parent / with another type: Pulumi deletes and creates it (new URN).
    # Matched through an index of the removed resources: linear, however many there are.
    for what, same in (("moved", lambda r: (r["type"], r["name"])),
                       ("retyped", lambda r: (r.get("parent"), r["name"]))):
        index: dict[tuple, deque] = {}
        for o in removed:
            index.setdefault(same(o), deque()).append(o)
        taken: set[int] = set()
        still: list[dict[str, Any]] = []
        for n in added:
            candidates = index.get(same(n))
            while candidates and id(candidates[0]) in taken:
                candidates.popleft()
            if not candidates:
                still.append(n)
                continue
            o = candidates.popleft()
            taken.add(id(o))
            aliases = (n.get("options") or {}).get("aliases") or []
            how = (f"parent {o.get('parent')} -> {n.get('parent')}" if what == "moved"
                   else f"type {o['type']} -> {n['type']}")
            triples = value_changes(o.get("inputs") or {}, n.get("inputs") or {})
            c = _change(n, [p for p, _, _ in triples], [], [] if aliases else [what],
                        {p: (a, b) for p, a, b in triples}, group_of[id(n)])
            c.note = f"{what}: {how}" + (" (aliased)" if aliases else ", no alias: deleted and created")
            changed.append(c)
        added, removed = still, [o for o in removed if id(o) not in taken]

    rollouts = _rollouts(changed, new_list, group_of)
    instance_keys: dict[str, Key] = {}
    for k in after:
        if k[0] == INSTANCE:
            instance_keys.setdefault(k[2], k)
    by_key = {(c.type, c.parent, c.name): c for c in changed}
    for ro in rollouts:  # one-off instances on the template's latest version are replaced by a new version
        for name in ro.instances:
            key = instance_keys[name]
            c = by_key.get(key)
            if c is None:
                c = by_key[key] = _change(after[key], [], [], [], {}, group_of[id(after[key])])
                changed.append(c)
            if LT_VERSION not in c.replace:
                c.replace.append(LT_VERSION)
            c.note = f"new version of launch template {ro.template}"

    def vkey(v: Mapping[str, str]) -> tuple[str, str, str]:
        return (v.get("policy", ""), v.get("resource", ""), v.get("message", ""))

    old_v = {vkey(v): v for v in old.get("violations") or []}
    new_v = {vkey(v): v for v in new.get("violations") or []}
    order = {k: i for i, k in enumerate(after)}
    changed.sort(key=lambda c: order.get((c.type, c.parent, c.name), len(order)))
    old_groups = {g for r in old_list if (g := group_of[id(r)])}
    new_groups = {g for r in new_list if (g := group_of[id(r)])}
    return PlanDiff(stack=str(new.get("stack") or old.get("stack") or ""), added=added, removed=removed,
                    changed=changed, new_violations=[new_v[k] for k in sorted(set(new_v) - set(old_v))],
                    fixed_violations=[old_v[k] for k in sorted(set(old_v) - set(new_v))], rollouts=rollouts,
                    added_groups=sorted(new_groups - old_groups), removed_groups=sorted(old_groups - new_groups))


def _change(r: Mapping[str, Any], paths: list[str], ignored: list[str], replace: list[str],
            values: dict[str, tuple[Any, Any]], group: str | None) -> Change:
    rule = rule_for(r["type"])
    options = r.get("options") or {}
    return Change(type=r["type"], name=r["name"], parent=r.get("parent"), paths=paths, ignored=ignored,
                  replace=replace, values=values, group=group,
                  risk=rule.risk if rule else "deleted and created",
                  delete_first=bool(options.get("deleteBeforeReplace")), slot=slot_of(r))


def slot_of(r: Mapping[str, Any]) -> str | None:
    """The blue/green slot a resource belongs to: its `fleet:slot` tag (ASG tag lists or tag maps)."""
    tags = (r.get("inputs") or {}).get("tags")
    if isinstance(tags, Mapping):
        return tags.get("fleet:slot")
    for t in tags if isinstance(tags, list) else ():
        if isinstance(t, Mapping) and t.get("key") == "fleet:slot":
            return t.get("value")
    return None


def _rollouts(changed: list[Change], resources: list[dict[str, Any]], group_of: dict[int, str | None]) -> list[Rollout]:
    by_group: dict[str | None, list[dict[str, Any]]] = {}
    for r in resources:
        by_group.setdefault(group_of[id(r)], []).append(r)
    # group -> (ASGs in rollout order, instances, blue/green slot -> its ASGs); once per group, so many
    # changed templates of one group stay linear
    members_of: dict[str, tuple[list[str], list[str], dict[str, list[str]]]] = {}

    def members(group: str) -> tuple[list[str], list[str], dict[str, list[str]]]:
        if group not in members_of:
            rs = by_group.get(group, [])
            slots: dict[str, list[str]] = {}
            for r in rs:
                if r["type"] == ASG and slot_of(r):
                    slots.setdefault(slot_of(r), []).append(r["name"])
            members_of[group] = (
                sorted((r["name"] for r in rs if r["type"] == ASG), key=lambda n: ("on-demand" not in n, n)),
                sorted(r["name"] for r in rs if r["type"] == INSTANCE), slots)
        return members_of[group]

    out = []
    for c in changed:
        if c.type != LAUNCH_TEMPLATE:
            continue
        live = [p for p in c.paths if p not in c.ignored and not p.startswith("options.")]
        versioned = [p for p in live if _top(p) not in LT_NO_VERSION]
        if not versioned and not c.replace:
            continue
        asgs, instances, slots = members(c.group) if c.group else ([], [], {})
        out.append(Rollout(group=c.group or "?", template=c.name,
                           paths=sorted({_top(p) for p in versioned or c.replace}), asgs=asgs, instances=instances,
                           slots={k: sorted(v) for k, v in sorted(slots.items())}))
    return out


# -- text ------------------------------------------------------------------------------------------

def _where(r: Mapping[str, Any]) -> str:
    return f"{r['type']} {r['name']}" + (f" (in {r['parent']})" if r.get("parent") else "")


def _text(value: Any) -> str:
    """A value on one line: strings as they are, the rest as compact JSON; control characters (ESC
    sequences, newlines, U+2028) escaped, so a plan cannot write to the terminal."""
    if value is MISSING:
        return "(unset)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return one_line(text, sys.maxsize)


def short(value: Any, width: int = 72) -> str:
    """`_text(value)`, long ones cut in the middle."""
    text = _text(value)
    if len(text) > width:
        keep = (width - 1) // 2
        text = text[:keep] + "…" + text[len(text) - (width - 1 - keep):]
    return text


def short_pair(old: Any, new: Any, width: int = 72) -> tuple[str, str]:
    """Two values shortened so that the part that changed stays visible in both: cut in the middle when
    that shows a difference, else a window around the first and last differing characters (a long JSON
    document changed in its middle would otherwise print as two identical-looking lines)."""
    a, b = _text(old), _text(new)
    if len(a) <= width and len(b) <= width:
        return a, b
    cut = short(old, width), short(new, width)
    if old is MISSING or new is MISSING or cut[0] != cut[1]:
        return cut
    head = 0
    limit = min(len(a), len(b))
    while head < limit and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < limit - head and a[len(a) - 1 - tail] == b[len(b) - 1 - tail]:
        tail += 1
    return _window(a, head, len(a) - tail, width), _window(b, head, len(b) - tail, width)


def _window(text: str, start: int, end: int, width: int) -> str:
    """At most about `width` characters of `text` showing text[start:end] (the change) with some context."""
    if len(text) <= width:
        return text
    room = width - 2  # an ellipsis on either side
    lo, hi = max(0, start - 12), min(len(text), end + 12)
    if hi - lo <= room:
        hi = min(len(text), lo + room)
        lo = max(0, hi - room)
        return ("…" if lo else "") + text[lo:hi] + ("…" if hi < len(text) else "")
    half = (room - 1) // 2  # the change itself is long: its start and its end
    return ("…" if lo else "") + text[lo:lo + half] + "…" + text[hi - half:hi] + ("…" if hi < len(text) else "")


def decode_user_data(value: Any) -> str | None:
    """Base64 user data as text (None when it is not base64 of UTF-8 text)."""
    if value is MISSING or value is None:
        return ""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


def _user_data_lines(old: Any, new: Any, limit: int) -> list[str] | None:
    a, b = decode_user_data(old), decode_user_data(new)
    if a is None or b is None:
        return None
    import difflib  # only when user data changed

    lines = [line.rstrip("\n") for line in difflib.unified_diff(a.splitlines(True), b.splitlines(True),
                                                                  "old", "new", n=1)]
    if len(lines) > limit:
        lines = lines[:limit] + [f"... {len(lines) - limit} more lines"]
    return lines


def _value_lines(c: Change, max_paths: int) -> list[str]:
    out = []
    for p in c.paths[:max_paths]:
        old, new = c.values.get(p, (MISSING, MISSING))
        tag = " (ignored)" if p in c.ignored else ""
        if _top(p) in USER_DATA and c.type.startswith("aws:"):
            text = _user_data_lines(old, new, 40)
            if text is not None:
                out.append(f"    {p}{tag} (base64, decoded):")
                out += [f"      {line}" for line in text]
                continue
        a, b = short_pair(old, new)
        out.append(f"    {p}: {a} -> {b}{tag}")
    if len(c.paths) > max_paths:
        out.append(f"    ... {len(c.paths) - max_paths} more")
    return out


def replace_line(c: Change) -> str:
    """`REPLACE target group 12-04-www: port 8080 -> 8081 (forces new; <risk>)`."""
    if c.note.startswith(("moved", "retyped")):
        why = c.note
    else:
        why = "; ".join("{} {} -> {}".format(p, *short_pair(*c.values[p], 40)) if p in c.values
                        else f"{p} changes" for p in c.replace[:3])
        if LT_VERSION in c.replace and LT_VERSION not in c.values:
            why = f"{c.note}" + (f"; {why}" if c.replace[0] != LT_VERSION else "")
    first = " deleted before the new one exists," if c.delete_first else ""
    return f"REPLACE {c.label} {c.name}: {why} (forces new;{first} {c.risk})"


def format_diff(d: PlanDiff, max_paths: int = 12) -> str:
    lines = [f"fleet plan diff ({d.stack or 'stack ?'}): {len(d.added)} to add, {len(d.removed)} to remove, "
             f"{len(d.changed)} to change ({len(d.replacements)} replaced), {len(d.rollouts)} rollout(s)"]
    tagged = Counter(tag_value(r.get("inputs") or {}, "fleet:group") for r in d.added)
    for g in d.added_groups:
        lines.append(f"new group {g}: {tagged[g]} tagged resources created; its ASGs must reach node_min healthy")
    terminated: dict[Any, list[str]] = {}
    for r in d.removed:
        if r["type"] in (ASG, INSTANCE):
            terminated.setdefault(tag_value(r.get("inputs") or {}, "fleet:group"), []).append(r["name"])
    for g in d.removed_groups:
        doomed = terminated.get(g, [])
        lines.append(f"removed group {g}: deleted" + (f", terminating the instances of {', '.join(doomed)}"
                                                       if doomed else ""))
    for r in d.added:
        lines.append(f"+ {_where(r)}")
    for r in d.removed:
        lines.append(f"- {_where(r)}")
    for c in d.changed:
        mark = "!" if c.replace else "~"
        note = f" [{c.note}]" if c.note else ""
        slot = f" (slot {c.slot})" if c.slot else ""
        lines.append(f"{mark} {_where({'type': c.type, 'name': c.name, 'parent': c.parent})}{slot}{note}")
        lines += _value_lines(c, max_paths)
        if c.replace:
            lines.append(f"    {replace_line(c)}")
    for ro in d.rollouts:
        order = " then ".join(ro.asgs) if ro.asgs else "no ASG"
        what = f"ROLLOUT group {ro.group}: new version of launch template {ro.template} ({', '.join(ro.paths)})"
        if ro.slots:  # blue/green: which slot is idle is read from the listener rule at deploy time
            what += (": blue/green into the idle slot (the one at weight 0 when the rollout runs: "
                     + "; ".join(f"slot {k} = {', '.join(v)}" for k, v in ro.slots.items())
                     + "), canary, then 100/0; the live slot stays on standby")
        else:
            what += f": instance refresh of {order}" if ro.asgs else ""
        what += (f"; one-off instances replaced: {', '.join(ro.instances)}" if ro.instances else "")
        lines.append(what)
    critical = [c for c in d.changed if c.critical]
    if critical:
        lines.append(f"WARNING: {len(critical)} replacement(s) of an ASG, target group, load balancer or instance: "
                     + ", ".join(f"{CRITICAL[c.type]} {c.name}" for c in critical))
    if not (d.added or d.removed or d.changed):
        lines.append("no resource changes")
    for v in d.new_violations:
        lines.append(f"new violation: {v.get('policy')} on {v.get('resource')}: {v.get('message')}")
    for v in d.fixed_violations:
        lines.append(f"fixed violation: {v.get('policy')} on {v.get('resource')}: {v.get('message')}")
    return "\n".join(one_line(line, sys.maxsize) for line in lines)  # names and messages come from the files
