"""Run a function of template.yaml in this process, as `sam local invoke` would, without Docker.

    invoke("template.yaml", "AutoscalerFunction", "events/schedule_tick.json", "env.json")

What it mirrors of `sam local invoke FUNCTION --event FILE --env-vars FILE [--parameter-overrides ...]`:
- The function's Handler (`package.module.function`), CodeUri, MemorySize and Timeout, from the function or
  from Globals.Function, and its environment: Globals.Function.Environment.Variables merged with the
  function's own (the function's win, as SAM merges them).
- Intrinsics in those values (`node_fleet.cfn`). What cannot be resolved locally (a Ref to a resource,
  Fn::GetAtt, a parameter without Default) is left out of the environment, where SAM would set it to "".
- The same precedence as SAM for each variable the template declares: the env-vars file's entry for the
  function ({"LogicalId": {"VAR": "value"}}) over its "Parameters" entry (applied to every function) over the
  shell's value over the template's. Variables the template does not declare are ignored, as SAM does.
  Several env-vars files may be given, a later one over an earlier one (`--local`: the stack's, the user's).
- The AWS_* variables SAM sets (AWS_SAM_LOCAL=true, AWS_LAMBDA_FUNCTION_NAME, ..._MEMORY_SIZE, ..._TIMEOUT,
  ..._VERSION, ..._LOG_GROUP_NAME, ..._LOG_STREAM_NAME), and AWS_REGION/AWS_DEFAULT_REGION when unset.
- A Lambda context object (function_name, function_version, invoked_function_arn, memory_limit_in_mb,
  aws_request_id, log_group_name, log_stream_name, get_remaining_time_in_millis()).

`node-fleet invoke` prints the answer alone on stdout (the handler's output goes to stderr); its exit code
says whether the handler answered, answered with a failure, or raised (`node_fleet.exits`).

os.environ and sys.path are changed for the call only and restored afterwards. The handler's module is
imported once per process, like a warm container: a second invoke reuses it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import re
import shlex
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node_fleet import exits
from node_fleet.cfn import ACCOUNT_ID, DEFAULT_REGION, Resolver, Unresolved, cfn_loader, stringify

FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
LAMBDA_DEFAULT_MEMORY_MB = 128
LAMBDA_DEFAULT_TIMEOUT_S = 3
EnvVarsFiles = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None
"""One `--env-vars` file, or several laid over each other (the embedded stack's, then the user's)."""


class LocalInvokeError(ValueError):
    """The template, the function or an input file cannot be used as asked; the message says which."""


# -- reading the template ---------------------------------------------------------------------------------------


def load_template(template_path: str | os.PathLike[str]) -> dict[str, Any]:
    """The template as plain data, short tags in their long JSON forms ({"Ref": ...}, {"Fn::Sub": ...})."""
    import yaml

    path = Path(template_path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LocalInvokeError(f"cannot read template {path}: {exc.strerror or exc}") from None
    try:
        document = yaml.load(text, Loader=cfn_loader())  # nosec B506  # cfn_loader() is a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise LocalInvokeError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise LocalInvokeError(f"{path} is not a CloudFormation template (no Resources mapping)")
    return document


def function_ids(template: Mapping[str, Any]) -> list[str]:
    """Logical ids of the template's Lambda functions, in template order."""
    return [
        logical_id
        for logical_id, resource in template["Resources"].items()
        if isinstance(resource, dict) and resource.get("Type") in FUNCTION_TYPES
    ]


# -- resolving one function -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunctionSpec:
    """What `sam local invoke` needs to know of one function, with its environment resolved."""

    logical_id: str
    function_name: str
    handler: str
    code_dir: Path
    memory_mb: int
    timeout_s: int
    environment: dict[str, str] = field(default_factory=dict)
    unresolved: tuple[str, ...] = ()
    """Variables the template declares but that could not be resolved locally (left out of `environment`)."""

    @property
    def module_name(self) -> str:
        return self.handler.rpartition(".")[0]

    @property
    def function_attr(self) -> str:
        return self.handler.rpartition(".")[2]


def resolve_function(
    template_path: str | os.PathLike[str],
    logical_id: str,
    env_vars: EnvVarsFiles = None,
    *,
    parameter_overrides: Mapping[str, str] | None = None,
    shell_environ: Mapping[str, str] | None = None,
) -> FunctionSpec:
    """Resolve `logical_id` of the template: handler, code folder, memory, timeout and environment.

    `parameter_overrides` are template parameter values, as `sam local invoke --parameter-overrides` takes.
    `shell_environ` (default: os.environ) supplies the shell's values of the variables the template declares.
    """
    template_path = Path(template_path)
    template = load_template(template_path)
    resources = template["Resources"]
    resource = resources.get(logical_id)
    if not isinstance(resource, dict) or resource.get("Type") not in FUNCTION_TYPES:
        raise LocalInvokeError(
            f"{template_path} has no function {logical_id!r}; its functions: {', '.join(function_ids(template)) or 'none'}"
        )
    properties = resource.get("Properties") or {}
    is_serverless = resource["Type"] == FUNCTION_TYPES[0]
    globals_ = ((template.get("Globals") or {}).get("Function") or {}) if is_serverless else {}
    resolver = Resolver(template, parameter_overrides or {})

    def prop(name: str, default: Any = None) -> Any:
        value = properties.get(name, globals_.get(name, default))
        return resolver.resolve(value)

    try:
        handler = prop("Handler")
        code_uri = prop("CodeUri", ".") if is_serverless else prop("Code")
        memory_mb = int(prop("MemorySize", LAMBDA_DEFAULT_MEMORY_MB))
        timeout_s = int(prop("Timeout", LAMBDA_DEFAULT_TIMEOUT_S))
    except (Unresolved, TypeError, ValueError) as exc:
        raise LocalInvokeError(
            f"{logical_id}: cannot resolve Handler/CodeUri/MemorySize/Timeout locally ({exc})"
        ) from None
    if not isinstance(handler, str) or "." not in handler:
        raise LocalInvokeError(f"{logical_id}: Handler must be 'module.function', got {handler!r}")
    if not isinstance(code_uri, str) or code_uri.startswith("s3://"):
        raise LocalInvokeError(f"{logical_id}: CodeUri (or Code) must be a local folder, got {code_uri!r}")
    try:
        function_name = str(resolver.resolve(properties.get("FunctionName", logical_id)))
    except Unresolved:
        function_name = logical_id

    declared: dict[str, Any] = {}
    for source in (globals_, properties):
        variables = ((source.get("Environment") or {}).get("Variables")) or {}
        if not isinstance(variables, dict):
            raise LocalInvokeError(f"{logical_id}: Environment.Variables must be a mapping")
        declared.update(variables)

    overrides = env_vars_for(env_vars, logical_id, function_name)
    shell = os.environ if shell_environ is None else shell_environ
    environment: dict[str, str] = {}
    unresolved: list[str] = []
    for name, raw in declared.items():
        if name in overrides:
            environment[name] = stringify(overrides[name])
        elif name in shell:
            environment[name] = shell[name]
        else:
            try:
                environment[name] = stringify(resolver.resolve(raw))
            except Unresolved:
                unresolved.append(name)
    return FunctionSpec(
        logical_id=logical_id,
        function_name=function_name,
        handler=handler,
        code_dir=(template_path.parent / code_uri).resolve(),
        memory_mb=memory_mb,
        timeout_s=timeout_s,
        environment=environment,
        unresolved=tuple(unresolved),
    )


def env_vars_for(files: EnvVarsFiles, logical_id: str, function_name: str | None = None) -> dict[str, Any]:
    """The env-vars files' values for one function: in each file its "Parameters" entry (for every function),
    then its own entry over it, as SAM reads one file; a later file over an earlier one."""
    if files is None:
        return {}
    merged: dict[str, Any] = {}
    for path in [files] if isinstance(files, (str, os.PathLike)) else files:
        data = _read_env_vars(Path(path))
        merged.update(data.get("Parameters", {}))
        merged.update(data.get(logical_id) or data.get(function_name or logical_id) or {})
    return merged


def _read_env_vars(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LocalInvokeError(f"cannot read env-vars file {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise LocalInvokeError(f"env-vars file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise LocalInvokeError(
            f'env-vars file {path} must map "Parameters" or a function\'s logical id to an object of variables'
        )
    return data


# -- the context and the call -----------------------------------------------------------------------------------


class LambdaContext:
    """The context object the Python runtime passes to a handler, for a local call."""

    def __init__(self, function_name: str, memory_mb: int, timeout_s: int, region: str) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def lambda_environment(spec: FunctionSpec) -> dict[str, str]:
    """Everything invoke() puts in os.environ for the call: the AWS_* variables and the function's own."""
    variables = {
        "AWS_SAM_LOCAL": "true",
        "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout_s),
        "AWS_LAMBDA_FUNCTION_HANDLER": spec.handler,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "$LATEST",
    }
    if not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")):
        variables["AWS_REGION"] = variables["AWS_DEFAULT_REGION"] = DEFAULT_REGION
    variables.update(spec.environment)
    return variables


@contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


@contextmanager
def _code_on_path(code_dir: Path) -> Iterator[None]:
    entry = str(code_dir)
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added and entry in sys.path:
            sys.path.remove(entry)


def invoke(
    template_path: str | os.PathLike[str],
    logical_id: str,
    event_path: str | os.PathLike[str],
    env_vars: EnvVarsFiles = None,
    *,
    parameter_overrides: Mapping[str, str] | None = None,
) -> object:
    """Call `logical_id`'s handler with the event in `event_path`, in this process; return what it returns.

    Exceptions raised by the handler propagate unchanged (the invoker's retry decision is theirs to test).
    """
    spec = resolve_function(template_path, logical_id, env_vars, parameter_overrides=parameter_overrides)
    event = load_event(event_path)
    with patched_environ(lambda_environment(spec)), _code_on_path(spec.code_dir):
        try:
            module = importlib.import_module(spec.module_name)
        except ImportError as exc:
            raise LocalInvokeError(
                f"{logical_id}: cannot import {spec.module_name} from {spec.code_dir}: {exc}"
            ) from exc
        handler = getattr(module, spec.function_attr, None)
        if not callable(handler):
            raise LocalInvokeError(f"{logical_id}: {spec.module_name} has no function {spec.function_attr}")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        context = LambdaContext(spec.function_name, spec.memory_mb, spec.timeout_s, region)
        return handler(event, context)


def load_event(event_path: str | os.PathLike[str]) -> Any:
    path = Path(event_path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LocalInvokeError(f"cannot read event {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise LocalInvokeError(f"event {path} is not valid JSON: {exc}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `node-fleet invoke`, as `sam local invoke` takes them."""
    parser.add_argument("function", metavar="FUNCTION_LOGICAL_ID")
    parser.add_argument("--event", "-e", required=True, type=Path, help="event JSON file (see events/)")
    parser.add_argument("--env-vars", "-n", type=Path, help='overrides: {"LogicalId": {...}} or {"Parameters": {...}}')
    parser.add_argument("--template", "-t", type=Path, default=Path("template.yaml"))
    parser.add_argument(
        "--parameter-overrides",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="template parameter values, as sam takes them: KEY=VALUE or ParameterKey=KEY,ParameterValue=VALUE",
    )


_SAM_PARAMETER = re.compile(r"^ParameterKey=([^,]+),ParameterValue=(.*)$")


def parameter_overrides(items: Sequence[str]) -> dict[str, str]:
    """`--parameter-overrides` as SAM reads it: several words, or one quoted string of them."""
    overrides = {}
    for word in (w for item in items for w in shlex.split(item)):
        match = _SAM_PARAMETER.match(word)
        key, sep, value = (match.group(1), "=", match.group(2)) if match else word.partition("=")
        if not sep or not key:
            raise LocalInvokeError(f"--parameter-overrides: {word!r} is not KEY=VALUE")
        overrides[key] = value
    return overrides


def run(args: argparse.Namespace) -> int:
    try:
        overrides = parameter_overrides(args.parameter_overrides)
        # The handler's log lines and metrics go to stderr: stdout is the answer alone, for scripts.
        with contextlib.redirect_stdout(sys.stderr):
            result = invoke(args.template, args.function, args.event, args.env_vars, parameter_overrides=overrides)
    except LocalInvokeError as exc:
        print(f"local invoke: {exc}", file=sys.stderr)
        return exits.FAILED
    except Exception as exc:  # the handler raised: its own log line has the traceback
        print(f"local invoke: {raised(args.function, exc)}", file=sys.stderr)
        return exits.RAISED
    return answered(result)


def raised(function: str, exc: BaseException) -> str:
    """One line for a handler that raised, with what to do when AWS credentials are missing."""
    from botocore.exceptions import NoCredentialsError

    line = f"{function} raised {type(exc).__name__}: {exc} (Lambda would deliver an asynchronous event again)"
    chain, cause = [], exc
    while cause is not None and cause not in chain:  # a chain may loop back on itself
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    if any(isinstance(e, NoCredentialsError) for e in chain):
        line += (
            "; no AWS credentials: run with --local (an embedded stack), or give real credentials, or point "
            "AWS_ENDPOINT_URL at a moto_server in --env-vars"
        )
    return line


def answered(result: object) -> int:
    """Print the handler's answer as JSON on stdout; its exit code says whether it was a failure."""
    print(json.dumps(result, indent=2, default=str), flush=True)
    if isinstance(result, dict):
        failed_status = result.get("status") in ("rejected", "error")
        status_code = result.get("statusCode")
        if failed_status or (isinstance(status_code, int) and status_code >= 400):
            return exits.ANSWER_FAILED
    return exits.OK
