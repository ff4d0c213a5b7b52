"""A fake Kubernetes API server: HTTP on 127.0.0.1, objects in memory.

No real API server can be installed here (no K3s, kube-apiserver or envtest binary), so the
adapter tests, the integration tests and `make demo` drive the real `kubernetes` client against
this one (part of the embedded stack, `node_fleet.stack`; never used by the deployed Lambda). It
serves what `autoscaler.adapters.kube` relies on, with the JSON shapes, status codes and Status
bodies of a real server:

    with FakeKube(token="t") as kube:          # or kube = FakeKube().start(); ...; kube.stop()
        kube.add(objects.node("n1"), objects.pod("web-1", node="n1"))
        kube.url                               # http://127.0.0.1:<free port>
        kube.fail_next("/api/v1/pods", count=2, status=500)
        kube.hang_next("/api/v1/nodes", seconds=3)
        kube.get("nodes", "n1"); kube.requests  # inspect the store and the requests received

What it honours
- Bearer token: a request without `Authorization: Bearer <token>` answers 401 (token=None: no check).
- Nodes, PersistentVolumes, storage.k8s.io/v1 StorageClasses and namespaces (cluster-scoped);
  pods, PersistentVolumeClaims, policy/v1 PodDisruptionBudgets and apps/v1 DaemonSets
  (namespaced): list (cluster-wide and per namespace), get, create (409 AlreadyExists on an
  existing name), replace (PUT), patch, delete; 404 NotFound with a Status body for a missing
  object, and "the server could not find the requested resource" for an unknown path or a
  custom kind not installed.
- Lists: `kind: <Kind>List`, `metadata.resourceVersion`; items without kind/apiVersion for
  built-in kinds (as the real server sends them), with them for custom objects.
- labelSelector: `=`, `==`, `!=`, `in (...)`, `notin (...)`, `key`, `!key`.
- fieldSelector: `=`, `==`, `!=` on metadata.name and metadata.namespace for every kind; for pods
  also spec.nodeName, status.phase, spec.schedulerName, spec.restartPolicy, spec.serviceAccountName,
  spec.hostNetwork, status.podIP, status.nominatedNodeName; for nodes spec.unschedulable. Any
  other field answers 400 "field label not supported", as the real server does.
- Pagination: `limit` and `continue` (opaque base64 tokens in the real server's format; a
  malformed token answers 400), `metadata.continue` and `remainingItemCount` (the latter only
  without selectors, as on a real server). Items come in (namespace, name) order, as from etcd.
- Patches: application/merge-patch+json, application/strategic-merge-patch+json (lists with a
  Kubernetes merge key merge by it; `spec.taints` has none and is replaced whole, as on a real
  server) and application/json-patch+json; `metadata.resourceVersion` in a merge patch is a
  precondition (409 Conflict when stale). Other media types answer 415.
- Eviction (POST .../pods/NAME/eviction with a policy/v1 Eviction): 404 when the pod is gone;
  201 without a PDB check for a terminating, Pending, Succeeded or Failed pod; 500 when more than
  one PDB selects the pod; 429 with the real Status body (reason TooManyRequests, a
  DisruptionBudget cause) when the selecting PDB has disruptionsAllowed 0; otherwise 201, the
  PDB's disruptionsAllowed is decremented and the pod is deleted (evict_mode="delete") or given a
  deletionTimestamp (evict_mode="terminate").
- PDB status: computed like the disruption controller from the pods the selector matches
  (matchLabels, matchExpressions In/NotIn/Exists/DoesNotExist; an empty selector matches the
  whole namespace, a missing one nothing), minAvailable/maxUnavailable as integers or
  percentages (rounded up); healthy = Running and Ready, not terminating. It is recomputed after
  every change to pods or PDBs, except for a PDB seeded with `status.disruptionsAllowed`: that
  value is pinned and only evictions decrement it.
- Custom objects: `install(KUSTOMIZATIONS, ...)` makes a kind known (see FLUX_KINDS); until then
  its paths answer 404, as when the CRD is absent. It is served at once; a real API server answers
  a list 429 ("storage is (re)initializing") for a moment after the CRD is Established.
- Faults: `fail_next(path_prefix, count, status)` answers with a Status of that code;
  `hang_next(path_prefix, count, seconds)` holds the answer that long (past a client's timeout).

Limits (what a test must not rely on)
- No watch, no server-side apply (application/apply-patch+yaml answers 415), no subresources
  but pods/eviction (no /status, /scale, /log), no discovery documents (/api, /apis), no
  OpenAPI, no protobuf or CBOR: JSON only whatever the Accept header asks.
- No controllers but the disruption controller's PDB status: a DaemonSet starts no pods, a claim
  is never bound or provisioned (seed spec.volumeName and the PersistentVolume yourself), the
  ephemeral volume controller makes no claims; no node lifecycle controller (a cordoned Node gets
  no `node.kubernetes.io/unschedulable` taint, no Node turns NotReady for want of Lease renewals)
  and no garbage collector (a pod whose owner does not exist stays).
- No admission, defaulting or validation beyond metadata.name: objects are stored as given,
  status included (a real server drops a pod's or a custom object's status on create and ignores
  any status on update: only the status subresource writes it); no finalizers or graceful deletion (DELETE removes at once); no generateName, no dry run, no
  deleteOptions or preconditions in an Eviction body; no namespace lifecycle (namespaces need
  not exist).
- Lists are not consistent snapshots: a page reflects the store when it is served, and the
  continue token only remembers where the last page ended (never 410 Expired unless injected
  with fail_next(..., status=410)). resourceVersion is a global counter; list
  `resourceVersion`/`resourceVersionMatch` parameters are ignored.
- Strategic merge ignores `$setElementOrder`, `$retainKeys` and `$deleteFromPrimitiveList`, and
  knows merge keys only for the lists in `patches.MERGE_KEYS`.
- PDB: no unhealthyPodEvictionPolicy, no observedGeneration check. The status is computed at once
  on every change, where the real disruption controller takes a moment and leaves a new PDB
  without status until then (wait for it, as tests/integration's `wait_budget` does); a pinned
  `status.disruptionsAllowed` has no real counterpart (spend a real budget with an eviction). expectedPods is not the
  owning controllers' scale: it is the number of selected pods for an integer minAvailable, and
  for maxUnavailable or a percentage the most pods the PDB has selected so far (so an evicted
  pod counts as one to be replaced, and a scaled-down workload is not noticed). The
  custom-object kinds have no schema.
- One process, one lock: fine for tests and for the benchmark's 30,000 pods, not a load test
  of the client.
- Authentication is one static bearer token: no RBAC (403), no client certificates. Plain HTTP
  by default; HTTPS with `FakeKube(tls=(cert_file, key_file))` and a certificate the test made.
"""

from .objects import claim, daemonset, kustomization, node, pdb, storage_class, volume
from .pods import PodTemplate, pod
from .resources import (
    CANARIES,
    DAEMONSETS,
    FLUX_KINDS,
    HELMRELEASES,
    KUSTOMIZATIONS,
    NODES,
    PDBS,
    PODS,
    PVCS,
    PVS,
    STORAGE_CLASSES,
    ApiResource,
)
from .server import FakeKube, Request
from .synthetic import synthetic_cluster

__all__ = [
    "CANARIES",
    "DAEMONSETS",
    "FLUX_KINDS",
    "HELMRELEASES",
    "KUSTOMIZATIONS",
    "NODES",
    "PDBS",
    "PODS",
    "PVCS",
    "PVS",
    "STORAGE_CLASSES",
    "ApiResource",
    "FakeKube",
    "PodTemplate",
    "Request",
    "claim",
    "daemonset",
    "kustomization",
    "node",
    "pdb",
    "pod",
    "storage_class",
    "synthetic_cluster",
    "volume",
]
