"""Refuse an `http.port` change that would take traffic down.

A target group's port forces its replacement. Pulumi creates the new target group, then moves the
listener rule and the ASGs' `target_group_arns` to it in the same update, while the instances still
serve the old port: the new target group has no healthy target (503s) and the rollout that follows
is judged on that outage. So the program compares each http group's port with the port its deployed
target group carries (tag `fleet:port`, read with one Resource Groups Tagging API call per stack
before anything is registered) and refuses a change with one line explaining the safe two steps:

1. deploy the application listening on both ports, `http.port` unchanged (a normal rollout);
2. set `http.port` to the new port AND acknowledge it in the stack's config,
   `fleet:portChanges: {GROUP: NEW_PORT}`, then deploy: the instances already answer on the new port,
   so the new target group turns healthy as the instances register. Remove the old port from the
   application (and the acknowledgement) afterwards.

An acknowledgement names the port, so a stale one never lets a later, different change through.

The tagging API also returns resources deleted recently (it is eventually consistent: a target group
replaced or removed by the last update can still be listed for a while). So a listed target group
whose port differs from the group's is looked up by its ARN before it counts: one that no longer
exists is ignored (a group whose target group was replaced then has the new one's port, or none).
Only differing ones are looked up, so an ordinary `pulumi up` makes no extra call.
"""

from __future__ import annotations

from typing import Callable, Mapping

import pulumi_aws as aws

from fleet.spec.errors import Problem
from fleet.spec.model import Group

PORT_TAG = "fleet:port"


def deployed_ports(stack: str, expected: Mapping[str, int] | None = None,
                   exists: Callable[[str], bool] = lambda arn: True) -> dict[str, int]:
    """{group: port} of the stack's deployed target groups, from their tags (empty on a first deploy).
    A target group whose port is not the group's `expected` one counts only if `exists(arn)` (the
    program passes fleet/ops/target_groups.py's ELBv2 lookup); groups not in `expected` (an
    acknowledged change) are taken as listed."""
    found = aws.resourcegroupstaggingapi.get_resources(
        resource_type_filters=["elasticloadbalancing:targetgroup"],
        tag_filters=[aws.resourcegroupstaggingapi.GetResourcesTagFilterArgs(key="fleet:stack", values=[stack])])
    expected = expected or {}
    ports: dict[str, int] = {}
    for item in found.resource_tag_mapping_lists or []:
        tags = item.tags or {}
        if "fleet:group" not in tags or not str(tags.get(PORT_TAG, "")).isdigit():
            continue
        group, port = tags["fleet:group"], int(tags[PORT_TAG])
        if group not in expected or port == expected[group]:
            ports.setdefault(group, port)
        elif exists(item.resource_arn):
            ports[group] = port  # a live target group (of either slot) on another port: that is the change
    return ports


def port_change_problems(groups: Mapping[str, Group], deployed: Mapping[str, int], accepted: Mapping[str, int],
                         nodes_file: str, stack: str) -> list[Problem]:
    problems = []
    for name, group in groups.items():
        if group.http is None or name not in deployed or deployed[name] == group.http.port:
            continue
        old, new = deployed[name], group.http.port
        if accepted.get(name) == new:
            continue
        problems.append(Problem(nodes_file, None, name, "http.port", (
            f"{old} -> {new} replaces the target group while the instances still serve {old} (503s); do it in two "
            f"deploys: 1) ship the app listening on both {old} and {new} with http.port {old}, 2) set http.port {new} "
            f"and fleet:portChanges: {{{name}: {new}}} in Pulumi.{stack}.yaml")))
    return problems
