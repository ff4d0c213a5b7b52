"""The tick queue (TICK_S below 60) over moto's SQS: a scheduled tick queues its minute's later ticks."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from autoscaler.adapters.ticks import TickQueue, TickQueueError, later_ticks


@pytest.mark.parametrize(
    ("tick_s", "delays"), [(15, (15, 30, 45)), (20, (20, 40)), (25, (25, 50)), (59, (59,)), (60, ())]
)
def test_the_later_ticks_of_a_minute(tick_s, delays):
    assert later_ticks(tick_s) == delays


@pytest.fixture
def sqs(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        yield boto3.client("sqs")


def test_a_minutes_ticks_wait_their_delay_in_the_queue(sqs):
    url = sqs.create_queue(QueueName="ticks")["QueueUrl"]
    TickQueue(url)("schedule-1", 20)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "2"
    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == [], "none is due before its delay"


def test_each_tick_names_the_schedule_event_that_queued_it(sqs):
    url = sqs.create_queue(QueueName="ticks")["QueueUrl"]
    sent = []
    sqs.meta.events.register(
        "provide-client-params.sqs.SendMessageBatch", lambda params, **kw: sent.append(dict(params))
    )
    TickQueue(url, client=sqs)("schedule-1", 15)
    (batch,) = sent
    assert [e["DelaySeconds"] for e in batch["Entries"]] == [15, 30, 45]
    assert {json.loads(e["MessageBody"])["tick"] for e in batch["Entries"]} == {"schedule-1"}


def test_a_queue_that_refuses_is_an_error_naming_the_ticks(sqs):
    class Refusing:
        def send_message_batch(self, **kw):
            return {"Failed": [{"Id": "after-30s", "Code": "KMS.ThrottlingException"}], "Successful": []}

    with pytest.raises(TickQueueError, match=r"after-30s: KMS\.ThrottlingException"):
        TickQueue("https://sqs.invalid/ticks", client=Refusing())("schedule-1", 30)


def test_one_cycle_a_minute_queues_nothing(sqs):
    url = sqs.create_queue(QueueName="ticks")["QueueUrl"]
    TickQueue(url)("schedule-1", 60)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "0" and attributes["ApproximateNumberOfMessages"] == "0"
