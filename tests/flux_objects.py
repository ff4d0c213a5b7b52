"""Flux objects as the controllers write them (Kustomization, HelmRelease, Flagger Canary) and the
events Flux's notification-controller posts, for the table tests, the hook's tests and the fuzzing
seeds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

NOW = 1_785_000_000.0  # 2026-07-25T17:20:00Z
REV = "main@sha1:6b1a4e0e9c3d2f7a8b5c4d3e2f1a0b9c8d7e6f5a"
REQUESTED = "2026-07-25T17:19:30.123456789Z"
HANDLED_BEFORE = "2026-07-25T16:00:00.000000001Z"


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def cond(kind: str, status: str, reason: str, message: str = "", gen: int | None = 3, at: float = NOW - 60):
    c: dict[str, Any] = {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": iso(at),
    }
    if gen is not None:
        c["observedGeneration"] = gen
    return c


def kustomization(conditions: list[dict[str, Any]] | None, generation: int = 3, observed: int = 3, **extra):
    obj: dict[str, Any] = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {
            "name": "apps",
            "namespace": "flux-system",
            "generation": generation,
            "uid": "0c3c5f1e-6a0f-4f6f-9a43-3d0b8c8a2f11",
            "resourceVersion": "48213",
            "annotations": {},
        },
        "spec": {
            "interval": "5m",
            "path": "./gitops/apps/production",
            "prune": True,
            "wait": True,
            "timeout": "3m",
            "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
            "dependsOn": [{"name": "infrastructure"}],
        },
        "status": {
            "observedGeneration": observed,
            "lastAppliedRevision": REV,
            "lastAttemptedRevision": REV,
            "lastHandledReconcileAt": HANDLED_BEFORE,
            "inventory": {"entries": [{"id": "demo_demo-app_apps_Deployment", "v": "v1"}]},
            "history": [
                {
                    "digest": "sha256:9f2c0d6e",
                    "firstReconciled": iso(NOW - 3600),
                    "lastReconciled": iso(NOW - 60),
                    "lastReconciledDuration": "12.4s",
                    "lastReconciledStatus": "ReconciliationSucceeded",
                    "totalReconciliations": 12,
                    "metadata": {"revision": REV},
                }
            ],
        },
    }
    if conditions is None:
        del obj["status"]
    else:
        obj["status"]["conditions"] = conditions
    for path, value in extra.items():
        set_path(obj, path, value)
    return obj


def helm_release(conditions: list[dict[str, Any]], generation: int = 3, observed: int = 3, **extra):
    obj: dict[str, Any] = {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": "kube-prometheus-stack", "namespace": "monitoring", "generation": generation},
        "spec": {
            "interval": "30m",
            "timeout": "10m",
            "chart": {
                "spec": {
                    "chart": "kube-prometheus-stack",
                    "version": "77.x",
                    "sourceRef": {"kind": "HelmRepository", "name": "prometheus-community"},
                }
            },
        },
        "status": {
            "observedGeneration": observed,
            "lastAttemptedGeneration": observed,
            "lastAttemptedRevision": "77.0.1",
            "lastAttemptedConfigDigest": "sha256:1d7e",
            "lastAttemptedReleaseAction": "upgrade",
            "lastHandledReconcileAt": HANDLED_BEFORE,
            "helmChart": "monitoring-kube-prometheus-stack",
            "storageNamespace": "monitoring",
            "conditions": conditions,
            "history": [
                {
                    "name": "kube-prometheus-stack",
                    "namespace": "monitoring",
                    "version": 4,
                    "status": "deployed",
                    "chartName": "kube-prometheus-stack",
                    "chartVersion": "77.0.1",
                    "appVersion": "v0.85.0",
                    "configDigest": "sha256:1d7e",
                    "digest": "sha256:77aa",
                    "firstDeployed": iso(NOW - 86400),
                    "lastDeployed": iso(NOW - 7200),
                },
                {
                    "name": "kube-prometheus-stack",
                    "namespace": "monitoring",
                    "version": 3,
                    "status": "superseded",
                    "chartName": "kube-prometheus-stack",
                    "chartVersion": "77.0.0",
                    "configDigest": "sha256:0c6d",
                    "digest": "sha256:66bb",
                    "firstDeployed": iso(NOW - 86400),
                    "lastDeployed": iso(NOW - 80000),
                },
            ],
        },
    }
    for path, value in extra.items():
        set_path(obj, path, value)
    return obj


def canary(phase: str | None, **extra):
    obj: dict[str, Any] = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "demo-app", "namespace": "apps", "generation": 1},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "demo-app"},
            "service": {"port": 80},
            "analysis": {"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10},
        },
        "status": {
            "phase": phase,
            "canaryWeight": 20,
            "iterations": 0,
            "failedChecks": 0,
            "lastAppliedSpec": "5d8f9c7b6",
            "lastPromotedSpec": "5d8f9c7b6",
            "lastTransitionTime": iso(NOW - 900),
            "conditions": [
                {
                    "type": "Promoted",
                    "status": "Unknown",
                    "reason": "Progressing",
                    "message": "New revision detected, progressing canary analysis.",
                    "lastTransitionTime": iso(NOW - 900),
                    "lastUpdateTime": iso(NOW - 60),
                }
            ],
        },
    }
    if phase is None:
        del obj["status"]
    for path, value in extra.items():
        set_path(obj, path, value)
    return obj


def set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    """set_path(obj, "status__conditions__0__status", 5): '__' separates keys; digits index lists."""
    keys = path.split("__")
    target: Any = obj
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    last = keys[-1]
    if value is DELETE:
        del target[int(last) if last.isdigit() else last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value


DELETE = object()


def flux_event(reason: str = "Progressing", *, sent: float) -> dict[str, Any]:
    """A Kustomization event as Flux's notification-controller posts it, sent at `sent`."""
    return {
        "involvedObject": {
            "kind": "Kustomization",
            "namespace": "flux-system",
            "name": "apps",
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        },
        "severity": "info",
        "timestamp": iso(sent),
        "message": "Applying revision main@sha1:abc",
        "reason": reason,
        "reportingController": "kustomize-controller",
        "metadata": {"revision": "main@sha1:abc"},
    }
