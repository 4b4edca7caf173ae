"""TargetGroup under mocks: health check from the group with seed defaults, deregistration delay,
slow start, a listener rule from hosts/paths with the given priority, and the health alarms the
rollout gates on (named with fleet.ops.rollout.health_alarm_prefix)."""

from __future__ import annotations

from components.naming import SHORT_NAME_RE
from components.target_group import TargetGroup, TargetGroupArgs
from fleet.ops.rollout import health_alarm_prefix
from tests.pulumi_mocks import http_group, run

TG = "aws:lb/targetGroup:TargetGroup"
RULE = "aws:lb/listenerRule:ListenerRule"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
LISTENER = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/fleet/1/2"
LB_SUFFIX = "app/fleet-prod-1234567/0123456789abcdef"


def _tg(g, priority=1234):
    def program():
        tg = TargetGroup(g.name, TargetGroupArgs(group=g, stack="prod", vpc_id="vpc-0a1b2c3d", listener_arn=LISTENER,
                                                 load_balancer_arn_suffix=LB_SUFFIX, priority=priority,
                                                 tags={"fleet:group": g.name}))
        return [tg.arn, [a.name for a in tg.health_alarms]]
    return run(program, stack="prod")


def test_health_check_defaults_follow_the_seed():
    r = _tg(http_group("web", http={"port": 8080, "hosts": ["web.example.com"]}))
    (tg,) = r.of_type(TG)
    assert tg.inputs["port"] == 8080 and tg.inputs["protocol"] == "HTTP" and tg.inputs["targetType"] == "instance"
    assert tg.inputs["healthCheck"] == {"enabled": True, "protocol": "HTTP", "port": "traffic-port", "path": "/",
                                        "interval": 5, "timeout": 2, "healthyThreshold": 2, "unhealthyThreshold": 2,
                                        "matcher": "200-399"}
    assert tg.inputs["deregistrationDelay"] == 30
    assert tg.inputs["slowStart"] == 0
    assert r.value[0] == tg.outputs["arn"]


def test_group_settings_override_health_check_delay_and_slow_start():
    r = _tg(http_group("api", http={"port": 8000, "hosts": ["api.example.com"], "slow_start": 60,
                                    "deregistration_delay": 45,
                                    "health_check": {"path": "/status", "interval": 10, "timeout": 4}}))
    (tg,) = r.of_type(TG)
    hc = tg.inputs["healthCheck"]
    assert (hc["path"], hc["interval"], hc["timeout"], hc["healthyThreshold"]) == ("/status", 10, 4, 2)
    assert tg.inputs["deregistrationDelay"] == 45 and tg.inputs["slowStart"] == 60


def test_listener_rule_forwards_hosts_and_paths_at_the_given_priority():
    r = _tg(http_group("12_04-www", http={"port": 8080, "hosts": ["www.example.com", "example.com"],
                                          "paths": ["/*"]}), priority=4242)
    (rule,) = r.of_type(RULE)
    (tg,) = r.of_type(TG)
    assert rule.inputs["listenerArn"] == LISTENER and rule.inputs["priority"] == 4242
    assert rule.inputs["conditions"] == [{"hostHeader": {"values": ["www.example.com", "example.com"]}},
                                         {"pathPattern": {"values": ["/*"]}}]
    assert rule.inputs["actions"] == [{"type": "forward", "targetGroupArn": tg.outputs["arn"]}]


def test_target_group_name_is_autonamed_within_32_characters():
    r = _tg(http_group("a23456789012345678901234", http={"port": 80, "paths": ["/x"]}))  # 24 chars: the maximum
    (tg,) = r.of_type(TG)
    assert "name" not in tg.inputs and "namePrefix" not in tg.inputs
    assert len(tg.name) <= 24 and len(tg.outputs["name"]) <= 32 and SHORT_NAME_RE.fullmatch(tg.outputs["name"])


def test_health_alarms_watch_5xx_and_unhealthy_hosts_of_this_target_group():
    r = _tg(http_group("12_04-www"))
    (tg,) = r.of_type(TG)
    alarms = {a.inputs["metricName"]: a for a in r.of_type(ALARM)}
    assert set(alarms) == {"HTTPCode_Target_5XX_Count", "UnHealthyHostCount"}
    prefix = health_alarm_prefix("12_04-www", "prod")
    assert prefix == "fleet-prod-12-04-www-health-"
    for a in alarms.values():
        assert a.inputs["namespace"] == "AWS/ApplicationELB"
        assert a.inputs["dimensions"] == {"TargetGroup": tg.outputs["arnSuffix"], "LoadBalancer": LB_SUFFIX}
        assert a.inputs["treatMissingData"] == "notBreaching"
        assert a.outputs["name"].startswith(prefix) and "name" not in a.inputs
    assert sorted(r.value[1]) == sorted(a.outputs["name"] for a in alarms.values())
