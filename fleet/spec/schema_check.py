"""Structural checks against schema/nodes.schema.json, turned into one-line problems.

The published schema is the single source of the structure (keys, types, ranges, enums), so
editors and `fleet validate` cannot disagree on it. Cross-field rules live in fleet/spec/rules.py.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any, Iterable, Iterator

import jsonschema
from jsonschema import Draft202012Validator, validators

from fleet.spec.errors import Problem, did_you_mean, quote

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schema" / "nodes.schema.json"

_HINTS = {
    "source_ami": "an AMI id like ami-0123456789abcdef0, or a mapping {name, owners}",
    "autoscale": "false, or a mapping {node_min, node_max, timeout, spot, on_demand}",
    "health_check": "a path like /healthz, or a mapping {path, interval, timeout, ...}",
    "run_list": "items like recipe[cookbook::recipe] or role[name]",
    "post_run_list": "items like recipe[cookbook::recipe] or role[name]",
    "instance_type": "an EC2 instance type like m5.large",
    "instance_types": "EC2 instance types like m5.large",
    "owners": "12-digit account ids, self, amazon or aws-marketplace",
    "security_groups": "names of letters, digits, '.', '_' and '-'",
    "matcher": "HTTP codes like 200 or 200-399",
    "region": "an AWS region like us-east-1",
    "tags": "tag keys that do not start with aws: or fleet: (those are reserved; fleet sets its own)",
}

_TYPE_NAMES = {
    str: "a string", int: "an integer", float: "a number", bool: "a boolean",
    dict: "a mapping", list: "a list", type(None): "empty (null)",
}


@functools.lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def ecma_regex(pattern: str) -> re.Pattern:
    """A JSON Schema (ECMA 262) pattern as Python reads it: an unescaped `$` outside a character class
    becomes `\\Z`, because Python's `$` also matches before a final newline ("m5.large\\n")."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if ch == "[":
            in_class = True
        elif ch == "]":
            in_class = False
        out.append("\\Z" if ch == "$" and not in_class else ch)
        i += 1
    return re.compile("".join(out))


_regex = functools.lru_cache(maxsize=None)(ecma_regex)


def _pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not _regex(pattern).search(instance):
        yield jsonschema.ValidationError(f"{quote(instance)} does not match {pattern!r}")


# YAML's 2.0 is a float: "integer" means a Python int (jsonschema counts 2.0 as one, the components
# would not); booleans are never numbers.
_TYPES = Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda checker, v: isinstance(v, int) and not isinstance(v, bool))
_Validator = validators.extend(Draft202012Validator, validators={"pattern": _pattern}, type_checker=_TYPES)


def _without_required(node: Any) -> Any:
    """The schema with every `required` dropped: a stack override may give part of a mapping."""
    if isinstance(node, dict):
        return {k: _without_required(v) for k, v in node.items() if k != "required"}
    if isinstance(node, list):
        return [_without_required(v) for v in node]
    return node


@functools.lru_cache(maxsize=4)
def _validator(part: str) -> Draft202012Validator:
    """'document', a $defs part, or 'group-override' (a group without `required`: checked alone
    before the merge; the merged group is then checked against 'group')."""
    root = schema()
    if part == "group-override":
        root = {**root, "$defs": {**root["$defs"], "group-override": _without_required(copy.deepcopy(
            root["$defs"]["group"]))}}
    target = root if part == "document" else {"$defs": root["$defs"], "$ref": f"#/$defs/{part}"}
    return _Validator(target)


def _describe(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _message(err: jsonschema.ValidationError) -> Iterator[tuple[tuple[str, ...], str]]:
    """(path, message) pairs for one schema error; oneOf errors are narrowed to the branch meant."""
    path = tuple(str(p) for p in err.absolute_path)
    last = path[-1] if path else ""
    v, inst = err.validator, err.instance
    if v == "additionalProperties" and isinstance(inst, dict):
        allowed = list(err.schema.get("properties", {}))
        for key in sorted(set(map(str, inst)) - set(allowed)):
            yield (*path, key), f"unknown key{did_you_mean(key, allowed)}"
    elif v in ("oneOf", "anyOf"):
        branches: dict[int, list[jsonschema.ValidationError]] = {}
        for sub in err.context or ():
            branches.setdefault(sub.schema_path[0], []).append(sub)
        meant = [subs for subs in branches.values()
                 if not any(s.validator in ("type", "const") and not s.relative_path for s in subs)]
        if len(meant) == 1:
            for sub in meant[0]:
                yield from _message(sub)
        else:
            yield path, f"must be {_HINTS.get(last, 'one of the allowed forms')}, not {_describe(inst)} ({quote(inst)})"
    elif v == "type":
        yield path, f"must be {_TYPE_NAMES.get(_PY.get(err.validator_value), err.validator_value)}, " \
                    f"not {_describe(inst)} ({quote(inst)})"
    elif v == "enum" and last == "type":
        yield path, (f"{quote(inst)} is not accepted: the only type is amazon-ebs (seed 001's Packer builder, "
                     "= image.builder packer); other builders are image.builder raw or ami")
    elif v == "enum":
        choices = [str(c) for c in err.validator_value]
        yield path, f"{quote(inst)} is not one of {', '.join(choices)}{did_you_mean(str(inst), choices)}"
    elif v == "const":
        yield path, f"must be {err.validator_value!r}, not {quote(inst)}"
    elif v in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[v]
        yield path, f"must be {op} {err.validator_value}, got {quote(inst)}"
    elif v == "pattern":
        hint = _HINTS.get(last) or _HINTS.get(path[-2] if len(path) > 1 else "", "")
        yield path, f"{quote(inst)} is not valid" + (
            f": expected {hint}" if hint else f" (pattern {err.validator_value})")
    elif v == "required":
        yield path, err.message.replace("is a required property", "is required")
    elif v in ("minItems", "minLength", "maxLength", "minProperties", "maxItems", "maxProperties"):
        n = err.validator_value
        what = {"minItems": f"needs at least {n} item(s)", "maxItems": f"takes at most {n} items",
                "minLength": f"needs at least {n} character(s)", "maxLength": f"is longer than {n} characters",
                "minProperties": f"needs at least {n} entries", "maxProperties": f"takes at most {n} entries"}[v]
        yield path, f"{what}, got {quote(inst)}"
    elif v == "propertyNames":
        return  # group names get a better message from fleet.spec.rules.check_group_names
    else:
        yield path, err.message


_PY = {"string": str, "integer": int, "number": float, "boolean": bool, "object": dict, "array": list,
       "null": type(None)}


def check(instance: Any, part: str, file: str, line_of, group: str | None = None) -> list[Problem]:
    """Problems of `instance` against the document schema (part='document') or a $defs part."""
    problems = []
    for err in _validator(part).iter_errors(instance):
        if not err.absolute_path and "propertyNames" in err.schema_path:
            continue  # group names get a better message from fleet.spec.rules.check_group_name
        for path, msg in _message(err):
            full = path if group is None else (group, *path)
            grp, key = (full[0], key_path(full[1:])) if full else (None, None)
            problems.append(Problem(file, line_of(tuple(p for p in full if not p.isdigit())), grp, key or None, msg))
    return problems


def key_path(parts) -> str:
    """('run_list', '0') -> 'run_list[0]'; ('autoscale', 'node_min') -> 'autoscale.node_min'."""
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out


def iter_defaults(node: dict[str, Any] | None = None, prefix: tuple[str, ...] = ()) -> Iterable[tuple[tuple, Any]]:
    """(path, default) for every `default` in the group schema (used to check model defaults)."""
    root = schema()
    node = root["$defs"]["group"] if node is None else node
    if "$ref" in node:
        node = {**root["$defs"][node["$ref"].rsplit("/", 1)[1]], **{k: v for k, v in node.items() if k != "$ref"}}
    if "default" in node:
        yield prefix, node["default"]
    for key, sub in node.get("properties", {}).items():
        yield from iter_defaults(sub, (*prefix, key))
    for branch in node.get("oneOf", []):
        yield from iter_defaults(branch, prefix)
