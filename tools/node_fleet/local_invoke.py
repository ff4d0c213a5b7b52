"""Run a function of template.yaml in this process, as `sam local invoke` would, without Docker.

    invoke("template.yaml", "AutoscalerFunction", "events/schedule_tick.json", "env.json")

What it mirrors of `sam local invoke FUNCTION --event FILE --env-vars FILE [--parameter-overrides ...]`:
- The function's Handler (`package.module.function`), CodeUri, MemorySize and Timeout, from the function or
  from Globals.Function, and its environment: Globals.Function.Environment.Variables merged with the
  function's own (the function's win, as SAM merges them).
- Intrinsics in those values: Ref to a parameter (its override or Default) or to a pseudo parameter,
  Fn::Sub, Fn::Join, Fn::Select, Fn::If over Conditions (Fn::Equals/Not/And/Or). What cannot be resolved
  locally (a Ref to a resource, Fn::GetAtt, a parameter without Default) is left out of the environment,
  where SAM would set it to "" instead.
- The same precedence as SAM for each variable the template declares: the env-vars file's entry for the
  function ({"LogicalId": {"VAR": "value"}}) over its "Parameters" entry (applied to every function) over the
  shell's value over the template's. Variables the template does not declare are ignored, as SAM does.
- The AWS_* variables SAM sets (AWS_SAM_LOCAL=true, AWS_LAMBDA_FUNCTION_NAME, ..._MEMORY_SIZE, ..._TIMEOUT,
  ..._VERSION, ..._LOG_GROUP_NAME, ..._LOG_STREAM_NAME), and AWS_REGION/AWS_DEFAULT_REGION when unset.
- A Lambda context object (function_name, function_version, invoked_function_arn, memory_limit_in_mb,
  aws_request_id, log_group_name, log_stream_name, get_remaining_time_in_millis()).

os.environ and sys.path are changed for the call only and restored afterwards. The handler's module is
imported once per process, like a warm container: a second invoke reuses it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
LIST_PARAMETER = re.compile(r"^(CommaDelimitedList|List<.+>)$")
ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
STACK_NAME = "local"
LAMBDA_DEFAULT_MEMORY_MB = 128
LAMBDA_DEFAULT_TIMEOUT_S = 3
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class LocalInvokeError(Exception):
    """The template, the function or an input file cannot be used as asked; the message says which."""


class _Unresolved(Exception):
    """An intrinsic that only CloudFormation can resolve (a resource's Ref or attribute, a missing value)."""


# -- reading the template ---------------------------------------------------------------------------------------


def _cfn_loader() -> type:
    import yaml  # PyYAML comes with kubernetes; imported here so the Lambda never pays for it

    class CfnLoader(yaml.SafeLoader):
        """A SafeLoader that turns CloudFormation's short tags (!Ref, !Sub, !GetAtt...) into their long forms."""

    def intrinsic(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
        name = "Ref" if suffix == "Ref" else "Condition" if suffix == "Condition" else f"Fn::{suffix}"
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if suffix == "GetAtt":
                value = str(value).split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    CfnLoader.add_multi_constructor("!", intrinsic)
    return CfnLoader


def load_template(template_path: str | os.PathLike[str]) -> dict[str, Any]:
    """The template as plain data, short tags in their long JSON forms ({"Ref": ...}, {"Fn::Sub": ...})."""
    import yaml

    path = Path(template_path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LocalInvokeError(f"cannot read template {path}: {exc.strerror or exc}") from None
    try:
        document = yaml.load(text, Loader=_cfn_loader())  # nosec B506  # _cfn_loader() is a SafeLoader subclass
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
    env_vars_path: str | os.PathLike[str] | None = None,
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
    resolver = _Resolver(template, parameter_overrides or {})

    def prop(name: str, default: Any = None) -> Any:
        value = properties.get(name, globals_.get(name, default))
        return resolver.resolve(value)

    try:
        handler = prop("Handler")
        code_uri = prop("CodeUri", ".") if is_serverless else prop("Code")
        memory_mb = int(prop("MemorySize", LAMBDA_DEFAULT_MEMORY_MB))
        timeout_s = int(prop("Timeout", LAMBDA_DEFAULT_TIMEOUT_S))
    except (_Unresolved, TypeError, ValueError) as exc:
        raise LocalInvokeError(
            f"{logical_id}: cannot resolve Handler/CodeUri/MemorySize/Timeout locally ({exc})"
        ) from None
    if not isinstance(handler, str) or "." not in handler:
        raise LocalInvokeError(f"{logical_id}: Handler must be 'module.function', got {handler!r}")
    if not isinstance(code_uri, str) or code_uri.startswith("s3://"):
        raise LocalInvokeError(f"{logical_id}: CodeUri (or Code) must be a local folder, got {code_uri!r}")
    try:
        function_name = str(resolver.resolve(properties.get("FunctionName", logical_id)))
    except _Unresolved:
        function_name = logical_id

    declared: dict[str, Any] = {}
    for source in (globals_, properties):
        variables = ((source.get("Environment") or {}).get("Variables")) or {}
        if not isinstance(variables, dict):
            raise LocalInvokeError(f"{logical_id}: Environment.Variables must be a mapping")
        declared.update(variables)

    overrides = _env_overrides(env_vars_path, logical_id, function_name)
    shell = os.environ if shell_environ is None else shell_environ
    environment: dict[str, str] = {}
    unresolved: list[str] = []
    for name, raw in declared.items():
        if name in overrides:
            environment[name] = _stringify(overrides[name])
        elif name in shell:
            environment[name] = shell[name]
        else:
            try:
                environment[name] = _stringify(resolver.resolve(raw))
            except _Unresolved:
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


def _env_overrides(env_vars_path: str | os.PathLike[str] | None, logical_id: str, function_name: str) -> dict[str, Any]:
    """The env-vars file's values for this function: its own entry over the "Parameters" entry."""
    if env_vars_path is None:
        return {}
    path = Path(env_vars_path)
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
    merged = dict(data.get("Parameters", {}))
    merged.update(data.get(logical_id) or data.get(function_name) or {})
    return merged


def _stringify(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None or isinstance(value, (dict, list, tuple)):
        raise _Unresolved(f"not a scalar: {value!r}")
    return str(value)


class _Resolver:
    """Resolves the intrinsics that need no deployed stack."""

    def __init__(self, template: Mapping[str, Any], parameter_overrides: Mapping[str, str]) -> None:
        self.parameters: dict[str, Any] = template.get("Parameters") or {}
        self.conditions: dict[str, Any] = template.get("Conditions") or {}
        self.overrides = {k: str(v) for k, v in parameter_overrides.items()}
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        self.pseudo: dict[str, Any] = {
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Region": region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": STACK_NAME,
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{ACCOUNT_ID}:stack/{STACK_NAME}/local",
            "AWS::NotificationARNs": [],
        }
        self._condition_cache: dict[str, bool] = {}

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self.resolve(v) for k, v in value.items()}
        ((key, arg),) = value.items()
        if key == "Ref":
            return self.ref(arg)
        if key == "Fn::Sub":
            return self.sub(arg)
        if key == "Fn::Join":
            delimiter, items = arg
            items = self.resolve(items)
            if not isinstance(items, list):
                raise _Unresolved(f"Fn::Join over {items!r}")
            return str(delimiter).join(_stringify(self.resolve(i)) for i in items)
        if key == "Fn::Select":
            index, items = self.resolve(arg)
            return items[int(index)]
        if key == "Fn::Split":
            delimiter, text = self.resolve(arg)
            return str(text).split(str(delimiter))
        if key == "Fn::If":
            name, when_true, when_false = arg
            return self.resolve(when_true if self.condition(name) else when_false)
        if key.startswith("Fn::") or key == "Condition":
            raise _Unresolved(f"{key} cannot be resolved locally")
        return {key: self.resolve(arg)}

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name == "AWS::NoValue":
            raise _Unresolved("AWS::NoValue")
        parameter = self.parameters.get(name)
        if parameter is None:
            raise _Unresolved(f"Ref {name} names a resource")
        if name in self.overrides:
            raw: Any = self.overrides[name]
        elif "Default" in parameter:
            raw = parameter["Default"]
        else:
            raise _Unresolved(f"parameter {name} has no Default and no override")
        if LIST_PARAMETER.match(str(parameter.get("Type", ""))):
            return [part.strip() for part in _stringify(raw).split(",")] if _stringify(raw) else []
        return raw

    def sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in (arg[1] or {}).items()}
        else:
            text, variables = arg, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return _stringify(variables[name])
            if "." in name and not name.startswith("AWS::"):
                raise _Unresolved(f"${{{name}}} is a resource attribute")
            return _stringify(self.ref(name))

        return _SUB_VARIABLE.sub(replace, str(text))

    def condition(self, name: str) -> bool:
        if name not in self._condition_cache:
            if name not in self.conditions:
                raise _Unresolved(f"no condition {name}")
            self._condition_cache[name] = self.evaluate(self.conditions[name])
        return self._condition_cache[name]

    def evaluate(self, expression: Any) -> bool:
        if not isinstance(expression, dict) or len(expression) != 1:
            raise _Unresolved(f"not a condition: {expression!r}")
        ((key, arg),) = expression.items()
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::Equals":
            left, right = (self.resolve(a) for a in arg)
            return _stringify(left) == _stringify(right)
        if key == "Fn::Not":
            return not self.evaluate(arg[0])
        if key == "Fn::And":
            return all(self.evaluate(a) for a in arg)
        if key == "Fn::Or":
            return any(self.evaluate(a) for a in arg)
        raise _Unresolved(f"{key} in a condition")


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
    env_vars_path: str | os.PathLike[str] | None = None,
    *,
    parameter_overrides: Mapping[str, str] | None = None,
) -> object:
    """Call `logical_id`'s handler with the event in `event_path`, in this process; return what it returns.

    Exceptions raised by the handler propagate unchanged (the invoker's retry decision is theirs to test).
    """
    spec = resolve_function(template_path, logical_id, env_vars_path, parameter_overrides=parameter_overrides)
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
        "--parameter-overrides", nargs="*", default=[], metavar="KEY=VALUE", help="template parameter values"
    )


def run(args: argparse.Namespace) -> int:
    overrides = dict(item.split("=", 1) for item in args.parameter_overrides if "=" in item)
    try:
        result = invoke(args.template, args.function, args.event, args.env_vars, parameter_overrides=overrides)
    except LocalInvokeError as exc:
        print(f"local invoke: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    return 0
