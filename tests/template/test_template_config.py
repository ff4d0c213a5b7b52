"""template.yaml's configuration: parameters against Settings, the environment each function gets, secrets
kept out of the template, the lease against the timeout, requirements against pyproject, the wiring of
events, alarms and the state table."""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from typing import Any

import pytest

from autoscaler.config import Settings
from autoscaler.config import settings as config
from node_fleet.local_invoke import resolve_function
from template_helpers import ROOT, TEMPLATE, function_environment, function_property

AUTOSCALER = "AutoscalerFunction"
HOOK = "GitopsHookFunction"

# What the handlers and adapters read (the names others code against).
AUTOSCALER_ENV = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "LOG_LEVEL",
    "CLUSTER_NAME",
    "STATE_TABLE",
    *(f.name.upper() for f in dataclasses.fields(Settings)),
    "LAUNCH_TEMPLATE_ID",
    "LAUNCH_TEMPLATE_VERSION",
    "SUBNET_IDS",
    "VPC_ID",
    "INSTANCE_TYPES",
    "SPOT_SHARE",
    "LEASE_DURATION_S",
    "PROMETHEUS_URL",
    "PROMETHEUS_AUTH_PARAM",
    "PROMETHEUS_CA_PARAM",
    "CUSTOM_METRIC_QUERY",
    "K8S_API_URL",
    "K8S_TOKEN_PARAM",
    "K8S_CA_PARAM",
    "ALARM_ACTIONS",
    "NOTIFY_TOPIC_ARN",
    "GATE_SETTLE_S",
    "GATE_MAX_HOLD_S",
}
HOOK_ENV = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "LOG_LEVEL",
    "CLUSTER_NAME",
    "STATE_TABLE",
    "K8S_API_URL",
    "K8S_TOKEN_PARAM",
    "K8S_CA_PARAM",
    "WEBHOOK_HMAC_PARAM",
    "WEBHOOK_MAX_AGE_S",
    "GATE_SETTLE_S",
    "GATE_MAX_HOLD_S",
}
# Settings whose template range is deliberately narrower than config.settings', and why.
NARROWER = {"lease_duration_s": "the lease must outlast the function timeout"}
LAMBDA_ENV_LIMIT_BYTES = 4096


# -- parameters against Settings -----------------------------------------------------------------------------


def settings_parameter(template: dict[str, Any], field: dataclasses.Field) -> tuple[str, dict[str, Any]]:
    env = function_environment(template, AUTOSCALER)
    variable = field.name.upper()
    assert variable in env, f"Setting {field.name} has no {variable} in {AUTOSCALER}'s environment"
    value = env[variable]
    assert isinstance(value, dict) and set(value) == {"Ref"}, f"{variable} must be !Ref to a parameter"
    name = value["Ref"]
    assert name in template["Parameters"], f"{variable} refers to {name}, which is not a parameter"
    return name, template["Parameters"][name]


@pytest.mark.parametrize("field", dataclasses.fields(Settings), ids=lambda f: f.name)
def test_each_setting_has_a_parameter_with_its_default_and_range(template, field):
    name, parameter = settings_parameter(template, field)
    default = getattr(Settings(), field.name)
    kind = field.type if isinstance(field.type, str) else field.type.__name__
    if kind == "bool":
        assert parameter["Type"] == "String"
        assert sorted(parameter["AllowedValues"]) == ["false", "true"]
        assert parameter["Default"] == str(default).lower()
    elif kind in ("int", "float"):
        assert parameter["Type"] == "Number", f"{name} must be a Number"
        assert float(parameter["Default"]) == pytest.approx(default), f"{name} default differs from Settings"
        low, high = config._RANGES[field.name]
        if field.name in NARROWER:
            assert low <= parameter["MinValue"] and parameter["MaxValue"] <= high, f"{name} is wider than Settings"
        else:
            assert (parameter["MinValue"], parameter["MaxValue"]) == (low, high), f"{name} range differs from Settings"
    elif field.name == "cluster_name":
        assert parameter["Type"] == "String"
        assert "Default" not in parameter, "a stack names its cluster: the name is what marks instances ours"
        assert parameter.get("MinLength") == 1 and parameter.get("MaxLength") == 63
    else:
        assert parameter["Type"] == "String"
        assert parameter["Default"] == default
        assert re.fullmatch(parameter["AllowedPattern"], default), f"{name}'s default does not match its pattern"


def test_defaults_resolve_to_the_default_settings():
    """With every parameter at its default, the autoscaler's environment reads back as Settings()."""
    cluster = {"ClusterName": Settings().cluster_name}
    spec = resolve_function(TEMPLATE, AUTOSCALER, parameter_overrides=cluster, shell_environ={})
    assert Settings.from_env(spec.environment) == Settings()


def test_lease_outlasts_the_function_timeout(template):
    timeout = function_property(template, AUTOSCALER, "Timeout")
    lease = template["Parameters"][function_environment(template, AUTOSCALER)["LEASE_DURATION_S"]["Ref"]]
    assert lease["Default"] > timeout and lease["MinValue"] > timeout, (
        f"LEASE_DURATION_S (default {lease['Default']}, min {lease['MinValue']}) must exceed the timeout {timeout}"
    )


def test_every_parameter_is_documented(template):
    for name, parameter in template["Parameters"].items():
        assert parameter.get("Description"), f"{name} has no Description"


# -- the environment -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("logical_id", "expected"), [(AUTOSCALER, AUTOSCALER_ENV), (HOOK, HOOK_ENV)])
def test_functions_get_the_variables_their_code_reads(template, logical_id, expected):
    env = function_environment(template, logical_id)
    assert expected <= set(env), f"{logical_id} lacks {sorted(expected - set(env))}"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "NodeFleet"
    assert env["STATE_TABLE"] == {"Ref": "StateTable"}


def test_only_the_cloud_and_required_values_stay_unresolved_locally():
    """What `node-fleet invoke` must be given (env-vars file) besides the template's defaults."""
    autoscaler = resolve_function(TEMPLATE, AUTOSCALER, shell_environ={})
    assert set(autoscaler.unresolved) == {
        "STATE_TABLE",
        "NOTIFY_TOPIC_ARN",
        "TICK_QUEUE_URL",
        "CLUSTER_NAME",
        "SUBNET_IDS",
        "VPC_ID",
        "PROMETHEUS_URL",
        "K8S_API_URL",
    }
    hook = resolve_function(TEMPLATE, HOOK, shell_environ={})
    assert set(hook.unresolved) == {"STATE_TABLE", "CLUSTER_NAME", "K8S_API_URL"}
    assert autoscaler.environment["LAUNCH_TEMPLATE_ID"] == ""
    assert autoscaler.environment["INSTANCE_TYPES"] == "m7g.large,m6g.large,t4g.large"


@pytest.mark.parametrize("logical_id", [AUTOSCALER, HOOK])
def test_environment_fits_lambdas_4_kb_limit(template, logical_id):
    spec = resolve_function(TEMPLATE, logical_id, shell_environ={})
    long_values = {name: "x" * 120 for name in spec.unresolved}  # ARNs, URLs, subnet lists
    env = {**spec.environment, **long_values}
    size = sum(len(k) + len(v) for k, v in env.items())
    assert size < LAMBDA_ENV_LIMIT_BYTES * 0.75, (
        f"{logical_id}: environment takes {size} of {LAMBDA_ENV_LIMIT_BYTES} bytes"
    )


def test_alarm_actions_default_is_valid_json_for_the_stacks_alarms(template):
    actions = json.loads(template["Parameters"]["AlarmActions"]["Default"])
    stack = tomllib.loads((ROOT / "samconfig.toml").read_text())["default"]["global"]["parameters"]["stack_name"]
    for alarm, action in actions.items():
        assert alarm.startswith(f"{stack}-scale-"), f"{alarm} would never reach the autoscaler"
        assert action["action"] == "scale_up" and int(action["count"]) >= 1


# -- secrets -------------------------------------------------------------------------------------------------

SECRET_WORDS = {"Token", "Secret", "Secrets", "Password", "Hmac", "Auth", "Ca", "Key", "Credentials", "Cert"}
LOOKS_SECRET = [
    re.compile(r"^[A-Za-z0-9+/_=-]{24,}$"),  # a long opaque token or key
    re.compile(r"^[^\s:/@]+:[^\s/@]+$"),  # user:password
    re.compile(r"-----BEGIN"),  # a PEM
    re.compile(r"^K10[0-9a-f]+::"),  # a K3s join token
    re.compile(r"(AKIA|ASIA)[A-Z0-9]{16}"),  # an AWS access key id
]


def words(name: str) -> set[str]:
    return set(re.findall(r"[A-Z][a-z0-9]*", name))


def test_secret_carrying_parameters_are_ssm_names(template):
    for name, parameter in template["Parameters"].items():
        if words(name) & SECRET_WORDS:
            assert name.endswith(("Param", "Arn")), f"{name} looks secret: take an SSM parameter NAME (…Param)"
        if name.endswith("Param"):
            pattern = parameter["AllowedPattern"]
            assert pattern.startswith(("^/", "^(/")), f"{name} must only accept an SSM path"
            default = parameter.get("Default", "")
            assert re.fullmatch(pattern, default), f"{name}'s default does not match its pattern"
            assert default == "" or default.startswith("/")


def test_no_parameter_default_looks_like_a_secret(template):
    for name, parameter in template["Parameters"].items():
        default = str(parameter.get("Default", ""))
        if name.endswith("Param") or parameter["Type"].startswith("AWS::SSM::Parameter::Value"):
            continue  # SSM names, checked above
        for pattern in LOOKS_SECRET:
            assert not pattern.search(default), f"{name}'s default {default!r} looks like a secret"
        if parameter.get("NoEcho"):
            assert "Default" not in parameter, f"{name} is NoEcho but has a default"


def test_no_literal_environment_value_looks_like_a_secret(template):
    for logical_id in (AUTOSCALER, HOOK):
        for variable, value in function_environment(template, logical_id).items():
            if isinstance(value, str):
                for pattern in LOOKS_SECRET:
                    assert not pattern.search(value), f"{logical_id} {variable} looks like a secret"


def test_template_text_holds_no_key_material():
    text = TEMPLATE.read_text()
    assert "-----BEGIN" not in text
    assert not re.search(r"(AKIA|ASIA)[A-Z0-9]{16}", text)


# -- requirements --------------------------------------------------------------------------------------------


def test_requirements_pin_exactly_the_projects_dependencies():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = (ROOT / "src" / "requirements.txt").read_text().splitlines()
    pinned = [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]

    def normal(requirement: str) -> str:
        name, _, version = requirement.replace(" ", "").partition("==")
        assert version, f"{requirement} is not pinned with =="
        return f"{re.sub(r'[-_.]+', '-', name).lower()}=={version}"

    assert sorted(map(normal, pinned)) == sorted(map(normal, pyproject))


# -- runtime, events, alarms, table --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("logical_id", "handler"),
    [(AUTOSCALER, "autoscaler.handler.lambda_handler"), (HOOK, "gitops_hooks.handler.lambda_handler")],
)
def test_functions_run_the_fixed_handlers_on_arm64(template, logical_id, handler):
    assert function_property(template, logical_id, "Handler") == handler
    assert function_property(template, logical_id, "CodeUri") == "src/"
    assert function_property(template, logical_id, "Runtime") in ("python3.12", "python3.13")
    assert function_property(template, logical_id, "Architectures") == ["arm64"]
    vpc = function_property(template, logical_id, "VpcConfig")
    assert vpc == {"SubnetIds": {"Ref": "SubnetIds"}, "SecurityGroupIds": {"Ref": "SecurityGroupIds"}}


@pytest.mark.parametrize("logical_id", [AUTOSCALER, HOOK])
def test_each_function_ticks_every_minute_with_retries_and_a_dead_letter_queue(template, logical_id):
    tick = template["Resources"][logical_id]["Properties"]["Events"]["Tick"]
    assert tick["Type"] == "Schedule"
    assert tick["Properties"]["Schedule"] == "rate(1 minute)"
    assert tick["Properties"]["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert tick["Properties"]["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["FailedEventsQueue", "Arn"]}}


def test_alarm_and_manual_rules(template):
    events = template["Resources"][AUTOSCALER]["Properties"]["Events"]
    alarm = events["AlarmStateChange"]["Properties"]["Pattern"]
    assert alarm["source"] == ["aws.cloudwatch"]
    assert alarm["detail-type"] == ["CloudWatch Alarm State Change"]
    assert alarm["detail"]["alarmName"] == [{"prefix": {"Fn::Sub": "${AWS::StackName}-scale-"}}]
    manual = events["ManualAction"]["Properties"]["Pattern"]
    assert manual == {"source": ["node-fleet.manual"], "detail-type": ["node-fleet manual action"]}
    for name in ("AlarmStateChange", "ManualAction"):
        assert events[name]["Type"] == "EventBridgeRule"
        assert events[name]["Properties"]["DeadLetterConfig"]
    invoke = template["Resources"][AUTOSCALER]["Properties"]["EventInvokeConfig"]
    assert invoke["MaximumRetryAttempts"] >= 1, "a lease-busy alarm or manual event raises to be delivered again"
    assert invoke["DestinationConfig"]["OnFailure"]["Type"] == "SQS"


def test_spot_rule_brings_ec2s_interruption_warnings_and_rebalance_recommendations(template):
    rule = template["Resources"][AUTOSCALER]["Properties"]["Events"]["SpotInterruption"]
    assert rule["Type"] == "EventBridgeRule"
    assert rule["Properties"]["Pattern"] == {
        "source": ["aws.ec2"],
        "detail-type": ["EC2 Spot Instance Interruption Warning", "EC2 Instance Rebalance Recommendation"],
    }
    assert rule["Properties"]["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 120, "the notice is two minutes"
    assert rule["Properties"]["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["FailedEventsQueue", "Arn"]}}


def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: r["Properties"] for k, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def alarm_metrics(properties: dict[str, Any]) -> list[dict[str, Any]]:
    if "MetricName" in properties:
        return [properties]
    return [q["MetricStat"]["Metric"] for q in properties.get("Metrics", []) if "MetricStat" in q]


def test_operational_alarms_watch_the_handlers_metrics_and_notify(template):
    found = alarms(template)
    node_fleet = {
        m["MetricName"]: m for p in found.values() for m in alarm_metrics(p) if m.get("Namespace") == "NodeFleet"
    }
    assert {"LaunchFailures", "LeaseContention", "Errors"} <= set(node_fleet)
    for metric in node_fleet.values():
        dimensions = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
        # Powertools adds a `service` dimension (POWERTOOLS_SERVICE_NAME) to every metric it emits.
        assert dimensions["ClusterName"] == {"Ref": "ClusterName"}
        assert set(dimensions) == {"ClusterName", "service"}
    services = {
        function_environment(template, f)["POWERTOOLS_SERVICE_NAME"] for f in (AUTOSCALER, HOOK)
    }  # the alarms' `service` dimension values
    assert {d["Value"] for m in node_fleet.values() for d in m["Dimensions"] if d["Name"] == "service"} <= services
    lambda_errors = {
        d["Value"]["Ref"]
        for p in found.values()
        for m in alarm_metrics(p)
        if m.get("Namespace") == "AWS/Lambda" and m["MetricName"] == "Errors"
        for d in m["Dimensions"]
    }
    assert lambda_errors == {AUTOSCALER, HOOK}
    for name, properties in found.items():
        assert properties["AlarmActions"] == [{"Ref": "NotifyTopic"}], name
        alarm_name = properties["AlarmName"]["Fn::Sub"]
        assert not alarm_name.startswith("${AWS::StackName}-scale-"), f"{name} would trigger the autoscaler"


def test_state_table_schema(template):
    table = template["Resources"]["StateTable"]
    assert table["Type"] == "AWS::DynamoDB::Table"
    properties = table["Properties"]
    assert properties["AttributeDefinitions"] == [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ]
    assert properties["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_dashboard_body_is_json(template):
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    filled = re.sub(r"\$\{[^}]+\}", "x", body)
    widgets = json.loads(filled)["widgets"]
    assert len(widgets) >= 4
