"""The Fleet port over EC2: list, launch, stop, start and terminate this cluster's worker instances.

Workers are the instances tagged `node-fleet.io/cluster=<cluster>` and `node-fleet.io/role=worker` in
the cluster's VPC (VPC_ID); nothing else is ever listed, launched or terminated. Tags alone are not
proof: anyone who may tag instances in the account could mark one as ours, so the VPC is checked too.
A launch goes through the launch template into the subnets of SUBNET_IDS, trying the instance types of
INSTANCE_TYPES in order, the other zones' subnets, and on-demand for what spot could not place, whenever
EC2 answers that it has no capacity. Any other error (permissions, validation, throttling past the
retries) raises.

Launches are idempotent per token: each RunInstances call carries a ClientToken derived from the token,
and each launched instance carries the token as a tag, looked up before launching again (moto ignores
ClientToken, and DescribeInstances is only eventually consistent, so each covers the other's gap).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from botocore.config import Config
from botocore.exceptions import ClientError

from autoscaler import ports
from autoscaler.config import ConfigError
from autoscaler.config.ec2 import Ec2Options
from autoscaler.model import Instance, InstanceState
from autoscaler.ports import LaunchResult

logger = Logger(child=True)

CLUSTER_TAG = "node-fleet.io/cluster"
ROLE_TAG = "node-fleet.io/role"
LAUNCH_TOKEN_TAG = "node-fleet.io/launch-token"  # nosec B105  # an EC2 tag key, not a password
WORKER_ROLE = "worker"

SPOT = "spot"
ON_DEMAND = "on-demand"

RETRY_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 5}, connect_timeout=5, read_timeout=20)

# EC2 answers these when a placement (type x zone x market) has no room: try the next one.
CAPACITY_ERRORS = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientHostCapacity",
        "InsufficientReservedInstanceCapacity",
        "InsufficientCapacity",
        "InsufficientFreeAddressesInSubnet",
        "SpotMaxPriceTooLow",
        "MaxSpotInstanceCountExceeded",
        "InstanceLimitExceeded",
        "VcpuLimitExceeded",
        "Unsupported",
    }
)
# Account-wide for spot: no other type or zone will do better, go straight to on-demand.
_SPOT_EXHAUSTED = frozenset({"MaxSpotInstanceCountExceeded"})

_ALIVE = (InstanceState.PENDING.value, InstanceState.RUNNING.value)
_MAX_TAG_VALUE = 256


class FleetError(Exception):
    """The fleet cannot do what was asked, and retrying will not change that."""


class NotOurInstance(FleetError, ports.NotOurInstance):
    """The instance is not this cluster's worker (tags or VPC): it is never terminated."""


class Ec2Fleet:
    """The Fleet port over EC2 (see the module docstring)."""

    def __init__(self, options: Ec2Options, cluster_name: str, client: Any = None) -> None:
        if not cluster_name:
            raise ConfigError("CLUSTER_NAME must not be empty")
        self.options = options
        self.cluster_name = cluster_name
        self._client = client
        self._subnet_zone: dict[str, str] | None = None

    @property
    def client(self) -> Any:
        """The EC2 client, created on first use (so after moto has started, in tests)."""
        if self._client is None:
            self._client = boto3.client("ec2", config=RETRY_CONFIG)
        return self._client

    def zones(self) -> Sequence[str]:
        return tuple(dict.fromkeys(self._subnets().values()))

    def list_workers(self) -> Sequence[Instance]:
        # Shutting-down and terminated workers too, while EC2 lists them: their Nodes get cleaned up. EC2
        # drops a terminated instance's VpcId, so the VPC is checked here rather than by a filter; a
        # terminated instance is never acted on, only its Node removed.
        return tuple(
            _instance(raw)
            for raw in self._describe(self._worker_filters(states=None, vpc=False))
            if raw.get("VpcId") == self.options.vpc_id
            or ("VpcId" not in raw and raw["State"]["Name"] == InstanceState.TERMINATED.value)
        )

    def launch(self, az: str, count: int, token: str) -> LaunchResult:
        if count <= 0:
            return LaunchResult(())
        if not token or len(token) > _MAX_TAG_VALUE:
            raise ValueError(f"launch token must be 1..{_MAX_TAG_VALUE} characters, got {len(token)}")
        if self.options.launch_template_id is None:
            raise ConfigError("LAUNCH_TEMPLATE_ID is required to launch workers")
        subnets = self._subnets()
        if az not in subnets.values():
            raise ValueError(f"zone {az!r} is not one of the fleet's zones {tuple(self.zones())}")

        already = tuple(raw["InstanceId"] for raw in self._describe(self._worker_filters(token)))
        if already:
            logger.info("launch already made for this token", extra={"token": token, "instances": already})
            return LaunchResult(already)

        attempt = _Attempt(self, token)
        spot = self.options.spot_count(count)
        spot_unplaced = attempt.fill(SPOT, spot, az, subnets)
        attempt.fill(ON_DEMAND, count - spot + spot_unplaced, az, subnets)
        return LaunchResult(tuple(attempt.instance_ids), tuple(attempt.failures))

    def terminate(self, instance_id: str) -> None:
        raw = self._ours(instance_id, "terminate")
        if raw is None or raw["State"]["Name"] in (InstanceState.SHUTTING_DOWN.value, InstanceState.TERMINATED.value):
            return
        self.client.terminate_instances(InstanceIds=[instance_id])
        logger.info("terminated worker", extra={"instance_id": instance_id})

    def stop(self, instance_id: str) -> None:
        raw = self._ours(instance_id, "stop")
        # Stopping, stopped or gone need nothing. A pending one cannot be stopped: it is left to
        # run, and the planner gives its node back once Ready (warm_pool.tend).
        if raw is None or raw["State"]["Name"] != InstanceState.RUNNING.value:
            return
        self.client.stop_instances(InstanceIds=[instance_id])
        logger.info("stopped worker into the warm pool", extra={"instance_id": instance_id})

    def start(self, instance_ids: Sequence[str]) -> LaunchResult:
        started, failures = [], []
        for instance_id in instance_ids:
            try:
                raw = self._ours(instance_id, "start")
            except NotOurInstance as err:
                failures.append(f"{instance_id}: {err}")
                continue
            state = raw["State"]["Name"] if raw is not None else "gone"
            if state != InstanceState.STOPPED.value:
                failures.append(f"{instance_id}: {state}, not stopped")
                continue
            try:
                self.client.start_instances(InstanceIds=[instance_id])
            except ClientError as err:
                if _code(err) not in CAPACITY_ERRORS | {"IncorrectInstanceState"}:
                    raise
                failures.append(f"{instance_id}: {_code(err)}")
                continue
            started.append(instance_id)
            logger.info("started worker from the warm pool", extra={"instance_id": instance_id})
        return LaunchResult(tuple(started), tuple(failures))

    def _ours(self, instance_id: str, verb: str) -> dict[str, Any] | None:
        """The instance as EC2 describes it, None when it is gone; NotOurInstance unless it carries
        this cluster's worker tags and, while it exists, sits in the cluster's VPC."""
        try:
            found = list(self._describe([], InstanceIds=[instance_id]))
        except ClientError as err:
            if _code(err) == "InvalidInstanceID.NotFound":
                logger.info(f"instance to {verb} is already gone", extra={"instance_id": instance_id})
                return None
            raise
        if not found:
            return None
        raw = found[0]
        tags = _tags(raw)
        if tags.get(CLUSTER_TAG) != self.cluster_name or tags.get(ROLE_TAG) != WORKER_ROLE:
            raise NotOurInstance(
                f"refusing to {verb} {instance_id}: its tags {CLUSTER_TAG}={tags.get(CLUSTER_TAG)!r}, "
                f"{ROLE_TAG}={tags.get(ROLE_TAG)!r} do not mark it a worker of cluster {self.cluster_name!r}"
            )
        # EC2 drops a terminated instance's VpcId: nothing is done to it, so it need not prove its VPC.
        if raw["State"]["Name"] != InstanceState.TERMINATED.value and raw.get("VpcId") != self.options.vpc_id:
            raise NotOurInstance(
                f"refusing to {verb} {instance_id}: it is in VPC {raw.get('VpcId')!r}, "
                f"not the cluster's {self.options.vpc_id!r}"
            )
        return raw

    # -- helpers -------------------------------------------------------------------------------

    def _subnets(self) -> dict[str, str]:
        """Subnet id -> its zone, in SUBNET_IDS order; looked up once."""
        if self._subnet_zone is None:
            try:
                answer = self.client.describe_subnets(SubnetIds=list(self.options.subnet_ids))
            except ClientError as err:
                if _code(err) == "InvalidSubnetID.NotFound":
                    raise ConfigError(f"SUBNET_IDS names a subnet that does not exist: {_message(err)}") from None
                raise
            zones = {s["SubnetId"]: s["AvailabilityZone"] for s in answer["Subnets"]}
            missing = [s for s in self.options.subnet_ids if s not in zones]
            if missing:
                raise ConfigError(f"SUBNET_IDS names subnets that do not exist: {', '.join(missing)}")
            # A worker launched outside the VPC would never be listed, and so never counted or removed.
            elsewhere = [s["SubnetId"] for s in answer["Subnets"] if s["VpcId"] != self.options.vpc_id]
            if elsewhere:
                raise ConfigError(
                    f"SUBNET_IDS names subnets outside VPC_ID={self.options.vpc_id}: {', '.join(elsewhere)}"
                )
            self._subnet_zone = {s: zones[s] for s in self.options.subnet_ids}
        return self._subnet_zone

    def _worker_filters(
        self, token: str | None = None, states: tuple[str, ...] | None = _ALIVE, vpc: bool = True
    ) -> list[dict[str, Any]]:
        filters = [
            {"Name": f"tag:{CLUSTER_TAG}", "Values": [self.cluster_name]},
            {"Name": f"tag:{ROLE_TAG}", "Values": [WORKER_ROLE]},
        ]
        if vpc:
            filters.append({"Name": "vpc-id", "Values": [self.options.vpc_id]})
        if states is not None:
            filters.append({"Name": "instance-state-name", "Values": list(states)})
        if token is not None:
            filters.append({"Name": f"tag:{LAUNCH_TOKEN_TAG}", "Values": [token]})
        return filters

    def _describe(self, filters: list[dict[str, Any]], **kwargs: Any) -> Iterator[dict[str, Any]]:
        if filters:
            kwargs["Filters"] = filters
        for page in self.client.get_paginator("describe_instances").paginate(**kwargs):
            for reservation in page["Reservations"]:
                yield from reservation["Instances"]

    def _launch_tags(self, token: str) -> list[dict[str, str]]:
        """The tags put on each launched instance and its volumes."""
        return [
            {"Key": CLUSTER_TAG, "Value": self.cluster_name},
            {"Key": ROLE_TAG, "Value": WORKER_ROLE},
            {"Key": LAUNCH_TOKEN_TAG, "Value": token},
            {"Key": "Name", "Value": f"{self.cluster_name}-worker"},
        ]


class _Attempt:
    """One launch call's walk through the placements; collects instances and failure lines."""

    def __init__(self, fleet: Ec2Fleet, token: str) -> None:
        self.fleet = fleet
        self.token = token
        self.tags = fleet._launch_tags(token)
        self.calls = 0
        self.instance_ids: list[str] = []
        self.failures: list[str] = []

    def fill(self, market: str, wanted: int, az: str, subnets: Mapping[str, str]) -> int:
        """Launch up to `wanted` instances of `market`; returns how many could not be placed."""
        ordered = [s for s, zone in subnets.items() if zone == az] + [s for s, zone in subnets.items() if zone != az]
        left = wanted
        for subnet in ordered:
            for instance_type in self.fleet.options.instance_types:
                while left > 0:
                    try:
                        started = self._run(market, subnet, instance_type, left)
                    except ClientError as err:
                        code = _code(err)
                        if code not in CAPACITY_ERRORS:
                            raise
                        line = f"{instance_type}/{subnets[subnet]} {market}: {code}"
                        self.failures.append(line)
                        logger.warning("launch fell back", extra={"failure": line, "token": self.token})
                        if market == SPOT and code in _SPOT_EXHAUSTED:
                            return left
                        break
                    self.instance_ids.extend(started)
                    left -= len(started)
                if left == 0:
                    return 0
        return left

    def _run(self, market: str, subnet: str, instance_type: str, count: int) -> list[str]:
        self.calls += 1
        options = self.fleet.options
        params: dict[str, Any] = {
            "LaunchTemplate": {
                "LaunchTemplateId": options.launch_template_id,
                "Version": options.launch_template_version,
            },
            "InstanceType": instance_type,
            "SubnetId": subnet,
            # MinCount 1: take what fits; a short answer means the placement is full, and the next
            # call here either gets more or answers with a capacity error.
            "MinCount": 1,
            "MaxCount": count,
            "ClientToken": client_token(self.token, market, subnet, instance_type, self.calls),
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": self.tags},
                {"ResourceType": "volume", "Tags": self.tags},
            ],
        }
        if market == SPOT:
            params["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
            }
        answer = self.fleet.client.run_instances(**params)
        return [raw["InstanceId"] for raw in answer["Instances"]]


def client_token(token: str, market: str, subnet: str, instance_type: str, attempt: int) -> str:
    """RunInstances' ClientToken (at most 64 characters): one per attempt of one launch token."""
    return hashlib.sha256(f"{token}|{market}|{subnet}|{instance_type}|{attempt}".encode()).hexdigest()


_STOPPED_AT = re.compile(r"\((\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) (?:GMT|UTC)\)")
"""The time in a stop's StateTransitionReason: EC2 says "User initiated (2026-12-05 01:02:03 GMT)"
(moto says UTC)."""


def _stopped_at(raw: Mapping[str, Any]) -> float | None:
    if raw["State"]["Name"] not in (InstanceState.STOPPING.value, InstanceState.STOPPED.value):
        return None
    found = _STOPPED_AT.search(raw.get("StateTransitionReason") or "")
    if found is None:
        return None
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()


def _instance(raw: Mapping[str, Any]) -> Instance:
    launched: datetime = raw["LaunchTime"]
    return Instance(
        id=raw["InstanceId"],
        state=InstanceState(raw["State"]["Name"]),
        az=raw["Placement"]["AvailabilityZone"],
        instance_type=raw["InstanceType"],
        launched_at=launched.timestamp(),
        lifecycle=SPOT if raw.get("InstanceLifecycle") == "spot" else ON_DEMAND,
        # EC2 answers "" for these once an instance is terminated.
        private_ip=raw.get("PrivateIpAddress") or None,
        private_dns_name=raw.get("PrivateDnsName") or None,
        stopped_at=_stopped_at(raw),
    )


def _tags(raw: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in raw.get("Tags", ())}


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _message(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Message", ""))
