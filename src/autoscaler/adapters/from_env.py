"""The adapters built from the environment, for both functions' wiring.

Secrets (the K3s API token and CA, Prometheus credentials and CA, the webhook HMAC key, the Slack
webhook URL) are read from SSM Parameter Store by the names the environment gives, through
Powertools Parameters (decrypted, cached for five minutes), and never logged.
"""

from __future__ import annotations

from collections.abc import Mapping

from autoscaler.config.environ import text
from autoscaler.config.kube import KubeOptions, secret_parameter_names
from autoscaler.config.notify import slack_parameter, slack_url, topic_arn
from autoscaler.config.prometheus import ENV_AUTH_PARAM, PrometheusAuth, PrometheusOptions

SECRET_MAX_AGE_S = 300


def secret(name: str) -> str:
    from aws_lambda_powertools.utilities import parameters

    return parameters.get_parameter(name, decrypt=True, max_age=SECRET_MAX_AGE_S)


def optional_secret(environ: Mapping[str, str], variable: str) -> str | None:
    name = text(environ, variable)
    return secret(name) if name else None


def kube_cluster(environ: Mapping[str, str]):
    from autoscaler.adapters.kube import KubeCluster

    names = secret_parameter_names(environ)
    token, ca_pem = (secret(names[k]) if k in names else None for k in ("token", "ca"))
    return KubeCluster.from_options(KubeOptions.from_env(environ, token=token, ca_pem=ca_pem))


def prometheus(environ: Mapping[str, str]):
    from autoscaler.adapters.prometheus import PrometheusMetrics

    options = PrometheusOptions.from_env(environ)
    credentials = optional_secret(environ, ENV_AUTH_PARAM)
    auth = PrometheusAuth.from_secret(credentials) if credentials else None
    return PrometheusMetrics(options, auth=auth, ca_pem=optional_secret(environ, "PROMETHEUS_CA_PARAM"))


def tick_queue(environ: Mapping[str, str]):
    """The tick queue (TICK_QUEUE_URL) for TICK_S below 60; None without one."""
    url = text(environ, "TICK_QUEUE_URL")
    if not url:
        return None
    from autoscaler.adapters.ticks import TickQueue

    return TickQueue(url)


def notifier(environ: Mapping[str, str]):
    """Publishes to every destination configured: the SNS topic (NOTIFY_TOPIC_ARN) and the Slack
    webhook (SLACK_WEBHOOK_PARAM); None when there is none. Each is tried even if another failed,
    then the first failure is raised."""
    destinations = []
    if topic := topic_arn(environ):
        import boto3

        client = boto3.client("sns")

        def publish(subject: str, message: str) -> None:
            client.publish(TopicArn=topic, Subject=subject[:100], Message=message)

        destinations.append(publish)
    if parameter := slack_parameter(environ):
        from autoscaler.adapters.slack import SlackNotifier

        destinations.append(SlackNotifier(slack_url(parameter, secret(parameter))))
    if not destinations:
        return None

    def notify(subject: str, message: str) -> None:
        failures = []
        for destination in destinations:
            try:
                destination(subject, message)
            except Exception as exc:  # the other destinations still get the message
                failures.append(exc)
        if failures:
            raise failures[0]

    return notify
