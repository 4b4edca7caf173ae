"""Guardrails: pure checks over the resources a stack registers (what users of this stack hit, as code).

Used by `fleet plan` (resources from the mock engine) and by the policy pack in `policy/`
(resources from a real `pulumi preview`/`up`). No Pulumi, no boto3: plain dicts in, plain dicts out.

Resource view (the input), one dict per registered resource, components included:

    {"type":    "aws:autoscaling/group:Group",   # type token; "fleet:..." = our components
     "name":    "api-spot",                      # logical name
     "parent":  "api" | None,                    # parent's logical name
     "parentType": "fleet:node_group:NodeGroup" | None,  # parent's type token (optional; names may repeat)
     "inputs":  {...},                           # camelCase, as the engine sees them
     "options": {"ignoreChanges": [...], "dependsOn": [...], "protect": bool, "deleteBeforeReplace": bool},
     "outputs": {...}}                           # camelCase; "id", "arn", "name", ... (may be empty/partial)

Values: a key that is absent is *unset* (AWS's default applies); a key whose value is None is
*unknown* (computed from another resource, as in a real preview). Producers must keep that
distinction: drop unset inputs, keep unknown ones as None. Links between resources are by value:
an ingress rule's `securityGroupId` equals a security group's `outputs["id"]`, a target group is
`outputs["arn"]`, an ASG's name is `inputs["name"]` or `outputs["name"]` (autonamed ASGs only have
the latter). `ignoreChanges` may be camelCase or snake_case.

Violation (the output): `{"policy": "<guardrail id>", "resource": "<logical name>", "message": "..."}`.
`check_all(resources, stack)` runs every guardrail in `GUARDRAILS`; each guardrail is a function
`(resources, stack) -> list[violation]` with `.policy` (its id), `.description` and `.findings`
(the same check returning `(resource view, message)` pairs, for callers that need the view).

Unknown values, decided per rule (fail closed unless a pass is provably safe):

- asg-explicit-version, unknown version: pass. It is computed from a template's version, a
  number; "$Latest"/"$Default" are literals and always known.
- asg-ignores-desired-capacity, unknown policy target or ASG name: fail closed. Every ASG the
  policy could drive must ignore desiredCapacity (cheap on an ASG without policies).
- target-groups-via-asg, unknown target group of an attachment or unknown ASG targetGroupArns:
  fail closed when a double attachment cannot be ruled out.
- no-world-ingress, unknown security group of a rule or of a load balancer: fail closed (the
  ALB exception must be proven). Unknown CIDR: not world (0.0.0.0/0 and ::/0 are literals; a
  computed CIDR comes from a VPC or subnet).
- instance-ingress-from-alb-only, unknown security groups of a template/instance: a violation on
  that template/instance; unknown security group or source of a rule: fail closed.
- iam-no-admin, unknown policy document: pass. Documents built from other resources' ARNs are
  unknown in real previews; `fleet plan` (mock values, all known) checks them.
- user-data-no-secrets, unknown user data: pass (nothing to decode).
- every other setting (httpTokens, encrypted, sslPolicy, delays, tags, ...): fail closed,
  "cannot be verified".
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fleet.spec.limits import DEREGISTRATION_DELAY, MAX_HEALTH_CHECK_INTERVAL, MIN_SPOT_TYPES, PROD_STACKS

Resource = dict[str, Any]
Violation = dict[str, str]
Finding = tuple[Resource, str]

ASG = "aws:autoscaling/group:Group"
ASG_POLICY = "aws:autoscaling/policy:Policy"
ASG_ATTACHMENT = "aws:autoscaling/attachment:Attachment"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
INSTANCE = "aws:ec2/instance:Instance"
VOLUME = "aws:ebs/volume:Volume"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SG_EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
TG_ATTACHMENT = "aws:lb/targetGroupAttachment:TargetGroupAttachment"
LISTENER = "aws:lb/listener:Listener"
LISTENER_RULE = "aws:lb/listenerRule:ListenerRule"
IAM_POLICY = "aws:iam/policy:Policy"
IAM_ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
IAM_ROLE = "aws:iam/role:Role"
IAM_ROLE_POLICY_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
INSTANCE_PROFILE = "aws:iam/instanceProfile:InstanceProfile"
NODE_GROUP = "fleet:node_group:NodeGroup"
COMMAND = "command:local:Command"
SKIP_ZERO_BLOCKS_FLAG = "--skip-zero-blocks-unsafe-if-encrypted"
COMPONENT_PREFIX = "fleet:"

WORLD = frozenset({"0.0.0.0/0", "::/0"})
ALB_PORTS = frozenset({80, 443})
LATEST_ALIASES = frozenset({"$Latest", "$Default"})
AWS_DEFAULT_DEREGISTRATION_DELAY = 300
AWS_DEFAULT_HEALTH_CHECK_INTERVAL = 30
FIXED_NAME_TYPES = frozenset({ASG, LAUNCH_TEMPLATE, TARGET_GROUP, LOAD_BALANCER, IAM_ROLE, INSTANCE_PROFILE})
ADMIN_POLICY_RE = re.compile(r"^arn:aws[a-z-]*:iam::aws:policy/(AdministratorAccess|PowerUserAccess)$")
STACK_TAG, GROUP_TAG = "fleet:stack", "fleet:group"
# aws:ec2/securityGroupRule:SecurityGroupRule is absent on purpose: it has no tags.
TAGGABLE = frozenset({
    "aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:ec2/routeTable:RouteTable",
    "aws:ec2/internetGateway:InternetGateway", "aws:ec2/natGateway:NatGateway", "aws:ec2/eip:Eip",
    SECURITY_GROUP, SG_INGRESS, SG_EGRESS,
    LOAD_BALANCER, TARGET_GROUP, LISTENER, LISTENER_RULE,
    LAUNCH_TEMPLATE, ASG, INSTANCE, IAM_ROLE, INSTANCE_PROFILE,
    "aws:cloudwatch/metricAlarm:MetricAlarm", "aws:lambda/function:Function",
    "aws:cloudwatch/eventRule:EventRule", "aws:cloudwatch/logGroup:LogGroup", "aws:sqs/queue:Queue",
    "aws:dynamodb/table:Table",
})

SECRET_PATTERNS = [
    (re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"), "an AWS access key id"),
    (re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"), "a private key block"),
    # KEY=value, KEY: value, "key": "value" where KEY ends in password/secret/token; a value that
    # starts with `$` is a shell/template reference (e.g. TOKEN=$(curl ... IMDSv2)), not a secret.
    (re.compile(r"""(?i)(?:password|passwd|secret|token|secret_access_key|api_key)["']?[ \t]*[=:][ \t]*["']?"""
                r"""(?=[^\s"'$])"""), "a password/secret/token assignment"),
]

ABSENT = object()  # "key not there" (unset), as opposed to None (unknown)

GUARDRAILS: list[Callable[[list[Resource], str], list[Violation]]] = []


# --------------------------------------------------------------------------------------- helpers

def guardrail(policy: str, description: str):
    """Register `fn(resources, stack) -> Iterable[(resource view, message)]` as a guardrail."""

    def register(fn: Callable[[list[Resource], str], Iterable[Finding]]):
        @functools.wraps(fn)
        def check(resources: list[Resource], stack: str) -> list[Violation]:
            return [{"policy": policy, "resource": str(res.get("name")), "message": msg}
                    for res, msg in fn(resources, stack)]

        check.policy = policy
        check.description = description
        check.findings = lambda resources, stack: list(fn(resources, stack))
        GUARDRAILS.append(check)
        return check

    return register


def check_all(resources: list[Resource], stack: str) -> list[Violation]:
    """Every guardrail's violations, in GUARDRAILS order, then by resource and message."""
    out: list[Violation] = []
    for check in GUARDRAILS:
        out.extend(sorted(check(resources, stack), key=lambda v: (v["resource"], v["message"])))
    return out


def _of(resources: Iterable[Resource], *types: str) -> list[Resource]:
    return [r for r in resources if r.get("type") in types]


def _inputs(res: Resource) -> dict[str, Any]:
    return res.get("inputs") or {}


def _outputs(res: Resource) -> dict[str, Any]:
    return res.get("outputs") or {}


def _dig(value: Any, *path: str | int) -> Any:
    """value[path...]: ABSENT when a key is missing (unset), None when a step is unknown."""
    for key in path:
        if value is None:
            return None
        if isinstance(key, int):
            if not isinstance(value, list) or not -len(value) <= key < len(value):
                return ABSENT
        elif not isinstance(value, dict) or key not in value:
            return ABSENT
        value = value[key]
    return value


def _is_true(value: Any) -> bool:
    """pulumi-aws types some booleans as strings ("true")."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _describe(value: Any, unset: str) -> str:
    if value is ABSENT:
        return f"unset ({unset})"
    if value is None:
        return "unknown, so it cannot be verified"
    return repr(value)


def _values(value: Any) -> tuple[set[str], bool]:
    """A link list (or single value) as (known values, any unknown?)."""
    if value is ABSENT:
        return set(), False
    if value is None:
        return set(), True
    items = value if isinstance(value, list) else [value]
    known = {v for v in items if isinstance(v, str) and v}
    return known, any(v is None for v in items)


def _sg_id(sg: Resource) -> str | None:
    return _outputs(sg).get("id")


def _asg_name(asg: Resource) -> str | None:
    return _inputs(asg).get("name") or _outputs(asg).get("name")


def _camel(name: str) -> str:
    head, *rest = str(name).strip().split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# ------------------------------------------------------------------------------------ guardrails

@guardrail("imdsv2-required", "Launch templates and instances require IMDSv2 (metadataOptions.httpTokens = required).")
def imdsv2_required(resources: list[Resource], stack: str) -> Iterator[Finding]:
    for res in _of(resources, LAUNCH_TEMPLATE, INSTANCE):
        inputs = _inputs(res)
        tokens = _dig(inputs, "metadataOptions", "httpTokens")
        if res["type"] == INSTANCE and tokens is ABSENT and inputs.get("launchTemplate"):
            continue  # the launch template's metadata options apply (and are checked there)
        if tokens != "required":
            yield res, f"metadataOptions.httpTokens is {_describe(tokens, 'AWS default: optional, IMDSv1 on')}"


@guardrail("ebs-encrypted", "Every EBS volume (launch template mappings, instance volumes, EBS volumes) is encrypted.")
def ebs_encrypted(resources: list[Resource], stack: str) -> Iterator[Finding]:
    def bad(value: Any) -> bool:
        return not _is_true(value)

    for lt in _of(resources, LAUNCH_TEMPLATE):
        mappings = _inputs(lt).get("blockDeviceMappings", ABSENT)
        if mappings is ABSENT or mappings == []:
            yield lt, "no blockDeviceMappings: the root volume's encryption is left to the AMI"
            continue
        if not isinstance(mappings, list):
            yield lt, "blockDeviceMappings is unknown, so encryption cannot be verified"
            continue
        for i, m in enumerate(mappings):
            ebs = _dig(m, "ebs")
            if ebs is ABSENT:
                continue  # instance store / no-device mapping
            enc = _dig(ebs, "encrypted")
            if bad(enc):
                yield lt, f"blockDeviceMappings[{i}].ebs.encrypted is {_describe(enc, 'AWS default: false')}"
    for inst in _of(resources, INSTANCE):
        inputs = _inputs(inst)
        enc = _dig(inputs, "rootBlockDevice", "encrypted")
        if not (enc is ABSENT and inputs.get("launchTemplate")) and bad(enc):
            yield inst, f"rootBlockDevice.encrypted is {_describe(enc, 'AWS default: false')}"
        for i, dev in enumerate(inputs.get("ebsBlockDevices") or []):
            enc = _dig(dev, "encrypted")
            if bad(enc):
                yield inst, f"ebsBlockDevices[{i}].encrypted is {_describe(enc, 'AWS default: false')}"
    for vol in _of(resources, VOLUME):
        enc = _inputs(vol).get("encrypted", ABSENT)
        if bad(enc):
            yield vol, f"encrypted is {_describe(enc, 'AWS default: false')}"


@guardrail("asg-explicit-version", "ASGs pin an explicit launch template version, never $Latest/$Default "
           "(no refresh or rollback for those).")
def asg_explicit_version(resources: list[Resource], stack: str) -> Iterator[Finding]:
    for asg in _of(resources, ASG):
        inputs = _inputs(asg)
        if "launchTemplate" in inputs:
            path, version = "launchTemplate.version", _dig(inputs, "launchTemplate", "version")
        elif "mixedInstancesPolicy" in inputs:
            path = "mixedInstancesPolicy.launchTemplate.launchTemplateSpecification.version"
            version = _dig(inputs, "mixedInstancesPolicy", "launchTemplate", "launchTemplateSpecification", "version")
        else:
            yield asg, "uses neither launchTemplate nor mixedInstancesPolicy"
            continue
        if version is None:
            continue  # unknown = computed from a template's version: a number, never an alias
        if version is ABSENT or version == "":
            yield asg, f"{path} is unset (AWS uses $Default); use the template's latest_version"
        elif str(version) in LATEST_ALIASES:
            yield asg, f"{path} is {version!r}: instance refresh and rollback need an explicit version"


@guardrail("asg-ignores-desired-capacity",
           "ASGs driven by scaling policies ignore changes to desiredCapacity (else an update resets capacity).")
def asg_ignores_desired_capacity(resources: list[Resource], stack: str) -> Iterator[Finding]:
    asgs = _of(resources, ASG)
    by_name: dict[str, list[Resource]] = {}
    for asg in asgs:
        if _asg_name(asg):
            by_name.setdefault(_asg_name(asg), []).append(asg)
    unnamed = [asg for asg in asgs if not _asg_name(asg)]
    why: dict[int, tuple[Resource, str]] = {}
    for pol in sorted(_of(resources, ASG_POLICY), key=lambda r: str(r.get("name"))):
        target = _inputs(pol).get("autoscalingGroupName")
        if isinstance(target, str) and target in by_name:
            candidates, reason = by_name[target], f"scaling policy {pol['name']} drives it"
        elif isinstance(target, str):
            candidates = unnamed
            reason = f"scaling policy {pol['name']} targets {target!r}, which may be this ASG (its name is unknown)"
        else:
            candidates = asgs
            reason = f"scaling policy {pol['name']} has an unknown target, so any ASG may be policy-driven"
        for asg in candidates:
            why.setdefault(id(asg), (asg, reason))
    for asg, reason in why.values():
        ignored = {_camel(k) for k in (asg.get("options") or {}).get("ignoreChanges") or []}
        if "desiredCapacity" not in ignored:
            yield asg, f"{reason}, but ignoreChanges lacks desiredCapacity: an update would reset its capacity"


@guardrail("target-groups-via-asg",
           "Target groups are attached only with the ASG's targetGroupArns, never also by an attachment (they flap).")
def target_groups_via_asg(resources: list[Resource], stack: str) -> Iterator[Finding]:
    for att in _of(resources, ASG_ATTACHMENT):
        inputs = _inputs(att)
        if "lbTargetGroupArn" in inputs or not inputs.get("elb"):
            yield att, "attaches a target group to an ASG: list it in the ASG's targetGroupArns instead"
    attached: dict[str, list[str]] = {}
    unknown_lists: list[str] = []
    for asg in _of(resources, ASG):
        known, unknown = _values(_inputs(asg).get("targetGroupArns", ABSENT))
        for arn in known:
            attached.setdefault(arn, []).append(str(asg["name"]))
        if unknown:
            unknown_lists.append(str(asg["name"]))
    for att in _of(resources, TG_ATTACHMENT):
        arn = _inputs(att).get("targetGroupArn")
        if isinstance(arn, str) and arn in attached:
            yield att, f"target group {arn} is also attached by ASG {', '.join(sorted(attached[arn]))}: they flap"
        elif isinstance(arn, str) and unknown_lists:
            yield att, (f"ASG {', '.join(sorted(unknown_lists))} has unknown targetGroupArns: "
                        "cannot rule out a double attachment")
        elif not isinstance(arn, str) and (attached or unknown_lists):
            yield att, ("its target group is unknown while ASGs attach target groups: "
                        "cannot rule out a double attachment")


@guardrail("no-fixed-names",
           "ASGs, launch templates, target groups, load balancers, IAM roles and instance profiles are autonamed "
           "or use namePrefix (a replacement would collide).")
def no_fixed_names(resources: list[Resource], stack: str) -> Iterator[Finding]:
    for res in _of(resources, *sorted(FIXED_NAME_TYPES)):
        if "name" in _inputs(res):
            yield res, (f"name is fixed ({_inputs(res)['name']!r}): a replacement would collide with the old one; "
                        "autoname or use namePrefix")


def _alb_security_groups(resources: list[Resource]) -> tuple[set[str], bool]:
    ids: set[str] = set()
    unknown = False
    for lb in _of(resources, LOAD_BALANCER):
        known, unk = _values(_inputs(lb).get("securityGroups", ABSENT))
        ids |= known
        unknown |= unk
    return ids, unknown


def _ingress(resources: list[Resource]) -> Iterator[dict[str, Any]]:
    """Every ingress permission as {res, where, sg, cidrs, prefix_lists, sources, protocol, from, to}.

    `sg` is the protected group's id (None: unknown); `sources` are referenced group ids (None: unknown).
    """
    for sg in _of(resources, SECURITY_GROUP):
        rules = _inputs(sg).get("ingress") or []
        for i, rule in enumerate(rules if isinstance(rules, list) else []):
            rule = rule if isinstance(rule, dict) else {}
            sources = list(rule.get("securityGroups") or [])
            if _is_true(rule.get("self")):
                sources.append(_sg_id(sg))
            yield {"res": sg, "where": f"ingress[{i}]", "sg": _sg_id(sg),
                   "cidrs": [*(rule.get("cidrBlocks") or []), *(rule.get("ipv6CidrBlocks") or [])],
                   "prefix_lists": list(rule.get("prefixListIds") or []), "sources": sources,
                   "protocol": rule.get("protocol"), "from": rule.get("fromPort"), "to": rule.get("toPort")}
    for rule in _of(resources, SG_RULE):
        inputs = _inputs(rule)
        if inputs.get("type") not in ("ingress", None):
            continue
        sources = [inputs["sourceSecurityGroupId"]] if "sourceSecurityGroupId" in inputs else []
        if _is_true(inputs.get("self")):
            sources.append(inputs.get("securityGroupId"))
        yield {"res": rule, "where": "rule", "sg": inputs.get("securityGroupId"),
               "cidrs": [*(inputs.get("cidrBlocks") or []), *(inputs.get("ipv6CidrBlocks") or [])],
               "prefix_lists": list(inputs.get("prefixListIds") or []), "sources": sources,
               "protocol": inputs.get("protocol"), "from": inputs.get("fromPort"), "to": inputs.get("toPort")}
    for rule in _of(resources, SG_INGRESS):
        inputs = _inputs(rule)
        yield {"res": rule, "where": "rule", "sg": inputs.get("securityGroupId"),
               "cidrs": [inputs[k] for k in ("cidrIpv4", "cidrIpv6") if k in inputs],
               "prefix_lists": [inputs["prefixListId"]] if "prefixListId" in inputs else [],
               "sources": [inputs["referencedSecurityGroupId"]] if "referencedSecurityGroupId" in inputs else [],
               "protocol": inputs.get("ipProtocol"), "from": inputs.get("fromPort"), "to": inputs.get("toPort")}


def _label(rule: dict[str, Any]) -> str:
    return "" if rule["where"] == "rule" else f"{rule['where']}: "


@guardrail("no-world-ingress",
           "No ingress from 0.0.0.0/0 or ::/0, except to the load balancer's security group on 80/443.")
def no_world_ingress(resources: list[Resource], stack: str) -> Iterator[Finding]:
    alb_sgs, alb_unknown = _alb_security_groups(resources)
    for rule in _ingress(resources):
        world = sorted(c for c in rule["cidrs"] if c in WORLD)  # unknown CIDRs are computed, never /0
        if not world:
            continue
        what = f"{_label(rule)}ingress from {', '.join(world)}"
        ports = (_as_int(rule["from"]), _as_int(rule["to"]))
        if rule["sg"] is None:
            yield rule["res"], f"{what} to a security group whose id is unknown: cannot verify it is the ALB's"
        elif rule["sg"] not in alb_sgs:
            hint = " (some load balancers' security groups are unknown)" if alb_unknown else ""
            yield rule["res"], f"{what} to {rule['sg']}, which no load balancer uses{hint}"
        elif str(rule["protocol"]) not in ("tcp", "6") or ports[0] != ports[1] or ports[0] not in ALB_PORTS:
            yield rule["res"], (f"{what} to the load balancer on protocol {rule['protocol']!r} ports "
                                f"{rule['from']}-{rule['to']}: only tcp 80 and 443")


@guardrail("instance-ingress-from-alb-only",
           "Security groups of launch templates and instances admit only the ALB's security group (or themselves).")
def instance_ingress_from_alb_only(resources: list[Resource], stack: str) -> Iterator[Finding]:
    alb_sgs, alb_unknown = _alb_security_groups(resources)
    instance_sgs: set[str] = set()
    users = _of(resources, LAUNCH_TEMPLATE, INSTANCE)
    for res in users:
        inputs = _inputs(res)
        fields = ["vpcSecurityGroupIds"] + (["securityGroups"] if res["type"] == INSTANCE else [])
        lists = [inputs.get(f, ABSENT) for f in fields]
        nics = inputs.get("networkInterfaces", ABSENT)
        lists += [_dig(nic, "securityGroups") for nic in nics] if isinstance(nics, list) else [nics]
        unknown = False
        for value in lists:
            known, unk = _values(value)
            instance_sgs |= known
            unknown |= unk
        if unknown:
            yield res, "its security groups are unknown: cannot verify they admit only the ALB"
    for rule in _ingress(resources):
        sg = rule["sg"]
        if sg is None:
            if users:
                yield rule["res"], (f"{_label(rule)}its security group is unknown and may be an instance's: "
                                    "cannot verify it admits only the ALB")
            continue
        if sg not in instance_sgs:
            continue
        problems = []
        if rule["cidrs"]:
            problems.append(f"CIDR {', '.join(str(c) for c in rule['cidrs'])}")
        if rule["prefix_lists"]:
            problems.append("a prefix list")
        if not rule["sources"] and not problems:
            problems.append("no source security group")
        for src in rule["sources"]:
            if src is None:
                problems.append("an unknown source security group")
            elif src != sg and src not in alb_sgs:
                hint = " (some load balancers' security groups are unknown)" if alb_unknown else ""
                problems.append(f"{src}, which is neither the ALB's security group nor {sg} itself{hint}")
        if problems:
            yield rule["res"], f"{_label(rule)}instance security group {sg} admits {'; '.join(problems)}"


@guardrail("prod-https", "On prod, listeners are HTTPS with a TLS 1.3 policy, or HTTP redirecting to HTTPS.")
def prod_https(resources: list[Resource], stack: str) -> Iterator[Finding]:
    if stack not in PROD_STACKS:
        return
    listeners = sorted(_of(resources, LISTENER), key=lambda r: str(r.get("name")))
    https = 0
    for lst in listeners:
        inputs = _inputs(lst)
        protocol = inputs.get("protocol", ABSENT)
        if protocol == "HTTPS":
            https += 1
            policy = inputs.get("sslPolicy", ABSENT)
            if not (isinstance(policy, str) and "TLS13" in policy):
                yield lst, f"sslPolicy is {_describe(policy, 'AWS default: ELBSecurityPolicy-2016-08')}, not TLS 1.3"
        elif protocol in ("HTTP", ABSENT):
            actions = inputs.get("defaultActions")
            redirects = isinstance(actions, list) and bool(actions) and all(
                _dig(a, "type") == "redirect" and _dig(a, "redirect", "protocol") == "HTTPS" for a in actions)
            if not redirects:
                yield lst, "HTTP listener whose default action is not a redirect to HTTPS"
        elif protocol is None:
            yield lst, "protocol is unknown, so it cannot be verified"
        else:
            yield lst, f"protocol {protocol!r} is neither HTTPS nor HTTP redirecting to HTTPS"
    if listeners and not https:
        yield listeners[0], "no HTTPS listener on the prod load balancer"


@guardrail("deregistration-delay",
           "Target groups deregister in 5-120 s (AWS default 300 s slows deploys, 0 caused outages).")
def deregistration_delay(resources: list[Resource], stack: str) -> Iterator[Finding]:
    low, high = DEREGISTRATION_DELAY
    for tg in _of(resources, TARGET_GROUP):
        raw = _inputs(tg).get("deregistrationDelay", ABSENT)
        delay = AWS_DEFAULT_DEREGISTRATION_DELAY if raw is ABSENT else _as_int(raw)
        if delay is None or not low <= delay <= high:
            yield tg, (f"deregistrationDelay is {_describe(raw, 'AWS default: 300 s')}; "
                       f"want {low}-{high} s")


@guardrail("health-check-interval", "Target group health checks run at most every 10 s (AWS default 30 s).")
def health_check_interval(resources: list[Resource], stack: str) -> Iterator[Finding]:
    for tg in _of(resources, TARGET_GROUP):
        hc = _inputs(tg).get("healthCheck", ABSENT)
        if _dig(hc, "enabled") is False or _dig(hc, "enabled") == "false":
            yield tg, "health check is disabled"
            continue
        raw = _dig(hc, "interval") if hc is not ABSENT else ABSENT
        interval = AWS_DEFAULT_HEALTH_CHECK_INTERVAL if raw is ABSENT else _as_int(raw)
        if interval is None or interval > MAX_HEALTH_CHECK_INTERVAL:
            yield tg, f"healthCheck.interval is {_describe(raw, 'AWS default: 30 s')}; want <= 10 s"


@guardrail("spot-diversified", "All-spot ASGs use 3+ instance types and capacity rebalance.")
def spot_diversified(resources: list[Resource], stack: str) -> Iterator[Finding]:
    for asg in _of(resources, ASG):
        inputs = _inputs(asg)
        mip = inputs.get("mixedInstancesPolicy")
        if "mixedInstancesPolicy" not in inputs:
            continue
        pct = _dig(mip, "instancesDistribution", "onDemandPercentageAboveBaseCapacity")
        if pct is not None and (pct is ABSENT or _as_int(pct) != 0):
            continue  # AWS default 100: not a spot ASG (unknown counts as spot)
        overrides = _dig(mip, "launchTemplate", "overrides")
        types = {_dig(o, "instanceType") for o in (overrides if isinstance(overrides, list) else [])}
        types = {t for t in types if isinstance(t, str) and t}
        if len(types) < MIN_SPOT_TYPES:
            yield asg, (f"all-spot ASG with {len(types)} known instance type(s) "
                        f"({', '.join(sorted(types)) or 'none'}); want {MIN_SPOT_TYPES}+")
        rebalance = inputs.get("capacityRebalance", ABSENT)
        if not _is_true(rebalance):
            yield asg, f"all-spot ASG with capacityRebalance {_describe(rebalance, 'AWS default: false')}"


def _statements(document: Any) -> Iterator[dict[str, Any]] | None:
    """Statements of a policy document (JSON string or dict); None when it cannot be parsed."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return None
    if not isinstance(document, dict):
        return None
    statements = document.get("Statement", [])
    return iter([s for s in (statements if isinstance(statements, list) else [statements]) if isinstance(s, dict)])


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _admin_statements(document: Any) -> str | None:
    """A problem with the document, or None. Unknown (None) documents pass: see the module docstring."""
    if document is None:
        return None
    statements = _statements(document)
    if statements is None:
        return "policy document is not valid JSON"
    for i, st in enumerate(statements):
        if str(st.get("Effect", "")).lower() != "allow":
            continue
        if "*" in _as_list(st.get("Action")) and "*" in _as_list(st.get("Resource")):
            return f"statement {st.get('Sid') or i} allows Action '*' on Resource '*'"
    return None


@guardrail("iam-no-admin", "No IAM statement allows '*' on '*'; no AdministratorAccess/PowerUserAccess attachment.")
def iam_no_admin(resources: list[Resource], stack: str) -> Iterator[Finding]:
    for pol in _of(resources, IAM_POLICY, IAM_ROLE_POLICY):
        problem = _admin_statements(_inputs(pol).get("policy"))
        if problem:
            yield pol, problem
    for role in _of(resources, IAM_ROLE):
        inline = _inputs(role).get("inlinePolicies") or []
        for i, pol in enumerate(inline if isinstance(inline, list) else []):
            problem = _admin_statements(_dig(pol, "policy") if isinstance(pol, dict) else None)
            if problem:
                yield role, f"inlinePolicies[{i}] ({_dig(pol, 'name')}): {problem}"
        managed = _inputs(role).get("managedPolicyArns") or []
        for arn in managed if isinstance(managed, list) else []:
            if isinstance(arn, str) and ADMIN_POLICY_RE.fullmatch(arn):
                yield role, f"managedPolicyArns includes {arn}"
    for att in _of(resources, IAM_ROLE_POLICY_ATTACHMENT):
        arn = _inputs(att).get("policyArn")
        if isinstance(arn, str) and ADMIN_POLICY_RE.fullmatch(arn):
            yield att, f"attaches {arn}"


def _decoded(text: str, base64_only: bool) -> list[str]:
    """The texts to scan: the base64 decoding when it is one, and (unless base64_only) the text itself."""
    texts = [] if base64_only else [text]
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)
        texts.append(raw.decode("utf-8"))
    except (binascii.Error, ValueError):
        if base64_only:
            texts.append(text)  # not base64 after all: scan what is there
    return texts


def _secrets_in(texts: list[str]) -> list[str]:
    return sorted({what for text in texts for pattern, what in SECRET_PATTERNS if pattern.search(text)})


@guardrail("user-data-no-secrets", "User data holds no access keys, private keys or password/secret/token values.")
def user_data_no_secrets(resources: list[Resource], stack: str) -> Iterator[Finding]:
    for res in _of(resources, LAUNCH_TEMPLATE, INSTANCE):
        inputs = _inputs(res)
        fields = [("userData", res["type"] == LAUNCH_TEMPLATE)]
        if res["type"] == INSTANCE:
            fields.append(("userDataBase64", True))
        for field, base64_only in fields:
            value = inputs.get(field)
            if not isinstance(value, str) or not value:
                continue  # unset, or unknown: nothing to decode
            found = _secrets_in(_decoded(value, base64_only))
            if found:  # never echo the value itself: plans are shown in CI logs
                yield res, f"{field} contains what looks like {' and '.join(found)}; fetch secrets at boot instead"


def _tag_keys(res: Resource) -> tuple[dict[str, Any], bool]:
    """(tags as a mapping, unknown?). ASG tags are a list of {key, value, propagateAtLaunch}."""
    tags: dict[str, Any] = {}
    unknown = False
    inputs = _inputs(res)
    if res["type"] == ASG:
        value = inputs.get("tags", ABSENT)
        if value is None:
            unknown = True
        for tag in value if isinstance(value, list) else []:
            if isinstance(tag, dict) and isinstance(tag.get("key"), str):
                tags[tag["key"]] = tag.get("value")
        return tags, unknown and not tags
    for source in (inputs, _outputs(res)):
        for field in ("tags", "tagsAll"):  # tagsAll: provider default tags, when the producer has them
            value = source.get(field, ABSENT)
            if value is None:
                unknown = True
            elif isinstance(value, dict):
                tags.update({k: v for k, v in value.items() if k not in tags or v is not None})
    return tags, unknown and not tags


def _in_node_group(res: Resource, by_name: dict[str, list[Resource]]) -> bool:
    """Is `res` below a NodeGroup? Parents are found by name and, when the view has it, by type
    (`parentType`): a group may share its name with a shared component (a group named `network`
    beside the stack's Network) without the VPC counting as the group's."""
    seen: set[tuple[str, Any]] = set()
    parent, ptype = res.get("parent"), res.get("parentType")
    while parent and (parent, ptype) not in seen:
        seen.add((parent, ptype))
        candidates = [c for c in by_name.get(parent, []) if ptype is None or c.get("type") == ptype]
        if any(c.get("type") == NODE_GROUP for c in candidates):
            return True
        components = [c for c in candidates if str(c.get("type", "")).startswith(COMPONENT_PREFIX)]
        found = (components or candidates or [{}])[0]
        parent, ptype = found.get("parent"), found.get("parentType")
    return False


@guardrail("fleet-tags", "Taggable resources carry fleet:stack, and fleet:group inside a node group.")
def fleet_tags(resources: list[Resource], stack: str) -> Iterator[Finding]:
    by_name: dict[str, list[Resource]] = {}
    for res in resources:
        by_name.setdefault(str(res.get("name")), []).append(res)
    for res in _of(resources, *sorted(TAGGABLE)):
        tags, unknown = _tag_keys(res)
        if unknown:
            yield res, "tags are unknown: cannot verify fleet:stack / fleet:group"
            continue
        wanted = [STACK_TAG] + ([GROUP_TAG] if _in_node_group(res, by_name) else [])
        missing = [k for k in wanted if k not in tags]
        if missing:
            yield res, f"missing tag {', '.join(missing)}"
        elif isinstance(tags[STACK_TAG], str) and tags[STACK_TAG] != stack:
            yield res, f"tag fleet:stack is {tags[STACK_TAG]!r} on stack {stack!r}"


def _node_group_of(res: Resource, by_name: dict[str, list[Resource]]) -> str | None:
    """Logical name of the NodeGroup a resource sits under (through its parents), else None."""
    seen: set[str] = set()
    parent = res.get("parent")
    while parent and parent not in seen:
        seen.add(parent)
        candidates = by_name.get(parent, [])
        if any(c.get("type") == NODE_GROUP for c in candidates):
            return parent
        components = [c for c in candidates if str(c.get("type", "")).startswith(COMPONENT_PREFIX)]
        parent = (components or candidates or [{}])[0].get("parent")
    return None


@guardrail("raw-upload-every-block", "A raw image build that skips zero blocks is refused for a group whose "
           "volume is encrypted: a block missing from the snapshot reads back as garbage there (coldsnap#395).")
def raw_upload_every_block(resources: list[Resource], stack: str) -> Iterator[Finding]:
    by_name: dict[str, list[Resource]] = {}
    for res in resources:
        by_name.setdefault(str(res.get("name")), []).append(res)
    templates: dict[str | None, list[Resource]] = {}
    for lt in _of(resources, LAUNCH_TEMPLATE):
        templates.setdefault(_node_group_of(lt, by_name), []).append(lt)
    for cmd in _of(resources, COMMAND):
        create = _inputs(cmd).get("create")
        if not isinstance(create, str) or SKIP_ZERO_BLOCKS_FLAG not in create.split():
            continue
        group = _node_group_of(cmd, by_name)
        lts = templates.get(group, []) if group else []
        if not lts:
            yield cmd, (f"the image build skips zero blocks ({SKIP_ZERO_BLOCKS_FLAG}) and no launch template of "
                        "its group shows the volume unencrypted; upload every block")
        for lt in lts:
            mappings = _inputs(lt).get("blockDeviceMappings")
            encrypted = [_dig(m, "ebs", "encrypted") for m in mappings] if isinstance(mappings, list) else [None]
            if any(e is None or _is_true(e) for e in encrypted):
                yield cmd, (f"the image build skips zero blocks ({SKIP_ZERO_BLOCKS_FLAG}) but launch template "
                            f"{lt.get('name')} encrypts the volume (or it is unknown): missing blocks would "
                            "read back as garbage; remove image.skip_zero_blocks_unsafe_if_encrypted")


@guardrail("command-no-previous-output", "Every pulumi-command Command sets add_previous_output_in_env=False: "
           "by default an update gets the previous stdout/stderr as environment variables, and a long build log "
           "then fails it with 'argument list too long'.")
def command_no_previous_output(resources: list[Resource], stack: str) -> Iterator[Finding]:
    for cmd in _of(resources, COMMAND):
        value = _inputs(cmd).get("addPreviousOutputInEnv", ABSENT)
        if value is not False and str(value).lower() != "false":
            yield cmd, (f"addPreviousOutputInEnv is {_describe(value, 'default true')}: the next update "
                        "would get this run's whole output in its environment; set add_previous_output_in_env=False")
