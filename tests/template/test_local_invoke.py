"""node_fleet.local_invoke against a small template and a fake handler written to tmp_path.

The real handlers are not imported here; test_template_config.py resolves the real template's functions.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from node_fleet import exits
from node_fleet.cli import main as cli_main
from node_fleet.local_invoke import (
    LambdaContext,
    LocalInvokeError,
    function_ids,
    invoke,
    load_template,
    parameter_overrides,
    resolve_function,
)
from template_helpers import TEMPLATE

TEMPLATE_TEXT = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Size:
    Type: Number
    Default: 3
  Name:
    Type: String
    Default: demo
  Flag:
    Type: String
    Default: "false"
  Subnets:
    Type: CommaDelimitedList
    Default: subnet-a,subnet-b
  Required:
    Type: String
Conditions:
  FlagOn: !Equals [!Ref Flag, "true"]
  NotOn: !Not [!Condition FlagOn]
Globals:
  Function:
    Runtime: python3.12
    Timeout: 20
    MemorySize: 256
    Environment:
      Variables:
        GLOBAL_NAME: !Ref Name
        SHARED: from-globals
Resources:
  Table:
    Type: AWS::DynamoDB::Table
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: code/
      Handler: {module}.lambda_handler
      MemorySize: 512
      Environment:
        Variables:
          SHARED: from-function
          SIZE: !Ref Size
          SUBNETS: !Join [",", !Ref Subnets]
          FIRST_SUBNET: !Select [0, !Ref Subnets]
          LABEL: !Sub "${{Name}}-${{AWS::Region}}-${{!literal}}"
          LABEL2: !Sub ["${{Who}}/x", {{Who: !Ref Name}}]
          MODE: !If [FlagOn, fast, slow]
          NOT_MODE: !If [NotOn, "yes", !Ref AWS::NoValue]
          ON_ONLY: !If [FlagOn, "on", !Ref AWS::NoValue]
          BOOL: true
          COUNT: 7
          TABLE: !Ref Table
          TABLE_ARN: !GetAtt Table.Arn
          REQUIRED: !Ref Required
  Other:
    Type: AWS::Lambda::Function
    Properties:
      Handler: other.handler
      Code: {{ZipFile: "x"}}
"""

HANDLER = """\
import os

SEEN_AT_IMPORT = os.environ.get("GLOBAL_NAME")


def lambda_handler(event, context):
    if event.get("boom"):
        raise RuntimeError("boom")
    if event.get("no_credentials"):
        from botocore.exceptions import NoCredentialsError

        raise RuntimeError("Unable to locate credentials") from NoCredentialsError()
    print("a log line of the handler")
    if "answer" in event:
        return event["answer"]
    names = ["GLOBAL_NAME", "SHARED", "SIZE", "TABLE", "REQUIRED", "AWS_SAM_LOCAL", "AWS_LAMBDA_FUNCTION_NAME",
             "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_TIMEOUT", "AWS_REGION"]
    return {
        "event": event,
        "env": {n: os.environ.get(n) for n in names},
        "imported_with": SEEN_AT_IMPORT,
        "context": {
            "function_name": context.function_name,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "invoked_function_arn": context.invoked_function_arn,
            "aws_request_id": context.aws_request_id,
            "remaining_ms": context.get_remaining_time_in_millis(),
        },
    }
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A template, a fake handler module (a fresh name per test: imports are cached) and an event."""
    module = f"fake_handler_{uuid.uuid4().hex}"
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / f"{module}.py").write_text(HANDLER)
    (tmp_path / "template.yaml").write_text(TEMPLATE_TEXT.format(module=module))
    (tmp_path / "event.json").write_text(json.dumps({"hello": "world"}))
    for name in ("SIZE", "SHARED", "GLOBAL_NAME", "TABLE", "REQUIRED", "MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_REGION", raising=False)
    yield tmp_path
    sys.modules.pop(module, None)


def env_file(folder: Path, data: object) -> Path:
    path = folder / "env.json"
    path.write_text(json.dumps(data))
    return path


def test_resolves_handler_code_and_sizes(project):
    spec = resolve_function(project / "template.yaml", "Fn", shell_environ={})
    assert spec.handler.endswith(".lambda_handler")
    assert spec.code_dir == (project / "code").resolve()
    assert (spec.memory_mb, spec.timeout_s) == (512, 20)  # the function's MemorySize, Globals' Timeout
    assert spec.function_name == "Fn"


def test_resolves_the_environment_from_globals_function_and_parameter_defaults(project):
    spec = resolve_function(project / "template.yaml", "Fn", shell_environ={})
    assert spec.environment == {
        "GLOBAL_NAME": "demo",
        "SHARED": "from-function",
        "SIZE": "3",
        "SUBNETS": "subnet-a,subnet-b",
        "FIRST_SUBNET": "subnet-a",
        "LABEL": "demo-eu-west-1-${literal}",
        "LABEL2": "demo/x",
        "MODE": "slow",
        "NOT_MODE": "yes",
        "BOOL": "true",
        "COUNT": "7",
    }
    assert set(spec.unresolved) == {"ON_ONLY", "TABLE", "TABLE_ARN", "REQUIRED"}


def test_parameter_overrides_change_values_and_conditions(project):
    spec = resolve_function(
        project / "template.yaml", "Fn", parameter_overrides={"Flag": "true", "Required": "r", "Subnets": "s-1"}
    )
    assert spec.environment["MODE"] == "fast"
    assert spec.environment["ON_ONLY"] == "on"
    assert "NOT_MODE" not in spec.environment
    assert spec.environment["REQUIRED"] == "r"
    assert spec.environment["SUBNETS"] == "s-1"


def test_env_vars_file_precedence_as_in_sam(project):
    overrides = env_file(
        project,
        {
            "Parameters": {"SIZE": 9, "SHARED": "from-parameters", "TABLE": "t-all", "UNDECLARED": "x"},
            "Fn": {"SHARED": "from-file", "TABLE": "t-fn", "BOOL": False},
        },
    )
    shell = {"SIZE": "from-shell", "GLOBAL_NAME": "from-shell", "UNDECLARED": "y"}
    spec = resolve_function(project / "template.yaml", "Fn", overrides, shell_environ=shell)
    assert spec.environment["SHARED"] == "from-file"  # function entry over "Parameters"
    assert spec.environment["TABLE"] == "t-fn"  # an override fills an unresolvable value
    assert spec.environment["SIZE"] == "9"  # "Parameters" over the shell
    assert spec.environment["GLOBAL_NAME"] == "from-shell"  # the shell over the template
    assert spec.environment["BOOL"] == "false"
    assert "UNDECLARED" not in spec.environment  # SAM ignores variables the template does not declare


def test_invoke_calls_the_handler_with_event_context_and_environment(project):
    before = dict(os.environ)
    path_before = list(sys.path)
    overrides = env_file(project, {"Fn": {"TABLE": "state", "REQUIRED": "yes"}})
    result = invoke(project / "template.yaml", "Fn", project / "event.json", overrides)
    assert result["event"] == {"hello": "world"}
    assert result["imported_with"] == "demo", "the module is imported with the function's environment set"
    assert result["env"] == {
        "GLOBAL_NAME": "demo",
        "SHARED": "from-function",
        "SIZE": "3",
        "TABLE": "state",
        "REQUIRED": "yes",
        "AWS_SAM_LOCAL": "true",
        "AWS_LAMBDA_FUNCTION_NAME": "Fn",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_FUNCTION_TIMEOUT": "20",
        "AWS_REGION": None,  # AWS_DEFAULT_REGION is set, so nothing is added
    }
    context = result["context"]
    assert context["function_name"] == "Fn"
    assert context["memory_limit_in_mb"] == 512
    assert context["invoked_function_arn"] == "arn:aws:lambda:eu-west-1:123456789012:function:Fn"
    assert uuid.UUID(context["aws_request_id"])
    assert 0 < context["remaining_ms"] <= 20_000
    assert dict(os.environ) == before, "os.environ is restored after the call"
    assert sys.path == path_before, "sys.path is restored after the call"


def test_environment_is_restored_when_the_handler_raises(project, monkeypatch):
    monkeypatch.setenv("SHARED", "mine")
    before = dict(os.environ)
    (project / "boom.json").write_text(json.dumps({"boom": True}))
    with pytest.raises(RuntimeError, match="boom"):
        invoke(project / "template.yaml", "Fn", project / "boom.json")
    assert dict(os.environ) == before


def test_region_defaults_like_sam_when_none_is_set(project, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    result = invoke(project / "template.yaml", "Fn", project / "event.json")
    assert result["env"]["AWS_REGION"] == "us-east-1"
    assert "AWS_REGION" not in os.environ


def test_lists_functions_and_names_them_in_errors(project):
    template = load_template(project / "template.yaml")
    assert function_ids(template) == ["Fn", "Other"]
    with pytest.raises(LocalInvokeError, match=r"no function 'Nope'; its functions: Fn, Other"):
        resolve_function(project / "template.yaml", "Nope")
    with pytest.raises(LocalInvokeError, match=r"CodeUri \(or Code\) must be a local folder"):
        resolve_function(project / "template.yaml", "Other")


@pytest.mark.parametrize(
    ("content", "message"),
    [("[1, 2]", "must map"), ('{"Fn": "x"}', "must map"), ("{nope", "not valid JSON")],
)
def test_bad_env_vars_files_are_refused(project, content, message):
    bad = project / "bad.json"
    bad.write_text(content)
    with pytest.raises(LocalInvokeError, match=message):
        resolve_function(project / "template.yaml", "Fn", bad)


def test_missing_handler_and_bad_event_are_reported(project):
    text = (project / "template.yaml").read_text().replace(".lambda_handler", ".missing")
    (project / "template.yaml").write_text(text)
    with pytest.raises(LocalInvokeError, match="has no function missing"):
        invoke(project / "template.yaml", "Fn", project / "event.json")
    (project / "bad-event.json").write_text("{")
    with pytest.raises(LocalInvokeError, match="not valid JSON"):
        invoke(project / "template.yaml", "Fn", project / "bad-event.json")


def test_unreadable_template_is_reported(tmp_path):
    with pytest.raises(LocalInvokeError, match="cannot read template"):
        load_template(tmp_path / "missing.yaml")
    (tmp_path / "t.yaml").write_text("just: text\n")
    with pytest.raises(LocalInvokeError, match="no Resources"):
        load_template(tmp_path / "t.yaml")


def test_context_counts_down():
    context = LambdaContext("f", 128, 1, "us-east-1")
    assert 0 < context.get_remaining_time_in_millis() <= 1000
    assert context.function_version == "$LATEST"
    assert context.log_group_name == "/aws/lambda/f"


def test_node_fleet_invoke_prints_the_result(project, capsys):
    code = cli_main(
        ["invoke", "Fn", "--event", str(project / "event.json"), "--template", str(project / "template.yaml")]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["event"] == {"hello": "world"}
    nope = ["invoke", "Nope", "--event", str(project / "event.json"), "--template", str(project / "template.yaml")]
    assert cli_main(nope) == 1
    assert "no function 'Nope'" in capsys.readouterr().err


def test_real_template_functions_resolve():
    template = load_template(TEMPLATE)
    assert function_ids(template) == ["AutoscalerFunction", "GitopsHookFunction"]
    for logical_id in function_ids(template):
        spec = resolve_function(TEMPLATE, logical_id, shell_environ={})
        assert spec.code_dir == (TEMPLATE.parent / "src").resolve()
        assert (spec.code_dir / (spec.module_name.replace(".", "/") + ".py")).is_file(), f"{spec.handler} is missing"


def test_documented_example_in_the_module_docstring_is_current():
    import node_fleet.local_invoke as module

    assert "events/schedule_tick.json" in textwrap.dedent(module.__doc__ or "")
    assert (TEMPLATE.parent / "events" / "schedule_tick.json").exists()


def invoke_cli(project: Path, event: object, *extra: str) -> int:
    (project / "event.json").write_text(json.dumps(event))
    args = ["invoke", "Fn", "--event", str(project / "event.json"), "--template", str(project / "template.yaml")]
    return cli_main([*args, *extra])


@pytest.mark.parametrize(
    ("desc", "answer", "code"),
    [
        ("a cycle that acted", {"status": "acted", "action": "none"}, exits.OK),
        ("an invalid event", {"status": "rejected", "error": "detail.count: must be > 0"}, exits.ANSWER_FAILED),
        ("a setting out of range", {"status": "error", "error": "MIN_NODES: must be >= 0"}, exits.ANSWER_FAILED),
        ("a webhook accepted", {"statusCode": 202, "body": "{}"}, exits.OK),
        ("a webhook replayed", {"statusCode": 409, "body": "{}"}, exits.ANSWER_FAILED),
    ],
)
def test_invoke_exit_code_says_whether_the_answer_failed(project, capsys, desc, answer, code):
    assert invoke_cli(project, {"answer": answer}) == code, desc
    out, err = capsys.readouterr()
    assert json.loads(out) == answer, "stdout holds the answer alone"
    assert "a log line of the handler" in err, "the handler's own output goes to stderr"


def test_invoke_of_a_handler_that_raises_is_one_line(project, capsys):
    assert invoke_cli(project, {"boom": True}) == exits.RAISED
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "local invoke: Fn raised RuntimeError: boom (Lambda would deliver an asynchronous event again)\n"


def test_invoke_without_credentials_says_what_to_do(project, capsys):
    assert invoke_cli(project, {"no_credentials": True}) == exits.RAISED
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "no AWS credentials: run with --local" in err


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["Size=9", "Name=x"], {"Size": "9", "Name": "x"}),
        (["Size=9 Name='a b'"], {"Size": "9", "Name": "a b"}),
        (["ParameterKey=Size,ParameterValue=9"], {"Size": "9"}),
        (["Name=a=b"], {"Name": "a=b"}),
        (["Name="], {"Name": ""}),
    ],
)
def test_parameter_overrides_are_read_as_sam_reads_them(items, expected):
    assert parameter_overrides(items) == expected


@pytest.mark.parametrize("items", [["Size"], ["=9"], ["Size=9 Name"]])
def test_malformed_parameter_overrides_are_refused(project, capsys, items):
    assert invoke_cli(project, {"hello": "world"}, "--parameter-overrides", *items) == exits.FAILED
    assert "is not KEY=VALUE" in capsys.readouterr().err


def test_parameter_overrides_given_as_one_string_are_honoured(project, capsys):
    assert invoke_cli(project, {"hello": "world"}, "--parameter-overrides", "Size=9 Required=r") == exits.OK
    env = json.loads(capsys.readouterr().out)["env"]
    assert (env["SIZE"], env["REQUIRED"]) == ("9", "r")


def test_env_vars_files_are_laid_over_each_other(project):
    first = project / "first.json"
    first.write_text(json.dumps({"Fn": {"SHARED": "first", "TABLE": "t1"}, "Parameters": {"SIZE": "1"}}))
    second = env_file(project, {"Parameters": {"SHARED": "second-all"}, "Fn": {"TABLE": "t2"}})
    spec = resolve_function(project / "template.yaml", "Fn", [first, second], shell_environ={})
    assert (spec.environment["SHARED"], spec.environment["TABLE"], spec.environment["SIZE"]) == (
        "second-all",
        "t2",
        "1",
    )
