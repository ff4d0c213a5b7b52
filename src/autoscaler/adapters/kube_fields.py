"""The fields `kube_parse` reads, per kind, as TypedDicts the adapter decodes API lists into.

A list page of 500 pods is megabytes of JSON, most of it managedFields, container statuses,
images, mounts and projected volumes that placement never looks at. msgspec decodes a page
straight into plain dicts holding only these fields and skips the rest without building it, so
`kube_parse` stays one dict parser for the adapter and for `kubectl get -o json`.

A few of a pod's fields are kept as raw JSON (`msgspec.Raw`), which `kube_parse` decodes only
when it reads them: the spec fields it works out once per distinct spec (`PodContext.shape`,
which keys its cache on their JSON as it came), and the conditions, read for unbound pods only.
The replicas of a workload share their spec, so most pods' specs are never built. Containers
are decoded down to their raw resources and ports: their mounts name the pod's own service
account volume (`kube-api-access-<random>`), which would make every pod's spec distinct.

Keep them in step with `kube_parse`: a field it reads but that is missing here reads as absent
through the adapter only (tests/adapters/test_kube.py compares the adapter with parse_cluster
on objects that carry every field). Leaves are `Any`, so an unusual value reaches the parser,
which names the field it cannot read; only the shape that lets msgspec skip is typed.
"""

from typing import Any, TypedDict

from msgspec import Raw


class OwnerReference(TypedDict, total=False):
    kind: Any
    controller: Any


class ObjectMeta(TypedDict, total=False):
    name: Any
    namespace: Any
    labels: Any
    annotations: Any
    ownerReferences: list[OwnerReference]
    creationTimestamp: Any


class Condition(TypedDict, total=False):
    type: Any
    status: Any
    reason: Any
    lastTransitionTime: Any


class Container(TypedDict, total=False):
    resources: Raw
    ports: Raw
    restartPolicy: Any


class Volume(TypedDict, total=False):
    name: Any
    persistentVolumeClaim: Any
    ephemeral: Any
    emptyDir: Any
    hostPath: Any


class PodSpec(TypedDict, total=False):
    nodeName: Any
    volumes: list[Volume]
    containers: list[Container]
    initContainers: list[Container]
    nodeSelector: Raw
    affinity: Raw
    tolerations: Raw
    topologySpreadConstraints: Raw
    hostNetwork: Any
    terminationGracePeriodSeconds: Any
    overhead: Raw
    resources: Raw


class PodStatus(TypedDict, total=False):
    phase: Any
    conditions: Raw


class Pod(TypedDict, total=False):
    metadata: ObjectMeta
    spec: PodSpec
    status: PodStatus


class NodeSpec(TypedDict, total=False):
    providerID: Any
    unschedulable: Any
    taints: Any


class NodeStatus(TypedDict, total=False):
    allocatable: Any
    capacity: Any
    conditions: list[Condition]
    addresses: Any


class Node(TypedDict, total=False):
    metadata: ObjectMeta
    spec: NodeSpec
    status: NodeStatus


class PodTemplate(TypedDict, total=False):
    metadata: ObjectMeta
    spec: PodSpec


class DaemonSetSpec(TypedDict, total=False):
    template: PodTemplate


class DaemonSet(TypedDict, total=False):
    metadata: ObjectMeta
    spec: DaemonSetSpec


class PodDisruptionBudget(TypedDict, total=False):
    metadata: ObjectMeta
    spec: Any
    status: Any


class PersistentVolumeSpec(TypedDict, total=False):
    nodeAffinity: Any
    local: Any
    hostPath: Any


class PersistentVolume(TypedDict, total=False):
    metadata: ObjectMeta
    spec: PersistentVolumeSpec


class PersistentVolumeClaim(TypedDict, total=False):
    metadata: ObjectMeta
    spec: Any


class StorageClass(TypedDict, total=False):
    metadata: ObjectMeta
    provisioner: Any


# "continue" is a Python keyword, hence the functional form.
ListMeta = TypedDict("ListMeta", {"continue": Any}, total=False)
