"""How a group's instance becomes ready, and the modelled time until it is in service.

Three modes (README "Boot modes"): `baked` (the image ran the role; ready when it boots),
`converge at boot` (a baked image runs its role once more from the stack's cookbook bundle) and
`bootstrap from vanilla` (`builder: ami`: the whole role runs at boot). The model uses the group's
`autoscale.timeout`: for a baked group it is the health check grace period. A converging group's
instance waits on the launching lifecycle hook from the moment Auto Scaling launches it, so the
hook's heartbeat (`launch_hook_heartbeat`) covers the OS boot too: LAUNCH_SECONDS + `autoscale.timeout`;
the instance is in service within it or is abandoned and replaced. An http group then needs
`healthy_threshold` x `interval` seconds of target group health checks. One-off instances
(autoscale: false) have neither hook nor grace: no bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet.spec.model import Group

LAUNCH_HOOK_NAME = "fleet-launch"  # the launching lifecycle hook on both ASGs of a converging group
HOOK_HEARTBEAT_RANGE = (30, 7200)  # what AWS accepts for a lifecycle hook's heartbeat
LAUNCH_SECONDS = 90  # RunInstances -> running with a booting OS; typically 30-90 s (fleet/ops/timing.py too)
DEFAULT_TIMEOUT = 300  # autoscale.timeout's default, the boot bound of a one-off instance


def hook_heartbeat(seconds: int) -> int:
    """`seconds` within the range AWS accepts for a lifecycle hook's heartbeat."""
    lo, hi = HOOK_HEARTBEAT_RANGE
    return max(lo, min(hi, seconds))


def launch_bound(group: Group) -> int:
    """Seconds from Auto Scaling's launch until the instance must be ready (unclamped): the launch
    itself (LAUNCH_SECONDS) plus the group's `autoscale.timeout` (DEFAULT_TIMEOUT for one-off
    instances). An instance younger than this is still arriving, not missing."""
    timeout = group.autoscale.timeout if group.autoscale else DEFAULT_TIMEOUT
    return LAUNCH_SECONDS + timeout


def launch_hook_heartbeat(group: Group) -> int:
    """The launching lifecycle hook's heartbeat, in seconds: `launch_bound` within AWS's range.

    The hook holds the instance from launch, so the OS boot counts against it as well as the
    converge: a heartbeat of `autoscale.timeout` alone would abandon a slow-booting instance that
    was converging in time. The rollout puts the hook with this heartbeat, new ASGs start with it,
    and the boot program's overall deadline is derived from it."""
    return hook_heartbeat(launch_bound(group))


@dataclass(frozen=True)
class Readiness:
    mode: str  # baked | converge at boot | bootstrap from vanilla
    in_service_within: int | None  # seconds from launch, modelled; None: no bound (one-off instance)
    how: str  # one line for the plan


def readiness(group: Group) -> Readiness:
    if not group.converges:
        mode = "baked"
    else:
        mode = "bootstrap from vanilla" if group.image.builder == "ami" else "converge at boot"
    if group.autoscale is None:
        step = "the boot program converges, no hook" if group.converges else "ready when it boots"
        return Readiness(mode, None, f"{mode}: {step}; one-off instance, no time bound")
    timeout = launch_hook_heartbeat(group) if group.converges else group.autoscale.timeout
    checks = group.http.health_check.healthy_threshold * group.http.health_check.interval if group.http else 0
    if group.converges:
        first = f"converges within the launching hook's {timeout} s heartbeat (else ABANDON and a new instance)"
    else:
        first = f"healthy within the {timeout} s grace period"
    then = f", then {checks} s of target group health checks" if checks else ""
    return Readiness(mode, timeout + checks, f"{mode}: {first}{then}; in service <= {timeout + checks} s")
