"""Builds the adapters from the environment, once per Lambda container.

Secrets (the K3s API token and CA, Prometheus credentials and CA, the webhook HMAC key) are
read from SSM Parameter Store by the names the environment gives, through Powertools
Parameters (decrypted, cached for five minutes), and never logged.
"""

from __future__ import annotations

from collections.abc import Mapping

from autoscaler.config import ConfigError, Settings
from autoscaler.ports import Ports
from autoscaler.service import Wiring
from gitops_hooks.handler import HookWiring
from gitops_hooks.reader import check

SECRET_MAX_AGE_S = 300


def secret(name: str) -> str:
    from aws_lambda_powertools.utilities import parameters

    return parameters.get_parameter(name, decrypt=True, max_age=SECRET_MAX_AGE_S)


def _optional_secret(environ: Mapping[str, str], variable: str) -> str | None:
    name = environ.get(variable, "").strip()
    return secret(name) if name else None


def _required(environ: Mapping[str, str], variable: str) -> str:
    value = environ.get(variable, "").strip()
    if not value:
        raise ConfigError(f"{variable} is not set")
    return value


def kube_cluster(environ: Mapping[str, str]):
    from autoscaler.adapters.kube import KubeCluster, secret_parameter_names

    names = secret_parameter_names(environ)
    token, ca_pem = (secret(names[k]) if k in names else None for k in ("token", "ca"))
    return KubeCluster.from_env(environ, token=token, ca_pem=ca_pem)


def prometheus(environ: Mapping[str, str]):
    from autoscaler.adapters.prometheus import PrometheusAuth, PrometheusMetrics, PrometheusOptions

    options = PrometheusOptions.from_env(environ)
    auth = None
    credentials = _optional_secret(environ, "PROMETHEUS_AUTH_PARAM")
    if credentials:
        if credentials.startswith("Bearer "):
            auth = PrometheusAuth.bearer(credentials.removeprefix("Bearer ").strip())
        elif ":" in credentials:
            user, password = credentials.split(":", 1)
            auth = PrometheusAuth.basic(user, password)
        else:
            raise ConfigError("PROMETHEUS_AUTH_PARAM must hold 'user:password' or 'Bearer <token>'")
    return PrometheusMetrics(options, auth=auth, ca_pem=_optional_secret(environ, "PROMETHEUS_CA_PARAM"))


def notifier(environ: Mapping[str, str]):
    """SNS publisher for NOTIFY_TOPIC_ARN, or None when no topic is configured."""
    topic = environ.get("NOTIFY_TOPIC_ARN", "").strip()
    if not topic:
        return None
    import boto3

    client = boto3.client("sns")

    def publish(subject: str, message: str) -> None:
        client.publish(TopicArn=topic, Subject=subject[:100], Message=message)

    return publish


def build(settings: Settings, environ: Mapping[str, str]) -> Wiring:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from autoscaler.adapters.dynamodb import DynamoGateStore, DynamoLease, DynamoStateStore
    from autoscaler.adapters.ec2 import Ec2Fleet, Ec2Options

    table, cluster = _required(environ, "STATE_TABLE"), settings.cluster_name
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
    )


def build_hook(environ: Mapping[str, str]) -> HookWiring:
    from autoscaler.adapters.dynamodb import DynamoGateStore

    cluster = Settings.from_env(environ).cluster_name
    key = secret(_required(environ, "WEBHOOK_HMAC_PARAM"))
    return HookWiring(kube_cluster(environ), DynamoGateStore(_required(environ, "STATE_TABLE"), cluster), key.encode())
