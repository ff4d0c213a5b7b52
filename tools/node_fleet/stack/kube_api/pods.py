"""The Pod builder: a pod shaped as a K3s API server returns it (`objects` builds the other kinds,
some from it: a DaemonSet's template is a pod)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

T0 = "2025-03-01T08:00:00Z"


def uid(*parts: str) -> str:
    """A UUID-shaped uid fixed by the object's identity, so a seeded cluster is the same every run."""
    h = hashlib.md5("/".join(parts).encode(), usedforsecurity=False).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


IMAGE = "ghcr.io/example/web:1.4.2"


@dataclass(frozen=True, kw_only=True)
class PodTemplate:
    """What a test says about a pod; `build()` adds what the API server and the kubelet would.

    One container requests `cpu`/`memory` unless `containers` are given (with their `requests`,
    `limits`, `ports`, `restartPolicy`). `spec` is merged into the pod's spec last (affinity,
    tolerations...). `unschedulable_since` makes it a pod the scheduler could not place (Pending,
    not bound, PodScheduled=False/Unschedulable since that time)."""

    name: str
    namespace: str = "default"
    node: str | None = "worker-1"
    cpu: str | None = "100m"
    memory: str | None = "128Mi"
    containers: Sequence[Mapping[str, Any]] | None = None
    init_containers: Sequence[Mapping[str, Any]] | None = None
    owner: tuple[str, str] | None = ("ReplicaSet", "web-7d9f8b6c5")
    owner_is_controller: bool = True
    labels: Mapping[str, str] | None = None
    annotations: Mapping[str, str] | None = None
    phase: str | None = None
    volumes: Sequence[Mapping[str, Any]] = ()
    unschedulable_since: str | None = None
    grace_period_s: int | None = 30
    overhead: Mapping[str, str] | None = None
    created: str = T0
    spec: Mapping[str, Any] | None = None

    def build(self) -> dict[str, Any]:
        node = None if self.unschedulable_since is not None else self.node
        phase = self.phase if self.phase is not None else ("Running" if node else "Pending")
        containers = self.containers
        if containers is None:
            requests = {k: v for k, v in (("cpu", self.cpu), ("memory", self.memory)) if v is not None}
            containers = [{"name": "app", "requests": requests}]
        return {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": self._metadata(),
            "spec": self._spec(node, containers),
            "status": self._status(node, phase, containers),
        }

    def _metadata(self) -> dict[str, Any]:
        name, namespace, created = self.name, self.namespace, self.created
        metadata: dict[str, Any] = {
            "name": name,
            "generateName": name.rsplit("-", 1)[0] + "-",
            "namespace": namespace,
            "uid": uid("pod", namespace, name),
            "creationTimestamp": created,
            "labels": {
                "app.kubernetes.io/name": name.rsplit("-", 2)[0],
                "pod-template-hash": "7d9f8b6c5",
                **(self.labels or {}),
            },
            "managedFields": [
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": created,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {
                        "f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:pod-template-hash": {}}}
                    },
                },
                {
                    "manager": "k3s",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": created,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:status": {"f:conditions": {}, "f:phase": {}, "f:podIP": {}}},
                    "subresource": "status",
                },
            ],
        }
        if self.owner is not None:
            kind, owner_name = self.owner
            ref = {
                "apiVersion": "batch/v1" if kind == "Job" else "apps/v1",
                "kind": kind,
                "name": owner_name,
                "uid": uid(kind, namespace, owner_name),
            }
            if self.owner_is_controller:
                ref |= {"controller": True, "blockOwnerDeletion": True}
            metadata["ownerReferences"] = [ref]
        if self.annotations:
            metadata["annotations"] = dict(self.annotations)
        return metadata

    def _spec(self, node: str | None, containers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        extra_spec = dict(self.spec or {})
        # Each pod's own, as the ServiceAccount admission plugin names it (a random suffix).
        access = f"kube-api-access-{uid('sa', self.namespace, self.name)[:5]}"
        spec: dict[str, Any] = {
            "volumes": [*[dict(v) for v in self.volumes], _service_account_volume(access)],
            "containers": [_container(c, access) for c in containers],
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
                for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
            ],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        }
        if self.grace_period_s is not None:
            spec["terminationGracePeriodSeconds"] = self.grace_period_s
        if self.init_containers:
            spec["initContainers"] = [_container(c, access) for c in self.init_containers]
        if self.overhead:
            spec["overhead"] = dict(self.overhead)
        if node:
            spec["nodeName"] = node
        # The API server appends its default tolerations to the pod's own.
        spec["tolerations"] = [dict(t) for t in extra_spec.pop("tolerations", ())] + spec["tolerations"]
        spec.update(extra_spec)
        return spec

    def _status(self, node: str | None, phase: str, containers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        status: dict[str, Any] = {"phase": phase, "qosClass": "Burstable"}
        if self.unschedulable_since is not None:
            status["conditions"] = [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "lastProbeTime": None,
                    "lastTransitionTime": self.unschedulable_since,
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: "
                    "3 No preemption victims found for incoming pod.",
                }
            ]
        elif node:
            status |= self._running_status(phase == "Running", containers)
        else:
            status["conditions"] = [
                {"type": "PodScheduled", "status": "False", "lastProbeTime": None, "lastTransitionTime": self.created}
            ]
        return status

    def _running_status(self, running: bool, containers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """What the kubelet reports for a bound pod: conditions, addresses, container statuses."""
        created = self.created
        return {
            "conditions": [
                {
                    "type": kind,
                    "status": "True" if ok else "False",
                    "lastProbeTime": None,
                    "lastTransitionTime": created,
                }
                for kind, ok in (
                    ("PodReadyToStartContainers", True),
                    ("Initialized", True),
                    ("Ready", running),
                    ("ContainersReady", running),
                    ("PodScheduled", True),
                )
            ],
            "hostIP": "10.0.1.23",
            "hostIPs": [{"ip": "10.0.1.23"}],
            "podIP": "10.42.3.17",
            "podIPs": [{"ip": "10.42.3.17"}],
            "startTime": created,
            "containerStatuses": [
                {
                    "name": c["name"],
                    "state": {"running": {"startedAt": created}} if running else {"terminated": {"exitCode": 0}},
                    "lastState": {},
                    "ready": running,
                    "restartCount": 0,
                    "image": IMAGE,
                    "imageID": "ghcr.io/example/web@sha256:5f3a9e2b1c0d",
                    "containerID": "containerd://" + uid("ctr", self.namespace, self.name, c["name"]).replace("-", ""),
                    "started": running,
                }
                for c in containers
            ],
        }


def pod(name: str, namespace: str = "default", **options: Any) -> dict[str, Any]:
    """`PodTemplate(name=name, namespace=namespace, **options).build()`: see PodTemplate."""
    return PodTemplate(name=name, namespace=namespace, **options).build()


def _container(c: Mapping[str, Any], access_volume: str) -> dict[str, Any]:
    out = {
        "name": c["name"],
        "image": c.get("image", IMAGE),
        "ports": [dict(p) for p in c.get("ports", [{"name": "http", "containerPort": 8080, "protocol": "TCP"}])],
        "resources": {"requests": dict(c.get("requests") or {})} if c.get("requests") else {},
        "volumeMounts": [
            {
                "name": access_volume,
                "readOnly": True,
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            }
        ],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
    }
    if c.get("limits"):
        out["resources"]["limits"] = dict(c["limits"])
    if c.get("restartPolicy"):
        out["restartPolicy"] = c["restartPolicy"]
    return out


def _service_account_volume(name: str) -> dict[str, Any]:
    """The projected token volume the ServiceAccount admission plugin adds to every pod."""
    return {
        "name": name,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {
                    "downwardAPI": {
                        "items": [
                            {"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}
                        ]
                    }
                },
            ],
            "defaultMode": 420,
        },
    }
