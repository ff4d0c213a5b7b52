"""Slack notifications: the SlackNotifier against a local HTTP receiver that checks what an incoming
webhook checks, and the notifier that from_env builds (SNS and Slack, the URL from SSM in moto)."""

from __future__ import annotations

import json
import threading
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest

from autoscaler.adapters.from_env import notifier
from autoscaler.adapters.slack import SlackError, SlackNotifier, payload
from autoscaler.config import ConfigError

SECRET_PATH = "/services/T000/B000/not-a-real-secret"


class Receiver:
    """An incoming webhook on loopback: it answers `ok` to a JSON body with a non-empty `text` and
    well-formed blocks, 400 `invalid_payload` otherwise (as Slack does), or `status` when set."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.status: int | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                ok = self.path == SECRET_PATH and self.headers["Content-Type"] == "application/json"
                try:
                    body = json.loads(raw)
                    ok = ok and bool(body["text"]) and all(b["type"] in ("header", "section") for b in body["blocks"])
                    receiver.bodies.append(body)
                except (ValueError, KeyError, TypeError):
                    ok = False
                status = receiver.status or (200 if ok else 400)
                answer = b"ok" if status == 200 else b"invalid_payload"
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}{SECRET_PATH}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def test_a_notification_reaches_the_webhook_as_text_and_blocks(receiver):
    SlackNotifier(receiver.url)("node-fleet prod: scale_up", "launched i-1, i-2\nwhy: unschedulable_pods: 3 pods")
    (body,) = receiver.bodies
    assert body["text"] == "node-fleet prod: scale_up\nlaunched i-1, i-2\nwhy: unschedulable_pods: 3 pods"
    header, section = body["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "node-fleet prod: scale_up"}}
    assert section["text"] == {"type": "mrkdwn", "text": "launched i-1, i-2\nwhy: unschedulable_pods: 3 pods"}


def test_slacks_control_characters_are_escaped_and_long_messages_cut_to_its_limits():
    body = payload("s" * 200, "pod <web> & more\n" + "x" * 4000)
    assert body["text"].startswith("s" * 200 + "\npod &lt;web&gt; &amp; more")
    header, section = body["blocks"]
    assert len(header["text"]["text"]) == 150
    assert len(section["text"]["text"]) == 3000 and section["text"]["text"].endswith("…")


@pytest.mark.parametrize("status", [400, 403, 404, 500])
def test_a_refusal_says_what_slack_answered_and_never_the_url(receiver, status):
    receiver.status = status
    with pytest.raises(SlackError) as err:
        SlackNotifier(receiver.url)("s", "m")
    assert str(err.value) == f"Slack webhook answered {status}: invalid_payload"
    assert "not-a-real-secret" not in "".join(traceback.format_exception(err.value))


def test_an_unreachable_webhook_is_named_by_the_kind_of_error_and_never_the_url(receiver):
    url = receiver.url
    receiver.server.shutdown()
    receiver.server.server_close()
    notifier_ = SlackNotifier(url)
    with pytest.raises(SlackError) as err:
        notifier_("s", "m")
    assert str(err.value) == "Slack webhook unreachable: ConnectionError"
    assert "not-a-real-secret" not in "".join(traceback.format_exception(err.value))
    assert "not-a-real-secret" not in repr(notifier_)


@pytest.fixture
def ssm(aws_mock, aws_session):
    """SSM in moto; Powertools' parameter cache emptied so each test reads its own value."""
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    yield aws_session.client("ssm")
    parameters.clear_caches()


def test_from_env_sends_to_the_topic_and_to_slack(ssm, aws_session, receiver):
    ssm.put_parameter(Name="/node-fleet/slack", Value=receiver.url, Type="SecureString")
    sns, sqs = aws_session.client("sns"), aws_session.client("sqs")
    topic = sns.create_topic(Name="notify")["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    notify = notifier({"NOTIFY_TOPIC_ARN": topic, "SLACK_WEBHOOK_PARAM": "/node-fleet/slack"})
    notify("node-fleet prod: scale_down", "terminated i-3")

    assert [b["text"] for b in receiver.bodies] == ["node-fleet prod: scale_down\nterminated i-3"]
    (message,) = sqs.receive_message(QueueUrl=queue)["Messages"]
    assert json.loads(message["Body"])["Message"] == "terminated i-3"


def test_slack_failing_does_not_keep_the_message_from_the_topic(ssm, aws_session, receiver, monkeypatch):
    receiver.status = 500
    ssm.put_parameter(Name="/node-fleet/slack", Value=receiver.url, Type="SecureString")
    published = []
    sns = aws_session.client("sns")
    topic = sns.create_topic(Name="notify")["TopicArn"]
    real_client = aws_session.client

    def client(name, **kwargs):
        made = real_client(name, **kwargs)
        if name == "sns":
            made.publish = lambda **call: published.append(call)
        return made

    monkeypatch.setattr(boto3, "client", client)
    notify = notifier({"NOTIFY_TOPIC_ARN": topic, "SLACK_WEBHOOK_PARAM": "/node-fleet/slack"})
    with pytest.raises(SlackError):
        notify("subject", "message")
    assert [p["Message"] for p in published] == ["message"]


def test_no_destination_means_no_notifier():
    assert notifier({}) is None


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("http://hooks.slack.com/services/x", "plain http off loopback"),
        ("hooks.slack.com/services/x", "no scheme"),
        ("ftp://hooks.slack.com/x", "not http"),
    ],
)
def test_a_parameter_that_holds_no_webhook_url_is_refused_naming_it_not_its_value(ssm, value, why):
    ssm.put_parameter(Name="/node-fleet/slack", Value=value, Type="SecureString")
    with pytest.raises(ConfigError) as err:
        notifier({"SLACK_WEBHOOK_PARAM": "/node-fleet/slack"})
    assert "SLACK_WEBHOOK_PARAM" in str(err.value) and "/node-fleet/slack" in str(err.value), why
    assert value not in str(err.value), why


def test_a_slack_parameter_name_must_be_a_path():
    with pytest.raises(ConfigError, match="SLACK_WEBHOOK_PARAM='slack' is not an SSM parameter name"):
        notifier({"SLACK_WEBHOOK_PARAM": "slack"})
