"""Builds the autoscaler function's adapters from the environment, once per Lambda container."""

from __future__ import annotations

from collections.abc import Mapping

from autoscaler.adapters.from_env import kube_cluster, notifier, prometheus, tick_queue
from autoscaler.config import Settings
from autoscaler.config.ec2 import Ec2Options
from autoscaler.config.environ import required
from autoscaler.gitops.reader import check
from autoscaler.ports import Ports
from autoscaler.service import Wiring


def build(settings: Settings, environ: Mapping[str, str]) -> Wiring:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from autoscaler.adapters.dynamodb import DynamoGateStore, DynamoLease, DynamoStateStore
    from autoscaler.adapters.ec2 import Ec2Fleet

    table, cluster = required(environ, "STATE_TABLE"), settings.cluster_name
    kube = kube_cluster(environ)
    gate_store = DynamoGateStore(table, cluster)
    ports = Ports(
        fleet=Ec2Fleet(Ec2Options.from_env(environ), cluster),
        cluster=kube,
        metrics=prometheus(environ),
        state=DynamoStateStore(table, cluster),
    )
    return Wiring(
        ports=ports,
        lease=DynamoLease(table, cluster),
        gate=lambda now: check(kube, gate_store, now, settings.gate_settle_s, settings.gate_max_hold_s),
        idempotency=DynamoDBPersistenceLayer(
            table_name=table,
            key_attr="pk",
            sort_key_attr="sk",
            expiry_attr="expires_at",
            static_pk_value=f"idempotency#{cluster}",
        ),
        notify=notifier(environ),
        queue_ticks=tick_queue(environ),
    )
