"""Every function of template.yaml, invoked as `sam local invoke` would (node_fleet.local_invoke:
handler, code folder and environment resolved from the template, an env-vars file in SAM's shape)
with every file of events/, against the embedded stack (issue 3).

Files named gitops_* go to GitopsHookFunction, the others to AutoscalerFunction, in name order
on one cluster. Valid events succeed (no "error" or "rejected" status; the hook's webhook answers
202); the invalid one is rejected naming the field, and changes nothing: no EC2 call that starts or
stops anything, no write to the API server, no item in the table. The webhook's body is signed with
the HMAC key the hook reads from SSM, with a fresh timestamp, as Flux's notification-controller
would sign it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from autoscaler import handler
from gitops_hooks import handler as hook_handler
from node_fleet.local_invoke import function_ids, invoke, load_template, resolve_function
from node_fleet.stack import aws
from stack_driver import EVENTS, ROOT, apply_environ

TEMPLATE = ROOT / "template.yaml"
EVENT_FILES = sorted(EVENTS.glob("*.json"))
INVALID = {"manual_invalid_count.json": "detail.count"}


def function_for(path: Path) -> str:
    return "GitopsHookFunction" if path.name.startswith("gitops_") else "AutoscalerFunction"


@pytest.fixture(scope="module")
def stack(embedded):
    """The module's stack, its environment applied for the whole module (AWS_ENDPOINT_URL and the
    fake credentials are not template variables: SAM takes them from the shell, and so does invoke)."""
    with pytest.MonkeyPatch.context() as mp:
        apply_environ(mp, embedded.environ)
        yield embedded


@pytest.fixture
def cold(monkeypatch):
    """Each invocation in a cold container: no cached wiring."""
    monkeypatch.setattr(handler, "_wiring", None)
    monkeypatch.setattr(hook_handler, "_wiring", None)


def test_every_function_resolves_to_an_importable_handler_with_the_stacks_environment(stack):
    env_vars = stack.env_vars_file()
    ids = function_ids(load_template(TEMPLATE))
    assert ids == ["AutoscalerFunction", "GitopsHookFunction"]
    assert {function_for(p) for p in EVENT_FILES} == set(ids)
    for logical_id in ids:
        spec = resolve_function(TEMPLATE, logical_id, env_vars)
        assert spec.unresolved == (), f"{logical_id}: {spec.unresolved} would be empty under invoke"
        assert spec.environment["STATE_TABLE"] == stack.account.table_name
        assert spec.environment["K8S_API_URL"] == stack.kube.url


def signed_webhook(path: Path, key: str, tmp_path: Path) -> Path:
    """The Function URL request with a fresh timestamp in its Flux event, signed with `key`."""
    event = json.loads(path.read_text())
    body = json.loads(event["body"])
    body["timestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    raw = json.dumps(body, separators=(",", ":"))
    event["body"] = raw
    event["headers"]["content-length"] = str(len(raw))
    event["headers"]["x-signature"] = "sha256=" + hmac.new(key.encode(), raw.encode(), hashlib.sha256).hexdigest()
    out = tmp_path / path.name
    out.write_text(json.dumps(event))
    return out


def world(stack) -> dict[str, Any]:
    """What an invocation could change: worker instances, the API's objects (as written through
    HTTP: the simulated kubelets do not count), the table's items."""
    items = stack.clients["dynamodb"].scan(TableName=stack.account.table_name, ConsistentRead=True)["Items"]
    instances = {
        i["InstanceId"]: i["State"]["Name"]
        for i in stack.instances(states=("pending", "running", "shutting-down", "terminated"))
    }
    writes = [(r.method, r.path) for r in stack.kube.requests if r.method != "GET"]
    return {"instances": instances, "writes": writes, "items": sorted(json.dumps(i, sort_keys=True) for i in items)}


@pytest.mark.parametrize("path", EVENT_FILES, ids=lambda p: f"{function_for(p)}-{p.stem}")
def test_each_event_file_through_its_function(stack, cold, path, tmp_path):
    logical_id = function_for(path)
    event_path = path
    if path.name == "gitops_webhook_progressing.json":
        event_path = signed_webhook(path, stack.secret(aws.WEBHOOK_HMAC_PARAM), tmp_path)
    before = world(stack)

    result = invoke(TEMPLATE, logical_id, event_path, stack.env_vars_file(tmp_path / "env.json"))

    assert isinstance(result, dict), result
    if path.name in INVALID:
        assert result["status"] == "rejected" and INVALID[path.name] in result["error"], result
        assert world(stack) == before, "an invalid event changed something"
        return
    if "statusCode" in result:  # the hook's Function URL answer
        assert result["statusCode"] == 202, result
        assert json.loads(result["body"])["blocked"] is True, "a Progressing event holds scale-down"
    else:
        assert result.get("status") not in ("error", "rejected"), result
        assert result["status"] in ("acted", "ignored", "ok"), result
    lease = {"pk": {"S": f"cluster#{stack.cluster_name}"}, "sk": {"S": "lease"}}
    assert "Item" not in stack.clients["dynamodb"].get_item(TableName=stack.account.table_name, Key=lease)


def test_the_invocations_acted_on_the_stack(stack):
    """After the files above (in name order): the alarm and the manual scale-ups launched workers,
    the hook wrote the gate item, and the alarm and manual events left their idempotency records."""
    items = stack.clients["dynamodb"].scan(TableName=stack.account.table_name)["Items"]
    keys = {(i["pk"]["S"], i["sk"]["S"]) for i in items}
    assert (f"cluster#{stack.cluster_name}", "state") in keys and (f"gate#{stack.cluster_name}", "gate") in keys
    # the ALARM event, and the manual pause, resume, scale_down, scale_up and set
    assert sum(1 for pk, _ in keys if pk.startswith("idempotency#")) == 6
    launched = [i for i in stack.instances() if any(t["Key"] == "node-fleet.io/launch-token" for t in i["Tags"])]
    assert launched, "the ALARM event (scale up by 2) and the manual scale-ups launched workers"
