"""The tick queue (TICK_S below 60): the later ticks of a minute, as delayed SQS messages.

EventBridge schedules the function once a minute at most. A scheduled cycle queues its minute's
later ticks (delays tick_s, 2 x tick_s, ... below 60 s) in one SendMessageBatch; SQS delivers each
when its delay is over, and each runs one cycle (events.Tick with queued=True), under the lease
like any other. A tick lost (a failed send, a message past its 60 s retention) costs only that
tick: the next minute's schedule queues afresh.
"""

from __future__ import annotations

import json
from typing import Any

import boto3

from autoscaler.adapters.ec2 import RETRY_CONFIG

MINUTE_S = 60


def later_ticks(tick_s: int) -> tuple[int, ...]:
    """The delays of a minute's ticks after the scheduled one."""
    return tuple(range(tick_s, MINUTE_S, tick_s))


class TickQueueError(Exception):
    """SQS refused some of the minute's ticks."""


class TickQueue:
    def __init__(self, url: str, client: Any = None) -> None:
        self.url = url
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.client("sqs", config=RETRY_CONFIG)
        return self._client

    def __call__(self, event_id: str, tick_s: int) -> None:
        """Queue the later ticks of the minute the scheduled tick `event_id` opened."""
        entries = [
            {"Id": f"after-{delay}s", "MessageBody": json.dumps({"tick": event_id}), "DelaySeconds": delay}
            for delay in later_ticks(tick_s)
        ]
        if not entries:
            return
        answer = self.client.send_message_batch(QueueUrl=self.url, Entries=entries)
        failed = answer.get("Failed") or []
        if failed:
            raise TickQueueError("; ".join(f"{f.get('Id')}: {f.get('Code')}" for f in failed))
