"""The embedded stack itself: what it hands the functions, and that it leaves nothing running."""

from __future__ import annotations

import socket
import threading

import pytest
import requests

from node_fleet.stack import aws
from node_fleet.stack.stack import EmbeddedStack, wait_until


def test_the_stack_points_the_functions_here_and_stops_everything_it_started_even_on_an_error(tmp_path):
    threads_before = set(threading.enumerate())
    with pytest.raises(RuntimeError, match="the test body failed"), EmbeddedStack(workers=1, workdir=tmp_path) as stack:
        env = stack.environ
        assert env["AWS_ENDPOINT_URL"] == stack.account.endpoint and env["AWS_ACCESS_KEY_ID"] == "testing"
        assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        assert env["K8S_API_URL"] == stack.kube.url and env["PROMETHEUS_URL"] == stack.prometheus.url
        assert env["SUBNET_IDS"] == ",".join(stack.account.subnet_ids) and len(stack.account.zones) == 2
        assert env["STATE_TABLE"] == stack.account.table_name and env["NOTIFY_TOPIC_ARN"] == stack.account.topic_arn
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "NodeFleet"
        for name in (aws.K8S_TOKEN_PARAM, aws.WEBHOOK_HMAC_PARAM):
            assert stack.secret(name) == stack.secrets[name]
            assert stack.secrets[name] not in env.values(), "secrets live in SSM, never in the environment"
        # The workers are this cluster's tagged workers; the server is not one of them.
        (worker,) = stack.instances()
        assert worker["InstanceId"] != stack.server_instance_id
        assert stack.kube.get("nodes", stack.server_node)["spec"]["taints"][0]["effect"] == "NoSchedule"

        urls = [
            stack.kube.url + "/version",
            stack.prometheus.url + "/-/healthy",
            stack.account.endpoint + "/moto-api/",
            f"http://{stack.kubelets.metrics_target}/metrics",
        ]
        for url in urls:
            requests.get(url, timeout=5)  # each one answers
        prometheus = stack.prometheus
        assert prometheus.running
        raise RuntimeError("the test body failed")

    assert not prometheus.running
    for url in urls:
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=2)
    wait_until(lambda: set(threading.enumerate()) <= threads_before, 10, what="every thread the stack started ended")


def test_prometheus_moves_to_another_port_when_its_port_was_taken_before_it_started(tmp_path):
    from node_fleet.stack.prometheus import PrometheusServer

    server = PrometheusServer(tmp_path)
    taken = server.port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        with server:
            assert server.port != taken and requests.get(server.url + "/-/ready", timeout=5).status_code == 200
