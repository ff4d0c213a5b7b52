"""Security: the template's IAM, the webhook's HMAC through the real hook handler, and a canary secret
that must never appear in a log line or a response.

- IAM (template.yaml, every role and function in it, both branches of every Fn::If): nothing may
  terminate an instance without a tag condition, and no mutating EC2 action is allowed on
  Resource "*". tests/template/test_template_iam.py checks the whole least-privilege design; this
  states the two properties on their own, for any statement that could grant them (wildcards too).
- HMAC: the real `gitops_hooks.handler.lambda_handler` on the embedded stack, keyed by what the stack
  put in SSM: a signed Flux event is accepted once; missing, forged, tampered, malformed, stale (a
  captured request sent after its window), replayed (sent again within it: 409), future-dated and
  oversized ones are refused, and a refused one reads and writes nothing.
- The canary: the session's stack holds CANARY in every secret parameter (conftest.py): the K8s API
  token, the K8s CA, Prometheus' credentials and CA, the webhook HMAC key. Both handlers run a
  representative set of invocations (ticks, manual and alarm events, duplicates, invalid events,
  failing cycles, rejected credentials, malformed secrets, the webhook signed and not) with the root
  logger at DEBUG, as Lambda's ApplicationLogLevel=DEBUG leaves it; the canary appears in no log line (Powertools loggers,
  standard logging, stdout and stderr, EMF), no response, no exception raised to the invoker, and
  nothing stored in the table.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import io
import json
import logging
import traceback
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from autoscaler import handler
from gitops_hooks import handler as hook_handler
from node_fleet.stack import aws
from node_fleet.stack.stack import forget_cached_clients
from stack_driver import load_event
from template_helpers import flatten_if, read_template

# -- IAM -------------------------------------------------------------------------------------------------------

READ_ONLY = ("Describe", "Get", "List")


def iam_statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(logical id, statement) for every statement of every role, policy and function."""
    found = []
    for logical_id, resource in template["Resources"].items():
        kind, props = resource.get("Type"), resource.get("Properties") or {}
        documents: list[Any] = []
        if kind == "AWS::Serverless::Function":
            for policy in flatten_if(props.get("Policies") or []):
                assert isinstance(policy, dict) and "Statement" in policy, (
                    f"{logical_id}: a managed or SAM template policy ({policy!r}) cannot be checked here"
                )
                documents.append(policy)
        elif kind == "AWS::IAM::Role":
            documents += [p["PolicyDocument"] for p in flatten_if(props.get("Policies") or [])]
            assert not props.get("ManagedPolicyArns"), f"{logical_id}: managed policies cannot be checked here"
        elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents.append(props["PolicyDocument"])
        for document in documents:
            found += [(logical_id, s) for s in flatten_if(document["Statement"])]
    return found


def grants(statement: dict[str, Any], action: str) -> bool:
    patterns = flatten_if(statement.get("Action", []))
    return any(fnmatch.fnmatchcase(action.lower(), str(p).lower()) for p in patterns)


def mutating_ec2(statement: dict[str, Any]) -> list[str]:
    """The EC2 actions (or patterns) of a statement that change something."""
    found = []
    for pattern in flatten_if(statement.get("Action", [])):
        service, _, name = str(pattern).partition(":")
        if pattern == "*" or (service.lower() == "ec2" and not name.startswith(READ_ONLY)):
            found.append(str(pattern))
    return found


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return read_template()


def test_the_template_allows_no_not_action_or_not_resource(template):
    for logical_id, statement in iam_statements(template):
        assert statement.get("Effect") == "Allow", f"{logical_id}: {statement.get('Sid')}"
        for key in ("NotAction", "NotResource", "NotPrincipal"):
            assert key not in statement, f"{logical_id}: {statement.get('Sid')} uses {key}"


@pytest.mark.parametrize("action", ["ec2:TerminateInstances", "ec2:StopInstances", "ec2:StartInstances"])
def test_no_unconditioned_terminate_stop_or_start(template, action):
    granting = [(i, s) for i, s in iam_statements(template) if grants(s, action)]
    assert granting, f"the autoscaler must be allowed {action} on its workers"
    for logical_id, statement in granting:
        conditions = statement.get("Condition") or {}
        tags = {k: v for k, v in (conditions.get("StringEquals") or {}).items() if k.startswith("aws:ResourceTag/")}
        assert {"aws:ResourceTag/node-fleet.io/cluster", "aws:ResourceTag/node-fleet.io/role"} <= set(tags), (
            f"{logical_id}: {statement.get('Sid')} allows {action} without this cluster's worker tags"
        )
        assert tags["aws:ResourceTag/node-fleet.io/cluster"] == {"Ref": "ClusterName"}
        assert tags["aws:ResourceTag/node-fleet.io/role"] == "worker"


def test_no_star_resource_on_mutating_ec2_actions(template):
    checked = 0
    for logical_id, statement in iam_statements(template):
        mutating = mutating_ec2(statement)
        if not mutating:
            continue
        checked += 1
        resources = [str(r) for r in flatten_if(statement.get("Resource", []))]
        assert "*" not in resources, f"{logical_id}: {statement.get('Sid')} allows {mutating} on Resource '*'"
    assert checked >= 3, "RunInstances, CreateTags and TerminateInstances statements were seen"


# -- HMAC ------------------------------------------------------------------------------------------------------

MAX_BODY = hook_handler.MAX_BODY_BYTES


def flux_body(sent: datetime | None = None, reason: str = "Progressing", pad: int = 0) -> bytes:
    body = json.loads(load_event("gitops_webhook_progressing.json")["body"])
    body["timestamp"] = (sent or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body["reason"] = reason
    if pad:
        body["message"] = "x" * pad
    return json.dumps(body, separators=(",", ":")).encode()


def sign(body: bytes, key: bytes) -> str:
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def function_url_event(body: bytes, signature: str | None, *, base64_body: bool = False) -> dict[str, Any]:
    event = load_event("gitops_webhook_progressing.json")
    event["headers"] = {k: v for k, v in event["headers"].items() if k != "x-signature"}
    if signature is not None:
        event["headers"]["X-Signature"] = signature
    event["headers"]["content-length"] = str(len(body))
    event["isBase64Encoded"] = base64_body
    event["body"] = base64.b64encode(body).decode() if base64_body else body.decode()
    return event


def webhook_cases(key: bytes) -> dict[str, tuple[dict[str, Any], int]]:
    """name: (Function URL event, the status it must get)."""
    fresh = flux_body()
    old = flux_body(datetime.fromtimestamp(datetime.now(UTC).timestamp() - 600, UTC))
    future = flux_body(datetime.fromtimestamp(datetime.now(UTC).timestamp() + 3600, UTC))
    big = flux_body(pad=MAX_BODY)
    other_key = key + b"-not-the-key"
    return {
        "missing signature": (function_url_event(fresh, None), 401),
        "empty signature": (function_url_event(fresh, ""), 401),
        "forged: signed with another key": (function_url_event(fresh, sign(fresh, other_key)), 401),
        "tampered: signature of another body": (function_url_event(flux_body(reason="Other"), sign(fresh, key)), 401),
        "malformed: no sha256= prefix": (function_url_event(fresh, sign(fresh, key).removeprefix("sha256=")), 401),
        "malformed: another algorithm": (
            function_url_event(fresh, "sha1=" + hmac.new(key, fresh, hashlib.sha1).hexdigest()),
            401,
        ),
        "replayed: a captured request 10 minutes later": (function_url_event(old, sign(old, key)), 400),
        "future-dated": (function_url_event(future, sign(future, key)), 400),
        "oversized, signed": (function_url_event(big, sign(big, key)), 400),
        "oversized, unsigned": (function_url_event(big, None), 400),
    }


def test_the_webhook_accepts_only_fresh_correctly_signed_events_of_bounded_size(cluster, kit):
    key = cluster.stack.secret(aws.WEBHOOK_HMAC_PARAM).encode()
    assert kit.CANARY.encode() in key, "the stack's HMAC key is the canary one"

    for name, (event, status) in webhook_cases(key).items():
        reads = len(cluster.kube.requests)
        answer = cluster.hook(event)
        assert answer["statusCode"] == status, f"{name}: {answer}"
        assert cluster.gate_item() is None, f"{name}: a refused request wrote the gate"
        assert len(cluster.kube.requests) == reads, f"{name}: a refused request read the cluster"
        assert "blocked" not in json.loads(answer["body"]), name

    fresh, other = flux_body(), flux_body(reason="Progressing", pad=1)
    for event in (
        function_url_event(fresh, sign(fresh, key)),
        function_url_event(other, sign(other, key), base64_body=True),
    ):
        accepted = cluster.hook(event)
        assert accepted["statusCode"] == 202 and json.loads(accepted["body"])["blocked"] is True, accepted
    gate = cluster.gate_item()
    assert gate is not None and gate["event_reason"]["name"] == "apps", gate

    # A captured request sent again within its freshness window: refused, as text or as base64.
    reads = len(cluster.kube.requests)
    for replay in (
        function_url_event(fresh, sign(fresh, key)),
        function_url_event(fresh, sign(fresh, key), base64_body=True),
    ):
        refused = cluster.hook(replay)
        assert refused["statusCode"] == 409, refused
        assert "blocked" not in json.loads(refused["body"])
    assert len(cluster.kube.requests) == reads, "a replay reads nothing from the cluster"
    # Just under the size limit, signed: accepted.
    edge = flux_body(pad=MAX_BODY - len(flux_body()) - 10)
    assert len(edge) <= MAX_BODY
    assert cluster.hook(function_url_event(edge, sign(edge, key)))["statusCode"] == 202


# -- the canary ----------------------------------------------------------------------------------------------


class Capture:
    """Every channel a Lambda's output reaches CloudWatch through, for the test's duration: the
    Powertools loggers' stream, standard logging (the root logger at DEBUG, as Lambda's
    ApplicationLogLevel=DEBUG sets it),
    stdout and stderr (capsys: EMF documents, prints, warnings), plus the responses and the
    exceptions raised to the invoker."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.powertools = io.StringIO()
        self.logging = io.StringIO()
        self.outputs: list[str] = []
        self.std = ""
        self._undo: list[Any] = []
        for module in (handler, hook_handler):
            monkeypatch.setattr(module.logger.registered_handler, "stream", self.powertools)
            self._level(module.logger, logging.DEBUG)
        stream = logging.StreamHandler(self.logging)
        stream.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        root = logging.getLogger()
        root.addHandler(stream)
        self._undo.append(lambda: root.removeHandler(stream))
        # As Lambda sets it when the function's ApplicationLogLevel is DEBUG: every logger that sets no
        # level of its own (botocore, urllib3...) logs at DEBUG too.
        self._level(root, logging.DEBUG)

    def _level(self, logger: Any, level: int) -> None:
        before = logger.level if isinstance(logger, logging.Logger) else logger.log_level
        logger.setLevel(level)
        self._undo.append(lambda: logger.setLevel(before))

    def close(self) -> None:
        for undo in reversed(self._undo):
            undo()

    def call(self, what: str, function: Any, *args: Any) -> Any:
        """Run one invocation; its answer, or the exception it raised, is captured."""
        try:
            answer = function(*args)
        except Exception as exc:
            self.outputs.append(f"{what} raised: " + "".join(traceback.format_exception(exc)) + repr(exc.args))
            return exc
        self.outputs.append(f"{what}: " + json.dumps(answer, default=str))
        return answer

    def text(self) -> str:
        captured = self.capsys.readouterr()
        self.std += captured.out + captured.err
        return "\n".join([self.powertools.getvalue(), self.logging.getvalue(), self.std, *self.outputs])


@pytest.fixture
def capture(monkeypatch, capsys):
    c = Capture(monkeypatch, capsys)
    yield c
    c.close()


def rotate(cluster: Any, name: str, value: str) -> None:
    """Put `value` in the SSM parameter `name`, and let the next invocation be a new container
    that reads it (Powertools' cached parameters dropped)."""
    cluster.stack.clients["ssm"].put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
    forget_cached_clients()
    cluster.cold()


def test_the_canary_secret_never_appears_in_a_log_line_a_response_or_the_table(cluster, kit, capture):
    CANARY, K8S_CA_PARAM, PROMETHEUS_CA_PARAM = kit.CANARY, kit.K8S_CA_PARAM, kit.PROMETHEUS_CA_PARAM
    tick_event, manual_event, alarm_event = kit.tick_event, kit.manual_event, kit.alarm_event
    stack = cluster.stack
    secrets = {name: stack.secret(name) for name in (*stack.secrets, K8S_CA_PARAM, PROMETHEUS_CA_PARAM)}
    assert set(secrets) >= {aws.K8S_TOKEN_PARAM, aws.WEBHOOK_HMAC_PARAM, K8S_CA_PARAM, PROMETHEUS_CA_PARAM}
    assert aws.PROMETHEUS_AUTH_PARAM in secrets, "this Python can hash a bcrypt password: Prometheus runs with auth"
    assert all(CANARY in value for value in secrets.values()), secrets.keys()
    cluster.set(SCALE_DOWN_UNNEEDED_TIME_S="0", DRY_RUN="false")
    busy, _ = stack.seeded_workers
    stack.kubelets.add_workload("web", replicas=1, cpu_m=300, nodes=[busy])
    cluster.metrics_ready()
    key = secrets[aws.WEBHOOK_HMAC_PARAM].encode()
    auto, hook = handler.lambda_handler, hook_handler.lambda_handler

    def ctx(name: str = "node-fleet-AutoscalerFunction"):
        return kit.context(name)

    # The autoscaler: a cold tick that acts (scale-down of the idle worker), manual and alarm
    # events, a duplicate, invalid events, an invalid setting.
    wired = cluster.wiring()
    assert wired is not None
    acted = capture.call("tick", auto, tick_event(), ctx())
    assert acted["action"] == "scale_down", acted
    up = manual_event("scale_up", count=1, reason="canary check")
    capture.call("manual", auto, up, ctx())
    capture.call("manual duplicate", auto, up, ctx())
    capture.call("direct invoke", auto, {"action": "pause"}, ctx())
    capture.call("direct invoke", auto, {"action": "resume"}, ctx())
    capture.call("alarm", auto, alarm_event("ALARM"), ctx())
    capture.call("alarm ok", auto, alarm_event("OK"), ctx())
    capture.call("invalid manual", auto, kit.load_event("manual_invalid_count.json", id=str(uuid.uuid4())), ctx())
    capture.call("invalid event", auto, {"source": "nope", "detail-type": "x", "id": "1"}, ctx())
    cluster.set(MAX_NODES="many")
    capture.call("invalid setting", auto, tick_event(), ctx())
    cluster.set(MAX_NODES="6")

    # Failing cycles: the API server errs (retryable), refuses the token (permanent), times out.
    stack.kube.fail_next("/api/v1/nodes", count=1, status=500)
    failed = capture.call("api 500", auto, tick_event(), ctx())
    assert isinstance(failed, Exception), failed
    stack.kube.fail_next("/api/v1/nodes", count=1, status=401)
    refused = capture.call("api 401", auto, tick_event(), ctx())
    assert refused["status"] == "error", refused

    # Secrets that are wrong or malformed, each read by a new container: Prometheus refuses the
    # password; a token with whitespace, a CA that is not PEM, credentials without a colon.
    good_auth = secrets[aws.PROMETHEUS_AUTH_PARAM]
    rotate(cluster, aws.PROMETHEUS_AUTH_PARAM, good_auth + "wrong")
    unknown = capture.call("prometheus 401", auto, tick_event(), ctx())
    assert "metrics_unknown" in [r["code"] for r in unknown["reasons"]], unknown
    rotate(cluster, aws.PROMETHEUS_AUTH_PARAM, f"{CANARY}nocolon")
    capture.call("malformed prometheus credentials", auto, tick_event(), ctx())
    rotate(cluster, aws.PROMETHEUS_AUTH_PARAM, good_auth)
    rotate(cluster, aws.K8S_TOKEN_PARAM, f"{CANARY} with a space")
    capture.call("malformed token", auto, tick_event(), ctx())
    capture.call("hook with malformed token", hook, tick_event("gitops_schedule_tick.json"), ctx("hook"))
    rotate(cluster, aws.K8S_TOKEN_PARAM, secrets[aws.K8S_TOKEN_PARAM])
    rotate(cluster, K8S_CA_PARAM, f"{CANARY} is not a certificate")
    capture.call("malformed CA", auto, tick_event(), ctx())
    rotate(cluster, K8S_CA_PARAM, secrets[K8S_CA_PARAM])
    stack.kube.hang_next("/api/v1/nodes", count=1, seconds=2)
    cluster.set(K8S_TIMEOUT_S="1")
    cluster.cold()
    capture.call("api timeout", auto, tick_event(), ctx())

    # The hook: its poll, a failing poll, the webhook signed and not, an invalid event.
    capture.call("hook poll", hook, tick_event("gitops_schedule_tick.json"), ctx("hook"))
    stack.kube.fail_next("/apis/kustomize.toolkit.fluxcd.io/", count=1, status=500)
    capture.call("hook poll failing", hook, tick_event("gitops_schedule_tick.json"), ctx("hook"))
    for name, (event, status) in webhook_cases(key).items():
        answer = capture.call(f"webhook {name}", hook, event, ctx("hook"))
        assert answer["statusCode"] == status, (name, answer)
    fresh = flux_body()
    signed = capture.call("webhook signed", hook, function_url_event(fresh, sign(fresh, key)), ctx("hook"))
    assert signed["statusCode"] == 202, signed
    capture.call("hook invalid event", hook, {"nothing": "here"}, ctx("hook"))

    # Positive controls: each channel is captured (so an absent canary means something).
    handler.logger.debug("capture-check-powertools")
    logging.getLogger("autoscaler.adapters.prometheus").debug("capture-check-logging")
    print("capture-check-stdout")
    text = capture.text()
    for marker in ("capture-check-powertools", "capture-check-logging", "capture-check-stdout", '"_aws"', "decision"):
        assert marker in text, f"{marker} was not captured"

    user, password = good_auth.split(":", 1)
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    for needle in (CANARY, basic, base64.b64encode(key).decode(), key.hex()):
        assert needle not in text, f"a secret ({needle[:12]}...) leaked: " + _around(text, needle)
    items = stack.clients["dynamodb"].scan(TableName=cluster.table)["Items"]
    assert items and CANARY not in json.dumps(items), "a secret was stored in the table"


def _around(text: str, needle: str, width: int = 300) -> str:
    i = text.find(needle)
    return text[max(0, i - width) : i + len(needle) + width]
