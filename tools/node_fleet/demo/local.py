"""`node-fleet invoke FUNCTION --event FILE --local [--env-vars FILE]`: one function of template.yaml,
invoked as `sam local invoke` would (`node_fleet.local_invoke.invoke`), against a freshly started
embedded stack instead of AWS and a cluster; then the stack is stopped.

The stack: moto's server (EC2, DynamoDB, SSM, SNS), the fake Kubernetes API server with two Ready
workers running a small workload and the Flux Kustomizations (Ready), simulated kubelets, and a real
Prometheus scraping them (waited for, so metrics are known). The function's environment is the
stack's env-vars file (template.yaml's variables pointing at the stack), with the user's --env-vars
file over it (`node_fleet.local_invoke.env_vars_for` lays them).

A Function URL request (the GitOps hook's webhook, e.g. events/gitops_webhook_progressing.json) is
re-signed first: its Flux event gets a fresh timestamp and `X-Signature` the HMAC-SHA256 of the body
with the stack's key (from SSM), as Flux's notification-controller would sign it; the file's own
signature cannot match a key made for this run.

`--parameter-overrides` are honoured for the variables they change, over the stack's values, except
the ones the stack sets itself (its endpoints, the cluster's name, the table), which are refused.

The handler's output (log lines, EMF metrics) goes to stderr; its return value is printed on stdout
as JSON. Exit status (`node_fleet.exits`): 0 when the handler answered, 3 when it answered with a
rejection or an error, 4 when it raised, 1 when the input is unusable, 2 when Prometheus is not
installed, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from node_fleet import exits
from node_fleet.demo.functions import is_function_url_request, logs_to, signed_webhook

LOCAL_HELP = (
    "run against an embedded stack started for this call (moto, a fake Kubernetes API with simulated kubelets, "
    "a real Prometheus: no AWS account, no cluster), then stopped; a Function URL request (the webhook event) is "
    "re-signed with the stack's HMAC key and a fresh timestamp"
)


def honoured_overrides(template: Path, logical_id: str, overrides: dict[str, str], stack_env: Path) -> dict[str, str]:
    """The variables the user's --parameter-overrides change, to lay over the stack's env-vars (which hold
    every variable). A variable the stack sets itself (an endpoint, the cluster's name, the table) is refused:
    the stack would not answer under another value."""
    from node_fleet.local_invoke import LocalInvokeError, env_vars_for, resolve_function

    if not overrides:
        return {}
    before = resolve_function(template, logical_id, shell_environ={}).environment
    after = resolve_function(template, logical_id, parameter_overrides=overrides, shell_environ={}).environment
    changed = {name: value for name, value in after.items() if before.get(name) != value}
    stack = env_vars_for(stack_env, logical_id)
    taken = sorted(name for name in changed if name in stack and stack[name] != before.get(name))
    if taken:
        raise LocalInvokeError(
            f"--parameter-overrides cannot change {', '.join(taken)} with --local: the embedded stack sets "
            "them (give the others, or run without --local)"
        )
    return changed


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
    from node_fleet.local_invoke import LocalInvokeError, answered, invoke, load_event, parameter_overrides, raised
    from node_fleet.stack import aws
    from node_fleet.stack.stack import EmbeddedStack

    if not prometheus_installed():
        print(f"local invoke: {PROMETHEUS_HINT}", file=sys.stderr)
        return exits.CANNOT_START
    if not Path(args.template).is_file():
        print(
            f"local invoke: no template at {args.template} (run from the project root, or give --template)",
            file=sys.stderr,
        )
        return exits.FAILED
    try:
        event = load_event(args.event)
        overrides = parameter_overrides(args.parameter_overrides)
    except LocalInvokeError as exc:
        print(f"local invoke: {exc}", file=sys.stderr)
        return exits.FAILED
    stack = EmbeddedStack(template=args.template)
    try:
        print("local invoke: starting the embedded stack...", file=sys.stderr, flush=True)
        stack.start()
        seed(stack)
        with tempfile.TemporaryDirectory(prefix="node-fleet-invoke-") as tmp:
            work = Path(tmp)
            stack_env = stack.env_vars_file(work / "stack-env.json")
            changed = honoured_overrides(args.template, args.function, overrides, stack_env)
            parameters_env = work / "parameters-env.json"
            parameters_env.write_text(json.dumps({args.function: changed}), encoding="utf-8")
            # Later over earlier: the stack's values, what the overrides change, the user's file (SAM too puts
            # an env-vars file over parameters).
            env_vars = [stack_env, parameters_env, *([args.env_vars] if args.env_vars else [])]
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
                try:
                    result = invoke(args.template, args.function, event_path, env_vars, parameter_overrides=overrides)
                except LocalInvokeError:
                    raise
                except Exception as exc:  # the handler raised: its own log line has the traceback
                    print(f"local invoke: {raised(args.function, exc)}", file=sys.stderr)
                    return exits.RAISED
    except LocalInvokeError as exc:
        print(f"local invoke: {exc}", file=sys.stderr)
        return exits.FAILED
    except KeyboardInterrupt:
        print("local invoke: interrupted", file=sys.stderr)
        return exits.INTERRUPTED
    except Exception as exc:  # the stack could not start or be read: no handler ran
        print(f"local invoke: the embedded stack failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exits.FAILED
    finally:
        with interrupts_ignored():
            stack.stop()
    return answered(result)
