"""Benchmark: how fast traffic leaves a bad slot. For each way a blue/green rollback is decided, the AWS
API calls from the decision to the write that puts the bad slot at 0 %, and the modelled seconds
(fleet/ops/timing.py: calls x API_CALL_SECONDS + RULE_APPLY_SECONDS, plus a boot when the standby had
shrunk), side by side with the refresh strategy's rollback of the same groups.

The calls are counted on the real code (fleet/ops/bluegreen.py, lambdas/bluegreen) against moto in
process (a world like tests/bluegreen_world.py's: one group, two slots, one rule):
- soak: the rollout sees a health alarm during the canary soak (decision = the DescribeAlarms that
  shows it) and writes the rule back;
- function: the standby function gets the live slot's alarm event during the standby window;
- manual: `fleet rollback GROUP --stack S` during the standby window;
- shrunk: `fleet rollback` after the standby was scaled down (the slot is scaled up first; moto makes
  new instances healthy at once, so the modelled seconds add one boot of the group).
Not a test: run `python bench/bench_bluegreen.py` (prints the tables bench/RESULTS.md holds).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
os.environ.pop("AWS_ENDPOINT_URL", None)

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from fleet.ops import bluegreen as bg  # noqa: E402
from fleet.ops import timing  # noqa: E402
from fleet.spec.load import load_fleet  # noqa: E402
from lambdas.bluegreen import handler as fn  # noqa: E402
from lambdas.bluegreen import slots as sl  # noqa: E402
from tests.bluegreen_world import GROUP, STACK, FakeClock, build  # noqa: E402


class Calls:
    """Every API call of every client made from the session, in order (operation names)."""

    def __init__(self):
        self.ops: list[str] = []
        boto3.setup_default_session()
        boto3.DEFAULT_SESSION.events.register("before-call", self._seen)

    def _seen(self, model, **kw) -> None:
        self.ops.append(model.name)

    def mark(self) -> int:
        return len(self.ops)

    def to_write(self, start: int) -> int:
        """Calls from `start` to the first ModifyRule after it, that write included."""
        rest = self.ops[start:]
        return rest.index("ModifyRule") + 1


def _function_env() -> None:
    os.environ["FLEET_STACK"], os.environ["FLEET_ROLLOUT_TABLE"] = STACK, sl.table_name(STACK)


def soak(calls: Calls) -> int:
    world = build()
    k = FakeClock()
    k.at(20, lambda: world.alarm("b"))
    seen = {}
    real = bg.firing

    def watched(c, alarms):
        fired = real(c, alarms)
        if fired and "at" not in seen:
            seen["at"] = calls.mark() - 1  # the DescribeAlarms that showed the alarm is the decision
        return fired
    bg.firing = watched
    try:
        bg.deploy(world.settings(), world.clients, k)
    except bg.BlueGreenError:
        pass
    finally:
        bg.firing = real
    return calls.to_write(seen["at"] + 1)


def function(calls: Calls) -> int:
    world = build()
    k = FakeClock()
    bg.deploy(world.settings(), world.clients, k)
    _function_env()
    alarm = world.clients.cloudwatch.describe_alarms(AlarmNames=[world.alarms["b"][0]])["MetricAlarms"][0]
    event = {"detail-type": fn.ALARM_EVENT, "resources": [alarm["AlarmArn"]],
             "detail": {"alarmName": alarm["AlarmName"], "state": {"value": "ALARM"}}}
    start = calls.mark()
    assert fn.handler(event, None, now=lambda: k.t + 60)["action"] == "rolled-back"
    return calls.to_write(start)


def manual(calls: Calls) -> int:
    world = build()
    bg.deploy(world.settings(), world.clients, FakeClock())
    start = calls.mark()
    bg.rollback(GROUP, STACK, world.clients, FakeClock())
    return calls.to_write(start)


def shrunk(calls: Calls) -> int:
    world = build()
    k = FakeClock()
    bg.deploy(world.settings(), world.clients, k)
    world.clients.autoscaling.set_desired_capacity(AutoScalingGroupName=world.asgs["b"]["spot"], DesiredCapacity=3)
    _function_env()
    fn.handler({"detail-type": fn.SCHEDULED}, None, now=lambda: k.t + 3601)
    start = calls.mark()
    bg.rollback(GROUP, STACK, world.clients, FakeClock())
    ops = calls.ops[start:]
    return len(ops) - ops[::-1].index("ModifyRule")  # the write that reached 100 % on the good slot


def main() -> None:
    results = {}
    for name, scenario in (("soak", soak), ("function", function), ("manual", manual), ("shrunk", shrunk)):
        with mock_aws():
            calls = Calls()
            results[name] = scenario(calls)
    fleet = load_fleet(ROOT / "nodes.yaml", "prod")
    www = fleet.groups["12_04-www"]
    print("| decided by | API calls to the write | modelled seconds to 0 % on the bad slot (12_04-www, prod) |")
    print("|---|---|---|")
    per_call, apply = timing.API_CALL_SECONDS, timing.RULE_APPLY_SECONDS
    for name, label in (("soak", "the rollout, alarm during the canary soak"),
                        ("function", "the standby function, live-slot alarm during the standby"),
                        ("manual", "`fleet rollback` during the standby"),
                        ("shrunk", "`fleet rollback` after the standby shrank")):
        seconds = results[name] * per_call + apply + (timing.boot_seconds(www) if name == "shrunk" else 0)
        print(f"| {label} | {results[name]} | {seconds:g} |")
    print(f"\ntiming.CALLS_TO_FLIP = {timing.CALLS_TO_FLIP} (the plan's model); measured function/manual: "
          f"{results['function']}/{results['manual']}")
    print("\n| group (prod) | blue/green rollback | after the standby shrank | refresh: canary/soak rollback | "
          "refresh: spot rollback | standby instance-hours per deploy |")
    print("|---|---|---|---|---|---|")
    for name, g in fleet.groups.items():
        if not g.blue_green:
            continue
        model, hours = timing.rollback_model(g), timing.standby_instance_hours(g)
        print(f"| {name} | {timing.bluegreen_rollback_seconds(g)} s | "
              f"{timing.bluegreen_rollback_seconds(g, standby_scaled=True)} s | {model['soak']} s | "
              f"{model['spot']} s | {hours['at_node_min']}-{hours['at_node_max']} |")


if __name__ == "__main__":
    main()
