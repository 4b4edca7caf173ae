"""`fleet plan diff OLD.json NEW.json`: what changes between two offline plans (pure: no Pulumi).

Resources are matched by (type, parent, name). For each pair the changed input paths are listed
(`healthCheck.interval`, `tags.team`, `mixedInstancesPolicy.launchTemplate.overrides[2].instanceType`)
and changed options as `options.<name>`. A change is flagged REPLACE when the provider replaces the
resource for it; that is known here for the three resources whose replacement hurts (a new ASG
relaunches the group's instances, a new target group or load balancer drops traffic and changes
what points at it):

- aws:autoscaling/group:Group: name, namePrefix, initialLifecycleHooks (ForceNew in the provider
  schema), region;
- aws:lb/targetGroup:TargetGroup: name, namePrefix, port, protocol, protocolVersion, targetType,
  vpcId, ipAddressType, region;
- aws:lb/loadBalancer:LoadBalancer: name, namePrefix, internal, loadBalancerType,
  customerOwnedIpv4Pool, region; for a network load balancer also subnets and securityGroups
  (the provider's CustomizeDiff forces a new NLB when subnets are removed or security groups are
  added to / removed from one that had none).

A resource whose parent or type changed, with the same name, is a delete and a create under
Pulumi (its URN changes) unless the new one carries an alias: reported as "moved" / "retyped" and
flagged REPLACE for every type (`aliased` when the new resource has aliases). Changes to paths the
new resource lists in `ignoreChanges` are shown with `(ignored)`: `pulumi up` will not apply them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.spec.errors import Problem, SpecError

ASG = "aws:autoscaling/group:Group"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
CRITICAL = {ASG: "ASG", TARGET_GROUP: "target group", LOAD_BALANCER: "load balancer"}

# input (top-level, camelCase) -> replaced when it changes
REPLACE_ON: dict[str, frozenset[str]] = {
    ASG: frozenset({"name", "namePrefix", "initialLifecycleHooks", "region"}),
    TARGET_GROUP: frozenset({"name", "namePrefix", "port", "protocol", "protocolVersion", "targetType", "vpcId",
                             "ipAddressType", "region"}),
    LOAD_BALANCER: frozenset({"name", "namePrefix", "internal", "loadBalancerType", "customerOwnedIpv4Pool",
                              "region"}),
}
NLB_REPLACE_ON = frozenset({"subnets", "securityGroups"})

Key = tuple[str, str | None, str]  # (type, parent, name)


@dataclass
class Change:
    type: str
    name: str
    parent: str | None
    paths: list[str] = field(default_factory=list)  # changed input/option paths
    ignored: list[str] = field(default_factory=list)  # the subset under ignoreChanges
    replace: list[str] = field(default_factory=list)  # why it is replaced ([] = updated in place)
    note: str = ""  # "moved from parent X", "retyped from T"

    @property
    def critical(self) -> bool:
        return bool(self.replace) and self.type in CRITICAL


@dataclass
class PlanDiff:
    stack: str
    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    changed: list[Change]
    new_violations: list[dict[str, str]]
    fixed_violations: list[dict[str, str]]

    @property
    def replacements(self) -> list[Change]:
        return [c for c in self.changed if c.replace]

    def as_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "added": [_ref(r) for r in self.added],
            "removed": [_ref(r) for r in self.removed],
            "changed": [{"type": c.type, "name": c.name, "parent": c.parent, "paths": c.paths, "ignored": c.ignored,
                         "replace": c.replace, "note": c.note} for c in self.changed],
            "violations": {"new": self.new_violations, "fixed": self.fixed_violations},
        }


def _ref(r: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": r["type"], "name": r["name"], "parent": r.get("parent")}


def load_plan(path: str | Path) -> dict[str, Any]:
    """A plan JSON file; SpecError (one line) when it is missing or not a plan."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        message = f"cannot read the plan: {exc.strerror or exc}"
        raise SpecError([Problem(str(path), None, None, None, message)]) from None
    except ValueError as exc:
        raise SpecError([Problem(str(path), None, None, None, f"not JSON: {exc}")]) from None
    if not isinstance(data, dict) or not isinstance(data.get("resources"), list) or not all(
            isinstance(r, dict) and isinstance(r.get("type"), str) and isinstance(r.get("name"), str)
            for r in data["resources"]):
        raise SpecError([Problem(str(path), None, None, None,
                                 "not a fleet plan (expected {\"resources\": [{\"type\", \"name\", ...}], ...})")])
    return data


def changed_paths(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Paths where two JSON values differ: `a.b`, `a[2].c`; a whole value when the kinds differ."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{k}" if prefix else str(k)
            if k not in old or k not in new:
                out.append(path)
            else:
                out += changed_paths(old[k], new[k], path)
        return out
    if isinstance(old, list) and isinstance(new, list):
        out = []
        for i in range(max(len(old), len(new))):
            path = f"{prefix}[{i}]"
            if i >= len(old) or i >= len(new):
                out.append(path)
            else:
                out += changed_paths(old[i], new[i], path)
        return out
    return [] if _same(old, new) else [prefix or "(value)"]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b  # 2 and 2.0 are the same number
    return type(a) is type(b) and a == b


def _top(path: str) -> str:
    return path.split(".", 1)[0].split("[", 1)[0]


def _ignored(path: str, ignore_changes: list[str]) -> bool:
    for ig in ignore_changes:
        ig = _camel(ig)
        if path == ig or path.startswith(ig + ".") or path.startswith(ig + "["):
            return True
    return False


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def replace_reasons(typ: str, old: Mapping[str, Any], new: Mapping[str, Any], paths: list[str]) -> list[str]:
    """The input paths (top level) among `paths` whose change makes the provider replace the resource."""
    forcing = set(REPLACE_ON.get(typ, ()))
    if typ == LOAD_BALANCER and (new.get("loadBalancerType") or old.get("loadBalancerType")) == "network":
        forcing |= NLB_REPLACE_ON
    return sorted({_top(p) for p in paths if _top(p) in forcing})


def _keyed(resources: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    out: dict[Key, dict[str, Any]] = {}
    for r in resources:
        key: Key = (r["type"], r.get("parent"), r["name"])
        n = 2
        while key in out:  # the same (type, parent name, name) twice: keep both, in file order
            key = (r["type"], r.get("parent"), f"{r['name']}#{n}")
            n += 1
        out[key] = r
    return out


def diff_plans(old: Mapping[str, Any], new: Mapping[str, Any]) -> PlanDiff:
    before, after = _keyed(list(old.get("resources") or [])), _keyed(list(new.get("resources") or []))
    added = [after[k] for k in after if k not in before]
    removed = [before[k] for k in before if k not in after]
    changed: list[Change] = []
    for k in after:
        if k not in before:
            continue
        o, n = before[k], after[k]
        o_in, n_in = o.get("inputs") or {}, n.get("inputs") or {}
        paths = changed_paths(o_in, n_in)
        paths += ["options." + p for p in changed_paths(o.get("options") or {}, n.get("options") or {})]
        if not paths:
            continue
        ignore = list((n.get("options") or {}).get("ignoreChanges") or [])
        ignored = [p for p in paths if not p.startswith("options.") and _ignored(p, ignore)]
        live = [p for p in paths if p not in ignored]
        reasons = replace_reasons(n["type"], o_in, n_in, live)
        changed.append(Change(type=n["type"], name=n["name"], parent=n.get("parent"), paths=paths, ignored=ignored,
                              replace=[f"{r} changed" for r in reasons]))

    # the same name under another parent / with another type: Pulumi deletes and creates it (new URN)
    for match, what in ((lambda a, b: a["type"] == b["type"] and a["name"] == b["name"], "moved"),
                        (lambda a, b: a.get("parent") == b.get("parent") and a["name"] == b["name"], "retyped")):
        for n in list(added):
            o = next((o for o in removed if match(o, n)), None)
            if o is None:
                continue
            added.remove(n)
            removed.remove(o)
            aliases = (n.get("options") or {}).get("aliases") or []
            how = (f"parent {o.get('parent')} -> {n.get('parent')}" if what == "moved"
                   else f"type {o['type']} -> {n['type']}")
            paths = changed_paths(o.get("inputs") or {}, n.get("inputs") or {})
            replace = [] if aliases else [f"{what} ({how}), no alias: deleted and created"]
            changed.append(Change(type=n["type"], name=n["name"], parent=n.get("parent"), paths=paths,
                                  replace=replace, note=f"{what}: {how}" + (" (aliased)" if aliases else "")))

    def vkey(v: Mapping[str, str]) -> tuple[str, str, str]:
        return (v.get("policy", ""), v.get("resource", ""), v.get("message", ""))

    old_v = {vkey(v): v for v in old.get("violations") or []}
    new_v = {vkey(v): v for v in new.get("violations") or []}
    order = {k: i for i, k in enumerate(after)}
    changed.sort(key=lambda c: order.get((c.type, c.parent, c.name), len(order)))
    return PlanDiff(stack=str(new.get("stack") or old.get("stack") or ""), added=added, removed=removed,
                    changed=changed, new_violations=[new_v[k] for k in sorted(set(new_v) - set(old_v))],
                    fixed_violations=[old_v[k] for k in sorted(set(old_v) - set(new_v))])


def _where(r: Mapping[str, Any]) -> str:
    return f"{r['type']} {r['name']}" + (f" (in {r['parent']})" if r.get("parent") else "")


def format_diff(d: PlanDiff, max_paths: int = 12) -> str:
    lines = [f"fleet plan diff ({d.stack or 'stack ?'}): {len(d.added)} to add, {len(d.removed)} to remove, "
             f"{len(d.changed)} to change ({len(d.replacements)} replaced)"]
    for r in d.added:
        lines.append(f"+ {_where(r)}")
    for r in d.removed:
        lines.append(f"- {_where(r)}")
    for c in d.changed:
        shown = [p + (" (ignored)" if p in c.ignored else "") for p in c.paths[:max_paths]]
        more = f", ... {len(c.paths) - max_paths} more" if len(c.paths) > max_paths else ""
        mark = "!" if c.replace else "~"
        what = _where({"type": c.type, "name": c.name, "parent": c.parent})
        note = f" [{c.note}]" if c.note else ""
        lines.append(f"{mark} {what}{note}: {', '.join(shown) or 'no input change'}{more}")
        if c.replace:
            label = CRITICAL.get(c.type, "resource")
            lines.append(f"    REPLACE {label}: {'; '.join(c.replace)}")
    critical = [c for c in d.changed if c.critical]
    if critical:
        lines.append(f"WARNING: {len(critical)} replacement(s) of an ASG, target group or load balancer: "
                     + ", ".join(f"{CRITICAL[c.type]} {c.name}" for c in critical))
    if not (d.added or d.removed or d.changed):
        lines.append("no resource changes")
    for v in d.new_violations:
        lines.append(f"new violation: {v.get('policy')} on {v.get('resource')}: {v.get('message')}")
    for v in d.fixed_violations:
        lines.append(f"fixed violation: {v.get('policy')} on {v.get('resource')}: {v.get('message')}")
    return "\n".join(lines)
