"""The hook function's wiring: what it reads Flux from, where it keeps the gate item, and its HMAC key.

Built from the environment once per Lambda container; it needs none of the autoscaler's service.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from autoscaler.adapters.from_env import kube_cluster, secret
from autoscaler.config import Settings
from autoscaler.config.environ import required
from autoscaler.gitops.reader import FluxObjects, GateStore


class HookStore(GateStore, Protocol):
    def first_use(self, digest: str, expires_at: float) -> bool:
        """Record `digest` until `expires_at`; False when it was recorded before."""


@dataclass
class HookWiring:
    source: FluxObjects
    store: HookStore
    hmac_key: bytes
    clock: Any = time.time


def build_hook(environ: Mapping[str, str]) -> HookWiring:
    from autoscaler.adapters.dynamodb import DynamoGateStore

    cluster = Settings.from_env(environ).cluster_name
    key = secret(required(environ, "WEBHOOK_HMAC_PARAM"))
    return HookWiring(kube_cluster(environ), DynamoGateStore(required(environ, "STATE_TABLE"), cluster), key.encode())
