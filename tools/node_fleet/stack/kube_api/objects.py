"""Builders of Kubernetes objects shaped as a K3s API server returns them.

Each builder returns a plain dict with kind, apiVersion, metadata, spec and status, with the
fields a real object carries (managedFields, default tolerations, conditions, container
statuses...), so list sizes and parsing costs resemble a real cluster's. Seed them with
`FakeKube.add`. Pods have their own builder, `pods.PodTemplate`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .pods import T0, pod, uid


def node(
    name: str,
    *,
    instance_id: str | None = "i-0123456789abcdef0",
    az: str = "eu-west-1a",
    provider_id: str | None = None,
    cpu: str = "2",
    memory: str = "7901Mi",
    ready: bool = True,
    unschedulable: bool = False,
    control_plane: bool = False,
    role_label: str = "node-role.kubernetes.io/control-plane",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    taints: Sequence[Mapping[str, Any]] | None = None,
    created: str = T0,
    instance_type: str = "t3.large",
) -> dict[str, Any]:
    """A K3s node. `provider_id` overrides the one built from `az` and `instance_id`."""
    if provider_id is None:
        provider_id = f"aws:///{az}/{instance_id}" if instance_id else f"k3s://{name}"
    all_labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/instance-type": "k3s",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": instance_type,
        "topology.kubernetes.io/region": az[:-1],
        "topology.kubernetes.io/zone": az,
    }
    if control_plane:
        all_labels[role_label] = "true"
        all_labels["node-role.kubernetes.io/etcd"] = "true"
    all_labels.update(labels or {})
    all_annotations = {
        "alpha.kubernetes.io/provided-node-ip": "10.0.1.23",
        "flannel.alpha.coreos.com/backend-data": '{"VNI":1,"VtepMAC":"6e:1f:8d:33:5a:01"}',
        "flannel.alpha.coreos.com/backend-type": "vxlan",
        "flannel.alpha.coreos.com/kube-subnet-manager": "true",
        "flannel.alpha.coreos.com/public-ip": "10.0.1.23",
        "k3s.io/hostname": name,
        "k3s.io/internal-ip": "10.0.1.23",
        "k3s.io/node-args": '["agent","--node-label","node-fleet.io/pool=workers"]',
        "k3s.io/node-config-hash": "4KZJ6OAWXZ2ZHPQ3UQ4TZXE6KRB7N2HZQ3KZ7L2E4M3S6VQ4ZJXA====",
        "k3s.io/node-env": '{"K3S_URL":"https://10.0.1.10:6443"}',
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    }
    all_annotations.update(annotations or {})
    spec: dict[str, Any] = {"podCIDR": "10.42.3.0/24", "podCIDRs": ["10.42.3.0/24"], "providerID": provider_id}
    if unschedulable:
        spec["unschedulable"] = True
    if taints:
        spec["taints"] = [dict(t) for t in taints]
    capacity = {"cpu": cpu, "ephemeral-storage": "20959212Ki", "hugepages-2Mi": "0", "memory": memory, "pods": "110"}

    def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
        return {
            "type": kind,
            "status": status,
            "lastHeartbeatTime": "2025-03-01T09:58:12Z",
            "lastTransitionTime": created,
            "reason": reason,
            "message": message,
        }

    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "uid": uid("node", name),
            "creationTimestamp": created,
            "labels": all_labels,
            "annotations": all_annotations,
            "finalizers": ["wrangler.cattle.io/node"],
            "managedFields": [
                {
                    "manager": "k3s",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": created,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:k3s.io/hostname": {}}}},
                }
            ],
        },
        "spec": spec,
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition(
                    "Ready",
                    "True" if ready else "False",
                    "KubeletReady" if ready else "KubeletNotReady",
                    "kubelet is posting ready status" if ready else "container runtime network not ready",
                ),
            ],
            "addresses": [{"type": "InternalIP", "address": "10.0.1.23"}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": "ec2d0f8a1c3b4e5f9a7b6c5d4e3f2a1b",
                "systemUUID": "ec2d0f8a-1c3b-4e5f-9a7b-6c5d4e3f2a1b",
                "bootID": "0d1f5a7c-2b3e-4f6a-8c9d-0e1f2a3b4c5d",
                "kernelVersion": "6.1.128-136.201.amzn2023.x86_64",
                "osImage": "Amazon Linux 2023.6.20250218",
                "containerRuntimeVersion": "containerd://2.0.4-k3s2",
                "kubeletVersion": "v1.32.3+k3s1",
                "kubeProxyVersion": "v1.32.3+k3s1",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
            "images": [
                {
                    "names": [
                        "docker.io/rancher/mirrored-pause@sha256:74c4244427b7",
                        "docker.io/rancher/mirrored-pause:3.6",
                    ],
                    "sizeBytes": 301463,
                },
                {
                    "names": ["ghcr.io/example/web@sha256:5f3a9e2b1c0d", "ghcr.io/example/web:1.4.2"],
                    "sizeBytes": 48213377,
                },
            ],
        },
    }


def pdb(
    name: str,
    namespace: str = "default",
    *,
    match_labels: Mapping[str, str] | None = None,
    match_expressions: Sequence[Mapping[str, Any]] | None = None,
    selector: Mapping[str, Any] | None = None,
    min_available: int | str | None = None,
    max_unavailable: int | str | None = None,
    disruptions_allowed: int | None = None,
) -> dict[str, Any]:
    """A policy/v1 PodDisruptionBudget. `disruptions_allowed` pins its status (the fake then only
    decrements it on evictions); without it the fake computes the status from the matching pods."""
    if selector is None:
        selector = {}
        if match_labels:
            selector["matchLabels"] = dict(match_labels)
        if match_expressions:
            selector["matchExpressions"] = [dict(e) for e in match_expressions]
    spec: dict[str, Any] = {"selector": dict(selector)}
    if min_available is not None:
        spec["minAvailable"] = min_available
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    obj: dict[str, Any] = {
        "kind": "PodDisruptionBudget",
        "apiVersion": "policy/v1",
        "metadata": {"name": name, "namespace": namespace, "generation": 1, "creationTimestamp": T0},
        "spec": spec,
    }
    if disruptions_allowed is not None:
        obj["status"] = {
            "observedGeneration": 1,
            "disruptionsAllowed": disruptions_allowed,
            "currentHealthy": 0,
            "desiredHealthy": 0,
            "expectedPods": 0,
        }
    return obj


def claim(
    name: str,
    namespace: str = "default",
    *,
    volume: str | None = None,
    storage_class: str = "local-path",
    provisioner: str = "rancher.io/local-path",
    node: str | None = None,
    size: str = "1Gi",
) -> dict[str, Any]:
    """A PersistentVolumeClaim, bound to `volume` when given (else Pending, as under
    WaitForFirstConsumer), with the annotations the PV controller and scheduler write."""
    annotations = {"volume.kubernetes.io/storage-provisioner": provisioner}
    if node:
        annotations["volume.kubernetes.io/selected-node"] = node
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
        "storageClassName": storage_class,
        "volumeMode": "Filesystem",
    }
    status: dict[str, Any] = {"phase": "Pending"}
    if volume:
        annotations |= {"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes"}
        spec["volumeName"] = volume
        status = {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": size}}
    return {
        "kind": "PersistentVolumeClaim",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid("pvc", namespace, name),
            "creationTimestamp": T0,
            "annotations": annotations,
            "finalizers": ["kubernetes.io/pvc-protection"],
        },
        "spec": spec,
        "status": status,
    }


def volume(
    name: str,
    *,
    claim: tuple[str, str] | None = None,
    node: str | None = None,
    node_affinity: Sequence[Mapping[str, Any]] | None = None,
    labels: Mapping[str, str] | None = None,
    source: Mapping[str, Any] | None = None,
    storage_class: str = "local-path",
    size: str = "1Gi",
) -> dict[str, Any]:
    """A PersistentVolume bound to `claim` (namespace, name). By default one that K3s's local-path
    provisioner made on `node`: a hostPath with node affinity on the node's hostname.
    `node_affinity` gives other nodeSelectorTerms, `source` another volume source (e.g.
    {"csi": {...}}), `labels` legacy zone labels."""
    if source is None:
        source = {"hostPath": {"path": f"/var/lib/rancher/k3s/storage/{name}", "type": "DirectoryOrCreate"}}
    if node_affinity is None and node is not None:
        node_affinity = [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]
    spec: dict[str, Any] = {
        "capacity": {"storage": size},
        **{k: dict(v) for k, v in source.items()},
        "accessModes": ["ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Delete",
        "storageClassName": storage_class,
        "volumeMode": "Filesystem",
    }
    if claim is not None:
        spec["claimRef"] = {
            "kind": "PersistentVolumeClaim",
            "namespace": claim[0],
            "name": claim[1],
            "apiVersion": "v1",
        }
    if node_affinity is not None:
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [dict(t) for t in node_affinity]}}
    metadata: dict[str, Any] = {"name": name, "uid": uid("pv", name), "creationTimestamp": T0}
    if labels:
        metadata["labels"] = dict(labels)
    if "hostPath" in source:
        metadata["annotations"] = {"pv.kubernetes.io/provisioned-by": "rancher.io/local-path"}
    return {
        "kind": "PersistentVolume",
        "apiVersion": "v1",
        "metadata": metadata,
        "spec": spec,
        "status": {"phase": "Bound" if claim else "Available"},
    }


def storage_class(
    name: str = "local-path", provisioner: str = "rancher.io/local-path", *, binding: str = "WaitForFirstConsumer"
) -> dict[str, Any]:
    """A storage.k8s.io/v1 StorageClass (K3s ships `local-path` as the default one)."""
    return {
        "kind": "StorageClass",
        "apiVersion": "storage.k8s.io/v1",
        "metadata": {
            "name": name,
            "creationTimestamp": T0,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": provisioner,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": binding,
    }


def daemonset(
    name: str,
    namespace: str = "kube-system",
    *,
    cpu: str | None = "100m",
    memory: str | None = "128Mi",
    labels: Mapping[str, str] | None = None,
    spec: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An apps/v1 DaemonSet whose template runs one container requesting `cpu`/`memory`; `spec` is
    merged into the template's spec (hostNetwork, tolerations, nodeSelector...)."""
    template = pod(name, namespace, node=None, cpu=cpu, memory=memory, owner=None, labels=labels, spec=spec)
    template_spec = {k: v for k, v in template["spec"].items() if k not in ("tolerations", "nodeName")}
    if spec and "tolerations" in spec:
        template_spec["tolerations"] = [dict(t) for t in spec["tolerations"]]
    selector = {"app.kubernetes.io/name": name}
    return {
        "kind": "DaemonSet",
        "apiVersion": "apps/v1",
        "metadata": {"name": name, "namespace": namespace, "uid": uid("ds", namespace, name), "generation": 1,
                     "creationTimestamp": T0},
        "spec": {
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": {**selector, **(labels or {})}}, "spec": template_spec},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
            "revisionHistoryLimit": 10,
        },
        "status": {"currentNumberScheduled": 0, "desiredNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0},
    }  # fmt: skip


def kustomization(name: str, namespace: str = "flux-system", *, ready: bool = True) -> dict[str, Any]:
    """A Flux Kustomization (kustomize.toolkit.fluxcd.io/v1)."""
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": namespace, "generation": 3, "creationTimestamp": T0},
        "spec": {
            "interval": "10m",
            "path": f"./gitops/{name}",
            "prune": True,
            "wait": True,
            "timeout": "5m",
            "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
        },
        "status": {
            "observedGeneration": 3,
            "lastAppliedRevision": "main@sha1:0f3c2a1b",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "Unknown",
                    "reason": "ReconciliationSucceeded" if ready else "Progressing",
                    "message": "Applied revision: main@sha1:0f3c2a1b" if ready else "Reconciliation in progress",
                    "lastTransitionTime": T0,
                    "observedGeneration": 3,
                }
            ],
        },
    }
