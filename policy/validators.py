"""fleet's guardrails (fleet/plan/guardrails.py) as Pulumi stack policies: one StackValidationPolicy each.

`pulumi preview --policy-pack policy` (or `up`) starts `policy/__main__.py`, whose PolicyPack(...)
serves POLICIES. Each policy turns the engine's resources into fleet's resource views (`to_views`)
and reports the guardrail's findings against the offending resource's URN. The logic lives here,
not in `__main__.py`, so tests call the converter and validators without starting a server.

What a stack policy sees, and how it maps to the view (see fleet/plan/guardrails.py for the contract):
- `props` are the resource's *outputs*: in a preview, the provider's planned state (the checked
  inputs plus computed fields, unknown where not known yet). They fill both `inputs` and `outputs`.
  Unknown values become None and nulls are dropped (unset), as the contract says.
- Unknown links are resolved through `property_dependencies` where they are unambiguous: an
  unknown `securityGroupId` that depends on exactly one security group in the stack becomes that
  group's id, or a stand-in "unknown:id:<urn>" shared with the group itself when its id is not
  known yet (new resources in a preview). So the ALB/instance security group rules stay decidable
  on a fresh stack. Links not covered (e.g. `networkInterfaces[].securityGroups`) stay unknown and
  the guardrail's own unknown rule applies.
- Options: `ignoreChanges`, `protect` and `deleteBeforeReplace` are in `PolicyResource.opts`
  (the engine sends the goal's options to stack policies). `dependsOn` is not exposed: it is
  approximated as the dependencies that feed no property.

What the pack cannot check as well as `fleet plan`:
- no-fixed-names: the provider writes the autoname into `name`, so a fixed name is told apart
  only by shape: a name that starts with the resource's `namePrefix`, or is "<logical name or a
  prefix of it>-<7 hex>" (Pulumi's autoname), counts as autonamed, and an unknown name as well.
  A fixed name that happens to look like an autoname passes here; `fleet plan` sees the real inputs.
- iam-no-admin: policy documents built from other resources' ARNs are unknown in a preview of new
  resources and pass (see the guardrail's unknown rule); `fleet plan` checks them with mock values.
- Tags: `tagsAll` includes the provider's default tags, which `fleet plan` does not model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
)

from fleet.plan import guardrails as g

UNKNOWNS = frozenset({UNKNOWN_STRING_VALUE, UNKNOWN_BOOLEAN_VALUE, UNKNOWN_NUMBER_VALUE, UNKNOWN_ARRAY_VALUE,
                      UNKNOWN_ASSET_VALUE, UNKNOWN_ARCHIVE_VALUE, UNKNOWN_OBJECT_VALUE})

# Link properties: property -> (field of the linked resource's outputs, type of the linked resource).
LINKS: dict[str, tuple[str, str]] = {
    "securityGroupId": ("id", g.SECURITY_GROUP),
    "referencedSecurityGroupId": ("id", g.SECURITY_GROUP),
    "sourceSecurityGroupId": ("id", g.SECURITY_GROUP),
    "securityGroups": ("id", g.SECURITY_GROUP),
    "vpcSecurityGroupIds": ("id", g.SECURITY_GROUP),
    "autoscalingGroupName": ("name", g.ASG),
    "targetGroupArn": ("arn", g.TARGET_GROUP),
    "lbTargetGroupArn": ("arn", g.TARGET_GROUP),
    "targetGroupArns": ("arn", g.TARGET_GROUP),
}
LIST_LINKS = frozenset({"securityGroups", "vpcSecurityGroupIds", "targetGroupArns"})
IDENTITY = {g.SECURITY_GROUP: "id", g.ASG: "name", g.TARGET_GROUP: "arn"}
AUTONAME = re.compile(r"^(?P<base>.+)-[0-9a-f]{7}$")


def plain(value: Any) -> Any:
    """A policy SDK value (proxies, unknown sentinels, floats from protobuf) as plain JSON-like data.

    Unknown -> None; null inside a mapping -> key dropped (unset); integral floats -> int.
    """
    if isinstance(value, str):
        return None if value in UNKNOWNS else value
    if isinstance(value, Mapping):
        raw = value["__target"] if _is_proxy(value) else value  # iterating a proxy raises on unknowns
        out = {}
        for key in raw:
            item = raw[key]
            if item is not None:
                out[str(key)] = plain(item)
        return out
    if isinstance(value, Sequence):
        raw = value["__target"] if _is_proxy(value) else value
        return [plain(item) for item in raw]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)  # assets, archives


def _is_proxy(value: Any) -> bool:
    return type(value).__name__ in ("_DictProxy", "_ListProxy")


def stack_of(resources: Sequence[PolicyResource]) -> str:
    """The stack name, from a URN (`urn:pulumi:<stack>::<project>::<type>::<name>`)."""
    for res in resources:
        head = str(res.urn).split("::", 1)[0]
        if head.startswith("urn:pulumi:"):
            return head[len("urn:pulumi:"):]
    return ""


def _autonamed(name: Any, logical: str, name_prefix: Any) -> bool:
    if not isinstance(name, str):
        return True  # unknown: cannot tell (see module docstring)
    if isinstance(name_prefix, str) and name_prefix and name.startswith(name_prefix):
        return True
    match = AUTONAME.match(name)
    return bool(match) and logical.startswith(match.group("base"))


def _view(res: PolicyResource) -> dict[str, Any]:
    props = plain(res.props) or {}
    inputs = dict(props)
    if res.resource_type in g.FIXED_NAME_TYPES and "name" in inputs:
        if _autonamed(inputs["name"], res.name, inputs.get("namePrefix")):
            del inputs["name"]
    opts = getattr(res, "opts", None)
    deps = list(getattr(res, "dependencies", None) or [])
    prop_deps = getattr(res, "property_dependencies", None) or {}
    feeding = {d.urn for ds in prop_deps.values() for d in ds}
    return {
        "type": res.resource_type,
        "name": res.name,
        "parent": res.parent.name if getattr(res, "parent", None) is not None else None,
        "parentType": res.parent.resource_type if getattr(res, "parent", None) is not None else None,
        "inputs": inputs,
        "options": {
            "ignoreChanges": list(getattr(opts, "ignore_changes", None) or []),
            "dependsOn": [d.name for d in deps if d.urn not in feeding],
            "protect": bool(getattr(opts, "protect", False)),
            "deleteBeforeReplace": bool(getattr(opts, "delete_before_replace", False)),
        },
        "outputs": dict(props),
        "urn": res.urn,
    }


def _resolve_links(res: PolicyResource, view: dict[str, Any], by_urn: dict[str, dict[str, Any]]) -> None:
    prop_deps = getattr(res, "property_dependencies", None) or {}
    inputs = view["inputs"]
    for prop, (field, target_type) in LINKS.items():
        if prop not in inputs:
            continue
        value = inputs[prop]
        targets = [by_urn[d.urn] for d in prop_deps.get(prop, []) if d.urn in by_urn
                   and by_urn[d.urn]["type"] == target_type]
        resolved = [t["outputs"].get(field) for t in targets]
        if value is None:
            if prop in LIST_LINKS:  # unknown as a whole
                inputs[prop] = resolved if resolved else None
            elif len(resolved) == 1:
                inputs[prop] = resolved[0]
        elif isinstance(value, list) and None in value:
            known = [v for v in value if v is not None]
            extra = [v for v in resolved if v not in known]
            missing = value.count(None) - len(extra)
            inputs[prop] = known + extra + [None] * max(0, missing)


def to_views(resources: Sequence[PolicyResource]) -> tuple[list[dict[str, Any]], str]:
    """The stack's resources as fleet resource views (plus "urn"), and the stack name."""
    views = [_view(res) for res in resources]
    by_urn = {view["urn"]: view for view in views}
    for view in views:  # stand-ins for identities not known yet (new resources in a preview)
        field = IDENTITY.get(view["type"])
        if field and view["outputs"].get(field) is None:
            view["outputs"][field] = f"unknown:{field}:{view['urn']}"
    for res, view in zip(resources, views, strict=True):
        _resolve_links(res, view, by_urn)
    return views, stack_of(resources)


def validator(check):
    """The StackValidation callback of one guardrail."""

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        views, stack = to_views(args.resources)
        for view, message in check.findings(views, stack):
            report_violation(f"{view['name']}: {message}", view["urn"])

    return validate


def policies() -> list[StackValidationPolicy]:
    return [StackValidationPolicy(name=check.policy, description=check.description, validate=validator(check),
                                  enforcement_level=EnforcementLevel.MANDATORY)
            for check in g.GUARDRAILS]
