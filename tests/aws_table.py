"""Build the state table in moto from template.yaml's `StateTable`, so the schema has one source.

The template is read with a YAML loader that accepts CloudFormation's short tags (!Ref, !Sub, !GetAtt...)
and turns them into their long JSON forms ({"Ref": ...}, {"Fn::Sub": ...}); the table properties used
here must be plain values, since nothing resolves intrinsics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
STATE_TABLE = "StateTable"
DEFAULT_TABLE_NAME = "node-fleet-state"


class CfnLoader(yaml.SafeLoader):
    """A SafeLoader that reads CloudFormation's short-form intrinsic tags."""


def _intrinsic(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(template_path: str | Path = "template.yaml") -> dict[str, Any]:
    """The parsed template; a relative path is taken from the repository root."""
    path = Path(template_path)
    if not path.is_absolute():
        path = REPO_ROOT / path
    with path.open(encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=CfnLoader)  # CfnLoader is a SafeLoader
    if not isinstance(document, dict):
        raise ValueError(f"{path}: not a CloudFormation template (top level is not a mapping)")
    return document


def state_table_properties(template_path: str | Path = "template.yaml") -> dict[str, Any]:
    """The Properties of the template's `StateTable` resource (an AWS::DynamoDB::Table)."""
    resources = load_template(template_path).get("Resources") or {}
    resource = resources.get(STATE_TABLE)
    if not isinstance(resource, dict):
        raise ValueError(f"{template_path}: no {STATE_TABLE} resource")
    if resource.get("Type") != "AWS::DynamoDB::Table":
        raise ValueError(f"{template_path}: {STATE_TABLE} is a {resource.get('Type')!r}, not an AWS::DynamoDB::Table")
    properties = resource.get("Properties")
    if not isinstance(properties, dict):
        raise ValueError(f"{template_path}: {STATE_TABLE} has no Properties")
    for required in ("AttributeDefinitions", "KeySchema"):
        if required not in properties:
            raise ValueError(f"{template_path}: {STATE_TABLE} lacks {required}")
    return properties


def create_state_table(
    client: Any, template_path: str | Path = "template.yaml", table_name: str = DEFAULT_TABLE_NAME
) -> str:
    """Create the state table with `client` (a DynamoDB client, under moto) as the template defines it:
    keys, billing mode, global secondary indexes, TTL and point-in-time recovery. Returns its name."""
    properties = state_table_properties(template_path)
    args: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": _plain(properties["AttributeDefinitions"], "AttributeDefinitions"),
        "KeySchema": _plain(properties["KeySchema"], "KeySchema"),
        "BillingMode": _plain(properties.get("BillingMode", "PROVISIONED"), "BillingMode"),
    }
    if "ProvisionedThroughput" in properties:
        args["ProvisionedThroughput"] = _plain(properties["ProvisionedThroughput"], "ProvisionedThroughput")
    if "GlobalSecondaryIndexes" in properties:
        args["GlobalSecondaryIndexes"] = _plain(properties["GlobalSecondaryIndexes"], "GlobalSecondaryIndexes")
    client.create_table(**args)
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50})

    ttl = properties.get("TimeToLiveSpecification")
    if ttl is not None:
        ttl = _plain(ttl, "TimeToLiveSpecification")
        client.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": bool(ttl["Enabled"])},
        )
    pitr = properties.get("PointInTimeRecoverySpecification")
    if pitr is not None:
        pitr = _plain(pitr, "PointInTimeRecoverySpecification")
        client.update_continuous_backups(
            TableName=table_name,
            PointInTimeRecoverySpecification={
                "PointInTimeRecoveryEnabled": bool(pitr.get("PointInTimeRecoveryEnabled", False))
            },
        )
    return table_name


def _plain(value: Any, where: str) -> Any:
    """`value` itself, after checking it holds no intrinsic function (which nothing here could resolve)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" or str(key).startswith("Fn::"):
                raise ValueError(f"{STATE_TABLE}.{where} uses {key}: the test table needs plain values there")
            _plain(inner, where)
    elif isinstance(value, list):
        for inner in value:
            _plain(inner, where)
    return value
