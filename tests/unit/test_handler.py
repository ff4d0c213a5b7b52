"""The autoscaler's Lambda entry point: events from events/, metrics, logs, errors, idempotency."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import boto3
import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from moto import mock_aws

from autoscaler import handler
from autoscaler.model import ScalingState
from autoscaler.service import Wiring
from aws_table import create_state_table
from builders import NOW, busy, worker
from fakes import FakeCluster, FakeFleet, MemoryLease, ports
from lambda_context import LambdaContext

EVENTS = Path(__file__).resolve().parents[2] / "events"


def event(name):
    return json.loads((EVENTS / name).read_text())


@pytest.fixture
def aws(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        table = create_state_table(boto3.client("dynamodb"))
        yield table


@pytest.fixture
def wired(monkeypatch, aws):
    ws = [worker(i) for i in range(4)]
    fleet, cluster = FakeFleet([w[0] for w in ws]), FakeCluster([w[1] for w in ws], busy("n0", 1) + busy("n1", 1))
    p = ports(fleet, cluster)
    p.state.save(ScalingState(unneeded_since={"n3": NOW - 700}))
    notes = []
    w = Wiring(
        p,
        MemoryLease(),
        idempotency=DynamoDBPersistenceLayer(
            table_name=aws, key_attr="pk", sort_key_attr="sk", expiry_attr="expires_at"
        ),
        clock=lambda: NOW,
        notify=lambda subject, message: notes.append((subject, message)),
    )
    monkeypatch.setattr(handler, "_wiring", w)
    monkeypatch.setenv("CLUSTER_NAME", "prod")
    # One cycle a minute, removed workers terminated: the faster ticks and the warm pool are set
    # by the tests about them.
    monkeypatch.setenv("TICK_S", "60")
    monkeypatch.setenv("WARM_POOL_SIZE", "0")
    w.notes = notes
    return w


def emf(out: str) -> dict:
    blobs = [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"_aws"' in line]
    assert len(blobs) == 1
    # A metric added once is one value; Powertools writes values as lists.
    return {k: v[0] if isinstance(v, list) and len(v) == 1 else v for k, v in blobs[0].items()}


def test_a_tick_removes_the_unneeded_node_logs_the_decision_and_emits_metrics(wired, capsys, monkeypatch):
    # The module's Logger bound the stdout of import time; capsys swaps stdout only as the test runs.
    monkeypatch.setattr(handler.logger.registered_handler, "stream", sys.stdout)
    answer = handler.lambda_handler(event("schedule_tick.json"), LambdaContext())
    assert answer["status"] == "acted" and answer["remove"] == ["n3"]
    out = capsys.readouterr().out
    blob = emf(out)
    assert blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "NodeFleet"
    assert blob["ClusterName"] == "prod"
    assert blob["Terminations"] == 1 and blob["RunningWorkers"] == 4 and blob["DesiredWorkers"] == 3
    decision = next(json.loads(line) for line in out.splitlines() if '"message":"decision"' in line.replace(" ", ""))
    assert decision["action"] == "scale_down" and decision["correlation_id"] == event("schedule_tick.json")["id"]
    # The fleet as the cycle found it: four t3.large on-demand workers, their 40 GiB volumes, and
    # the function's own 60 runs an hour, at the price book's us-east-1 list prices.
    volume, run = 40 * 0.08 / 720, 0.20e-6 + 0.5 * 0.0000133334
    assert decision["dollars_per_hour"]["workers"] == pytest.approx(4 * 0.0832)
    assert blob["FleetDollarsPerHour"] == pytest.approx(4 * 0.0832 + 4 * volume + 60 * run, abs=1e-4)
    assert wired.notes and "terminated i-0003" in wired.notes[0][1]


def test_an_invalid_manual_event_is_rejected_and_nothing_happens(wired, capsys):
    answer = handler.lambda_handler(event("manual_invalid_count.json"), LambdaContext())
    assert answer["status"] == "rejected" and "detail.count" in answer["error"]
    assert wired.ports.fleet.calls == [] and wired.ports.cluster.calls == []
    assert emf(capsys.readouterr().out)["InvalidEvents"] == 1


def test_an_invalid_setting_is_reported_not_retried(wired, monkeypatch):
    monkeypatch.setenv("MAX_NODES", "0")
    answer = handler.lambda_handler(event("schedule_tick.json"), LambdaContext())
    assert answer == {"status": "error", "error": "MAX_NODES=0 is out of range: allowed 1..1000"}
    assert wired.ports.fleet.calls == []


def test_a_manual_event_is_applied_once_per_event_id(wired):
    first = handler.lambda_handler(event("manual_scale_up.json"), LambdaContext())
    again = handler.lambda_handler(event("manual_scale_up.json"), LambdaContext())
    assert first == again and first["action"] == "scale_up"
    assert [c[0] for c in wired.ports.fleet.calls].count("launch") == len(first["launches"])


def test_a_tick_that_finds_the_lease_taken_counts_contention(wired, capsys):
    wired.lease.owner, wired.lease.expires = "someone", NOW + 60
    answer = handler.lambda_handler(event("schedule_tick.json"), LambdaContext())
    assert answer["status"] == "lease_taken"
    assert emf(capsys.readouterr().out)["LeaseContention"] == 1


def test_a_failure_a_retry_can_fix_raises(wired, capsys):
    def down():
        raise ConnectionError("API server unreachable")

    wired.ports.cluster.list_nodes = down
    with pytest.raises(ConnectionError):
        handler.lambda_handler(event("schedule_tick.json"), LambdaContext())
    assert wired.lease.owner is None
    assert emf(capsys.readouterr().out)["Errors"] == 1


def test_an_alarm_back_to_ok_is_ignored(wired):
    assert handler.lambda_handler(event("alarm_state_ok.json"), LambdaContext())["status"] == "ignored"


@pytest.mark.parametrize("name", ["manual_scale_up.json", "alarm_state_alarm.json"])
def test_an_intent_whose_cycle_failed_after_launching_launches_nothing_more_when_delivered_again(
    wired, monkeypatch, name
):
    monkeypatch.setenv("ALARM_ACTIONS", json.dumps({"node-fleet-scale-cpu-high": {"action": "scale_up", "count": 2}}))
    store, fleet = wired.ports.state, wired.ports.fleet
    save = store.save

    def failing_once(state):
        if state.launches and not store.load().launches:  # DynamoDB fails as the first launch is recorded
            store.save = save
            raise ConnectionError("DynamoDB unreachable")
        return save(state)

    store.save = failing_once
    with pytest.raises(ConnectionError):
        handler.lambda_handler(event(name), LambdaContext())
    answer = handler.lambda_handler(event(name), LambdaContext())
    again = handler.lambda_handler(event(name), LambdaContext())
    assert answer == again, "delivered after a success, the first answer comes back"
    assert len([i for i in fleet.instances if i.alive]) == 4 + 2
    assert len({c[3] for c in fleet.calls if c[0] == "launch"}) == 2, "one token a zone, the same on every delivery"


# -- TICK_S: a minute's later ticks ------------------------------------------------------------------


def queued(wired, fail=False):
    calls = []

    def queue_ticks(event_id, tick_s):
        calls.append((event_id, tick_s))
        if fail:
            raise RuntimeError("SQS is down")

    wired.queue_ticks = queue_ticks
    return calls


def test_a_scheduled_tick_queues_its_minutes_later_ticks_before_its_cycle(wired, monkeypatch):
    monkeypatch.setenv("TICK_S", "15")
    calls = queued(wired)
    answer = handler.lambda_handler(event("schedule_tick.json"), LambdaContext())
    assert calls == [(event("schedule_tick.json")["id"], 15)]
    assert answer["status"] == "acted"


def test_a_queued_tick_runs_a_cycle_and_queues_none(wired, monkeypatch):
    monkeypatch.setenv("TICK_S", "15")
    calls = queued(wired)
    answer = handler.lambda_handler(event("queued_tick.json"), LambdaContext())
    assert calls == [] and answer["status"] == "acted" and answer["remove"] == ["n3"]


def test_one_cycle_a_minute_queues_nothing(wired):
    calls = queued(wired)
    handler.lambda_handler(event("schedule_tick.json"), LambdaContext())
    assert calls == []


def test_ticks_that_cannot_be_queued_cost_only_themselves(wired, monkeypatch, capsys):
    monkeypatch.setattr(handler.logger.registered_handler, "stream", sys.stdout)
    monkeypatch.setenv("TICK_S", "20")
    queued(wired, fail=True)
    answer = handler.lambda_handler(event("schedule_tick.json"), LambdaContext())
    assert answer["status"] == "acted" and answer["remove"] == ["n3"]
    assert emf(capsys.readouterr().out)["TickQueueErrors"] == 1
