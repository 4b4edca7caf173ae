"""Alerts: the stack's encrypted SNS topic (or `fleet:alertsTopicArn`), the alarms that notify it, and one
EventBridge rule per autoscaled group for failed, cancelled and rolled-back instance refreshes. Under mocks
for both stacks' whole programs; the rule's pattern against AWS's sample events on the moto server."""

from __future__ import annotations

import json

import boto3
import pytest

from components.alerts import key_policy, topic_policy
from fleet.ops.events import (
    REFRESH_ALERT_DETAIL_TYPES,
    REFRESH_OTHER_DETAIL_TYPES,
    refresh_alert_pattern,
)
from fleet.plan.engine import stack_config
from tests.aws_sample_events import sample_refresh_event
from tests.pulumi_mocks import run_program
from tests.test_program import GROUPS, SLUGS, asgs_of, node_of

TOPIC = "aws:sns/topic:Topic"
KEY = "aws:kms/key:Key"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
AUTOSCALED = ("12_04-bee", "12_04-www", "api")
REUSED = "arn:aws:sns:us-east-1:123456789012:ops-pager"


@pytest.fixture(scope="module", params=["staging", "prod"])
def created(request):
    return request.param, run_program(request.param)


@pytest.fixture(scope="module")
def reused():
    cfg = dict(stack_config("staging"), **{"fleet:alertsTopicArn": REUSED})
    return run_program("staging", cfg)


def test_one_encrypted_topic_per_stack_with_a_customer_managed_key(created):
    stack, r = created
    (topic,) = r.of_type(TOPIC)
    (key,) = r.of_type(KEY)
    assert topic.parent_type == "fleet:alerts:Alerts" and topic.name.startswith(f"fleet-{stack}-alerts")
    assert topic.inputs["kmsMasterKeyId"] == key.outputs["arn"], "not alias/aws/sns: CloudWatch could not use it"
    assert key.inputs["enableKeyRotation"] is True
    (kp,) = r.of_type("aws:kms/keyPolicy:KeyPolicy")
    policy = json.loads(kp.inputs["policy"])
    publishers = [s for s in policy["Statement"] if s["Sid"] == "AlarmsAndRulesPublish"]
    assert publishers[0]["Principal"]["Service"] == ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
    assert publishers[0]["Action"] == ["kms:GenerateDataKey*", "kms:Decrypt"]
    (tp,) = r.of_type("aws:sns/topicPolicy:TopicPolicy")
    assert tp.inputs["arn"] == topic.outputs["arn"]
    assert r.outputs["alerts_topic_arn"] == topic.outputs["arn"]


def test_policies_name_this_account_and_region_only():
    kp = json.loads(key_policy("arn:aws-cn:kms:cn-north-1:210987654321:key/1234"))
    assert kp["Statement"][0]["Principal"] == {"AWS": "arn:aws-cn:iam::210987654321:root"}
    tp = json.loads(topic_policy("arn:aws:sns:eu-west-1:123456789012:fleet-prod-alerts-abc"))
    by_sid = {s["Sid"]: s for s in tp["Statement"]}
    assert by_sid["AccountManages"]["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    for sid, service, source in (("AlarmsPublish", "cloudwatch", "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:*"),
                                 ("RulesPublish", "events", "arn:aws:events:eu-west-1:123456789012:rule/*")):
        s = by_sid[sid]
        assert s["Principal"] == {"Service": f"{service}.amazonaws.com"} and s["Action"] == "sns:Publish"
        assert s["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"},
                                  "ArnLike": {"aws:SourceArn": source}}
    assert all(s["Resource"] == "arn:aws:sns:eu-west-1:123456789012:fleet-prod-alerts-abc" for s in tp["Statement"])


def _alarm_actions(r, topic_arn):
    for g in AUTOSCALED:
        alarms = [x for x in r.descendants(node_of(r, g)) if x.type == ALARM]
        assert alarms
        for a in alarms:
            if "-health-" in a.name:
                assert a.inputs["alarmActions"] == [topic_arn] and a.inputs["okActions"] == [topic_arn], a.name
            else:  # scaling: the policy, and the topic on ALARM
                actions = a.inputs["alarmActions"]
                assert len(actions) == 2 and actions[1] == topic_arn and actions[0] != topic_arn, a.name
                assert not a.inputs.get("okActions"), a.name


def test_health_and_scaling_alarms_notify_the_topic(created):
    _, r = created
    (topic,) = r.of_type(TOPIC)
    _alarm_actions(r, topic.outputs["arn"])


def test_one_refresh_alert_rule_per_autoscaled_group_for_its_two_asgs(created):
    _, r = created
    (topic,) = r.of_type(TOPIC)
    for g in AUTOSCALED:
        (rule,) = [x for x in r.descendants(node_of(r, g)) if x.type == RULE]
        (target,) = [x for x in r.descendants(node_of(r, g)) if x.type == TARGET]
        names = sorted(a.outputs["name"] for a in asgs_of(r, g).values())
        pattern = json.loads(rule.inputs["eventPattern"])
        assert pattern == refresh_alert_pattern(names)
        assert len(rule.inputs["eventPattern"]) < 2048
        assert target.inputs["arn"] == topic.outputs["arn"] and target.inputs["rule"] == rule.outputs["name"]
        transformer = target.inputs["inputTransformer"]
        assert transformer["inputPaths"] == {"type": "$.detail-type", "asg": "$.detail.AutoScalingGroupName",
                                             "id": "$.detail.InstanceRefreshId"}
        assert f"group {g}: <type> on <asg>" in transformer["inputTemplate"]
    assert not [x for x in r.descendants(node_of(r, "12_04-cron")) if x.type in (RULE, ALARM)]
    assert len([x for x in r.of_type(RULE) if x.parent_type == "fleet:alerts:RefreshAlerts"]) == len(AUTOSCALED)
    assert set(GROUPS) >= set(AUTOSCALED) and all(g in SLUGS for g in AUTOSCALED)


def test_the_spot_reconcilers_capped_alarms_notify_the_topic(created):
    _, r = created
    (topic,) = r.of_type(TOPIC)
    capped = [x for x in r.of_type(ALARM) if x.parent_type == "fleet:spot_capacity:SpotCapacity"]
    assert len(capped) == len(AUTOSCALED)
    for a in capped:
        assert a.inputs["alarmActions"] == [topic.outputs["arn"]] and a.inputs["okActions"] == [topic.outputs["arn"]]


def test_a_configured_topic_is_reused_and_nothing_is_created(reused):
    r = reused
    assert not r.of_type(TOPIC) and not r.of_type(KEY) and not r.of_type("aws:sns/topicPolicy:TopicPolicy")
    assert r.outputs["alerts_topic_arn"] == REUSED
    _alarm_actions(r, REUSED)
    targets = [x for x in r.of_type(TARGET) if x.parent_type == "fleet:alerts:RefreshAlerts"]
    assert len(targets) == len(AUTOSCALED) and all(t.inputs["arn"] == REUSED for t in targets)


class TestRefreshAlertPattern:
    """moto's TestEventPattern does nothing, so the pattern is checked as AWS uses it: a rule on the default bus
    with an SQS target on the moto server, PutEvents of AWS's sample events, and only ours arrive."""

    def deliveries(self, events: list[dict], asgs: list[str]) -> list[dict]:
        bridge, sqs = boto3.client("events"), boto3.client("sqs")
        queue = sqs.create_queue(QueueName="refresh-alerts")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        bridge.put_rule(Name="refresh-alerts", EventPattern=json.dumps(refresh_alert_pattern(asgs)))
        bridge.put_targets(Rule="refresh-alerts", Targets=[{"Id": "queue", "Arn": arn}])
        out = bridge.put_events(Entries=[
            {"Source": e["source"], "DetailType": e["detail-type"], "Detail": json.dumps(e["detail"]),
             "Resources": e["resources"], "Time": e["time"]} for e in events])
        assert out["FailedEntryCount"] == 0
        got = []
        while True:
            messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages")
            if not messages:
                return got
            got += [json.loads(m["Body"]) for m in messages]
            sqs.delete_message_batch(QueueUrl=queue, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])

    def test_failures_cancellations_and_rollbacks_of_our_asgs_arrive(self, aws):
        events = [sample_refresh_event(t, "www-od-1a2b3c4") for t in REFRESH_ALERT_DETAIL_TYPES]
        got = self.deliveries(events, ["www-od-1a2b3c4", "www-spot-5d6e7f8"])
        assert sorted(e["detail-type"] for e in got) == sorted(REFRESH_ALERT_DETAIL_TYPES)
        assert all(e["detail"]["AutoScalingGroupName"] == "www-od-1a2b3c4" for e in got)

    def test_successes_and_other_asgs_do_not(self, aws):
        events = [sample_refresh_event(t, "www-od-1a2b3c4") for t in REFRESH_OTHER_DETAIL_TYPES]
        events += [sample_refresh_event(t, "someone-elses-asg") for t in REFRESH_ALERT_DETAIL_TYPES]
        assert self.deliveries(events, ["www-od-1a2b3c4", "www-spot-5d6e7f8"]) == []

    def test_detail_types_are_the_documented_ones(self):
        documented = {f"EC2 Auto Scaling Instance Refresh {s}" for s in (
            "Checkpoint Reached", "Started", "Succeeded", "Failed", "Cancelled", "Rollback Started",
            "Rollback Succeeded", "Rollback Failed", "Started Baking")}
        assert set(REFRESH_ALERT_DETAIL_TYPES) | set(REFRESH_OTHER_DETAIL_TYPES) == documented
        assert not set(REFRESH_ALERT_DETAIL_TYPES) & set(REFRESH_OTHER_DETAIL_TYPES)
