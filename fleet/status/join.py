"""`fleet status`: the live stack (fleet.ops.status_read) joined with what nodes.yaml and the stack file
declare. Pure: no AWS calls, no clock (the read carries its time), so every verdict is testable on data.

A group is *drifted* when what runs differs from what is declared: an ASG's launch template version runs
another image than the group's (its AMI's `fleet:image-hash` tag, or the AMI itself when the stack pins
one or the group uses `image.builder: ami`), an ASG is not on its template's latest version (a rollout
not done, or rolled back), a member of the spot/on-demand pair is missing. A blue/green group's idle
slot (the one its listener rule weighs less) is shown but not compared: it runs the previous version,
or nothing, by design. A group is *unhealthy* when an instance is unhealthy, fewer instances are in
service than the ASG's minimum, or a target is unhealthy. Groups of nodes.yaml with nothing deployed
are `undeployed`; deployed groups that the file no longer has are `unknown`. The JSON contract
(`report()`): keys are only ever added, never renamed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    from fleet.ops.status_read import LiveStack

GROUP_TAG, CAPACITY_TAG, SLOT_TAG = "fleet:group", "fleet:capacity", "fleet:slot"
IMAGE_HASH_TAG = "fleet:image-hash"
IN_FLIGHT = ("Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking")
ROLLBACK_POSSIBLE = ("Pending", "InProgress", "Baking")
CAPACITIES = ("on-demand", "spot")
SHORT_HASH = 12


@dataclass(frozen=True)
class Declared:
    """What the nodes file and the stack file say a group runs."""

    image_hash: str
    image_id: str | None = None  # when the image is a given AMI: a stack pin or `builder: ami`
    autoscaled: bool = True
    http: bool = False
    node_min: int | None = None
    node_max: int | None = None
    instances: int | None = None  # `autoscale: false` groups

    def as_json(self) -> dict:
        out = {"image_hash": self.image_hash, "image_id": self.image_id, "autoscaled": self.autoscaled,
               "http": self.http}
        if self.autoscaled:
            out.update(node_min=self.node_min, node_max=self.node_max)
        else:
            out["instances"] = self.instances
        return out


def _tags(item: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in item.get("Tags") or []}


def _spec(asg: dict) -> dict:
    mixed = asg.get("MixedInstancesPolicy")
    if mixed:
        return mixed["LaunchTemplate"]["LaunchTemplateSpecification"]
    return asg.get("LaunchTemplate") or {}


def _short(h: str | None) -> str:
    return (h or "?")[:SHORT_HASH]


def refresh_view(refresh: dict | None, asg: dict, bake_started: datetime | None, now: datetime) -> dict | None:
    """The ASG's newest instance refresh as the report shows it; None when it never had one."""
    if not refresh:
        return None
    status = refresh.get("Status")
    prefs = refresh.get("Preferences") or {}
    bake = prefs.get("BakeTime")
    left = None
    if status == "Baking" and bake is not None and bake_started is not None:
        left = max(0, int(bake - (now - bake_started).total_seconds()))
    version = str(_spec(asg).get("Version", ""))
    image = ((refresh.get("DesiredConfiguration") or {}).get("LaunchTemplate") or {})
    return {
        "id": refresh.get("InstanceRefreshId"), "status": status, "in_flight": status in IN_FLIGHT,
        "percent_complete": refresh.get("PercentageComplete"), "instances_to_update": refresh.get("InstancesToUpdate"),
        "bake_time": bake, "bake_time_left": left,
        "rollback_possible": bool(status in ROLLBACK_POSSIBLE and refresh.get("DesiredConfiguration")
                                  and version.isdigit()
                                  and not str(image.get("ImageId", "")).startswith("resolve:ssm")),
        "status_reason": refresh.get("StatusReason"),
        "started": refresh["StartTime"].isoformat() if refresh.get("StartTime") else None,
    }


def spot_count(asg: dict, template_data: dict, in_service: int) -> int:
    """How many of the ASG's in-service instances are spot, as its configuration has them: a mixed
    instances policy's distribution (on-demand base first, then the on-demand percentage of the rest,
    rounded up as AWS does), else the launch template's market type."""
    mixed = asg.get("MixedInstancesPolicy")
    if mixed:
        dist = mixed.get("InstancesDistribution") or {}
        base = min(in_service, int(dist.get("OnDemandBaseCapacity", 0)))
        pct = int(dist.get("OnDemandPercentageAboveBaseCapacity", 100))
        return in_service - base - math.ceil((in_service - base) * pct / 100)
    market = (template_data.get("InstanceMarketOptions") or {}).get("MarketType")
    return in_service if market == "spot" else 0


def _asg_row(asg: dict, live: LiveStack, declared: Declared | None, drift: list[str], problems: list[str],
             compare: bool = True) -> dict:
    """One ASG's row. `compare` False: a blue/green group's idle slot, which runs the previous version
    (a standby) or nothing (parked) by design: shown, health checked, not compared with the nodes file."""
    tags = _tags(asg)
    name = asg["AutoScalingGroupName"]
    capacity, slot = tags.get(CAPACITY_TAG), tags.get(SLOT_TAG)
    label = f"{capacity or 'untagged'} ASG{f' (slot {slot})' if slot else ''}"
    spec = _spec(asg)
    tid, version = spec.get("LaunchTemplateId"), str(spec.get("Version", ""))
    data = live.versions.get((tid, version), {})
    latest = live.latest.get(tid)
    image_id = data.get("ImageId")
    image = live.images.get(image_id or "", {})
    running_hash = image.get("tags", {}).get(IMAGE_HASH_TAG)
    instances = asg.get("Instances") or []
    in_service = sum(1 for i in instances if i.get("LifecycleState") == "InService")
    pending = sum(1 for i in instances if str(i.get("LifecycleState", "")).startswith("Pending"))
    unhealthy = sum(1 for i in instances if i.get("HealthStatus") not in (None, "Healthy"))
    spot = spot_count(asg, data, in_service)

    if capacity not in CAPACITIES:
        drift.append(f"{name}: tag {CAPACITY_TAG} is {capacity!r}, not spot or on-demand")
    if not version.isdigit():
        drift.append(f"{label} runs launch template version {version or '?'}, not a numbered version")
    elif compare and latest is not None and int(version) != latest:
        drift.append(f"{label} is on launch template version {version}, the latest is {latest}")
    if declared is None or not compare:
        pass  # a group the nodes file no longer has, or an idle slot: nothing to compare with
    elif image_id is None:
        drift.append(f"{label}: launch template version {version} not found")
    elif declared.image_id is not None:
        if image_id != declared.image_id:
            drift.append(f"{label} runs {image_id}, declared {declared.image_id}")
    elif not image:
        drift.append(f"{label} runs {image_id}, which no longer exists")
    elif running_hash != declared.image_hash:
        drift.append(f"{label} runs {image_id} (image hash {_short(running_hash)}), "
                     f"nodes.yaml declares image hash {_short(declared.image_hash)}")
    if unhealthy:
        problems.append(f"{label}: {unhealthy} unhealthy instance(s)")
    if in_service < asg.get("MinSize", 0):
        problems.append(f"{label}: {in_service} in service, below its minimum {asg['MinSize']}")
    return {
        "name": name, "capacity": capacity, "slot": slot,
        "desired": asg.get("DesiredCapacity"), "min": asg.get("MinSize"), "max": asg.get("MaxSize"),
        "in_service": in_service, "pending": pending, "unhealthy": unhealthy,
        "spot": spot, "on_demand": in_service - spot,
        "launch_template_id": tid, "launch_template_version": version, "latest_version": latest,
        "image_id": image_id, "image_hash": running_hash,
        "refresh": refresh_view(live.refreshes.get(name), asg, live.bake_started.get(name), live.read_at),
        **({"live": compare} if slot else {}),
    }


def live_slot(asgs: list[dict], live: LiveStack) -> str | None:
    """The slot that serves a blue/green group's traffic, as AWS holds it: the slot whose target group has
    the larger weight in the listener rule (a rule that forwards to one target group alone: that one's
    slot). None when the group has no slots or its rule is not found (then every slot is compared)."""
    slot_of: dict[str, str] = {}
    for asg in asgs:
        slot = _tags(asg).get(SLOT_TAG)
        for arn in asg.get("TargetGroupARNs", []):
            if slot:
                slot_of[arn] = slot
    for arn, tg in live.target_groups.items():
        if tg["tags"].get(SLOT_TAG):
            slot_of.setdefault(arn, tg["tags"][SLOT_TAG])
    forwards = [live.weights[arn] for arn in slot_of if arn in live.weights]
    if not forwards:
        return None
    best = max(forwards[0], key=lambda f: f["weight"])
    return slot_of.get(best["arn"]) if len(forwards[0]) == 1 or sum(f["weight"] for f in forwards[0]) else None


def _target_group_rows(arns: list[str], live: LiveStack, problems: list[str]) -> list[dict]:
    rows = []
    for arn in arns:
        tg = live.target_groups.get(arn, {"name": arn.rsplit("/", 2)[-2], "tags": {}, "health": {}})
        health = dict(tg["health"])
        forward = live.weights.get(arn) or []
        weight = next((f["weight"] for f in forward if f["arn"] == arn), None) if len(forward) > 1 else None
        row = {"name": tg["name"], "arn": arn, "slot": tg["tags"].get(SLOT_TAG),
               "healthy": health.pop("healthy", 0), "unhealthy": health.pop("unhealthy", 0),
               "draining": health.pop("draining", 0), "initial": health.pop("initial", 0),
               "other": sum(health.values()), "weight": weight}
        if row["unhealthy"]:
            problems.append(f"target group {tg['name']}: {row['unhealthy']} unhealthy target(s)")
        rows.append(row)
    return rows


def _spot_cover(records: dict | None) -> dict | None:
    """The reconciler's record of the group: on-demand instances it added to cover spot (summed over
    the slots of a blue/green group) and its latest decision; per slot as well when there are slots."""
    if not records:
        return None

    def one(record: dict) -> dict:
        last = record.get("last_decision")
        return {"extra": int(record.get("extra", 0)), "last": last if isinstance(last, dict) else None}

    per = {slot: one(r) for slot, r in records.items()}
    lasts = [c["last"] for c in per.values() if c["last"]]
    out = {"extra": sum(c["extra"] for c in per.values()),
           "last": max(lasts, key=lambda last: str(last.get("at", ""))) if lasts else None}
    if set(per) != {None}:
        out["slots"] = {slot or "a": c for slot, c in sorted(per.items(), key=lambda kv: kv[0] or "a")}
    return out


def group_report(name: str, declared: Declared | None, asgs: list[dict], instances: list[dict],
                 live: LiveStack) -> dict:
    """One group's entry of the report (`declared` None: a deployed group the nodes file no longer has)."""
    drift: list[str] = []
    problems: list[str] = []
    order = {c: i for i, c in enumerate(CAPACITIES)}
    asgs = sorted(asgs, key=lambda a: (_tags(a).get(SLOT_TAG) or "", order.get(_tags(a).get(CAPACITY_TAG), 9),
                                       a["AutoScalingGroupName"]))
    serving = live_slot(asgs, live)
    rows = [_asg_row(a, live, declared, drift, problems,
                     compare=serving is None or _tags(a).get(SLOT_TAG) in (None, serving)) for a in asgs]
    if declared is not None and declared.autoscaled:
        by_slot: dict[str | None, set[str]] = {}
        for r in rows:
            by_slot.setdefault(r["slot"], set()).add(r["capacity"])
        for slot, caps in sorted(by_slot.items(), key=lambda kv: kv[0] or ""):
            for cap in CAPACITIES:
                if cap not in caps:
                    drift.append(f"no {cap} ASG{f' in slot {slot}' if slot else ''}")
    loose = []  # instances outside any ASG: the `autoscale: false` groups'
    for inst in instances:
        image = live.images.get(inst["image_id"] or "", {})
        loose.append({"id": inst["id"], "state": inst["state"], "spot": inst["spot"], "image_id": inst["image_id"],
                      "image_hash": image.get("tags", {}).get(IMAGE_HASH_TAG)})
    if declared is not None and not declared.autoscaled:
        running = [i for i in loose if i["state"] in ("pending", "running")]
        if declared.instances is not None and len(running) != declared.instances:
            drift.append(f"{len(running)} instance(s) running, nodes.yaml declares {declared.instances}")
        for i in loose:
            if declared.image_id is not None and i["image_id"] != declared.image_id:
                drift.append(f"instance {i['id']} runs {i['image_id']}, declared {declared.image_id}")
            elif declared.image_id is None and i["image_hash"] != declared.image_hash:
                drift.append(f"instance {i['id']} runs {i['image_id']} (image hash {_short(i['image_hash'])}), "
                             f"nodes.yaml declares image hash {_short(declared.image_hash)}")
            if i["state"] not in ("pending", "running"):
                problems.append(f"instance {i['id']} is {i['state']}")
    tg_arns = sorted({a for asg in asgs for a in asg.get("TargetGroupARNs", [])} |
                     {a for a, tg in live.target_groups.items() if tg["tags"].get(GROUP_TAG) == name})
    tg_rows = _target_group_rows(tg_arns, live, problems)
    return {
        "group": name,
        "declared": declared.as_json() if declared else None,
        "asgs": rows,
        "live_slot": serving,
        "instances": loose,
        "target_groups": tg_rows,
        "spot_cover": _spot_cover(live.reconciler.get(name)),
        "split": {"spot": sum(r["spot"] for r in rows) + sum(1 for i in loose if i["spot"] and i["state"] == "running"),
                  "on_demand": sum(r["on_demand"] for r in rows) +
                  sum(1 for i in loose if not i["spot"] and i["state"] == "running")},
        "refresh_in_flight": any(r["refresh"] and r["refresh"]["in_flight"] for r in rows),
        # a blue/green rollout in flight (canary or soak): the rule sends traffic to both slots
        "traffic_split": sum(1 for t in tg_rows if t["weight"]) > 1,
        "drift": drift,
        "problems": problems,
        "healthy": not problems,
    }


def report(stack: str, declared: Mapping[str, Declared], live: LiveStack, only: str | None = None) -> dict:
    """The whole status report; `only`: one group of the nodes file (its entry, nothing else)."""
    asgs_of: dict[str, list[dict]] = {}
    for asg in live.asgs:
        asgs_of.setdefault(_tags(asg).get(GROUP_TAG, ""), []).append(asg)
    loose_of: dict[str, list[dict]] = {}
    for inst in live.instances:
        if "aws:autoscaling:groupName" not in inst["tags"]:
            loose_of.setdefault(inst["tags"].get(GROUP_TAG, ""), []).append(inst)
    deployed = (set(asgs_of) | set(loose_of)) - {""}
    names = [only] if only is not None else list(declared)
    groups, undeployed = [], []
    for name in names:
        if name not in deployed:
            undeployed.append(name)
            continue
        groups.append(group_report(name, declared[name], asgs_of.get(name, []), loose_of.get(name, []), live))
    unknown = [] if only is not None else sorted(deployed - set(declared))
    for name in unknown:
        groups.append(group_report(name, None, asgs_of.get(name, []), loose_of.get(name, []), live))
    out = {"stack": stack, "read_at": live.read_at.isoformat(), "groups": groups, "undeployed": undeployed,
           "unknown": unknown, "aws_calls": live.calls}
    if live.refreshes_unavailable:
        out["refreshes_unavailable"] = live.refreshes_unavailable
    return out


def exit_code(rep: dict) -> int:
    """0: every group matches the nodes file and is healthy; 1: anything drifted, unhealthy, undeployed
    or unknown."""
    ok = not rep["undeployed"] and not rep["unknown"] and all(g["healthy"] and not g["drift"] for g in rep["groups"])
    return 0 if ok else 1
