"""The `fleet plan` subcommand: argparse wiring and the human-readable plan (pure; no Pulumi here).

    fleet plan [--stack S] [--group G] [--json] [--nodes PATH]   offline plan (default stack: staging)
    fleet plan diff OLD.json NEW.json [--fail-on-replace] [--allow-other-stack]
                                                                 what changes between two `--json` plans

fleet.plan.engine (the only module that imports pulumi) is imported when a plan runs, so `fleet --help`
and the other subcommands stay fast. Exit status: 0 ok; 1 guardrail violations (the plan, or its
JSON, is still printed in full); 2 bad input (nodes.yaml, stack file, arguments, unreadable plan
files): one line per problem on stderr, nothing on stdout. `plan diff` exits 0 whatever changed,
or 3 with `--fail-on-replace` when a resource would be replaced (for CI; the diff is still printed).
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fleet.plan.json_text import dumps_indented
from fleet.plan.tags import tag_value

EXIT_OK, EXIT_VIOLATIONS, EXIT_BAD_INPUT, EXIT_REPLACES = 0, 1, 2, 3


def add_plan_command(sub, add: Callable[..., argparse.ArgumentParser]) -> None:
    """Register `plan` (and `plan diff OLD NEW`) on fleet.cli's subparsers (an _EXTRA_COMMANDS hook)."""
    sp = add("plan", cmd_plan, "offline plan: the real program under Pulumi's mock engine, no cloud or "
             "credentials (`plan diff OLD.json NEW.json` compares two --json plans)")
    sp.set_defaults(without_gc=True)  # fleet.__main__: the whole process, imports included, without cyclic GC
    sp.add_argument("action", nargs="?", choices=["diff"], metavar="diff",
                    help="compare two plans: fleet plan diff OLD.json NEW.json")
    sp.add_argument("files", nargs="*", metavar="PLAN.json", help="with diff: the old and the new plan")
    sp.add_argument("--json", action="store_true", help="print the plan as JSON (project, stack, resources, "
                    "outputs, violations)")
    sp.add_argument("--group", default=None, metavar="GROUP",
                    help="only this group's resources (its NodeGroup and the resources tagged with it)")
    sp.add_argument("--fail-on-replace", action="store_true",
                    help=f"with diff: exit {EXIT_REPLACES} when a resource would be replaced")
    sp.add_argument("--allow-other-stack", action="store_true",
                    help="with diff: compare plans of two different stacks or projects (refused otherwise)")


def cmd_plan(args) -> int:
    from fleet.spec.errors import Problem, SpecError

    if args.action == "diff" or args.files:
        if args.action != "diff" or len(args.files) != 2:
            raise SpecError([Problem("fleet plan", None, None, None,
                                     "usage: fleet plan diff OLD.json NEW.json (two plan files)")])
        return cmd_plan_diff(*args.files, fail_on_replace=args.fail_on_replace,
                             allow_other_stack=args.allow_other_stack)
    for flag in ("fail_on_replace", "allow_other_stack"):
        if getattr(args, flag):
            option = "--" + flag.replace("_", "-")
            raise SpecError([Problem("fleet plan", None, None, None, f"{option} goes with diff: "
                                     f"fleet plan diff OLD.json NEW.json {option}")])

    from fleet.plan.sdk import UnsupportedSdk, check_sdk

    try:
        check_sdk()  # before the engine (and its SDK internals) is imported
    except UnsupportedSdk as exc:
        print(f"fleet plan: {exc}", file=sys.stderr)
        return 1
    # No cyclic GC from here to the output: the run's heap only grows and the process ends right after
    # (fleet.__main__ exits without teardown), so a collection would only re-walk it. Restored for
    # callers that go on (tests calling main()), without a collection.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        from fleet.cli import project_of
        from fleet.plan.engine import plan_result

        project = project_of(args, default_stack=True)  # the stack rule validate, show and deploy use
        project.check_nodes_file()
        result = plan_result(project.dir, project.stack, nodes=project.nodes, group=args.group,
                             stack_named=not project.stack_defaults)
        for message in result.run.warnings():
            print(f"warning: {message}", file=sys.stderr)
        if args.json:
            sys.stdout.write(dumps_indented(result.data) + "\n")
        else:
            sys.stdout.write(render_plan(result.data, result.depths, result.groups, result.homes,
                                         result.group_names, where=result.where) + "\n")
        return EXIT_VIOLATIONS if result.data["violations"] else EXIT_OK
    finally:
        if gc_was_enabled:
            gc.enable()


def cmd_plan_diff(old_path: str, new_path: str, fail_on_replace: bool = False,
                  allow_other_stack: bool = False) -> int:
    """Both files are checked on load (every problem of both, one line each); plans of two different
    stacks or projects are refused unless asked for: what they differ by is not a change `pulumi up`
    would make to either stack."""
    from fleet.plan.diff import diff_plans, format_diff, load_plan, other_stack
    from fleet.spec.errors import Problem, SpecError

    loaded, problems = [], []
    for path in (old_path, new_path):
        try:
            loaded.append(load_plan(path))
        except SpecError as exc:
            problems += exc.problems
    if problems:
        raise SpecError(problems)
    old, new = loaded
    why = other_stack(old, new)
    if why and not allow_other_stack:
        raise SpecError([Problem(new_path, None, None, None, f"{why}; refused (--allow-other-stack compares "
                                 "them anyway)")])
    d = diff_plans(old, new)
    print(format_diff(d))
    return EXIT_REPLACES if fail_on_replace and d.replacements else EXIT_OK


# -- the human-readable plan ----------------------------------------------------------------------

def short_type(token: str) -> str:
    """`aws:autoscaling/group:Group` -> `autoscaling:Group`; `fleet:node_group:NodeGroup` -> `NodeGroup`."""
    parts = token.split(":")
    if len(parts) != 3:
        return token
    pkg, module, name = parts
    if pkg == "fleet":
        return name
    return f"{module.split('/')[0]}:{name}"


def _n(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _dig(value: Any, *path: str | int) -> Any:
    for p in path:
        if isinstance(p, int):
            value = value[p] if isinstance(value, list) and len(value) > p else None
        else:
            value = value.get(p) if isinstance(value, Mapping) else None
    return value


def _ami(image: Any) -> str:
    text = str(image)
    if text.startswith("(baked at deploy: ") and len(text) > 40:
        return text[:30] + "…)"  # the hash's first 12 characters
    return text


def _launch_template(i: Mapping[str, Any]) -> str:
    ebs = _dig(i, "blockDeviceMappings", 0, "ebs") or {}
    tokens = _dig(i, "metadataOptions", "httpTokens")
    out = [str(i.get("instanceType", "?")), f"AMI {_ami(i.get('imageId'))}",
           "IMDSv2 required" if tokens == "required" else f"IMDS tokens {tokens or 'optional'}"]
    if ebs:
        enc = " encrypted" if str(ebs.get("encrypted")).lower() == "true" else " NOT encrypted"
        out.append(f"root {ebs.get('volumeType', '?')} {_n(ebs.get('volumeSize', '?'))} GiB{enc}")
    return ", ".join(out)


def _asg(i: Mapping[str, Any]) -> str:
    capacity = tag_value(i, "fleet:capacity")
    out = [f"{capacity + ' ' if capacity else ''}min {_n(i.get('minSize'))} max {_n(i.get('maxSize'))} "
           f"desired {_n(i.get('desiredCapacity'))}"]
    mip = i.get("mixedInstancesPolicy")
    if mip:
        types = [o.get("instanceType") for o in _dig(mip, "launchTemplate", "overrides") or []]
        out.append("types " + ",".join(str(t) for t in types))
        strategy = _dig(mip, "instancesDistribution", "spotAllocationStrategy")
        if strategy:
            out.append(str(strategy))
        version = _dig(mip, "launchTemplate", "launchTemplateSpecification", "version")
    else:
        version = _dig(i, "launchTemplate", "version")
    out.append(f"LT version {version}")
    if i.get("capacityRebalance"):
        out.append("capacity rebalance")
    out.append(f"health {i.get('healthCheckType', 'EC2')} grace {_n(i.get('healthCheckGracePeriod', 300))}s")
    return ", ".join(out)


def _target_group(i: Mapping[str, Any]) -> str:
    hc = i.get("healthCheck") or {}
    out = [f"{i.get('protocol', '?')}:{_n(i.get('port', '?'))}",
           f"health {hc.get('path', '/')} every {_n(hc.get('interval', 30))}s "
           f"(healthy {_n(hc.get('healthyThreshold', '?'))}, unhealthy {_n(hc.get('unhealthyThreshold', '?'))})",
           f"deregistration {_n(i.get('deregistrationDelay', 300))}s"]
    if i.get("slowStart"):
        out.append(f"slow start {_n(i['slowStart'])}s")
    return ", ".join(out)


def _listener_rule(i: Mapping[str, Any]) -> str:
    out = [f"priority {_n(i.get('priority'))}"]
    for cond in i.get("conditions") or []:
        if _dig(cond, "hostHeader", "values"):
            out.append("hosts " + ",".join(cond["hostHeader"]["values"]))
        if _dig(cond, "pathPattern", "values"):
            out.append("paths " + ",".join(cond["pathPattern"]["values"]))
    actions = []
    for a in i.get("actions") or []:
        weights = [str(_n(t.get("weight"))) for t in _dig(a, "forward", "targetGroups") or []]
        actions.append(f"{a.get('type')} weights {'/'.join(weights)} (the rollout writes them)" if weights
                       else str(a.get("type")))
    out.append("-> " + ",".join(actions))
    return ", ".join(out)


def _listener(i: Mapping[str, Any]) -> str:
    out = [f"{i.get('protocol', '?')}:{_n(i.get('port', '?'))}"]
    if i.get("sslPolicy"):
        out.append(str(i["sslPolicy"]))
    for a in i.get("defaultActions") or []:
        if a.get("type") == "redirect":
            r = a.get("redirect") or {}
            out.append(f"redirect -> {r.get('protocol', '')}:{r.get('port', '')} ({r.get('statusCode', '')})")
        elif a.get("type") == "fixed-response":
            out.append(f"default {_dig(a, 'fixedResponse', 'statusCode')}")
        else:
            out.append(f"default {a.get('type')}")
    return ", ".join(out)


def _load_balancer(i: Mapping[str, Any]) -> str:
    return ", ".join([str(i.get("loadBalancerType", "application")),
                      "internal" if i.get("internal") else "internet-facing",
                      f"deletion protection {'on' if i.get('enableDeletionProtection') else 'off'}"])


def _adjust(value: Any, kind: Any) -> str:
    sign = "+" if isinstance(value, (int, float)) and value > 0 else ""
    unit = "%" if kind == "PercentChangeInCapacity" else (" instances" if kind == "ChangeInCapacity" else "")
    return f"{sign}{_n(value)}{unit}" + (f" ({kind})" if kind and not unit else "")


def _policy(i: Mapping[str, Any]) -> str:
    kind = i.get("policyType", "SimpleScaling")
    if kind == "TargetTrackingScaling":
        cfg = i.get("targetTrackingConfiguration") or {}
        metric = _dig(cfg, "predefinedMetricSpecification", "predefinedMetricType") or "custom metric"
        return (f"target tracking {metric} {_n(cfg.get('targetValue'))}"
                + (", no scale-in" if cfg.get("disableScaleIn") else ", scales in"))
    if kind == "StepScaling":
        steps = ", ".join(_adjust(s.get("scalingAdjustment"), i.get("adjustmentType"))
                          for s in i.get("stepAdjustments") or [])
        return f"step {steps}"
    return (f"simple {_adjust(i.get('scalingAdjustment'), i.get('adjustmentType'))}, "
            f"cooldown {_n(i.get('cooldown'))}s")


_OPS = {"GreaterThanThreshold": ">", "GreaterThanOrEqualToThreshold": ">=", "LessThanThreshold": "<",
        "LessThanOrEqualToThreshold": "<="}


def _alarm(i: Mapping[str, Any]) -> str:
    op = _OPS.get(str(i.get("comparisonOperator")), str(i.get("comparisonOperator")))
    return (f"{i.get('metricName')} {op} {_n(i.get('threshold'))} for {_n(i.get('evaluationPeriods'))}"
            f" x {_n(i.get('period'))}s")


def _command(i: Mapping[str, Any]) -> str:
    create = str(i.get("create", ""))
    triggers = i.get("triggers") or []
    if "image_builds.build" in create:
        return f"bakes or reuses the image at deploy (image hash {str(triggers[0])[:12] if triggers else '?'})"
    return "runs at deploy: " + (create if len(create) <= 70 else create[:69] + "…")


def _rule(i: Mapping[str, Any]) -> str:
    proto = i.get("ipProtocol")
    ports = "all" if proto == "-1" else f"{proto} {_n(i.get('fromPort'))}" + (
        f"-{_n(i.get('toPort'))}" if i.get("toPort") != i.get("fromPort") else "")
    peer = i.get("cidrIpv4") or i.get("cidrIpv6") or i.get("referencedSecurityGroupId") or i.get("prefixListId")
    return f"{ports} {'from' if 'Ingress' in str(i.get('_type')) else 'to'} {peer}"


SUMMARIES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "aws:ec2/launchTemplate:LaunchTemplate": _launch_template,
    "aws:autoscaling/group:Group": _asg,
    "aws:lb/targetGroup:TargetGroup": _target_group,
    "aws:lb/listenerRule:ListenerRule": _listener_rule,
    "aws:lb/listener:Listener": _listener,
    "aws:lb/loadBalancer:LoadBalancer": _load_balancer,
    "aws:autoscaling/policy:Policy": _policy,
    "aws:cloudwatch/metricAlarm:MetricAlarm": _alarm,
    "command:local:Command": _command,
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": lambda i: _rule({**i, "_type": "Ingress"}),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": lambda i: _rule({**i, "_type": "Egress"}),
    "aws:ec2/vpc:Vpc": lambda i: str(i.get("cidrBlock", "")),
    "aws:ec2/subnet:Subnet": lambda i: f"{i.get('cidrBlock')} {i.get('availabilityZone', '')}".strip()
    + (" public" if i.get("mapPublicIpOnLaunch") else ""),
    "aws:autoscaling/lifecycleHook:LifecycleHook": lambda i: (
        f"{str(i.get('lifecycleTransition', '')).split(':')[-1]}, heartbeat {_n(i.get('heartbeatTimeout'))}s, "
        f"then {i.get('defaultResult')}"),
    "aws:ec2/instance:Instance": lambda i: f"launch template version {_dig(i, 'launchTemplate', 'version')}",
    "aws:lambda/function:Function": lambda i: (f"{i.get('runtime')} {i.get('handler')}, timeout "
                                               f"{_n(i.get('timeout', 3))}s, {_n(i.get('memorySize', 128))} MB"),
}


def describe(resource: Mapping[str, Any]) -> str:
    """One line of key settings for a resource ('' when there is nothing to say)."""
    fn = SUMMARIES.get(resource["type"])
    if fn is None:
        return ""
    try:
        return fn(resource.get("inputs") or {})
    except (AttributeError, TypeError, KeyError, IndexError):  # an odd shape must not break the plan
        return ""


def _line(resource: Mapping[str, Any], depth: int, note: str = "") -> str:
    what = describe(resource)
    return f"{'  ' * (depth + 1)}{short_type(resource['type'])} {resource['name']}{note}" + (
        f"  {what}" if what else "")


def summary_line(resources: Sequence[Mapping[str, Any]]) -> str:
    components = sum(1 for r in resources if r["type"].startswith("fleet:"))
    counts = Counter(short_type(r["type"]) for r in resources if not r["type"].startswith("fleet:"))
    parts = ", ".join(f"{n} {t}" for t, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return (f"{len(resources) - components} resources in {components} components"
            + (f": {parts}" if parts else ""))


def _totals(t: Mapping[str, Any]) -> str:
    """node_min/node_max are the group's total across its pair: how the pair splits them."""
    line = (f"instances: node_min {_n(t.get('node_min'))}, node_max {_n(t.get('node_max'))} in all: on-demand "
            f"base {_n(t.get('on_demand_base'))} + spot {_n(t.get('spot_min'))}-{_n(t.get('spot_max'))}")
    if t.get("spot_headroom"):
        line += (f" (spot max {_n(t['spot_max'] + t['spot_headroom'])}: +{_n(t['spot_headroom'])} headroom "
                 "for capacity rebalance)")
    return line


def _slots(b: Mapping[str, Any]) -> list[str]:
    """A blue/green group: its two slots, the modelled rollback and what the standby costs."""
    lines = [f"rollout: blue/green, canary {_n(b.get('canary_weight'))} % for {_n(b.get('bake_time'))} s, "
             f"standby {_n(b.get('standby'))} s"]
    for slot, s in sorted((b.get("slots") or {}).items()):
        lines.append(f"slot {slot}: ASGs {_n(s.get('on_demand_asg_name'))} + {_n(s.get('spot_asg_name'))}, "
                     f"target group {_n(s.get('target_group_arn'))}")
    hours = b.get("standby_instance_hours") or {}
    lines.append(f"rollback: {_n(b.get('rollback_seconds'))} s to 0 % on the bad slot (one rule write, no launch); "
                 f"{_n(b.get('rollback_seconds_after_standby'))} s after the standby shrank; refresh strategy "
                 f"{_n(b.get('refresh_rollback_seconds'))} s")
    lines.append(f"standby cost: {_n(hours.get('at_node_min'))}-{_n(hours.get('at_node_max'))} instance-hours "
                 "per deploy (node_min-node_max)")
    return lines


def render_plan(data: Mapping[str, Any], depths: Sequence[int], groups: Sequence[str | None],
                homes: Sequence[tuple[str, str]], group_names: Sequence[str], where: str = "") -> str:
    """The plan as text: one tree per group (component -> resources, with key settings), then the
    shared resources, then a summary line of counts per resource type, then the violations.

    `depths`, `groups` (owning group or None) and `homes` (type and name of the top-level
    ancestor) run parallel to `data["resources"]` (fleet.plan.engine.PlanResult); `where` names the
    project directory, nodes file and stack file the plan read."""
    resources = data["resources"]
    lines = [f"fleet plan: stack {data['stack']} (project {data['project']}{', ' + where if where else ''}): "
             "offline, Pulumi's mock engine; nothing is created and no image is built"]
    rows_of: dict[str | None, list[int]] = {}  # one pass: linear in the plan whatever the number of groups
    for i, owner in enumerate(groups):
        rows_of.setdefault(owner, []).append(i)
    for g in group_names:
        rows = rows_of.get(g)
        if not rows:
            continue
        lines += ["", f"group {g}"]
        ready = (((data.get("outputs") or {}).get("groups") or {}).get(g) or {}).get("ready")
        if isinstance(ready, Mapping) and ready.get("how"):
            lines.append(f"  ready: {ready['how']}")
        totals = _dig(data, "outputs", "groups", g, "instances")
        if isinstance(totals, Mapping):
            lines.append("  " + _totals(totals))
        slots = _dig(data, "outputs", "groups", g, "slots")
        if isinstance(slots, Mapping):
            lines += ["  " + line for line in _slots(slots)]
        inside = [i for i in rows if homes[i][0] == "fleet:node_group:NodeGroup"]
        outside = [i for i in rows if homes[i][0] != "fleet:node_group:NodeGroup"]
        lines += [_line(resources[i], depths[i]) for i in inside]
        lines += [_line(resources[i], 1, f" (in {homes[i][1]})") for i in outside]
    shared = rows_of.get(None, [])
    if shared:
        lines += ["", "shared"]
        lines += [_line(resources[i], depths[i]) for i in shared]
    lines += ["", summary_line(resources)]
    violations = data.get("violations") or []
    if violations:
        lines.append(f"{len(violations)} guardrail violation(s):")
        lines += [f"  {v['policy']}: {v['resource']}: {v['message']}" for v in violations]
    else:
        lines.append("guardrails: no violations")
    return "\n".join(lines)
