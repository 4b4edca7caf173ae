"""A group's recorded load, for `fleet simulate --from-cloudwatch`: per minute, over both ASGs of its
pair, average CPUUtilization x GroupInServiceInstances / 100 (instances at 100 % CPU), and how many
scaling activities AWS recorded in the window (to set against the simulated count).

The pair is found by its tags (fleet:stack, fleet:group, fleet:capacity). Minutes without a datapoint
take the previous minute's value (CloudWatch leaves gaps); a window with no datapoint at all is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from fleet.ops.aws import client

PERIOD = 60
MAX_POINTS = 1440  # per GetMetricData query and page: one day of minutes


class NoRecordedLoad(RuntimeError):
    """The group has no ASG in AWS, or CloudWatch has no datapoint in the window."""


@dataclass(frozen=True)
class Recorded:
    load: np.ndarray
    activities: int
    asgs: list[str]


def pair_asgs(autoscaling, stack: str, group: str) -> list[str]:
    names = []
    for page in autoscaling.get_paginator("describe_auto_scaling_groups").paginate(
            Filters=[{"Name": "tag:fleet:stack", "Values": [stack]}, {"Name": "tag:fleet:group", "Values": [group]}]):
        names += [g["AutoScalingGroupName"] for g in page["AutoScalingGroups"]]
    return sorted(names)


def _series(cw, asg: str, metric: str, namespace: str, start: datetime, minutes: int) -> np.ndarray:
    out = np.full(minutes, np.nan)
    for day in range(0, minutes, MAX_POINTS):
        t0 = start + timedelta(minutes=day)
        t1 = t0 + timedelta(minutes=min(MAX_POINTS, minutes - day))
        kwargs = dict(MetricDataQueries=[{"Id": "m", "MetricStat": {
            "Metric": {"Namespace": namespace, "MetricName": metric,
                       "Dimensions": [{"Name": "AutoScalingGroupName", "Value": asg}]},
            "Period": PERIOD, "Stat": "Average"}}], StartTime=t0, EndTime=t1)
        while True:
            page = cw.get_metric_data(**kwargs)
            for r in page["MetricDataResults"]:
                for ts, v in zip(r["Timestamps"], r["Values"], strict=False):
                    i = int((ts - start).total_seconds() // PERIOD)
                    if 0 <= i < minutes:
                        out[i] = v
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
    return out


def _fill(values: np.ndarray) -> np.ndarray:
    """Carry the last datapoint forward over gaps (the first known one backward)."""
    known = np.flatnonzero(~np.isnan(values))
    if not len(known):
        return values
    idx = np.maximum.accumulate(np.where(np.isnan(values), 0, np.arange(len(values))))
    idx[:known[0]] = known[0]
    return values[idx]


def recorded_load(stack: str, group: str, *, days: int, region: str | None = None,
                  endpoint_url: str | None = None, now: datetime | None = None) -> Recorded:
    autoscaling = client("autoscaling", region=region, endpoint_url=endpoint_url)
    cw = client("cloudwatch", region=region, endpoint_url=endpoint_url)
    asgs = pair_asgs(autoscaling, stack, group)
    if not asgs:
        raise NoRecordedLoad(f"no Auto Scaling group tagged fleet:stack={stack}, fleet:group={group}")
    end = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    minutes = days * 1440
    start = end - timedelta(minutes=minutes)
    load = np.zeros(minutes)
    seen = False
    for asg in asgs:
        cpu = _series(cw, asg, "CPUUtilization", "AWS/EC2", start, minutes)
        n = _series(cw, asg, "GroupInServiceInstances", "AWS/AutoScaling", start, minutes)
        if np.isnan(cpu).all() or np.isnan(n).all():
            continue
        seen = True
        load += _fill(cpu) / 100 * _fill(n)
    if not seen:
        raise NoRecordedLoad(f"CloudWatch has no CPUUtilization and GroupInServiceInstances of {', '.join(asgs)} "
                             f"in the last {days} days")
    activities = 0
    for asg in asgs:
        for page in autoscaling.get_paginator("describe_scaling_activities").paginate(AutoScalingGroupName=asg):
            activities += sum(1 for a in page["Activities"] if a["StartTime"] >= start)
    return Recorded(load=load, activities=activities, asgs=asgs)
