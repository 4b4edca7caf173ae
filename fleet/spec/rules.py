"""Cross-field rules the JSON Schema cannot say: checked on each merged group.

Each rule returns (key, message) pairs; fleet/spec/load.py turns them into Problems naming the file
that set the key last (nodes.yaml or the stack file).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from fleet.spec.cookbooks import closure, suggestions
from fleet.spec.errors import did_you_mean, quote
from fleet.spec.instance_types import architecture_of, known_instance_types
from fleet.spec.limits import DEREGISTRATION_DELAY, MAX_HEALTH_CHECK_INTERVAL
from fleet.spec.names import GROUP_NAME_RE, MAX_GROUP_NAME, SHORT_NAME, derived_priority, fit, raw_slug, slug
from fleet.spec.paths import OutsideError, inside

Finding = tuple[str, str]
ALB_CONDITION_VALUES = 5  # an ALB rule takes at most five host/path values in all
# Launch templates enable instance metadata tags; EC2 then refuses to launch an instance whose tag keys
# use other characters, or are exactly '.', '..' or '_index' (EC2 user guide, "instance tags in
# instance metadata").
IMDS_TAG_KEY_RE = re.compile(r"[A-Za-z0-9+\-=.,_:@]+")
IMDS_RESERVED_TAG_KEYS = (".", "..", "_index")
AWS_MAX_TAGS = 50  # user tags per resource (aws: tags do not count)
FLEET_TAG_KEYS = ("Name", "fleet:group", "fleet:stack", "fleet:capacity")  # what fleet sets on a group's resources


def check_group_name(name: Any) -> str | None:
    """Why `name` cannot be a group name, or None."""
    if not isinstance(name, str):
        return f"group name {name!r} is read by YAML as {type(name).__name__}: quote it"
    if name == "__base__":
        return None
    if name.startswith("_"):
        return "names starting with '_' are reserved (only __base__ is special)"
    if len(name) > MAX_GROUP_NAME:
        return f"group name longer than {MAX_GROUP_NAME} characters"
    if not GROUP_NAME_RE.fullmatch(name):
        return "group names use letters, digits, '_' and '-', starting with a letter or digit"
    if "-health" in f"-{raw_slug(name)}":
        # health alarms are found by the prefix fleet-<stack>-<slug>-health-: 'api' would claim 'api-health-x''s
        return "group names must not contain the word 'health' (it marks the group's health alarms)"
    return None


def slug_collisions(names: list[str]) -> Iterator[tuple[str, str]]:
    """(name, other) for groups that would derive one AWS name: equal slugs (`a_b` and `a-b`), or
    equal shortened forms (`fit`) for the tightest budget, the target group's."""
    seen: dict[tuple[str, str], str] = {}
    for name in names:
        keys = {("slug", slug(name)), ("short", fit(slug(name), SHORT_NAME))}
        other = next((seen[k] for k in keys if k in seen), None)
        if other is not None:
            yield name, other
        else:
            seen.update({k: name for k in keys})


def _instance_type(key: str, value: str) -> Iterator[Finding]:
    known = known_instance_types()
    if value not in known:
        yield key, f"unknown EC2 instance type {value!r}{did_you_mean(value, known)}"


def _tag_keys(tags: Mapping[str, Any]) -> Iterator[Finding]:
    for key in tags:
        if not isinstance(key, str):
            continue  # the schema reports non-string keys
        if key in IMDS_RESERVED_TAG_KEYS:
            yield "tags", f"tag key {key!r} is reserved by instance metadata tags: EC2 would refuse to launch"
        elif not IMDS_TAG_KEY_RE.fullmatch(key):
            yield "tags", (f"tag key {key!r}: instance metadata tags allow only letters, digits and + - = . , _ : @ "
                           "(no spaces or '/'): EC2 would refuse to launch")


def priority_clashes(http_groups: Iterable[tuple[str, int | None]]) -> Iterator[tuple[str, str]]:
    """(group, message) for listener-rule priorities that two groups would share (PriorityInUse at
    apply): two equal explicit ones, or two names whose derived priorities collide. Reported on the
    later group in name order, once per clash."""
    owner: dict[int, str] = {}
    for name, explicit in sorted(http_groups):
        p = explicit if explicit is not None else derived_priority(name)
        if p not in owner:
            owner[p] = name
            continue
        other = owner[p]
        if explicit is not None:
            yield name, f"priority {p} is also used by group '{other}': listener rule priorities must be unique"
        else:
            yield name, (f"derived listener rule priority {p} is also group '{other}''s; "
                         f"set an explicit http.priority (1-999) on '{name}' or '{other}'")


def _architecture(g: Mapping[str, Any]) -> Iterator[Finding]:
    """Every instance type of the group runs the image's architecture (fleet.spec.instance_types)."""
    arch = g.get("image", {}).get("architecture", "x86_64")
    known = known_instance_types()
    types = [("instance_type", g.get("instance_type"))]
    auto = g.get("autoscale")
    if isinstance(auto, dict):
        types += [(f"autoscale.spot.instance_types[{i}]", t)
                  for i, t in enumerate(auto.get("spot", {}).get("instance_types", []))]
    for key, t in types:
        if t in known and architecture_of(t) != arch:
            yield key, f"{t} runs {architecture_of(t)} images, not image.architecture {arch}"


def _tags(tags: Mapping[str, Any]) -> Iterator[Finding]:
    for k in tags:
        if str(k).lower().startswith("aws:"):
            yield f"tags.{k}", "keys starting with aws: (in any case) are reserved by AWS"
    mine = [k for k in tags if k not in FLEET_TAG_KEYS]
    room = AWS_MAX_TAGS - len(FLEET_TAG_KEYS)
    if len(mine) > room:
        yield "tags", (f"{len(mine)} tags; AWS takes {AWS_MAX_TAGS} per resource and fleet sets "
                       f"{len(FLEET_TAG_KEYS)} ({', '.join(FLEET_TAG_KEYS)}): at most {room} of yours")


def security_group_clashes(groups: Mapping[str, Mapping[str, Any]]) -> Iterator[tuple[str, str, str]]:
    """(group, key, message) for security group names that differ only in case or in '_'/'-'/'.':
    both would become the same AWS resource name (and the same Pulumi URN)."""
    first: dict[str, tuple[str, str]] = {}
    for gname, g in groups.items():
        for i, sg in enumerate(g.get("security_groups", [])):
            s = slug(sg)
            if s not in first:
                first[s] = (sg, gname)
            elif first[s][0] != sg:
                yield gname, f"security_groups[{i}]", (f"{quote(sg)} and {quote(first[s][0])} (group "
                                                       f"{first[s][1]}) name the same security group: use one spelling")


def check_merged(g: Mapping[str, Any]) -> Iterator[Finding]:
    """Findings for one merged group mapping (already structurally valid)."""
    if "instance_type" not in g:
        yield "instance_type", "is required (set it on the group or on __base__)"
    else:
        yield from _instance_type("instance_type", g["instance_type"])

    image = g.get("image", {})
    builder = image.get("builder", "packer")
    if g.get("type") == "amazon-ebs" and builder != "packer":
        yield "type", f"type amazon-ebs means image.builder packer, but image.builder is {builder}: drop one of them"
    if builder in ("packer", "ami") and "source_ami" not in g:
        yield "source_ami", f"is required with image.builder {builder}"
    if builder == "raw":
        given = [k for k in ("path", "command") if k in image]
        if len(given) != 1:
            yield "image", "builder raw needs exactly one of image.path or image.command"
    else:
        for k in ("path", "command"):
            if k in image:
                yield f"image.{k}", f"only applies to image.builder raw (this group uses {builder})"

    auto = g.get("autoscale", False)
    if isinstance(auto, dict):
        lo, hi = auto.get("node_min", 1), auto.get("node_max", 4)
        if lo > hi:
            yield "autoscale.node_min", f"node_min {lo} is above node_max {hi}"
        od = auto.get("on_demand", {})
        if "max" in od and od.get("base", 1) > od["max"]:
            yield "autoscale.on_demand.base", f"on-demand base {od.get('base', 1)} is above on_demand.max {od['max']}"
        elif "max" not in od and od.get("base", 1) > hi:
            yield "autoscale.on_demand.base", (f"on-demand base {od['base']} is above node_max {hi} "
                                               "(on_demand.max defaults to node_max)")
        spot_types = auto.get("spot", {}).get("instance_types", [])
        for i, t in enumerate(spot_types):
            yield from _instance_type(f"autoscale.spot.instance_types[{i}]", t)
            if t in spot_types[:i]:
                yield f"autoscale.spot.instance_types[{i}]", \
                    f"{t} is already listed (item {spot_types.index(t)}): each spot type once"
        if "instances" in g:
            yield "instances", "only applies to autoscale: false groups (use autoscale.node_min/node_max)"
    elif "http" in g:
        yield "http", "needs autoscale: one-off instances (autoscale: false) are not put behind the load balancer"

    yield from _tag_keys(g.get("tags") or {})
    yield from _architecture(g)
    yield from _tags(g.get("tags", {}))

    http = g.get("http")
    if http:
        hc = http.get("health_check")
        if isinstance(hc, dict) and hc.get("timeout", 2) >= hc.get("interval", 5):
            yield "http.health_check.timeout", \
                f"timeout {hc.get('timeout', 2)} s must be shorter than interval {hc.get('interval', 5)} s"
        if isinstance(hc, dict) and hc.get("interval", 5) > MAX_HEALTH_CHECK_INTERVAL:
            yield "http.health_check.interval", (f"{hc['interval']} s; at most {MAX_HEALTH_CHECK_INTERVAL} s, "
                                                 "or failed instances keep traffic too long")
        low, high = DEREGISTRATION_DELAY
        delay = http.get("deregistration_delay", 30)
        if not low <= delay <= high:
            yield "http.deregistration_delay", (f"{delay} s; want {low}-{high} s (0 drops in-flight requests, "
                                                "AWS's 300 slows every deploy)")
        values = len(http.get("hosts", [])) + len(http.get("paths", []))
        if values == 0:
            yield "http", "needs hosts or paths for its listener rule"
        elif values > ALB_CONDITION_VALUES:
            yield "http", f"{values} hosts+paths; an ALB listener rule takes at most {ALB_CONDITION_VALUES}"
        slow = http.get("slow_start", 0)
        if slow and slow < 30:
            yield "http.slow_start", f"must be 0 (off) or 30-900 seconds, got {slow}"

    rollout = g.get("rollout") or {}
    if rollout.get("strategy") == "blue_green" and not (http and isinstance(auto, dict)):
        yield "rollout.strategy", ("blue_green needs http and autoscale (its slots are weighted target groups "
                                   "of a listener rule); use refresh")
    if isinstance(auto, dict) and rollout.get("standby_min", 0) > auto.get("node_max", 4):
        yield "rollout.standby_min", f"{rollout['standby_min']} is above node_max {auto.get('node_max', 4)}"

    s = g.get("scaling", {})
    target = s.get("target_cpu", 50)
    burst = s.get("burst", {}).get("cpu", 85)
    low = s.get("scale_in", {}).get("cpu", 30)
    od = s.get("on_demand", {})
    od_target, od_burst = od.get("target_cpu", 75), od.get("burst_cpu", 95)
    if not low < target < burst:
        yield "scaling", f"needs scale_in.cpu < target_cpu < burst.cpu, got {low} / {target} / {burst}"
    if od_target < target:
        yield "scaling.on_demand.target_cpu", \
            f"{od_target} is below the spot target {target}: the fallback must scale later than spot"
    if od_burst < burst:
        yield "scaling.on_demand.burst_cpu", f"{od_burst} is below burst.cpu {burst}: the fallback must scale later"
    if not od_target < od_burst:
        yield "scaling.on_demand", f"target_cpu {od_target} must be below burst_cpu {od_burst}"


def converges(g: Mapping[str, Any]) -> bool:
    """`boot.converge` of a merged group mapping; the same default as Group.converges."""
    given = g.get("boot", {}).get("converge")
    if given is not None:
        return given
    return g.get("image", {}).get("builder", "packer") == "ami" and bool(g.get("run_list") or g.get("post_run_list"))


def chef_runs(g: Mapping[str, Any]) -> bool:
    """Does chef-solo run the group's run list: at boot (`boot.converge`), or in a Packer bake that
    provisions (`communicator: none` connects to nothing, so no provisioner runs)?"""
    image = g.get("image", {})
    return converges(g) or (image.get("builder", "packer") == "packer" and image.get("communicator", "ssh") != "none")


def check_files(g: Mapping[str, Any], project_dir: Path) -> Iterator[Finding]:
    """Findings about the project files a group's run list needs: every cookbook, recipe and role it
    names is in the project when chef runs it (else the bake fails halfway, or the boot bundle cannot
    be built), the cookbooks', roles' and data bags' own files are well formed, and the chef package
    of a converging group exists."""
    items = [*g.get("run_list", []), *g.get("post_run_list", [])]
    if converges(g) and not items:
        yield "run_list", "is empty, but boot.converge is on: there is nothing to converge (set boot.converge: false)"
    if items:
        found = closure(project_dir, items)
        for problem in found.problems:
            yield "run_list", problem
        if chef_runs(g) and (found.missing or found.missing_recipes):
            names = [*suggestions(project_dir, found.missing), *found.missing_recipes]
            when = "at boot (the boot bundle cannot be built)" if converges(g) else "halfway through the bake"
            yield "run_list", (f"needs {', '.join(names)}, not in the project's cookbooks/ (or roles/): "
                               f"chef-solo would fail {when}")
    if not converges(g):
        return
    package = g.get("boot", {}).get("chef_package")
    if package is not None:
        try:
            path = inside(project_dir, package)
        except (OutsideError, OSError):
            yield "boot.chef_package", f"{package!r} must stay inside the project (no '..', no absolute path or link)"
            return
        if not path.is_file():
            yield "boot.chef_package", f"no such file {package!r} in the project"
