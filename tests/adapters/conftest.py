"""Fixtures for the adapter tests.

- AWS (EC2 and DynamoDB), every fixture starting with `aws_`: fake credentials, moto in process or
  on loopback, a VPC to launch into, and the state table built from a template's `StateTable`;
  nothing ever reaches real AWS.
- `prom`: a real Prometheus holding prom_history's history, one per module that asks for it
  (skipped, saying why, where Prometheus is not installed).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import requests
from moto import mock_aws
from moto.server import ThreadedMotoServer
from prom_history import STEP_S, Prom, history

from aws_table import create_state_table
from node_fleet.stack.prometheus import INSTALL_HINT, PrometheusServer, binaries

AWS_TEST_REGION = "eu-west-1"
AWS_TEST_ZONES = ("eu-west-1a", "eu-west-1b", "eu-west-1c")
AWS_TEST_AMI = "ami-12c6146b"  # one of moto's stock images

# The StateTable resource as template.yaml declares it (keys, billing, TTL, PITR), with the short
# tags a real template carries elsewhere, so the loader is exercised too.


@dataclass(frozen=True)
class AwsNetwork:
    """A VPC with one subnet per zone and a worker launch template, all in moto."""

    vpc_id: str
    subnets: dict[str, str]
    """Zone -> subnet id, in AWS_TEST_ZONES order."""
    launch_template_id: str

    @property
    def subnet_ids(self) -> tuple[str, ...]:
        return tuple(self.subnets.values())

    def zone_of(self, subnet_id: str) -> str:
        return next(zone for zone, subnet in self.subnets.items() if subnet == subnet_id)


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials and region; no profile or config file of the machine is read."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", AWS_TEST_REGION)
    monkeypatch.setenv("AWS_REGION", AWS_TEST_REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    # moto's stock AMI catalogue costs ~0.5 s per test to load and nothing here needs it (AMIs are not validated).
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")


@pytest.fixture
def aws_mock(aws_credentials: None) -> Iterator[None]:
    """moto in process: every boto3 call made while this is active goes to moto."""
    with mock_aws():
        yield


@pytest.fixture(scope="session")
def aws_session() -> boto3.Session:
    """One boto3 session with fake credentials for every test client. mock_aws drops boto3's default
    session each time it starts, and a fresh session parses the service models again (~0.3 s for EC2)."""
    return boto3.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        aws_session_token="testing",
        region_name=AWS_TEST_REGION,
    )


@pytest.fixture
def aws_ec2_client(aws_mock: None, aws_session: boto3.Session):
    return aws_session.client("ec2")


@pytest.fixture
def aws_dynamodb_client(aws_mock: None, aws_session: boto3.Session):
    return aws_session.client("dynamodb")


@pytest.fixture
def aws_network(aws_ec2_client) -> AwsNetwork:
    vpc_id = aws_ec2_client.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnets = {
        zone: aws_ec2_client.create_subnet(VpcId=vpc_id, CidrBlock=f"10.42.{i}.0/24", AvailabilityZone=zone)["Subnet"][
            "SubnetId"
        ]
        for i, zone in enumerate(AWS_TEST_ZONES)
    }
    template = aws_ec2_client.create_launch_template(
        LaunchTemplateName="worker", LaunchTemplateData={"ImageId": AWS_TEST_AMI}
    )
    return AwsNetwork(vpc_id, subnets, template["LaunchTemplate"]["LaunchTemplateId"])


@pytest.fixture
def aws_state_template() -> Path:
    """The project's own template: the table schema has one source."""
    return Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture
def aws_state_table(aws_dynamodb_client, aws_state_template: Path) -> str:
    """Name of the state table, created in moto from the template."""
    return create_state_table(aws_dynamodb_client, aws_state_template)


@pytest.fixture
def aws_moto_server(aws_credentials: None) -> Iterator[str]:
    """moto as a real HTTP server on 127.0.0.1 (a free port), for tests that need concurrent clients.
    Yields its endpoint URL; do not combine with aws_mock (which would intercept the calls)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    requests.post(f"{url}/moto-api/reset", timeout=10).raise_for_status()  # backends are process-wide
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prom]:
    if binaries() is None:
        pytest.skip(INSTALL_HINT)
    end = float(int(time.time()) // STEP_S * STEP_S)
    with PrometheusServer(tmp_path_factory.mktemp("prometheus"), history(end)) as server:
        yield Prom(server.url, end)
