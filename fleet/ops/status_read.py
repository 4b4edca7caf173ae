"""What `fleet status` reads from AWS: one stack's ASGs, launch template versions, AMIs, instances,
target groups, listener weights, the spot reconciler's record and instance refreshes.

Read in pages per stack, so the number of calls does not grow with the number of groups, wherever the
API allows it:
- Resource Groups Tagging API, one paged call: the stack's target groups, load balancers and the
  reconciler's DynamoDB table (everything fleet creates carries `fleet:stack`);
- DescribeAutoScalingGroups filtered on the tag `fleet:stack` (100 per page);
- DescribeLaunchTemplateVersions for `$Latest` of every template (200 per page); a version an ASG
  runs that is not the latest (a rollout in flight, or one that failed) is read per template;
- DescribeImages for the distinct AMIs those versions run; DescribeInstances only for the groups without
  ASGs (`autoscale: false`), filtered on their `fleet:group` tags;
- DescribeListeners/DescribeRules per load balancer (one per stack) for the listener weights;
- a Scan of the reconciler's table (one item per group).
Two APIs take exactly one resource per call, so they are called per resource, concurrently:
DescribeTargetHealth (one per target group) and DescribeInstanceRefreshes (one per ASG; a refresh that
is baking adds one DescribeScalingActivities for when its bake began).

An endpoint without DescribeInstanceRefreshes (a local AWS API such as moto) answers with something
that is not an AWS response: the refresh column is then reported as unavailable with the reason,
instead of failing the whole view. Any other AWS error propagates (the CLI prints it as one line).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Iterable, Iterator

from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from fleet.ops.aws import client as aws_client
from fleet.ops.aws import new_session

STACK_TAG, GROUP_TAG, CAPACITY_TAG, SLOT_TAG = "fleet:stack", "fleet:group", "fleet:capacity", "fleet:slot"
RESOURCE_TYPES = ("elasticloadbalancing:targetgroup", "elasticloadbalancing:loadbalancer", "dynamodb:table")
# The IAM actions a role needs to run `fleet status` (all reads; tests/test_status.py checks every call
# a read makes is one of them).
STATUS_ACTIONS = (
    "tag:GetResources", "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeInstanceRefreshes",
    "autoscaling:DescribeScalingActivities", "ec2:DescribeLaunchTemplateVersions", "ec2:DescribeImages",
    "ec2:DescribeInstances", "elasticloadbalancing:DescribeTargetHealth", "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeRules", "dynamodb:Scan")
WORKERS = 8  # concurrent per-resource calls (DescribeTargetHealth, DescribeInstanceRefreshes)
LIVE_STATES = ("pending", "running", "stopping", "stopped")


@dataclass
class LiveStack:
    """One read of a stack, in AWS's own shapes (trimmed); fleet.status.join turns it into the report."""

    stack: str
    read_at: datetime
    asgs: list[dict] = field(default_factory=list)
    # (launch template id, version number as str) -> LaunchTemplateData; template id -> latest version
    versions: dict[tuple[str, str], dict] = field(default_factory=dict)
    latest: dict[str, int] = field(default_factory=dict)
    images: dict[str, dict] = field(default_factory=dict)  # AMI id -> {"name", "tags"}
    instances: list[dict] = field(default_factory=list)
    target_groups: dict[str, dict] = field(default_factory=dict)  # arn -> {"name", "tags", "health": {state: n}}
    weights: dict[str, list[dict]] = field(default_factory=dict)  # tg arn -> the rule's [{"arn", "weight"}]
    reconciler: dict[str, dict] = field(default_factory=dict)  # group -> slot -> its item in the reconciler's table
    refreshes: dict[str, dict | None] = field(default_factory=dict)  # ASG name -> newest refresh
    refreshes_unavailable: str | None = None
    bake_started: dict[str, datetime] = field(default_factory=dict)  # ASG name -> end of its last activity
    calls: int = 0
    calls_by_operation: dict[str, int] = field(default_factory=dict)


class _Counter:
    """Counts the AWS calls of one read, per operation (the bench shows which grow with the groups)."""

    def __init__(self):
        self.n, self.by_operation, self._lock = 0, {}, threading.Lock()

    def __call__(self, model=None, **_) -> None:
        name = model.name if model is not None else "?"
        with self._lock:
            self.n += 1
            self.by_operation[name] = self.by_operation.get(name, 0) + 1


def tags_of(item: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in item.get("Tags") or []}


def stack_resources(tagging, stack: str) -> dict[str, dict[str, str]]:
    """ARN -> tags of the stack's target groups, load balancers and DynamoDB tables."""
    pages = tagging.get_paginator("get_resources").paginate(
        TagFilters=[{"Key": STACK_TAG, "Values": [stack]}], ResourceTypeFilters=list(RESOURCE_TYPES))
    return {r["ResourceARN"]: tags_of(r) for page in pages for r in page["ResourceTagMappingList"]}


def stack_asgs(autoscaling, stack: str) -> list[dict]:
    pages = autoscaling.get_paginator("describe_auto_scaling_groups").paginate(
        Filters=[{"Name": f"tag:{STACK_TAG}", "Values": [stack]}])
    return [g for page in pages for g in page["AutoScalingGroups"]]


def template_spec(asg: dict) -> dict:
    """The ASG's launch template reference (under the mixed instances policy for a spot ASG)."""
    mixed = asg.get("MixedInstancesPolicy")
    if mixed:
        return mixed["LaunchTemplate"]["LaunchTemplateSpecification"]
    return asg.get("LaunchTemplate") or {}


def latest_versions(ec2) -> tuple[dict[str, int], dict[tuple[str, str], dict]]:
    """Every template's latest version (number and data), in pages, whatever the number of templates."""
    latest, data = {}, {}
    pages = ec2.get_paginator("describe_launch_template_versions").paginate(
        Versions=["$Latest"], PaginationConfig={"PageSize": 200})  # 200: the API's largest page
    for page in pages:
        for v in page["LaunchTemplateVersions"]:
            latest[v["LaunchTemplateId"]] = int(v["VersionNumber"])
            data[(v["LaunchTemplateId"], str(v["VersionNumber"]))] = v.get("LaunchTemplateData") or {}
    return latest, data


def template_versions(ec2, template_id: str, versions: Iterable[str]) -> dict[tuple[str, str], dict]:
    """Given versions of one template (those ASGs run that are not its latest)."""
    out = {}
    for v in ec2.describe_launch_template_versions(LaunchTemplateId=template_id,
                                                   Versions=sorted(set(versions)))["LaunchTemplateVersions"]:
        out[(v["LaunchTemplateId"], str(v["VersionNumber"]))] = v.get("LaunchTemplateData") or {}
    return out


def images(ec2, ami_ids: Iterable[str]) -> dict[str, dict]:
    """AMI id -> name and tags; an AMI that no longer exists is simply absent."""
    ids, out = sorted(set(ami_ids)), {}
    for i in range(0, len(ids), 100):
        chunk = ids[i:i + 100]
        try:
            found = ec2.describe_images(ImageIds=chunk)["Images"]
        except ClientError as e:  # one deregistered AMI fails the whole call: ask with a filter instead
            if not e.response.get("Error", {}).get("Code", "").startswith("InvalidAMIID"):
                raise
            found = ec2.describe_images(Filters=[{"Name": "image-id", "Values": chunk}])["Images"]
        for img in found:
            out[img["ImageId"]] = {"name": img.get("Name"), "tags": tags_of(img)}
    return out


def group_instances(ec2, stack: str, groups: Iterable[str]) -> list[dict]:
    """The instances of the given groups (the `autoscale: false` ones: ASG instances are counted from
    the ASGs, which is far less to read) that are not terminated: id, AMI, spot or not, state and tags."""
    names, out = sorted(set(groups)), []
    for i in range(0, len(names), 200):  # values per filter
        pages = ec2.get_paginator("describe_instances").paginate(Filters=[
            {"Name": f"tag:{STACK_TAG}", "Values": [stack]}, {"Name": f"tag:{GROUP_TAG}", "Values": names[i:i + 200]},
            {"Name": "instance-state-name", "Values": list(LIVE_STATES)}])
        out += [{"id": i["InstanceId"], "image_id": i.get("ImageId"), "spot": i.get("InstanceLifecycle") == "spot",
                 "state": i["State"]["Name"], "tags": tags_of(i)}
                for page in pages for r in page["Reservations"] for i in r["Instances"]]
    return out


def target_health(elbv2, arn: str) -> dict[str, int]:
    """Target count per state (healthy, unhealthy, draining, initial, unused, unavailable)."""
    counts: dict[str, int] = {}
    for d in elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]:
        state = d.get("TargetHealth", {}).get("State", "unavailable")
        counts[state] = counts.get(state, 0) + 1
    return counts


def listener_weights(elbv2, load_balancer_arn: str) -> dict[str, list[dict]]:
    """Target group ARN -> the forward it is in (every target group with its weight), from every rule of
    every listener of the load balancer."""
    out: dict[str, list[dict]] = {}
    for page in elbv2.get_paginator("describe_listeners").paginate(LoadBalancerArn=load_balancer_arn):
        for listener in page["Listeners"]:
            for rule in _rules(elbv2, listener["ListenerArn"]):
                for action in rule.get("Actions", []):
                    if action.get("Type") != "forward":
                        continue
                    groups = (action.get("ForwardConfig") or {}).get("TargetGroups") or (
                        [{"TargetGroupArn": action["TargetGroupArn"]}] if action.get("TargetGroupArn") else [])
                    forward = [{"arn": g["TargetGroupArn"], "weight": g.get("Weight", 1)} for g in groups]
                    for g in forward:
                        out[g["arn"]] = forward
    return out


def _rules(elbv2, listener_arn: str) -> list[dict]:
    rules, marker = [], None
    while True:  # DescribeRules has a Marker but no paginator in botocore
        page = elbv2.describe_rules(ListenerArn=listener_arn, **({"Marker": marker} if marker else {}))
        rules += page["Rules"]
        marker = page.get("NextMarker")
        if not marker:
            return rules


def reconciler_records(dynamodb, table: str, stack: str) -> dict[str, dict[str | None, dict]]:
    """Group -> slot -> the reconciler's item (`extra`, and `last_decision` once it recorded one). Keys in
    the table: `<stack>/<group>` (a group without slots, or its slot a) and `<stack>/<group>/<slot>`.
    Other tables of the stack key their items the same way (the blue/green rollout's locks): only items
    holding the reconciler's record count."""
    out: dict[str, dict[str | None, dict]] = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            key = item.get("group", {}).get("S", "")
            if key.startswith(f"{stack}/") and ("extra" in item or "last_decision" in item):
                group, _, slot = key[len(stack) + 1:].partition("/")
                out.setdefault(group, {})[slot or None] = _plain(item)
    return out


def _plain(value):
    """DynamoDB's typed JSON -> plain values (numbers as int or float)."""
    if isinstance(value, dict) and len(value) == 1:
        (kind, v), = value.items()
        if kind == "S":
            return v
        if kind == "N":
            return int(v) if v.lstrip("-").isdigit() else float(v)
        if kind == "BOOL":
            return v
        if kind == "M":
            return {k: _plain(x) for k, x in v.items()}
        if kind == "L":
            return [_plain(x) for x in v]
        if kind == "NULL":
            return None
    if isinstance(value, dict):
        return {k: _plain(x) for k, x in value.items()}
    return value


def newest_refresh(autoscaling, asg_name: str) -> dict | None:
    """The ASG's newest instance refresh (AWS lists them newest first), or None."""
    found = autoscaling.describe_instance_refreshes(AutoScalingGroupName=asg_name, MaxRecords=1)
    return (found.get("InstanceRefreshes") or [None])[0]


def bake_started(autoscaling, asg_name: str, since: datetime) -> datetime | None:
    """When the refresh's last replacement finished (its bake began): the newest end time among the ASG's
    scaling activities since the refresh started. AWS reports no bake start of its own."""
    ends = [a["EndTime"] for a in autoscaling.describe_scaling_activities(
        AutoScalingGroupName=asg_name, MaxRecords=20)["Activities"]
        if a.get("EndTime") and a.get("StartTime") and a["StartTime"] >= since]
    return max(ends) if ends else None


@contextmanager
def _pool() -> Iterator[ThreadPoolExecutor]:
    """The read's worker threads. On the way out nothing waits for them: every result the read uses is
    awaited inside the block, and on Ctrl-C (`--watch`) a read still waiting on a slow answer must not
    hold the command up (ThreadPoolExecutor's own exit joins every thread)."""
    pool = ThreadPoolExecutor(max_workers=WORKERS)
    try:
        yield pool
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def refreshes(autoscaling, asg_names: list[str], pool: ThreadPoolExecutor, probe=None
              ) -> tuple[dict[str, dict | None], str | None]:
    """ASG name -> newest refresh. The first call goes alone (through `probe`, a client that does not
    retry): an endpoint that lacks the API answers it with a page that is not an AWS response, and then
    no other ASG is asked. A probe that was throttled is asked again with the retrying client."""
    if not asg_names:
        return {}, None
    try:
        first = newest_refresh(probe or autoscaling, asg_names[0])
    except ResponseParserError:
        return {}, "autoscaling:DescribeInstanceRefreshes: the endpoint's answer is not an AWS response"
    except ClientError:
        first = newest_refresh(autoscaling, asg_names[0])
    rest = list(pool.map(lambda n: newest_refresh(autoscaling, n), asg_names[1:]))
    return dict(zip(asg_names, [first, *rest], strict=False)), None


class StackReader:
    """The clients of one `fleet status` (made once, from one session: `--watch` reads again with them)."""

    def __init__(self, stack: str, *, region: str | None = None, endpoint_url: str | None = None):
        self.stack, self.counter = stack, _Counter()
        session = new_session()

        def make(service: str, max_attempts: int | None = None):
            c = aws_client(service, region=region, endpoint_url=endpoint_url, max_attempts=max_attempts,
                           max_pool_connections=WORKERS * 2, session=session)
            c.meta.events.register("before-call", self.counter)
            return c

        self.tagging, self.autoscaling, self.ec2, self.elbv2, self.dynamodb = (
            make(s) for s in ("resourcegroupstaggingapi", "autoscaling", "ec2", "elbv2", "dynamodb"))
        # The refresh probe is not retried: an endpoint lacking the API would spend seconds in retries of a
        # 500 page, and status is only a view (a throttled probe is asked again with retries).
        self.probe = make("autoscaling", max_attempts=1)

    def read(self, now: datetime | None = None, instance_groups: Iterable[str] = ()) -> LiveStack:
        """One read of the stack (and of the instances of `instance_groups`, the groups without ASGs).
        The independent paged describes run side by side, then what needs their answers (AMIs, target
        health, weights, the reconciler's record, refreshes)."""
        before = dict(self.counter.by_operation)
        stack, ec2, elbv2, autoscaling = self.stack, self.ec2, self.elbv2, self.autoscaling
        live = LiveStack(stack=stack, read_at=now or datetime.now(UTC))
        with _pool() as pool:
            f_resources = pool.submit(stack_resources, self.tagging, stack)
            f_asgs = pool.submit(stack_asgs, autoscaling, stack)
            f_latest = pool.submit(latest_versions, ec2)
            f_instances = pool.submit(group_instances, ec2, stack, instance_groups)
            live.asgs = f_asgs.result()
            f_refreshes = pool.submit(refreshes, autoscaling, sorted(g["AutoScalingGroupName"] for g in live.asgs),
                                      pool, self.probe)
            resources = f_resources.result()
            tg_arns = sorted({a for a in resources if ":targetgroup/" in a} |
                             {a for asg in live.asgs for a in asg.get("TargetGroupARNs", [])})
            f_health = [pool.submit(target_health, elbv2, a) for a in tg_arns]
            f_weights = [pool.submit(listener_weights, elbv2, lb) for lb in resources if ":loadbalancer/app/" in lb]
            f_records = [pool.submit(reconciler_records, self.dynamodb, t.split(":table/")[-1], stack)
                         for t in resources if ":table/" in t]
            live.latest, live.versions = f_latest.result()
            wanted: dict[str, set[str]] = {}
            for asg in live.asgs:
                spec = template_spec(asg)
                tid, version = spec.get("LaunchTemplateId"), str(spec.get("Version", ""))
                if tid and version.isdigit() and (tid, version) not in live.versions:
                    wanted.setdefault(tid, set()).add(version)
            for got in pool.map(lambda kv: template_versions(ec2, *kv), wanted.items()):
                live.versions.update(got)
            live.instances = f_instances.result()
            live.images = images(ec2, {d["ImageId"] for d in live.versions.values() if d.get("ImageId")} |
                                 {i["image_id"] for i in live.instances if i["image_id"]})
            live.target_groups = {a: {"name": a.split(":targetgroup/")[-1].split("/")[0],
                                      "tags": resources.get(a, {}), "health": f.result()}
                                  for a, f in zip(tg_arns, f_health, strict=True)}
            for f in f_weights:
                live.weights.update(f.result())
            for f in f_records:
                live.reconciler.update(f.result())
            live.refreshes, live.refreshes_unavailable = f_refreshes.result()
            baking = [(n, r) for n, r in live.refreshes.items()
                      if r and r.get("Status") == "Baking" and r.get("StartTime")]
            for (name, _), start in zip(baking, pool.map(
                    lambda nr: bake_started(autoscaling, nr[0], nr[1]["StartTime"]), baking), strict=True):
                if start is not None:
                    live.bake_started[name] = start
        live.calls_by_operation = {k: v - before.get(k, 0) for k, v in self.counter.by_operation.items()
                                   if v > before.get(k, 0)}
        live.calls = sum(live.calls_by_operation.values())
        return live


def read_stack(stack: str, *, region: str | None = None, endpoint_url: str | None = None,
               now: datetime | None = None, instance_groups: Iterable[str] = ()) -> LiveStack:
    """One read of the stack with clients of its own."""
    return StackReader(stack, region=region, endpoint_url=endpoint_url).read(now, instance_groups)
