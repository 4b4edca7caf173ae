"""The Pulumi program: one stack's fleet from nodes.yaml and the stack's config.

`__main__.py` calls `build_program(project_dir)`; the offline plan runs that same `__main__.py`
under Pulumi's mocks. Everything is checked before the first resource is registered: on bad
input each problem is logged as one error line (file, group, key) and the program stops with a
`pulumi.RunError`, which the Pulumi CLI prints without a traceback; nothing is created.

One `Alerts` per stack when any group autoscales (components/alerts.py: the SNS topic from
`fleet:alertsTopicArn`, or an encrypted one created here; stack output `alerts_topic_arn`), which
every group's alarms, refresh-failure rule and the spot capacity reconciler's capped alarms notify.

One `SpotCapacity` per stack when any group autoscales (the reconciler finds each group's pair by
tags; its rules name the stack's spot ASGs; its role may deregister from the stack's target groups).

Stack outputs: `alb_dns_name` (when a group has http), `spot_capacity` (when a group autoscales:
`function_name`, `table_name`, `dead_letter_queue_url`, `log_group_name`) and `groups`, per group:
`ami_id`, `launch_template_id`, `launch_template_version`, `spot_asg_name`, `on_demand_asg_name`,
`target_group_arn`, `instance_ids`, `health_alarm_names`.

Moving resources between components: every resource here was created inside its component from
the first release, so no alias is needed today. A later change that moves a resource to another
parent (or renames a component) must pass `aliases=[pulumi.Alias(parent=<old parent>)]` (or
`pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)` for a resource that used to be top level) on it,
and show a zero-replacement `pulumi preview`. Logical names depend only on the
group's own name, never on its position among the groups, so adding or removing a group moves
nothing else (tests/test_program.py checks both).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import pulumi

from components.alerts import Alerts, AlertsArgs
from components.artifacts import ArtifactFile, Artifacts, ArtifactsArgs, stage_file
from components.bluegreen import Standby, StandbyArgs
from components.launch_template import LaunchBoot
from components.load_balancer import LoadBalancer, LoadBalancerArgs
from components.network import Network, NetworkArgs
from components.node_group import NodeGroup, NodeGroupArgs
from components.port_changes import deployed_ports, port_change_problems
from components.project_python import ProjectPythonError, virtualenv_of
from components.security_groups import SecurityGroups, SecurityGroupsArgs
from components.spot_capacity import SpotCapacity, SpotCapacityArgs
from fleet.image_hash import hash_groups
from fleet.render.bundle import build_bundle
from fleet.spec.errors import Problem, SpecError
from fleet.spec.load import Fleet, load_fleet
from fleet.spec.names import rule_priorities, slug
from fleet.spec.stack import FLEET_KEYS
from fleet.spec.yamlfile import within_limits


def _all_config_keys() -> list[str]:
    """Every `fleet:*` key set on the stack (so misspelled keys are reported, not ignored)."""
    try:
        from pulumi.runtime.config import CONFIG
        return [k for k in CONFIG.get() if k.startswith("fleet:")]
    except (ImportError, AttributeError):  # older SDKs: only the declared keys
        return []


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse(raw: str, want: type) -> Any:
    """A config string as fleet.spec.stack expects it; unparsable values stay strings so fleet.spec.stack
    reports them as one clear line ("must be a mapping, not str") instead of a traceback."""
    if want is dict:
        try:  # JSON's own values only (no NaN/Infinity), as bounded as a stack file (fleet.spec.yamlfile)
            value = json.loads(raw, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            return raw
        return value if within_limits(value) else raw
    if want is bool:
        return {"true": True, "false": False}.get(raw.strip().lower(), raw)
    return raw


def stack_values_from_config(get: Callable[[str], str | None] | None = None,
                             keys: list[str] | None = None) -> dict[str, Any]:
    """The stack's config as `{"aws:region": ..., "fleet:groups": {...}, ...}` for fleet.spec.load.load_fleet.

    Same semantics as `pulumi.Config("fleet").get_object/get_bool/get`, but a malformed value is
    left for fleet.spec.stack to report with the other problems.
    """
    if get is None:
        fleet_cfg, aws_cfg = pulumi.Config("fleet"), pulumi.Config("aws")

        def get(full: str) -> str | None:
            ns, _, key = full.partition(":")
            return (fleet_cfg if ns == "fleet" else aws_cfg).get(key)
    names = [f"fleet:{k}" for k in FLEET_KEYS]
    names += [k for k in (keys if keys is not None else _all_config_keys()) if k not in names]
    values: dict[str, Any] = {}
    for full in names:
        raw = get(full)
        if raw is not None:
            key = full.partition(":")[2]
            values[full] = _parse(raw, FLEET_KEYS[key][0]) if key in FLEET_KEYS else raw
    region = get("aws:region")
    if region is not None:
        values["aws:region"] = region
    return values


def _display_path(path: Path) -> Path:
    try:
        return path.resolve().relative_to(Path(os.getcwd()).resolve())
    except ValueError:
        return path


def load_for_stack(project_dir: Path, stack: str, values: dict[str, Any]) -> Fleet:
    """Load and check the fleet for `stack`; raise SpecError with every problem found."""
    nodes_file = values.get("fleet:nodesFile")
    nodes_path = _display_path(Path(project_dir) / (nodes_file if isinstance(nodes_file, str) else "nodes.yaml"))
    # every check `fleet validate` runs (the spot types included)
    return load_fleet(nodes_path, stack=stack, stack_values=values, project_dir=Path(project_dir))


def fail(problems: list[Problem] | SpecError, stack: str) -> None:
    """Log one error line per problem, then stop the program cleanly (no traceback, no resource)."""
    problems = problems.problems if isinstance(problems, SpecError) else problems
    for p in problems:
        pulumi.log.error(str(p))
    raise pulumi.RunError(f"fleet: {len(problems)} problem(s) in the nodes file or Pulumi.{stack}.yaml "
                          "(listed above); no resource was registered")


def boot_files(project_dir: Path, groups: dict) -> tuple[dict[str, dict], list[ArtifactFile]]:
    """Per converging group: its bundle (and chef package) key and sha256; and the distinct files to upload.
    Bundles are written under `.fleet/` in the project, the package is the project's own file."""
    per_group: dict[str, dict] = {}
    files: dict[str, ArtifactFile] = {}
    for name, group in groups.items():
        if not group.converges:
            continue
        bundle = build_bundle(group, project_dir)
        files[bundle.key] = ArtifactFile(bundle.key, bundle.sha256, stage_file(project_dir, bundle.key, bundle.data),
                                         "application/gzip")
        entry = {"bundle_key": bundle.key, "bundle_sha256": bundle.sha256}
        if group.boot.chef_package:
            data = (project_dir / group.boot.chef_package).read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            key = f"packages/{sha}/{Path(group.boot.chef_package).name}"
            files[key] = ArtifactFile(key, sha, Path(group.boot.chef_package).as_posix())
            entry.update(chef_package_key=key, chef_package_sha256=sha)
        per_group[name] = entry
    return per_group, [files[k] for k in sorted(files)]


def sandbox_to_aws(stack) -> bool:
    """A stack that declares a local API (fleet:awsEndpoint) run by the real engine with the aws provider
    still pointed at AWS: its lock entries may name AMIs that exist only in that local API. The offline
    plan (Pulumi's mocks) reaches no cloud, so it previews a sandbox as any other stack."""
    if not stack.aws_endpoint or stack.targets_aws:
        return False
    from pulumi.runtime.mocks import MockMonitor
    from pulumi.runtime.settings import get_monitor

    return not isinstance(get_monitor(), MockMonitor) and not pulumi.Config("aws").get("endpoints")


def _check_commands_python(program_dir: Path, groups: dict, stack_name: str) -> None:
    """The image, rollout and gate Commands run the program's virtualenv (Pulumi.yaml's
    `runtime.options.virtualenv`): a Pulumi.yaml that does not name one is that file's problem, one
    line before any resource, not a traceback halfway through the groups."""
    if not any(g.autoscale is not None or g.image.builder != "ami" for g in groups.values()):
        return
    try:
        virtualenv_of(program_dir)
    except ProjectPythonError as exc:
        why = str(exc).split(": ", 1)[-1]
        fail([Problem(_display_path(program_dir / "Pulumi.yaml").as_posix(), None, None,
                      "runtime.options.virtualenv", why)], stack_name)


def build_program(project_dir: Path, program_dir: Path | None = None) -> dict[str, NodeGroup]:
    """Register the whole fleet of the current stack. Returns the NodeGroups by group name.

    `project_dir`: where every file the fleet is made of is read (nodes file, cookbooks, roles, data
    bags, chef package); `program_dir`: the checkout whose code and virtualenv the Commands run
    (default: the project itself, as under `pulumi up`)."""
    project_dir = Path(project_dir)
    program_dir = Path(program_dir) if program_dir is not None else project_dir
    stack_name = pulumi.get_stack()
    try:
        fleet = load_for_stack(project_dir, stack_name, stack_values_from_config())
    except SpecError as exc:
        fail(exc, stack_name)
    stack = fleet.stack
    groups = fleet.groups
    if sandbox_to_aws(stack):
        fail([Problem(stack.file, None, None, "fleet:awsEndpoint", (
            f"stack {stack.name} is a sandbox of {stack.aws_endpoint} (its base images may be locked there), "
            "but the aws provider has no aws:endpoints and would deploy to AWS: for a real account remove "
            "fleet:awsEndpoint and run `fleet lock --update` with credentials "
            "(README: first deploy to a real account)"))],
             stack_name)
    if any(g.http is not None for g in groups.values()):  # before any resource: a refusal creates nothing
        ports = {n: g.http.port for n, g in groups.items()  # an acknowledged change needs no lookup
                 if g.http is not None and stack.port_changes.get(n) != g.http.port}

        def exists(arn: str) -> bool:  # only for a listed target group on another port than the group's
            from fleet.ops.aws import client
            from fleet.ops.target_groups import target_group_exists

            return target_group_exists(client("elbv2", region=stack.region, endpoint_url=stack.aws_endpoint or None),
                                       arn)
        problems = port_change_problems(groups, deployed_ports(stack.name, ports, exists), stack.port_changes,
                                        fleet.nodes_file, stack.name)
        if problems:
            fail(problems, stack_name)
    _check_commands_python(program_dir, groups, stack_name)
    hashes = hash_groups(groups, project_dir)

    network = Network("network", NetworkArgs(stack=stack.name, config=stack.network))
    http_groups = {n: g for n, g in groups.items() if g.http is not None}
    lb = None
    if http_groups:
        lb = LoadBalancer("alb", LoadBalancerArgs(
            stack=stack.name, vpc_id=network.vpc_id, public_subnet_ids=network.public_subnet_ids,
            certificate_arn=stack.certificate_arn, deletion_protection=stack.deletion_protection,
            access_logs_bucket=stack.access_logs_bucket))
    sgs = SecurityGroups("security-groups", SecurityGroupsArgs(
        stack=stack.name, vpc_id=network.vpc_id, groups=groups, existing=dict(stack.security_groups),
        alb_security_group_id=lb.security_group.id if lb else None))
    alerts = None
    if any(g.autoscale is not None for g in groups.values()):
        alerts = Alerts("alerts", AlertsArgs(stack=stack.name, topic_arn=stack.alerts_topic_arn))
        pulumi.export("alerts_topic_arn", alerts.topic_arn)
    priorities = rule_priorities([(n, g.http.priority) for n, g in http_groups.items()])
    boots, files = boot_files(project_dir, groups)
    artifacts = Artifacts("artifacts", ArtifactsArgs(stack=stack.name, files=files)) if boots else None

    blue_green = sorted(n for n, g in groups.items() if g.blue_green)
    standby = Standby("bluegreen", StandbyArgs(stack=stack.name, region=stack.region, groups=blue_green)) \
        if blue_green else None

    nodes: dict[str, NodeGroup] = {}
    for name, group in groups.items():
        nodes[name] = NodeGroup(slug(name), NodeGroupArgs(
            group=group, stack=stack, image_hash=hashes[name], project_dir=program_dir,
            vpc_id=network.vpc_id, private_subnet_ids=network.private_subnet_ids,
            security_group_ids=sgs.ids_for(name),
            listener_arn=lb.listener.arn if lb and group.http else None,
            load_balancer_arn_suffix=lb.arn_suffix if lb and group.http else None,
            rule_priority=priorities.get(name),
            boot=LaunchBoot(region=stack.region, bucket=artifacts.bucket.id, bucket_arn=artifacts.bucket.arn,
                            objects=artifacts.objects_for(boots[name]), **boots[name]) if name in boots else None,
            alerts_topic_arn=alerts.topic_arn if alerts else None, standby=standby))

    if any(g.autoscale is not None for g in groups.values()):
        spot = SpotCapacity("spot-capacity", SpotCapacityArgs(
            stack=stack.name, region=stack.region,
            spot_asg_names={name: n.asg_pair.spot.name for name, n in nodes.items() if n.asg_pair is not None},
            slot_spot_asg_names={name: n.slots["b"].spot.name for name, n in nodes.items() if "b" in n.slots},
            target_group_arns=[t.arn for n in nodes.values() if n.target_group is not None
                               for t in n.target_group.target_groups.values()],
            alarm_actions=[alerts.topic_arn] if alerts else []))
        pulumi.export("spot_capacity", {"function_name": spot.function.name, "table_name": spot.table.name,
                                        "dead_letter_queue_url": spot.dead_letter_queue.id,
                                        "log_group_name": spot.log_group.name})

    if lb is not None:
        pulumi.export("alb_dns_name", lb.dns_name)
    if artifacts is not None:
        pulumi.export("artifacts_bucket", artifacts.bucket.id)
    pulumi.export("groups", {name: node.outputs for name, node in nodes.items()})
    return nodes
