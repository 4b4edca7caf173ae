"""How long a group's rollout steps take, modelled from the group's own timeouts (pure: no boto3).

The rollout Command, the new-group health gate and README's Operations table use these numbers, so
the bounds `pulumi up` waits for and the durations the README promises come from one place.

One instance replacement = launch (LAUNCH_SECONDS: RunInstances to a booting OS) + `autoscale.timeout`
(the group's boot-to-healthy grace and instance warmup) + the target group's health check
(`interval x healthy_threshold`, http groups) + draining the instance it replaces (the deregistration
delay / termination hook heartbeat). Refreshes run launch-before-terminate with MaxHealthyPercentage
200, so AWS replaces a whole ASG in one batch: a refresh, AWS's rollback of one, and a refresh back
to the previous version each take about one replacement.
"""

from __future__ import annotations

from fleet.spec.model import Group
from fleet.spec.readiness import LAUNCH_SECONDS  # with the launching hook's heartbeat, launch_hook_heartbeat

DEFAULT_DRAIN_SECONDS = 60  # termination hook heartbeat of groups without http
MIN_HEARTBEAT = 30  # the least AWS accepts for a lifecycle hook's heartbeat
SAFETY = 1.5  # the Command's bounds: the model plus half again, so a slow launch is not a failure


def health_seconds(group: Group) -> int:
    """Time for a booted instance to be marked healthy by the target group (0 without http)."""
    if group.http is None:
        return 0
    hc = group.http.health_check
    return hc.interval * hc.healthy_threshold


def drain_seconds(group: Group) -> int:
    """Time an old instance spends draining before it terminates, and the heartbeat of the termination
    lifecycle hook (components/asg_pair.py): the deregistration delay for http groups, at least AWS's
    30 s minimum for a heartbeat (a shorter deregistration delay still drains within it)."""
    drain = group.http.deregistration_delay if group.http else DEFAULT_DRAIN_SECONDS
    return max(MIN_HEARTBEAT, drain)


def boot_seconds(group: Group) -> int:
    """Launch to healthy for one new instance."""
    timeout = group.autoscale.timeout if group.autoscale else 300
    return LAUNCH_SECONDS + timeout + health_seconds(group)


def replace_seconds(group: Group) -> int:
    """One instance-refresh batch: new instances healthy, then the old ones drained."""
    return boot_seconds(group) + drain_seconds(group)


def rollout_seconds(group: Group) -> int:
    """A good image end to end: canary refresh + soak (bake_time) + spot refresh."""
    return 2 * replace_seconds(group) + group.rollout.bake_time


def rollout_timeout(group: Group) -> int:
    """The rollout Command's bound for the forward steps (a timeout rolls back, see fleet/ops/rollout.py)."""
    return int(rollout_seconds(group) * SAFETY)


def rollback_timeout(group: Group) -> int:
    """Bound for one rollback step (AWS's rollback of a refresh, or a refresh back to the old version)."""
    return int(replace_seconds(group) * SAFETY)


def gate_timeout(group: Group) -> int:
    """The new-group health gate's bound: node_min's instances launched and healthy once."""
    return int(boot_seconds(group) * SAFETY)


def rollback_model(group: Group) -> dict[str, int]:
    """Seconds from a bad image's first symptom to both ASGs back on the old version, per failing step."""
    replace, bake = replace_seconds(group), group.rollout.bake_time
    return {
        # AWS rolls the canary back (one replacement); spot was never touched
        "canary": replace,
        # the soak alarm fires at the latest at the end of bake_time; then AWS's rollback of the canary
        "soak": replace,
        # AWS rolls spot back while the finished canary is refreshed back: in sequence, two replacements
        "spot": 2 * replace,
        # the forward bound ran out (at most rollout_timeout); then the in-flight step's rollback and the canary's
        "timeout": rollout_timeout(group) + 2 * replace,
        "total_good_rollout": 2 * replace + bake,
    }


# Typical work between a booting OS and a serving instance, per readiness mode (fleet/spec/readiness.py):
# a baked image starts its service (about 30 s: 45 s launch-to-serving of which 15 s kernel and boot);
# converging at boot on a baked image re-runs the role with everything installed (a chef run of about
# 17 s, in service under a minute); bootstrapping from a vanilla image installs everything (3 to 15
# minutes; 10 typical). fleet simulate uses them; the bounds above stay on autoscale.timeout.
BOOT_WORK_SECONDS = {"baked": 30, "converge at boot": 60, "bootstrap from vanilla": 600}


def typical_ready_seconds(group: Group) -> tuple[int, int]:
    """(launch to InService, launch to healthy in the target group) for one new instance, typically.

    A baked group's instance is InService as soon as it runs (no launching hook) and healthy once its
    service started and the health checks passed; a converging one is InService only when its boot
    program completes the launching hook."""
    from fleet.spec.readiness import readiness

    work = BOOT_WORK_SECONDS[readiness(group).mode]
    in_service = LAUNCH_SECONDS + (work if group.converges else 0)
    return in_service, LAUNCH_SECONDS + work + health_seconds(group)


# Blue/green (fleet/ops/bluegreen.py): a rollback is one ModifyRule. CALLS_TO_FLIP is the number of API calls
# from the decision to that write, the write included (lock, record, ASGs, rule, target health, ModifyRule;
# bench/bench_bluegreen.py counts them); API_CALL_SECONDS a control-plane round trip from inside the region,
# taken high. An ALB applies a rule change within seconds (RULE_APPLY_SECONDS: AWS states no figure; only a
# real account confirms it).
CALLS_TO_FLIP = 6
API_CALL_SECONDS = 0.5
RULE_APPLY_SECONDS = 5


def bluegreen_rollback_seconds(group: Group, *, standby_scaled: bool = False) -> int:
    """Decision to 0 % on the bad slot. Within the standby window: CALLS_TO_FLIP calls and the ALB applying
    the write; no instance launched. After the window, when the standby shrank below the live size: it is
    scaled up and the weight follows its healthy targets, so the last share moves once new instances
    are healthy (boot_seconds)."""
    flip = int(CALLS_TO_FLIP * API_CALL_SECONDS + RULE_APPLY_SECONDS)
    return flip + (boot_seconds(group) if standby_scaled else 0)


def standby_instance_hours(group: Group) -> dict[str, float]:
    """Instance-hours one deploy keeps on standby: the live size for `rollout.standby` (at node_min and
    node_max), plus the canary soak, when both slots run."""
    a, r = group.autoscale, group.rollout
    hours = (r.standby + r.bake_time + boot_seconds(group)) / 3600
    return {"at_node_min": round(a.node_min * hours, 2), "at_node_max": round(a.node_max * hours, 2)}
