"""The kinds the fake API server serves, and the Status errors it answers with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class ApiResource:
    """One served kind, as in the API's discovery (Kubernetes' own name is APIResource)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    builtin: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


NODES = ApiResource("", "v1", "nodes", "Node", namespaced=False)
PODS = ApiResource("", "v1", "pods", "Pod", namespaced=True)
PDBS = ApiResource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", namespaced=True)
NAMESPACES = ApiResource("", "v1", "namespaces", "Namespace", namespaced=False)
PVS = ApiResource("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False)
PVCS = ApiResource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", namespaced=True)
STORAGE_CLASSES = ApiResource("storage.k8s.io", "v1", "storageclasses", "StorageClass", namespaced=False)
DAEMONSETS = ApiResource("apps", "v1", "daemonsets", "DaemonSet", namespaced=True)
BUILTIN = (NODES, PODS, PDBS, NAMESPACES, PVS, PVCS, STORAGE_CLASSES, DAEMONSETS)

KUSTOMIZATIONS = ApiResource("kustomize.toolkit.fluxcd.io", "v1", "kustomizations", "Kustomization", True, False)
HELMRELEASES = ApiResource("helm.toolkit.fluxcd.io", "v2", "helmreleases", "HelmRelease", True, False)
CANARIES = ApiResource("flagger.app", "v1beta1", "canaries", "Canary", True, False)
FLUX_KINDS = (KUSTOMIZATIONS, HELMRELEASES, CANARIES)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """Answered as a metav1.Status with this code and reason."""

    def __init__(self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, dict(details or {})

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def not_found(res: ApiResource, name: str) -> ApiError:
    group = {"group": res.group} if res.group else {}
    return ApiError(
        404, "NotFound", f'{res.plural}{"." + res.group if res.group else ""} "{name}" not found',
        {"name": name, **group, "kind": res.plural},
    )  # fmt: skip


NO_RESOURCE = ApiError(404, "NotFound", "the server could not find the requested resource")


def conflict(res: ApiResource, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {res.plural} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        {"name": name, "kind": res.plural},
    )
