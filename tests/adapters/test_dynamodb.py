"""The DynamoDB adapters against moto, on a table built from the template's StateTable: what only they
have of the lease and the versioned state (the ports' contracts, run against every implementation,
are in test_contract_state.py), the codec, the gate record, Powertools Idempotency sharing the
table, and invocations racing for the lease over HTTP (moto_server on loopback)."""

from __future__ import annotations

import dataclasses
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial

import pytest
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from state_samples import FULL_STATE, LEASE_S, NOW

from autoscaler.adapters.dynamodb import (
    DynamoGateStore,
    DynamoLease,
    DynamoStateStore,
    cluster_key,
    gate_key,
)
from autoscaler.adapters.state_json import state_from_json, state_to_json
from autoscaler.model import Drain, Launch, ScalingState
from autoscaler.ports import StaleStateError
from aws_table import create_state_table, state_table_properties

CLUSTER = "demo"


# -- the table -------------------------------------------------------------------------------------


def test_table_is_built_from_the_template(aws_dynamodb_client, aws_state_table, aws_state_template):
    table = aws_dynamodb_client.describe_table(TableName=aws_state_table)["Table"]
    properties = state_table_properties(aws_state_template)

    assert table["KeySchema"] == properties["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(properties["AttributeDefinitions"], key=str)
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = aws_dynamodb_client.describe_time_to_live(TableName=aws_state_table)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    backups = aws_dynamodb_client.describe_continuous_backups(TableName=aws_state_table)
    pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"


@pytest.mark.parametrize(
    "template, message",
    [
        pytest.param("Resources: {}\n", "no StateTable", id="no resource"),
        pytest.param("Resources:\n  StateTable:\n    Type: AWS::SQS::Queue\n", "not an AWS::DynamoDB", id="wrong type"),
        pytest.param(
            "Resources:\n  StateTable:\n    Type: AWS::DynamoDB::Table\n    Properties:\n"
            "      KeySchema: !Ref Keys\n      AttributeDefinitions: []\n",
            "KeySchema uses Ref",
            id="intrinsic where a value is needed",
        ),
    ],
)
def test_table_helper_rejects_templates_it_cannot_use(aws_dynamodb_client, tmp_path, template, message):
    path = tmp_path / "template.yaml"
    path.write_text(template)
    with pytest.raises(ValueError, match=message):
        create_state_table(aws_dynamodb_client, path)


# -- the lease -------------------------------------------------------------------------------------


def test_lease_item_carries_owner_and_ttl(aws_dynamodb_client, aws_state_table):
    DynamoLease(aws_state_table, CLUSTER, client=aws_dynamodb_client).acquire("req-1", NOW + 0.4, LEASE_S)

    item = aws_dynamodb_client.get_item(
        TableName=aws_state_table, Key={"pk": {"S": cluster_key(CLUSTER)}, "sk": {"S": "lease"}}
    )["Item"]
    assert item["owner"] == {"S": "req-1"}
    assert item["expires_at"] == {"N": str(int(NOW + LEASE_S + 1))}, "whole epoch seconds, rounded up"


def test_a_lease_item_without_an_expiry_counts_as_expired(aws_dynamodb_client, aws_state_table):
    key = {"pk": {"S": cluster_key(CLUSTER)}, "sk": {"S": "lease"}}
    aws_dynamodb_client.put_item(TableName=aws_state_table, Item={**key, "owner": {"S": "written-by-hand"}})

    assert DynamoLease(aws_state_table, CLUSTER, client=aws_dynamodb_client).acquire("req-1", NOW, LEASE_S)

    item = aws_dynamodb_client.get_item(TableName=aws_state_table, Key=key)["Item"]
    assert item["owner"] == {"S": "req-1"} and "expires_at" in item


def test_leases_of_two_clusters_are_independent(aws_dynamodb_client, aws_state_table):
    assert DynamoLease(aws_state_table, "one", client=aws_dynamodb_client).acquire("a", NOW, LEASE_S)
    assert DynamoLease(aws_state_table, "two", client=aws_dynamodb_client).acquire("b", NOW, LEASE_S)


@pytest.mark.parametrize(
    "owner, now, duration", [("", NOW, 60), ("a", NOW, 0), ("a", float("nan"), 60), ("a", NOW, float("inf"))]
)
def test_lease_rejects_nonsense_arguments(aws_dynamodb_client, aws_state_table, owner, now, duration):
    with pytest.raises(ValueError):
        DynamoLease(aws_state_table, CLUSTER, client=aws_dynamodb_client).acquire(owner, now, duration)


def test_clients_are_made_on_first_use_with_retries(aws_mock, aws_state_table):
    lease = DynamoLease(aws_state_table, CLUSTER)
    assert lease._client is None
    assert lease.acquire("a", NOW, LEASE_S)
    assert lease.client.meta.config.retries["mode"] in ("standard", "adaptive")
    assert DynamoStateStore(aws_state_table, CLUSTER).load() == ScalingState()


# -- the state -------------------------------------------------------------------------------------


@pytest.fixture
def store(aws_dynamodb_client, aws_state_table) -> DynamoStateStore:
    return DynamoStateStore(aws_state_table, CLUSTER, client=aws_dynamodb_client)


def test_other_clusters_state_is_apart(aws_dynamodb_client, aws_state_table, store):
    store.save(ScalingState(paused=True))
    other = DynamoStateStore(aws_state_table, "other", client=aws_dynamodb_client)
    assert other.load() == ScalingState()


@pytest.mark.parametrize(
    "item, message",
    [
        pytest.param({"version": {"N": "3"}, "body": {"S": "{"}}, "not valid JSON", id="garbled body"),
        pytest.param({"body": {"S": state_to_json(FULL_STATE)}}, "version", id="no version"),
        pytest.param({"version": {"N": "3"}}, "body", id="no body"),
    ],
)
def test_malformed_stored_state_is_an_error(aws_dynamodb_client, aws_state_table, store, item, message):
    key = {"pk": {"S": cluster_key(CLUSTER)}, "sk": {"S": "state"}}
    aws_dynamodb_client.put_item(TableName=aws_state_table, Item={**key, **item})
    with pytest.raises(ValueError, match=message):
        store.load()


# -- the codec -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(ScalingState(), id="fresh"),
        pytest.param(FULL_STATE, id="every field set"),
        pytest.param(ScalingState(version=3, unneeded_since={"n": 1}, launches=(Launch("i-1", "a", 0, 5),)), id="ints"),
    ],
)
def test_codec_round_trip(state):
    text = state_to_json(state)
    assert state_from_json(text) == state
    assert json.loads(text)["format"] == 1


def test_codec_covers_every_field():
    """A field added to ScalingState must reach the codec: FULL_STATE sets each one apart from its default."""
    names = {f.name for f in dataclasses.fields(ScalingState)}
    unset = {n for n in names if getattr(FULL_STATE, n) == getattr(ScalingState(), n)}
    assert unset == set(), "FULL_STATE must set every field"
    assert set(json.loads(state_to_json(FULL_STATE))) == names | {"format"}
    drain_fields = {f.name for f in dataclasses.fields(Drain)}
    launch_fields = {f.name for f in dataclasses.fields(Launch)}
    doc = json.loads(state_to_json(FULL_STATE))
    assert set(doc["drains"][0]) == drain_fields and set(doc["launches"][0]) == launch_fields


def test_codec_ignores_keys_it_does_not_know():
    doc = json.loads(state_to_json(FULL_STATE))
    doc["added_by_a_newer_release"] = {"x": 1}
    doc["launches"][0]["spot"] = True
    assert state_from_json(json.dumps(doc)) == FULL_STATE


def _with(**changes) -> str:
    doc = json.loads(state_to_json(FULL_STATE))
    doc.update(changes)
    return json.dumps(doc)


def _with_drain(**changes) -> str:
    doc = json.loads(state_to_json(FULL_STATE))
    doc["drains"][0].update(changes)
    return json.dumps(doc)


@pytest.mark.parametrize(
    "text, message",
    [
        pytest.param("", "not valid JSON", id="empty"),
        pytest.param("not json", "not valid JSON", id="not json"),
        pytest.param("[1, 2]", "state must be a JSON object, got list", id="array"),
        pytest.param('{"version": 1}', "state.format", id="no format"),
        pytest.param(_with(format=2), "state.format must be 1", id="other format"),
        pytest.param(_with(version=-1), "state.version", id="negative version"),
        pytest.param(_with(version=1.5), "state.version", id="fractional version"),
        pytest.param(_with(version=True), "state.version", id="boolean version"),
        pytest.param(_with(paused="yes"), "state.paused", id="paused not a boolean"),
        pytest.param(_with(last_scale_up="2026-01-01"), "state.last_scale_up", id="time as text"),
        pytest.param(_with(last_failure=True), "state.last_failure", id="time as boolean"),
        pytest.param(_with(unneeded_since=[]), "state.unneeded_since must be a JSON object", id="unneeded list"),
        pytest.param(_with(unneeded_since={"n": None}), r"state.unneeded_since.n", id="unneeded null"),
        pytest.param(_with(launches={}), "state.launches must be a list", id="launches object"),
        pytest.param(_with(launches=[[]]), r"state.launches\[0\] must be a JSON object", id="launch not object"),
        pytest.param(_with(launches=[{"az": "a"}]), r"state.launches\[0\].instance_id", id="launch without id"),
        pytest.param(_with_drain(phase="evicted"), r"state.drains\[0\].phase must be one of", id="unknown phase"),
        pytest.param(_with(intents=[]), "state.intents must be a JSON object", id="intents list"),
        pytest.param(
            _with(intents={"e": {"recorded_at": 1, "launches": {"a": 0}}}),
            r"state.intents\['e'\].launches\['a'\] must be a whole number",
            id="intent launching none",
        ),
        pytest.param(
            _with(intents={"e": {"recorded_at": 1, "remove": {"n": None}}}),
            r"state.intents\['e'\].remove.n",
            id="intent removal without instance",
        ),
        pytest.param(_with_drain(deadline=None), r"state.drains\[0\].deadline", id="drain without deadline"),
        pytest.param(_with_drain(node=""), r"state.drains\[0\].node", id="drain without node"),
        pytest.param(
            _with_drain(interrupted="yes"),
            r"state.drains\[0\].interrupted must be true or false",
            id="interrupted text",
        ),
        pytest.param('{"format": 1, "backoff_until": NaN}', "NaN", id="NaN"),
        pytest.param('{"format": 1, "pressure_since": Infinity}', "Infinity", id="infinity"),
        pytest.param('{"format": 1, "last_scale_up": 1e400}', "last_scale_up", id="overflow"),
    ],
)
def test_codec_rejects_garbage(text, message):
    with pytest.raises(ValueError, match=message):
        state_from_json(text)


def test_codec_refuses_to_write_a_nan_time():
    with pytest.raises(ValueError):
        state_to_json(ScalingState(last_scale_up=float("nan")))


# -- the gate record -------------------------------------------------------------------------------


def test_gate_record(aws_dynamodb_client, aws_state_table):
    gate = DynamoGateStore(aws_state_table, CLUSTER, client=aws_dynamodb_client)
    assert gate.load() is None and gate.load_entry() is None

    record = {"blocked": True, "holding": [{"kind": "Kustomization", "name": "apps"}], "settle_until": NOW + 120}
    gate.save(record, observed_at=NOW)
    assert gate.load() == record
    assert gate.load_entry() == (record, NOW)

    gate.save({"blocked": False}, observed_at=NOW + 60.5)
    assert gate.load_entry() == ({"blocked": False}, NOW + 60.5)

    with pytest.raises(ValueError):
        gate.save({"settle_until": float("nan")}, observed_at=NOW)
    with pytest.raises(ValueError):
        gate.save({}, observed_at=float("inf"))


def test_the_gate_lives_in_its_own_partition(aws_dynamodb_client, aws_state_table):
    """The hook's IAM may write only the partition gate#<cluster> (dynamodb:LeadingKeys): never the lease or state."""
    gate = DynamoGateStore(aws_state_table, CLUSTER, client=aws_dynamodb_client)
    gate.save({"blocked": True}, observed_at=NOW)
    assert gate.first_use("ab12", NOW + 300)

    items = aws_dynamodb_client.scan(TableName=aws_state_table)["Items"]
    assert {i["pk"]["S"] for i in items} == {gate_key(CLUSTER)} != {cluster_key(CLUSTER)}


def test_a_digest_is_used_once_until_it_expires(aws_dynamodb_client, aws_state_table):
    gate = DynamoGateStore(aws_state_table, CLUSTER, client=aws_dynamodb_client)

    assert gate.first_use("ab12", NOW + 300.2) is True
    assert gate.first_use("ab12", NOW + 300.2) is False
    assert gate.first_use("cd34", NOW + 300) is True
    assert DynamoGateStore(aws_state_table, "other", client=aws_dynamodb_client).first_use("ab12", NOW) is True

    key = {"pk": {"S": gate_key(CLUSTER)}, "sk": {"S": "replay#ab12"}}
    item = aws_dynamodb_client.get_item(TableName=aws_state_table, Key=key)["Item"]
    assert item["expires_at"] == {"N": str(int(NOW + 301))}, "a TTL in whole seconds, rounded up"
    assert gate.load() is None, "a replay record is not the gate record"


def test_malformed_gate_record_is_an_error(aws_dynamodb_client, aws_state_table):
    key = {"pk": {"S": gate_key(CLUSTER)}, "sk": {"S": "gate"}}
    aws_dynamodb_client.put_item(
        TableName=aws_state_table, Item={**key, "body": {"S": "[1]"}, "observed_at": {"N": str(NOW)}}
    )
    with pytest.raises(ValueError, match="JSON object"):
        DynamoGateStore(aws_state_table, CLUSTER, client=aws_dynamodb_client).load()


# -- Powertools Idempotency shares the table -------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time")
def test_powertools_idempotency_uses_the_same_table(aws_dynamodb_client, aws_state_table, monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "node-fleet-autoscaler")
    lease = DynamoLease(aws_state_table, CLUSTER, client=aws_dynamodb_client)
    store = DynamoStateStore(aws_state_table, CLUSTER, client=aws_dynamodb_client)
    assert lease.acquire("req-1", NOW, LEASE_S)
    saved = store.save(ScalingState(paused=True))
    layer = DynamoDBPersistenceLayer(
        table_name=aws_state_table,
        key_attr="pk",
        sort_key_attr="sk",
        expiry_attr="expires_at",
        boto3_client=aws_dynamodb_client,
    )
    handled = []

    @idempotent_function(
        data_keyword_argument="event", persistence_store=layer, config=IdempotencyConfig(event_key_jmespath="id")
    )
    def handle(event):
        handled.append(event["id"])
        return {"done": event["id"]}

    assert handle(event={"id": "evt-1", "detail": {"action": "pause"}}) == {"done": "evt-1"}
    assert handle(event={"id": "evt-1", "detail": {"action": "pause"}}) == {"done": "evt-1"}
    assert handled == ["evt-1"]

    items = aws_dynamodb_client.scan(TableName=aws_state_table)["Items"]
    records = [i for i in items if i["pk"]["S"].startswith("idempotency#")]
    assert len(records) == 1 and "expires_at" in records[0]
    assert not lease.acquire("req-2", NOW + 1, LEASE_S), "the lease is untouched"
    assert store.load() == saved


# -- invocations racing over HTTP ------------------------------------------------------------------

RACERS = 20


def _clients(session, endpoint: str, n: int) -> list:
    # One client each, as separate Lambda containers would have (made here: creating clients is not thread-safe).
    return [session.client("dynamodb", endpoint_url=endpoint) for _ in range(n)]


def _race(calls) -> list:
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        try:
            return call()
        except StaleStateError:
            return False

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_racing_invocations_one_wins_the_lease(aws_moto_server, aws_session, aws_state_template):
    clients = _clients(aws_session, aws_moto_server, RACERS)
    table = create_state_table(clients[0], aws_state_template)
    leases = [DynamoLease(table, CLUSTER, client=c) for c in clients]

    for round_, now in enumerate((NOW, NOW + LEASE_S + 1, NOW + 2 * LEASE_S + 2)):  # free, then expired twice
        won = _race([partial(lease.acquire, f"r{round_}-{i}", now, LEASE_S) for i, lease in enumerate(leases)])
        assert won.count(True) == 1, f"round {round_}: {won.count(True)} winners"
        winner = won.index(True)
        assert not leases[(winner + 1) % RACERS].acquire("late", now + 1, LEASE_S)


def test_racing_saves_one_wins_the_state(aws_moto_server, aws_session, aws_state_template):
    clients = _clients(aws_session, aws_moto_server, RACERS)
    table = create_state_table(clients[0], aws_state_template)
    stores = [DynamoStateStore(table, CLUSTER, client=c) for c in clients]
    stores[0].save(ScalingState())
    saves = [partial(s.save, replace(s.load(), last_scale_up=float(i))) for i, s in enumerate(stores)]
    won = _race(saves)

    winners = [i for i, result in enumerate(won) if result]
    assert len(winners) == 1
    assert stores[0].load() == ScalingState(version=2, last_scale_up=float(winners[0]))
