"""The contract of the Gate port (src/autoscaler/ports.py): the gate the autoscaler wires
(`gitops.reader.check`) over each implementation of what it reads: in memory (tests/fakes.py's
FakeFluxObjects and MemoryGateStore), and real (KubeCluster through the `kubernetes` client against
the fake API server, DynamoGateStore on moto). What the Flux objects mean is test_flux.py's and
test_gate.py's; here, that each pair answers alike and never raises."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

import node_fleet.stack.kube_api as fk
from autoscaler.adapters.dynamodb import DynamoGateStore
from autoscaler.adapters.kube import KubeCluster, api_client
from autoscaler.config.kube import KubeOptions
from autoscaler.gitops.reader import check
from autoscaler.ports import Gate
from fakes import FakeFluxObjects, MemoryGateStore

NOW = 1_800_000_000.0
SETTLE_S, MAX_HOLD_S = 0.0, 1800.0


@dataclass
class Subject:
    gate: Gate
    add: Callable[[dict], None]
    """Puts a Flux object in the cluster."""
    break_reads: Callable[[], None]
    """From now on, reading the Flux objects fails."""


@pytest.fixture(params=["memory", "kube+dynamodb"])
def subject(request) -> Iterator[Subject]:
    if request.param == "memory":
        objects, store = FakeFluxObjects(), MemoryGateStore()

        def down() -> None:
            objects.down = True

        yield Subject(lambda now: check(objects, store, now, SETTLE_S, MAX_HOLD_S), objects.objects.append, down)
        return
    client, table = request.getfixturevalue("aws_dynamodb_client"), request.getfixturevalue("aws_state_table")
    with fk.FakeKube(token="contract-token") as kube:
        kube.install(*fk.FLUX_KINDS)
        options = KubeOptions.from_env({"K8S_API_URL": kube.url, "K8S_TOKEN_PARAM": "/t"}, token=kube.token)
        cluster = KubeCluster(api_client(options), page_size=options.page_size)
        store = DynamoGateStore(table, "demo", client=client)

        def down() -> None:
            kube.fail_next("/apis/", count=100, status=500)

        yield Subject(lambda now: check(cluster, store, now, SETTLE_S, MAX_HOLD_S), kube.add, down)
        cluster.close()


def test_nothing_in_progress_lets_capacity_go(subject):
    subject.add(fk.kustomization("apps", ready=True))

    answer = subject.gate(NOW)

    assert not answer.blocked and answer.unknown is None and answer.reasons == (), answer


def test_a_reconcile_in_progress_holds_and_names_the_object(subject):
    subject.add(fk.kustomization("apps", ready=True))
    subject.add(fk.kustomization("infrastructure", ready=False))

    answer = subject.gate(NOW)

    assert answer.blocked and answer.unknown is None, answer
    assert [r["name"] for r in answer.reasons] == ["infrastructure"], answer


def test_a_gate_that_cannot_be_read_holds_and_says_why_without_raising(subject):
    subject.add(fk.kustomization("apps", ready=True))
    subject.break_reads()

    answer = subject.gate(NOW)

    assert answer.blocked and answer.unknown and "gate unreadable" in answer.unknown, answer
