"""Load a fleet: nodes.yaml + the stack's overrides -> validated, merged, typed groups.

Order: parse (syntax, duplicates) -> schema (structure) -> group names -> merge
(__base__, group, stack override) -> cross-field rules -> typed Group objects.
Every problem found is collected; SpecError carries them all, nothing is half-built.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Mapping

from fleet.spec import rules, schema_check
from fleet.spec.errors import Problem, SpecError, did_you_mean
from fleet.spec.limits import MIN_SPOT_TYPES, PROD_STACKS
from fleet.spec.lock import filter_key, local_entry, lock_path, read_lock
from fleet.spec.merge import merge_group
from fleet.spec.model import Group, SourceAmiFilter, build_group
from fleet.spec.project import display, missing_stack
from fleet.spec.readonce import keep, kept
from fleet.spec.spot_types import spot_instance_types
from fleet.spec.stack import StackConfig, read_stack_values, stack_file, stack_from_values
from fleet.spec.yamlfile import YamlDoc, load_yaml_file

BASE = "__base__"


@dataclass(frozen=True)
class Fleet:
    groups: Mapping[str, Group]
    stack: StackConfig | None
    nodes_file: str

    def group(self, name: str) -> Group:
        """The named group; a SpecError with "did you mean" when there is none."""
        if name not in self.groups:
            raise SpecError([Problem(self.nodes_file, None, name, None,
                                     f"no such group{did_you_mean(name, self.groups)}")])
        return self.groups[name]


def nodes_label(path: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(group, key) of a key path in nodes.yaml: the first key is the group."""
    return (path[0], ".".join(path[1:]) or None) if path else (None, None)


def _parse_nodes(doc: YamlDoc, file: str) -> list[Problem]:
    data = doc.data
    if data is None:
        return [Problem(file, None, None, None, "file is empty: define __base__ and at least one group")]
    if not isinstance(data, dict):
        return [Problem(file, 1, None, None, f"must be a mapping of node groups, not {type(data).__name__}")]
    problems = []
    for name in data:
        why = rules.check_group_name(name)
        if why:
            problems.append(Problem(file, doc.line_of((str(name),)), str(name), None, why))
    if not [n for n in data if n != BASE]:
        problems.append(Problem(file, None, None, None, "no node groups: define at least one group besides __base__"))
    names = [n for n in data if isinstance(n, str) and n != BASE]
    for name, other in rules.slug_collisions(names):
        problems.append(Problem(file, doc.line_of((name,)), name, None,
                                f"derives the same AWS names as group '{other}' ('_' and '-' both become '-', "
                                "long names are shortened)"))
    problems += schema_check.check(data, "document", file, doc.line_of)
    return problems


def project_dir_of(nodes_path: str | Path) -> Path:
    """The project a nodes file belongs to: the nearest directory at or above it holding a
    Pulumi.yaml or a cookbooks/ folder, else the file's own directory. Its cookbooks and build code
    are what the image hash covers, so the answer must not depend on the current directory."""
    start = Path(nodes_path).resolve().parent
    for d in (start, *start.parents):
        if (d / "Pulumi.yaml").exists() or (d / "cookbooks").is_dir():
            return d
    return start


def merge_for(name: str, nodes: Mapping[str, Any], override: Mapping[str, Any] | None) -> tuple[dict, dict]:
    """(merged mapping, origin) for one group; origin[key] = 'nodes' or 'stack' (who set it last)."""
    merged = merge_group(nodes.get(BASE) or {}, nodes[name] or {})
    origin = {k: "nodes" for k in merged}
    if override:
        merged = merge_group(merged, override)
        origin.update({k: "stack" for k in override})
    return merged, origin


def load_fleet(nodes_path: str | Path = "nodes.yaml", stack: str | None = None,
               stack_values: Mapping[str, Any] | None = None, project_dir: str | Path | None = None,
               require_lock: bool = True, check_files: bool = True) -> Fleet:
    """Load and check everything for `stack` (None: nodes.yaml alone).

    `stack_values` are the stack's config values (the Pulumi program passes them from
    pulumi.Config); when None they are read from `project_dir`'s Pulumi.<stack>.yaml (the CLI passes
    the project the user stands in, fleet.spec.project; default: the nodes file's `project_dir_of`),
    never from beside a nodes file that lives elsewhere. With `project_dir` and `check_files`, the
    repository files that converging groups need at boot (cookbooks, chef package) are checked too
    (rules.check_files): `fleet validate`, the plan and the Pulumi program do, commands that only
    render do not.

    `source_ami` filters get their locked image from the lock file beside the nodes file (for the
    stack's region; fleet/spec/lock.py); an unlocked filter is a problem ("run `fleet lock`") unless
    `require_lock` is False (`fleet lock` itself).
    """
    nodes_path = Path(nodes_path)
    nfile = str(nodes_path)
    doc = load_yaml_file(nodes_path, label=nodes_label, keep_going=True)
    try:
        return _load(doc, nodes_path, nfile, stack, stack_values, project_dir, require_lock, check_files)
    except SpecError as exc:
        if not doc.problems:
            raise
        # what the reader refused comes first; a later problem on one of its lines is the same one
        refused = {p.line for p in doc.problems}
        raise SpecError([*doc.problems, *(p for p in exc.problems
                                          if not (isinstance(p, Problem) and p.file == nfile and p.line in refused))]
                        ) from None


def _load(doc: YamlDoc, nodes_path: Path, nfile: str, stack: str | None, stack_values: Mapping[str, Any] | None,
          project_dir: str | Path | None, require_lock: bool, check_files: bool) -> Fleet:
    """load_fleet's checks on the nodes file's document (which may carry the reader's own problems)."""
    problems = _parse_nodes(doc, nfile)
    if not isinstance(doc.data, dict) or not doc.data:
        raise SpecError(problems)
    nodes: dict[str, Any] = doc.data

    stack_cfg, sfile, sdoc = None, "", None
    if stack is not None:
        if stack_values is None:
            home = Path(project_dir) if project_dir is not None else project_dir_of(nodes_path)
            spath = stack_file(home, stack)
            if not spath.is_file():
                raise SpecError([missing_stack(home, stack)])
            sfile = display(spath)
            stack_values, sdoc = read_stack_values(Path(sfile))
        else:
            sfile = f"Pulumi.{stack}.yaml"
        line = (lambda key: sdoc.line_of(("config", key))) if sdoc else (lambda key: None)
        stack_cfg = stack_from_values(stack, stack_values, sfile, line)
        if sdoc is not None and "fleet:nodesFile" in stack_values and stack_cfg.nodes_file:
            wanted = Path(sfile).parent / stack_cfg.nodes_file
            if not wanted.is_file():
                problems.append(Problem(sfile, line("fleet:nodesFile"), None, "fleet:nodesFile",
                                        f"{wanted} does not exist"))
        problems += _check_overrides(stack_cfg, nodes, sfile, sdoc)
        for group in stack_cfg.amis:
            if group not in nodes or group == BASE:
                problems.append(Problem(sfile, line("fleet:amis"), str(group), "fleet:amis",
                                        f"no such group{did_you_mean(str(group), [n for n in nodes if n != BASE])}"))
    # The plan checks the fleet with the stack file (for its line numbers), then the program loads it
    # again from the same values as Pulumi config: within one run (fleet.spec.readonce) the second
    # load of the same files with the same effective settings returns the first one's groups.
    memo = ("load_fleet", nodes_path.resolve(), stack, None if project_dir is None else Path(project_dir).resolve(),
            require_lock, check_files, repr(replace(stack_cfg, file="", nodes_file="")) if stack_cfg else None)
    if not problems and (done := kept(memo)) is not None:
        return Fleet(groups=done.groups, stack=stack_cfg, nodes_file=nfile)
    # Cross-field rules run on every group whose own entries are structurally sound, so one
    # run lists everything: a schema problem in one group does not hide a rule broken in another.
    broken = {p.group for p in problems}
    groups: dict[str, Group] = {}
    http_in_stack: dict[str, bool] = {}
    merged_groups: dict[str, dict] = {}
    source_in_stack: dict[str, bool] = {}
    for name in nodes:
        if name == BASE or name in broken or BASE in broken or not isinstance(name, str):
            continue
        override = stack_cfg.groups.get(name) if stack_cfg else None
        merged, origin = merge_for(name, nodes, override)
        if override:
            # the override was checked alone without `required`; the merged group must be whole
            prefix = ("config", "fleet:groups", name)

            def override_line(path, prefix=prefix):
                return sdoc.line_of((*prefix, *path[1:])) if sdoc else None

            merged_problems = schema_check.check(merged, "group", sfile, override_line, group=name)
            if merged_problems:
                problems += merged_problems
                continue
        found = list(rules.check_merged(merged))
        if project_dir is not None and check_files:
            found += list(rules.check_files(merged, Path(project_dir)))
        if not found:
            group = build_group(name, merged)
            found = list(_check_built(group, merged, stack_cfg))
        merged_groups[name] = merged
        # a finding the group has without the override is nodes.yaml's; one the override brings is the stack's
        without = set(found)
        if override:
            alone = merge_for(name, nodes, None)[0]
            without = set(rules.check_merged(alone))
            if project_dir is not None and check_files:
                without |= set(rules.check_files(alone, Path(project_dir)))
            if not without:
                without = set(_check_built(build_group(name, alone), alone, stack_cfg))
        for key, msg in found:
            in_stack = (key, msg) not in without
            file = sfile if in_stack else nfile
            path = ("config", "fleet:groups", name, *key.split(".")) if in_stack else (name, *key.split("."))
            line = (sdoc.line_of(path) if sdoc else None) if in_stack else doc.line_of(path)
            if line is None and not in_stack:
                line = doc.line_of((BASE, *key.split(".")))
            problems.append(Problem(file, line, name, key, msg))
        if not found:
            groups[name] = group
            http_in_stack[name] = origin.get("http") == "stack"
            source_in_stack[name] = origin.get("source_ami") == "stack"
    for name, msg in rules.priority_clashes([(n, g.http.priority) for n, g in groups.items() if g.http]):
        path = ("http", "priority")
        if http_in_stack[name]:
            problems.append(Problem(sfile, sdoc.line_of(("config", "fleet:groups", name, *path)) if sdoc else None,
                                    name, "http.priority", msg))
        else:
            problems.append(Problem(nfile, doc.line_of((name, *path)) or doc.line_of((name, "http")),
                                    name, "http.priority", msg))
    for name, key, msg in rules.security_group_clashes(merged_groups):
        problems.append(Problem(nfile, doc.line_of((name, "security_groups")), name, key, msg))
    if not problems:
        problems += _apply_lock(groups, nodes_path, stack_cfg, require_lock, nfile, doc, sfile, sdoc, source_in_stack)
    if stack_cfg is not None:
        problems += _check_stack(stack_cfg, groups, sfile, sdoc)
    if problems or doc.problems:
        raise SpecError(problems)
    fleet = Fleet(groups=groups, stack=stack_cfg, nodes_file=nfile)
    keep(memo, fleet)
    return fleet


def _apply_lock(groups: dict[str, Group], nodes_path: Path, stack_cfg: StackConfig | None, require_lock: bool,
                nfile: str, doc: YamlDoc, sfile: str, sdoc, source_in_stack: Mapping[str, bool]) -> list[Problem]:
    """Give every filter its locked image (in place); one problem per distinct unlocked filter, and per
    distinct filter locked against a local API when the stack targets AWS (fleet/spec/lock.py)."""
    lock = read_lock(lock_path(nodes_path))
    region = stack_cfg.region if stack_cfg else None
    unlocked: dict[str, str] = {}
    local: dict[str, tuple[str, str]] = {}  # filter key -> (group, why): locked against a local API
    for name, group in groups.items():
        source = group.source_ami
        if not isinstance(source, SourceAmiFilter):
            continue
        found = lock.find(source, region)
        if found is not None:
            groups[name] = replace(group, source_ami=replace(source, locked=found))
            why = local_entry(found, stack_cfg.name) if stack_cfg is not None and stack_cfg.targets_aws else None
            if why and require_lock:
                local.setdefault(filter_key(source), (name, why))
        elif require_lock:
            unlocked.setdefault(filter_key(source), name)
    problems = []
    where = f" for {region}" if region else ""
    messages = [(name, f"is not locked{where} in {lock.path.name}: run `fleet lock`") for name in unlocked.values()]
    messages += [(name, f"in {lock.path.name} {why}") for name, why in local.values()]
    for name, what in messages:
        source = groups[name].source_ami
        msg = f"base image filter {source.name!r} (owners {', '.join(source.owners)}) {what}"
        if source_in_stack.get(name):
            line = sdoc.line_of(("config", "fleet:groups", name, "source_ami")) if sdoc else None
            problems.append(Problem(sfile, line, name, "source_ami", msg))
        else:
            line = doc.line_of((name, "source_ami")) or doc.line_of((BASE, "source_ami"))
            problems.append(Problem(nfile, line, name, "source_ami", msg))
    return problems


def _check_built(group: Group, merged: Mapping[str, Any], stack: StackConfig | None) -> Iterator[tuple[str, str]]:
    """Rules on the typed group (what the program derives from it): seed 001's `region` is the stack's,
    no zero-block skipping (every volume is encrypted), the spot ASG's 3+ instance types."""
    if stack is not None and group.region is not None and group.region != stack.region:
        yield "region", (f"region {group.region} is not the stack's aws:region {stack.region} ({stack.file}): "
                         "a stack deploys to one region; drop `region` or make them equal")
    if group.image.skip_zero_blocks_unsafe_if_encrypted:
        # the plan's raw-upload-every-block guardrail says the same after the program ran
        yield "image.skip_zero_blocks_unsafe_if_encrypted", (
            "every root volume fleet launches is encrypted, and an encrypted volume reads a block missing "
            "from its snapshot as garbage: upload every block (remove the key)")
    if group.autoscale is None:
        return
    types = spot_instance_types(group)
    if len(types) < MIN_SPOT_TYPES:
        listed = bool(merged.get("autoscale", {}).get("spot", {}).get("instance_types"))
        yield ("autoscale.spot.instance_types" if listed else "instance_type",
               f"only {len(types)} spot type(s) known for {group.instance_type} ({', '.join(types)}); "
               f"list {MIN_SPOT_TYPES}+ instance types in autoscale.spot.instance_types "
               "(one type's shortage then leaves the others)")


def _check_stack(stack: StackConfig, groups: Mapping[str, Group], sfile: str, sdoc) -> list[Problem]:
    """Rules on the stack as a whole: a prod stack serving http groups needs its HTTPS certificate."""
    if stack.name in PROD_STACKS and stack.certificate_arn is None and any(g.http for g in groups.values()):
        line = sdoc.line_of(("config",)) if sdoc else None
        return [Problem(sfile, line, None, "fleet:certificateArn",
                        f"stack {stack.name} serves http groups but sets no certificate: its listeners must be "
                        "HTTPS (an ACM certificate ARN); HTTP only is for staging")]
    return []


def _check_overrides(stack_cfg: StackConfig, nodes: Mapping[str, Any], sfile: str, sdoc) -> list[Problem]:
    problems = []
    names = [n for n in nodes if n != BASE]
    for group, override in stack_cfg.groups.items():
        prefix = ("config", "fleet:groups", str(group))

        def line_of(path, prefix=prefix):
            return sdoc.line_of((*prefix, *path[1:])) if sdoc else None

        if group not in names:
            problems.append(Problem(sfile, line_of((group,)), str(group), "fleet:groups",
                                    f"no such group in nodes.yaml{did_you_mean(str(group), names)}"))
            continue
        if not isinstance(override, dict):
            problems.append(Problem(sfile, line_of((group,)), str(group), "fleet:groups",
                                    f"override must be a mapping, not {type(override).__name__}"))
            continue
        problems += schema_check.check(override, "group-override", sfile, line_of, group=str(group))
    return problems
