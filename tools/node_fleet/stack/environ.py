"""The functions' environment as template.yaml sets it, resolved for the embedded stack."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from node_fleet.stack.errors import StackError


def function_environs(
    template: Path, parameters: Mapping[str, str], resources: Mapping[str, str], settings: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    """Every function's Environment.Variables (logical id -> variables), resolved by
    `node_fleet.local_invoke` with these template `parameters`; `resources` fill in what
    CloudFormation would (Refs), and `settings` override the variables a function has."""
    from node_fleet.local_invoke import function_ids, load_template, resolve_function

    functions: dict[str, dict[str, str]] = {}
    for logical_id in function_ids(load_template(template)):
        spec = resolve_function(template, logical_id, parameter_overrides=parameters, shell_environ={})
        env = dict(spec.environment)
        for name in spec.unresolved:
            if name not in resources:
                raise StackError(f"{logical_id}: {name} cannot be resolved locally; the stack must set it")
            env[name] = resources[name]
        env.update({k: v for k, v in settings.items() if k in env})
        functions[logical_id] = env
    return functions


def merged(functions: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """One environment for both functions: the first function's values win (the autoscaler)."""
    out: dict[str, str] = {}
    for env in reversed(list(functions.values())):
        out.update(env)
    return out


@contextlib.contextmanager
def applied(environ: Mapping[str, str]) -> Iterator[None]:
    """os.environ with `environ` applied for the block (AWS_PROFILE and the like unset), then restored."""
    names = {*environ, "AWS_PROFILE", "AWS_DEFAULT_PROFILE"}
    saved = {name: os.environ.get(name) for name in names}
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_DEFAULT_PROFILE", None)
    os.environ.update(environ)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
