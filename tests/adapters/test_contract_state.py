"""The contracts of the Lease and StateStore ports (src/autoscaler/ports.py), run against every
implementation: the memory ones the unit tests and the simulator use, and DynamoDB on moto (its
table built from template.yaml). What only DynamoDB has (items, TTL, argument checks) stays in
test_dynamodb.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from state_samples import FULL_STATE, LEASE_S, NOW

from autoscaler.adapters.dynamodb import DynamoLease, DynamoStateStore
from autoscaler.model import ScalingState
from autoscaler.ports import Lease, StaleStateError, StateStore
from fakes import MemoryLease
from node_fleet.sim.ports import MemoryStateStore

CLUSTER = "demo"


@pytest.fixture(params=["memory", "dynamodb"])
def make_lease(request) -> Callable[[], Lease]:
    """Makes the one lease of one cluster: each call another handle on the same lease."""
    if request.param == "memory":
        lease = MemoryLease()
        return lambda: lease
    client, table = request.getfixturevalue("aws_dynamodb_client"), request.getfixturevalue("aws_state_table")
    return lambda: DynamoLease(table, CLUSTER, client=client)


@pytest.fixture(params=["memory", "dynamodb"])
def store(request) -> StateStore:
    if request.param == "memory":
        return MemoryStateStore()
    client, table = request.getfixturevalue("aws_dynamodb_client"), request.getfixturevalue("aws_state_table")
    return DynamoStateStore(table, CLUSTER, client=client)


# -- the lease -------------------------------------------------------------------------------------

LEASE_CASES = [
    pytest.param([("acquire", "a", NOW, True)], id="a free lease is taken"),
    pytest.param([("acquire", "a", NOW, True), ("acquire", "b", NOW + 10, False)], id="a held lease is refused"),
    pytest.param([("acquire", "a", NOW, True), ("acquire", "a", NOW + 10, False)], id="not re-entrant"),
    pytest.param(
        [("acquire", "a", NOW, True), ("acquire", "b", NOW + LEASE_S, False)],
        id="still held at the expiry second",
    ),
    pytest.param(
        [("acquire", "a", NOW, True), ("acquire", "b", NOW + LEASE_S + 0.5, True)],
        id="an expired lease is taken over",
    ),
    pytest.param(
        [("acquire", "a", NOW, True), ("release", "b"), ("acquire", "c", NOW + 10, False)],
        id="another owner cannot release it",
    ),
    pytest.param(
        [("acquire", "a", NOW, True), ("release", "a"), ("acquire", "b", NOW + 10, True)],
        id="the holder's release frees it",
    ),
    pytest.param(
        [
            ("acquire", "a", NOW, True),
            ("acquire", "b", NOW + LEASE_S + 1, True),
            ("release", "a"),
            ("acquire", "c", NOW + LEASE_S + 2, False),
        ],
        id="a holder whose lease was taken over cannot release the new one",
    ),
    pytest.param([("release", "a"), ("acquire", "b", NOW, True)], id="releasing a free lease is no error"),
]


@pytest.mark.parametrize("steps", LEASE_CASES)
def test_lease(make_lease, steps):
    lease = make_lease()
    for op, owner, *rest in steps:
        if op == "acquire":
            now, expected = rest
            assert lease.acquire(owner, now, LEASE_S) is expected, (op, owner, now)
        else:
            lease.release(owner)


def test_every_handle_sees_the_same_lease(make_lease):
    """Two invocations build their adapters apart: what one holds, the other cannot take."""
    assert make_lease().acquire("a", NOW, LEASE_S)
    assert not make_lease().acquire("b", NOW + 1, LEASE_S)
    make_lease().release("a")
    assert make_lease().acquire("b", NOW + 2, LEASE_S)


# -- the state -------------------------------------------------------------------------------------


def test_state_absent_is_fresh(store):
    assert store.load() == ScalingState()


def test_state_saves_and_loads_with_increasing_versions(store):
    first = store.save(replace(FULL_STATE, version=0))
    assert first.version == 1
    assert store.load() == first

    second = store.save(replace(store.load(), paused=False, drains=()))
    assert second.version == 2
    assert store.load() == second


def test_version_conflict_two_loads_two_saves(store):
    store.save(ScalingState(last_scale_up=NOW))
    mine, theirs = store.load(), store.load()

    saved = store.save(replace(theirs, last_scale_down=NOW))
    with pytest.raises(StaleStateError, match="version 1"):
        store.save(replace(mine, paused=True))

    assert store.load() == saved


def test_version_conflict_on_the_first_save(store):
    mine, theirs = store.load(), store.load()
    store.save(theirs)
    with pytest.raises(StaleStateError):
        store.save(mine)
