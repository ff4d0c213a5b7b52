"""The Lease and StateStore ports over one DynamoDB table (its schema lives in template.yaml).

Keys: partition key `pk` (S), sort key `sk` (S); the TTL attribute is `expires_at` (epoch seconds).
Each cluster owns the partition `cluster#<name>`, written by the autoscaler only:

    sk = "lease"   owner, expires_at (TTL), acquired_at      the lease (one acting invocation)
    sk = "state"   version (N), body (JSON of ScalingState)  written with a version check

and the partition `gate#<name>`, the only one the GitOps hook may write (its IAM policy holds it there
with `dynamodb:LeadingKeys`):

    sk = "gate"              body (JSON), observed_at (N)   the gate record
    sk = "replay#<digest>"   expires_at (TTL)               a webhook signature already used

Powertools Idempotency shares the table (key_attr="pk", sort_key_attr="sk", expiry_attr="expires_at");
its partition keys start with `idempotency#`, so the two never meet.
"""

from __future__ import annotations

import decimal
import json
import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, NamedTuple

import boto3
from aws_lambda_powertools import Logger
from botocore.config import Config
from botocore.exceptions import ClientError

from autoscaler.adapters.state_json import reject_constant, state_from_json, state_to_json
from autoscaler.model import ScalingState
from autoscaler.ports import StaleStateError

logger = Logger(child=True)

PARTITION_KEY = "pk"
SORT_KEY = "sk"
TTL_ATTRIBUTE = "expires_at"
LEASE_SK = "lease"
STATE_SK = "state"
GATE_SK = "gate"
REPLAY_SK_PREFIX = "replay#"
"""Version of the state body's layout; a body of another format is rejected, not guessed at."""

RETRY_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=10)

_CONDITION_FAILED = "ConditionalCheckFailedException"


def cluster_key(cluster: str) -> str:
    return f"cluster#{cluster}"


def gate_key(cluster: str) -> str:
    return f"gate#{cluster}"


class _ClusterItems:
    """A cluster's items in the table, through a client made on first use unless one is injected."""

    sort_key: str = ""

    def __init__(self, table_name: str, cluster: str, client: Any = None) -> None:
        if not table_name:
            raise ValueError("table_name must not be empty")
        if not cluster:
            raise ValueError("cluster must not be empty")
        self.table_name = table_name
        self.cluster = cluster
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.client("dynamodb", config=RETRY_CONFIG)
        return self._client

    @property
    def partition(self) -> str:
        return cluster_key(self.cluster)

    @property
    def key(self) -> dict[str, dict[str, str]]:
        return {PARTITION_KEY: {"S": self.partition}, SORT_KEY: {"S": self.sort_key}}

    def _get(self) -> dict[str, Any] | None:
        answer = self.client.get_item(TableName=self.table_name, Key=self.key, ConsistentRead=True)
        return answer.get("Item")


class DynamoLease(_ClusterItems):
    """At most one holder per cluster: a conditional put on "absent or expired", released only by its owner."""

    sort_key = LEASE_SK

    def acquire(self, owner: str, now: float, duration_s: float) -> bool:
        """Take the lease until `now + duration_s` if it is free or expired; False if someone holds it
        (the holder itself included: a lease is not re-entrant)."""
        if not owner:
            raise ValueError("lease owner must not be empty")
        if not (math.isfinite(now) and math.isfinite(duration_s) and duration_s > 0):
            raise ValueError(f"lease needs a finite now and a positive duration, got {now!r}, {duration_s!r}")
        expires = math.ceil(now + duration_s)  # whole seconds, as TTL wants; rounding up only lengthens it
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item={
                    **self.key,
                    "owner": {"S": owner},
                    TTL_ATTRIBUTE: {"N": str(expires)},
                    "acquired_at": {"N": _number(now)},
                },
                # A lease without an expiry (written by hand, or by a broken writer) would otherwise hold forever.
                ConditionExpression="attribute_not_exists(#pk) OR attribute_not_exists(#expires) OR #expires < :now",
                ExpressionAttributeNames={"#pk": PARTITION_KEY, "#expires": TTL_ATTRIBUTE},
                ExpressionAttributeValues={":now": {"N": _number(now)}},
            )
        except ClientError as err:
            if _code(err) == _CONDITION_FAILED:
                return False
            raise
        return True

    def release(self, owner: str) -> None:
        """Delete the lease if `owner` holds it; a lease held by another, or gone, is left alone."""
        try:
            self.client.delete_item(
                TableName=self.table_name,
                Key=self.key,
                ConditionExpression="#owner = :me",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":me": {"S": owner}},
            )
        except ClientError as err:
            if _code(err) != _CONDITION_FAILED:
                raise
            logger.info("lease not released: no longer held by this invocation", extra={"cluster": self.cluster})


class DynamoStateStore(_ClusterItems):
    """The cluster's ScalingState, with optimistic concurrency on its `version` attribute."""

    sort_key = STATE_SK

    def load(self) -> ScalingState:
        """The stored state (version from the item); ScalingState() with version 0 when there is none.
        ValueError if the stored item is malformed."""
        item = self._get()
        if item is None:
            return ScalingState()
        try:
            version = int(item["version"]["N"])
            body = item["body"]["S"]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"state item of cluster {self.cluster!r} lacks a numeric version or a body") from None
        return replace(state_from_json(body), version=version)

    def save(self, state: ScalingState) -> ScalingState:
        """Store `state` if the stored version is still `state.version`; returns it at version + 1."""
        saved = replace(state, version=state.version + 1)
        if state.version == 0:
            condition: dict[str, Any] = {
                "ConditionExpression": "attribute_not_exists(#pk)",
                "ExpressionAttributeNames": {"#pk": PARTITION_KEY},
            }
        else:
            condition = {
                "ConditionExpression": "#version = :loaded",
                "ExpressionAttributeNames": {"#version": "version"},
                "ExpressionAttributeValues": {":loaded": {"N": str(state.version)}},
            }
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item={**self.key, "version": {"N": str(saved.version)}, "body": {"S": state_to_json(saved)}},
                **condition,
            )
        except ClientError as err:
            if _code(err) == _CONDITION_FAILED:
                raise StaleStateError(
                    f"state of cluster {self.cluster!r} changed since version {state.version} was loaded"
                ) from None
            raise
        return saved


class GateEntry(NamedTuple):
    record: dict[str, Any]
    observed_at: float


class DynamoGateStore(_ClusterItems):
    """The GitOps gate's latest record: written by the gitops hooks, read by the autoscaler. Also the
    webhook's replay cache, in the same partition (the hook may write no other)."""

    sort_key = GATE_SK

    @property
    def partition(self) -> str:
        return gate_key(self.cluster)

    def first_use(self, digest: str, expires_at: float) -> bool:
        """Record `digest` until `expires_at` (TTL); False when it is already recorded."""
        if not digest:
            raise ValueError("digest must not be empty")
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item={
                    PARTITION_KEY: {"S": self.partition},
                    SORT_KEY: {"S": f"{REPLAY_SK_PREFIX}{digest}"},
                    TTL_ATTRIBUTE: {"N": str(math.ceil(expires_at))},
                },
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PARTITION_KEY},
            )
        except ClientError as err:
            if _code(err) == _CONDITION_FAILED:
                return False
            raise
        return True

    def load(self) -> dict[str, Any] | None:
        """The record last saved, or None when there is none."""
        entry = self.load_entry()
        return None if entry is None else entry.record

    def load_entry(self) -> GateEntry | None:
        """The record last saved with when it was observed (to judge its age), or None."""
        item = self._get()
        if item is None:
            return None
        try:
            record = json.loads(item["body"]["S"], parse_constant=reject_constant)
            observed_at = float(item["observed_at"]["N"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"gate item of cluster {self.cluster!r} is malformed: {err}") from None
        if not isinstance(record, dict):
            raise ValueError(f"gate item of cluster {self.cluster!r}: body must be a JSON object")
        return GateEntry(record, observed_at)

    def save(self, record: Mapping[str, Any], observed_at: float) -> None:
        """Replace the record (any JSON object; NaN and infinities are refused)."""
        if not math.isfinite(observed_at):
            raise ValueError(f"observed_at must be finite, got {observed_at!r}")
        body = json.dumps(dict(record), allow_nan=False, sort_keys=True, separators=(",", ":"))
        self.client.put_item(
            TableName=self.table_name,
            Item={**self.key, "body": {"S": body}, "observed_at": {"N": _number(observed_at)}},
        )


# -- the state body's codec -----------------------------------------------------------------------


def _number(value: float) -> str:
    """A DynamoDB number: plain decimal notation, never an exponent."""
    return format(decimal.Decimal(repr(float(value))), "f")


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))
