"""The template's functions called in this process against the embedded stack, and their events.

    functions = Functions(stack, sink=open("out/demo.log", "w"))
    with stack.applied():
        functions.call("AutoscalerFunction", tick("schedule_tick.json"))

Each function is resolved once from template.yaml by `node_fleet.local_invoke` (its Handler path,
CodeUri, memory, timeout and environment, with the stack's env-vars file), then every call runs like
`sam local invoke`: os.environ holds the function's environment (and the AWS_* variables SAM sets)
for the call, the handler is imported from the function's code folder once (a warm container), and
it gets a Lambda context. What the handlers print (Powertools' JSON log lines and EMF metrics) goes
to `sink` instead of the terminal.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import importlib
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from node_fleet.local_invoke import (
    FunctionSpec,
    LambdaContext,
    function_ids,
    lambda_environment,
    load_template,
    patched_environ,
    resolve_function,
)

EVENTS = Path(__file__).resolve().parents[3] / "events"
AUTOSCALER = "AutoscalerFunction"
HOOK = "GitopsHookFunction"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_file(name: str) -> dict[str, Any]:
    """One of events/*.json, parsed."""
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def fresh(event: Mapping[str, Any]) -> dict[str, Any]:
    """An EventBridge event as it would be delivered now: a new id and the current time."""
    out = copy.deepcopy(dict(event))
    out["id"] = str(uuid.uuid4())
    out["time"] = now_iso()
    return out


def tick(name: str = "schedule_tick.json") -> dict[str, Any]:
    """A schedule tick (events/schedule_tick.json, or gitops_schedule_tick.json for the hook), fresh."""
    return fresh(event_file(name))


def alarm(alarm_name: str | None = None, state: str = "ALARM") -> dict[str, Any]:
    """events/alarm_state_alarm.json, fresh, for `alarm_name` (default: the file's, which the
    template's default ALARM_ACTIONS maps to a scale-up)."""
    event = fresh(event_file("alarm_state_alarm.json"))
    if alarm_name:
        event["detail"]["alarmName"] = alarm_name
    event["detail"]["state"]["value"] = state
    return event


def is_function_url_request(event: Any) -> bool:
    """A Lambda Function URL request (payload 2.0), as the GitOps hook's webhook receives."""
    return (
        isinstance(event, Mapping)
        and isinstance(event.get("requestContext"), Mapping)
        and ("http" in event["requestContext"])
    )


def signed_webhook(event: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The Function URL request with a fresh timestamp in its Flux event (when the body has one),
    signed as Flux's notification-controller signs for a generic-hmac Provider:
    `X-Signature: sha256=<HMAC-SHA256(key, body)>`."""
    out = copy.deepcopy(dict(event))
    body = out.get("body") or ""
    try:
        parsed = json.loads(body)
    except (TypeError, ValueError):
        parsed = None
    if isinstance(parsed, dict):
        if "timestamp" in parsed:
            parsed["timestamp"] = now_iso()
        body = json.dumps(parsed, separators=(",", ":"))
    out["body"] = body
    out["isBase64Encoded"] = False
    headers = {str(k).lower(): v for k, v in (out.get("headers") or {}).items()}
    headers["content-length"] = str(len(body.encode()))
    headers["x-signature"] = "sha256=" + hmac.new(key.encode(), body.encode(), hashlib.sha256).hexdigest()
    out["headers"] = headers
    return out


@contextlib.contextmanager
def handler_output(sink: IO[str] | None) -> Iterator[None]:
    """What the handlers print (Powertools' EMF metrics; its Logger too, when imported here) goes to
    `sink`; None leaves stdout alone."""
    if sink is None:
        yield
        return
    with contextlib.redirect_stdout(sink):
        yield


@contextlib.contextmanager
def logs_to(sink: IO[str], level: int = logging.WARNING) -> Iterator[None]:
    """Standard logging (the adapters' warnings, the stack's messages) to `sink` for the block,
    instead of Python's last-resort handler on stderr."""
    root = logging.getLogger()
    handler = logging.StreamHandler(sink)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    previous = root.level
    root.addHandler(handler)
    root.setLevel(min(previous, level) if previous else level)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


class Functions:
    """The template's functions, resolved against the stack's environment; see the module docstring.

    `before_call(logical_id, event)` runs right before each handler call (a benchmark's clock).
    Call `refresh()` after `stack.reset()` (its ids change) to resolve them again, as cold containers.
    """

    def __init__(
        self,
        stack: Any,
        *,
        template: str | os.PathLike[str] | None = None,
        sink: IO[str] | None = None,
        before_call: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.stack = stack
        self.template = Path(template) if template is not None else Path(stack.template)
        self.sink = sink
        self.before_call = before_call
        self.specs: dict[str, FunctionSpec] = {}
        self._handlers: dict[str, Callable[[Any, Any], Any]] = {}
        self.refresh()

    def refresh(self) -> None:
        """Resolve every function again from the template and the stack's env-vars file, and drop
        the handlers' cached wiring (a new container for each)."""
        env_vars = self.stack.env_vars_file()
        self.specs = {
            logical_id: resolve_function(self.template, logical_id, env_vars)
            for logical_id in function_ids(load_template(self.template))
        }
        for spec in self.specs.values():
            module = sys.modules.get(spec.module_name)
            if module is not None and hasattr(module, "_wiring"):
                module._wiring = None

    def call(self, logical_id: str, event: Any) -> Any:
        """The handler's return value; what it raises propagates (the invoker's retry is the caller's)."""
        spec = self.specs[logical_id]
        with patched_environ(lambda_environment(spec)), handler_output(self.sink):
            handler = self._handler(spec)
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
            context = LambdaContext(spec.function_name, spec.memory_mb, spec.timeout_s, region)
            if self.before_call is not None:
                self.before_call(logical_id, event)
            return handler(event, context)

    def _handler(self, spec: FunctionSpec) -> Callable[[Any, Any], Any]:
        found = self._handlers.get(spec.logical_id)
        if found is not None:
            return found
        entry = str(spec.code_dir)
        added = entry not in sys.path
        if added:
            sys.path.insert(0, entry)
        try:
            module = importlib.import_module(spec.module_name)
        finally:
            if added and entry in sys.path:
                sys.path.remove(entry)
        handler = getattr(module, spec.function_attr)
        _redirect_powertools_logger(module, self.sink)
        self._handlers[spec.logical_id] = handler
        return handler


def _redirect_powertools_logger(module: Any, sink: IO[str] | None) -> None:
    """Powertools' Logger binds sys.stdout when its module is imported: point it at `sink`, in
    case the module was imported before (in a test process, say)."""
    logger = getattr(module, "logger", None)
    if sink is None or logger is None:
        return
    with contextlib.suppress(Exception):
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(sink)
