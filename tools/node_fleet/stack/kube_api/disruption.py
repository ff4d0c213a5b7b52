"""The disruption controller's rules: a PDB's status from the pods it selects, and whether an
eviction may take one more pod from it (and what a refusal says)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from .resources import ApiError, now
from .selectors import selector_matches

T_SYNC = "2025-03-01T08:00:00Z"


def selects(pdb: Mapping[str, Any], namespace: str, labels: Mapping[str, str]) -> bool:
    """Does this PDB select a pod of `namespace` with these labels?"""
    return pdb["metadata"]["namespace"] == namespace and selector_matches(
        (pdb.get("spec") or {}).get("selector"), labels
    )


def pdb_status(pdb: Mapping[str, Any], selected: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The status the controller computes for `pdb` from the pods it selects."""
    pods = [p for p in selected if not p["metadata"].get("deletionTimestamp")]
    previous = pdb.get("status") or {}
    spec = pdb.get("spec") or {}
    expected = len(pods)
    if spec.get("maxUnavailable") is not None or str(spec.get("minAvailable", "")).endswith("%"):
        # The real controller takes the owning controllers' scale here; the fake's stand-in is
        # the most pods the PDB has selected (evicted pods count as replaced later).
        expected = max(expected, previous.get("expectedPods", 0))
    healthy = sum(1 for p in pods if pod_ready(p))
    if spec.get("minAvailable") is not None:
        desired = scaled(spec["minAvailable"], expected)
    elif spec.get("maxUnavailable") is not None:
        desired = max(0, expected - scaled(spec["maxUnavailable"], expected))
    else:
        desired = 0
    allowed = max(0, healthy - desired)
    status = {
        "observedGeneration": pdb["metadata"].get("generation", 1),
        "disruptionsAllowed": allowed,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "conditions": [
            {
                "type": "DisruptionAllowed",
                "status": "True" if allowed else "False",
                "reason": "SufficientPods" if allowed else "InsufficientPods",
                "message": "",
                "observedGeneration": pdb["metadata"].get("generation", 1),
                "lastTransitionTime": T_SYNC,
            }
        ],
    }
    if previous.get("disruptedPods"):
        status["disruptedPods"] = previous["disruptedPods"]
    return status


def needs_budget(pod: Mapping[str, Any]) -> bool:
    """Only a running (or unknown-phase) pod's eviction is checked against its PDB."""
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed", "Pending")


def take_disruption(pdbs: list[dict[str, Any]], pod_name: str) -> dict[str, Any] | None:
    """Charge the eviction of `pod_name` to the one PDB selecting it, if any, and return that PDB;
    refuse as the real server does when more than one selects it or the budget is spent."""
    if len(pdbs) > 1:
        raise ApiError(
            500,
            "InternalError",
            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
        )
    if not pdbs:
        return None
    budget = pdbs[0]
    status = budget.setdefault("status", {})
    if status.get("disruptionsAllowed", 0) <= 0:
        raise ApiError(
            429,
            "TooManyRequests",
            "Cannot evict pod as it would violate the pod's disruption budget.",
            {
                "causes": [
                    {
                        "reason": "DisruptionBudget",
                        "message": f"The disruption budget {budget['metadata']['name']} needs "
                        f"{status.get('desiredHealthy', 0)} healthy pods and has "
                        f"{status.get('currentHealthy', 0)} currently",
                    }
                ]
            },
        )
    status["disruptionsAllowed"] -= 1
    status.setdefault("disruptedPods", {})[pod_name] = now()
    return budget


def pod_ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    conditions = status.get("conditions")
    if not conditions:
        return True
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def scaled(value: int | str, total: int) -> int:
    """An IntOrString of a PDB: an int, or a percentage of `total` rounded up (as the controller does)."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)
