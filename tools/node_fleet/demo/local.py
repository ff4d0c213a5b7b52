"""`node-fleet invoke FUNCTION --event FILE --local [--env-vars FILE]`: one function of template.yaml,
invoked as `sam local invoke` would (`node_fleet.local_invoke.invoke`), against a freshly started
embedded stack instead of AWS and a cluster; then the stack is stopped.

The stack: moto's server (EC2, DynamoDB, SSM, SNS), the fake Kubernetes API server with two Ready
workers running a small workload and the Flux Kustomizations (Ready), simulated kubelets, and a real
Prometheus scraping them (waited for, so metrics are known). The function's environment is the
stack's env-vars file (template.yaml's variables pointing at the stack), with the user's --env-vars
file over it, as SAM merges them.

A Function URL request (the GitOps hook's webhook, e.g. events/gitops_webhook_progressing.json) is
re-signed first: its Flux event gets a fresh timestamp and `X-Signature` the HMAC-SHA256 of the body
with the stack's key (from SSM), as Flux's notification-controller would sign it; the file's own
signature cannot match a key made for this run.

The handler's output (log lines, EMF metrics) goes to stderr; its return value is printed on stdout
as JSON. Exit status: 0 when the handler returned, 1 when it raised or the input is unusable, 2 when
Prometheus is not installed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from node_fleet.demo.functions import is_function_url_request, logs_to, signed_webhook

LOCAL_HELP = (
    "run against an embedded stack started for this call (moto, a fake Kubernetes API with simulated kubelets, "
    "a real Prometheus: no AWS account, no cluster), then stopped; a Function URL request (the webhook event) is "
    "re-signed with the stack's HMAC key and a fresh timestamp"
)


def merge_env_vars(stack_file: Path, user_file: Path | None, target: Path) -> Path:
    """The stack's env-vars with the user's file over it: per function, and "Parameters" for all."""
    merged: dict[str, dict[str, Any]] = json.loads(stack_file.read_text(encoding="utf-8"))
    if user_file is not None:
        try:
            user = json.loads(user_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"cannot read env-vars file {user_file}: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"env-vars file {user_file} is not valid JSON: {exc}") from None
        if not isinstance(user, dict) or not all(isinstance(v, dict) for v in user.values()):
            raise ValueError(f'env-vars file {user_file} must map "Parameters" or a logical id to an object')
        shared = user.get("Parameters", {})
        for logical_id in merged:
            merged[logical_id].update(shared)
        for logical_id, values in user.items():
            if logical_id != "Parameters":
                merged.setdefault(logical_id, {}).update(values)
    target.write_text(json.dumps(merged, indent=2, sort_keys=True), encoding="utf-8")
    return target


def seed(stack: Any) -> None:
    """A small workload on the seeded workers and the Flux objects, all settled; metrics known."""
    from node_fleet.demo.flux import FakeFlux

    FakeFlux(stack.kube).seed()
    stack.kubelets.add_workload("shop", 4, 600, 1024, nodes=stack.seeded_workers)
    # While Prometheus has no rate yet, the adapter warns at each try: not worth showing.
    with contextlib.suppress(TimeoutError), logs_to(io.StringIO()):
        stack.wait_for_metrics(timeout_s=30)


def run_local(args: argparse.Namespace) -> int:
    from node_fleet.demo.run import PROMETHEUS_HINT, interrupts_ignored, prometheus_installed
    from node_fleet.local_invoke import LocalInvokeError, invoke, load_event
    from node_fleet.stack import aws
    from node_fleet.stack.stack import EmbeddedStack

    if not prometheus_installed():
        print(f"local invoke: {PROMETHEUS_HINT}", file=sys.stderr)
        return 2
    if not Path(args.template).is_file():
        print(
            f"local invoke: no template at {args.template} (run from the project root, or give --template)",
            file=sys.stderr,
        )
        return 1
    try:
        event = load_event(args.event)
    except LocalInvokeError as exc:
        print(f"local invoke: {exc}", file=sys.stderr)
        return 1
    overrides = dict(item.split("=", 1) for item in args.parameter_overrides if "=" in item)
    stack = EmbeddedStack(template=args.template)
    try:
        print("local invoke: starting the embedded stack...", file=sys.stderr, flush=True)
        stack.start()
        seed(stack)
        with tempfile.TemporaryDirectory(prefix="node-fleet-invoke-") as tmp:
            work = Path(tmp)
            env_vars = merge_env_vars(stack.env_vars_file(work / "stack-env.json"), args.env_vars, work / "env.json")
            event_path = args.event
            if is_function_url_request(event):
                event_path = work / Path(args.event).name
                signed = signed_webhook(event, stack.secret(aws.WEBHOOK_HMAC_PARAM))
                event_path.write_text(json.dumps(signed), encoding="utf-8")
                print(
                    "local invoke: Function URL request re-signed with the stack's HMAC key, fresh timestamp",
                    file=sys.stderr,
                )
            with stack.applied(), contextlib.redirect_stdout(sys.stderr):
                result = invoke(args.template, args.function, event_path, env_vars, parameter_overrides=overrides)
    except LocalInvokeError as exc:
        print(f"local invoke: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("local invoke: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the handler raised: the invoker would retry; show it as sam does
        traceback.print_exc(file=sys.stderr)
        print(f"local invoke: {args.function} raised {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        with interrupts_ignored():
            stack.stop()
    print(json.dumps(result, indent=2, default=str), flush=True)
    return 0
