"""AWS on loopback: moto's server, and what the functions expect to find in the account.

- `MotoServer`: `moto.server.ThreadedMotoServer` on a free 127.0.0.1 port. moto keeps its state
  per process, so the server starts from a reset, and `reset()` empties it again.
- `client_environ`: the variables that point boto3 (and so every adapter, Powertools' Parameters
  and Idempotency) at that server with fake credentials: AWS_ENDPOINT_URL, keys, region, and
  config/credential files that do not exist, so no profile of the machine is ever read.
- `seed_account`: a VPC with one subnet per zone, the worker launch template, the state table
  from template.yaml, the SSM SecureString parameters (K8s token, Prometheus credentials,
  webhook HMAC key) and the operators' SNS topic.
- `create_state_table` and `state_table_properties`: the state table exactly as template.yaml's
  `StateTable` declares it (keys, billing mode, indexes, TTL, point-in-time recovery), so the
  schema has one source. The template is read by `node_fleet.local_invoke.load_template`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

REPO_ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = REPO_ROOT / "template.yaml"
STATE_TABLE = "StateTable"
DEFAULT_TABLE_NAME = "node-fleet-state"

REGION = "eu-west-1"
ZONES = ("eu-west-1a", "eu-west-1b")
AMI = "ami-12c6146b"  # one of moto's stock image ids (moto does not check that it exists)
FAKE_KEY = "testing"  # moto's conventional fake credential, never a real one

# The SSM parameter names the template defaults to (K8sTokenParam, WebhookHmacParam), and one for
# the Prometheus credentials (PrometheusAuthParam has no default: it is optional).
K8S_TOKEN_PARAM = "/node-fleet/k8s-token"  # nosec B105  # a parameter name, not its value
PROMETHEUS_AUTH_PARAM = "/node-fleet/prometheus-auth"
WEBHOOK_HMAC_PARAM = "/node-fleet/webhook-hmac"

CLUSTER_TAG = "node-fleet.io/cluster"
ROLE_TAG = "node-fleet.io/role"


# -- moto's server ----------------------------------------------------------------------------------


class MotoServer:
    """moto's HTTP server on 127.0.0.1 (a free port) in this process: `start()` returns the endpoint."""

    def __init__(self) -> None:
        self._server: Any = None
        self.endpoint = ""
        self._saved_ami_setting: str | None = None

    def start(self) -> str:
        if self._server is not None:
            return self.endpoint
        from moto.server import ThreadedMotoServer

        # moto loads its catalogue of stock AMIs into every new EC2 backend (about half a second,
        # at each reset); nothing here needs it. moto reads this setting from the process.
        self._saved_ami_setting = os.environ.get("MOTO_EC2_LOAD_DEFAULT_AMIS")
        os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        self._server = server
        host, port = server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.reset()  # moto's backends are process-wide: start from nothing
        return self.endpoint

    def reset(self) -> None:
        """Forget every resource in every service."""
        requests.post(f"{self.endpoint}/moto-api/reset", timeout=30).raise_for_status()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        with contextlib.suppress(Exception):
            requests.post(f"{self.endpoint}/moto-api/reset", timeout=10)
        server.stop()
        if self._saved_ami_setting is None:
            os.environ.pop("MOTO_EC2_LOAD_DEFAULT_AMIS", None)
        else:
            os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = self._saved_ami_setting


def client_environ(endpoint: str, region: str, workdir: Path) -> dict[str, str]:
    """What boto3 needs to reach moto at `endpoint` and nothing else."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": FAKE_KEY,
        "AWS_SECRET_ACCESS_KEY": FAKE_KEY,
        "AWS_SESSION_TOKEN": FAKE_KEY,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_CONFIG_FILE": str(workdir / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def clients(
    endpoint: str, region: str, services: Sequence[str] = ("ec2", "dynamodb", "ssm", "sns", "sqs")
) -> dict[str, Any]:
    """boto3 clients of `services` bound to moto at `endpoint` with fake credentials (the process's
    environment is not read)."""
    import boto3

    s = boto3.Session(
        aws_access_key_id=FAKE_KEY, aws_secret_access_key=FAKE_KEY, aws_session_token=FAKE_KEY, region_name=region
    )
    return {name: s.client(name, endpoint_url=endpoint) for name in services}


# -- the account ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """What `seed_account` created in moto."""

    endpoint: str
    region: str
    vpc_id: str
    subnets: dict[str, str]
    """Zone -> subnet id, in the order of the zones given."""
    launch_template_id: str
    table_name: str
    topic_arn: str
    tick_queue_url: str
    parameters: dict[str, str] = field(repr=False)
    """SSM parameter name -> value (SecureString)."""

    @property
    def subnet_ids(self) -> tuple[str, ...]:
        return tuple(self.subnets.values())

    @property
    def zones(self) -> tuple[str, ...]:
        return tuple(self.subnets)

    @property
    def refs(self) -> dict[str, str]:
        """What CloudFormation would fill in: the variables that Ref the stack's own resources."""
        return {
            "STATE_TABLE": self.table_name,
            "NOTIFY_TOPIC_ARN": self.topic_arn,
            "TICK_QUEUE_URL": self.tick_queue_url,
        }


def seed_account(
    clients: Mapping[str, Any],
    *,
    endpoint: str,
    region: str,
    cluster_name: str,
    zones: Sequence[str],
    instance_type: str,
    parameters: Mapping[str, str],
    template_path: str | os.PathLike[str] = TEMPLATE,
    table_name: str = DEFAULT_TABLE_NAME,
    subnet_offset: int = 0,
) -> Account:
    """Create the account's resources with `clients` ({"ec2", "dynamodb", "ssm", "sns", "sqs"} boto3 clients).

    Subnet i is 10.42.<subnet_offset + i>.0/24: a new offset gives instances new private IPs, and so
    their nodes new names (a reseeded cluster never reuses a name Prometheus still remembers)."""
    ec2 = clients["ec2"]
    vpc_id = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnets = {
        zone: ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.42.{subnet_offset + i}.0/24", AvailabilityZone=zone)[
            "Subnet"
        ]["SubnetId"]
        for i, zone in enumerate(zones)
    }
    template = ec2.create_launch_template(
        LaunchTemplateName=f"{cluster_name}-worker",
        LaunchTemplateData={"ImageId": AMI, "InstanceType": instance_type},
    )
    table = create_state_table(clients["dynamodb"], template_path, table_name)
    for name, value in parameters.items():
        clients["ssm"].put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
    topic = clients["sns"].create_topic(Name=f"{cluster_name}-scaling")["TopicArn"]
    ticks = clients["sqs"].create_queue(QueueName=f"{cluster_name}-ticks")["QueueUrl"]
    return Account(
        endpoint=endpoint,
        region=region,
        vpc_id=vpc_id,
        subnets=subnets,
        launch_template_id=template["LaunchTemplate"]["LaunchTemplateId"],
        table_name=table,
        topic_arn=topic,
        tick_queue_url=ticks,
        parameters=dict(parameters),
    )


def launch(
    ec2: Any, account: Account, zone: str, tags: Mapping[str, str], instance_type: str, count: int = 1
) -> list[dict[str, Any]]:
    """Start instances from the worker launch template in `zone`, tagged on create; returns them."""
    tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
    answer = ec2.run_instances(
        LaunchTemplate={"LaunchTemplateId": account.launch_template_id, "Version": "$Latest"},
        InstanceType=instance_type,
        SubnetId=account.subnets[zone],
        MinCount=count,
        MaxCount=count,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": tag_list},
            {"ResourceType": "volume", "Tags": tag_list},
        ],
    )
    return list(answer["Instances"])


# -- the state table from template.yaml -------------------------------------------------------------


def load_template(template_path: str | os.PathLike[str] = TEMPLATE) -> dict[str, Any]:
    """The parsed template, short tags in their long forms; a relative path is taken from the
    repository root. ValueError when it cannot be read or is not a CloudFormation template."""
    from node_fleet.local_invoke import LocalInvokeError
    from node_fleet.local_invoke import load_template as read

    path = Path(template_path)
    if not path.is_absolute():
        path = REPO_ROOT / path
    try:
        return read(path)
    except LocalInvokeError as exc:
        raise ValueError(str(exc)) from None


def state_table_properties(template_path: str | os.PathLike[str] = TEMPLATE) -> dict[str, Any]:
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
    client: Any, template_path: str | os.PathLike[str] = TEMPLATE, table_name: str = DEFAULT_TABLE_NAME
) -> str:
    """Create the state table with `client` (a DynamoDB client, on moto) as the template defines it:
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
                raise ValueError(f"{STATE_TABLE}.{where} uses {key}: the local table needs plain values there")
            _plain(inner, where)
    elif isinstance(value, list):
        for inner in value:
            _plain(inner, where)
    return value


def forget_cached_clients() -> None:
    """Drop Powertools Parameters' cached providers and values: their boto3 clients keep the
    endpoint they were made with, and their values outlive a reset of moto."""
    from aws_lambda_powertools.utilities.parameters import base

    base.DEFAULT_PROVIDERS.clear()
