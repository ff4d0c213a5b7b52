"""A real API server (tools/controlplane's) behind the seeding API of the fake one (`FakeKube`:
`objects`, `get`, `add`, `remove`, `clear`, `locked`, `url`, `token`), so the simulated kubelets
and the tests drive either the same way. It acts as the control plane's admin (system:masters),
the identity the binary's own controllers run as.

Where it cannot do what the fake does:
- `add` is a server-side apply (field manager `node-fleet-stack`, forced): it creates the object
  or updates the fields it gives. The API server drops a pod's or a custom object's status on
  create and ignores any status on update, so a status the stack plays the owner of (pods, nodes,
  custom objects such as a Flux Kustomization's) is applied again through the status subresource.
  A PodDisruptionBudget's status is the disruption controller's: one given with a status (the
  fake's pinned `disruptionsAllowed`) is refused.
- Server-managed metadata (uid, resourceVersion, generation, timestamps, managedFields) is dropped
  from what is added, and so are finalizers: no controller here would remove them (K3s's own node
  finalizer, for one), so the object could never be deleted.
- `remove` deletes at once (grace period 0), as the fake does; `locked()` holds nothing (the real
  controllers act when they like); there are no injected faults and no log of requests.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import requests
import yaml

from node_fleet.stack.errors import StackError
from node_fleet.stack.kube_api.resources import BUILTIN, NAMESPACES, NODES, PDBS, PODS, ApiResource

MANAGER = "node-fleet-stack"
APPLY = "application/apply-patch+yaml"
REPLICASETS = ApiResource("apps", "v1", "replicasets", "ReplicaSet", namespaced=True)
LEASES = ApiResource("coordination.k8s.io", "v1", "leases", "Lease", namespaced=True)
KINDS = (
    *BUILTIN,
    REPLICASETS,
    LEASES,
    ApiResource("", "v1", "serviceaccounts", "ServiceAccount", namespaced=True),
    ApiResource("", "v1", "secrets", "Secret", namespaced=True),
    ApiResource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    ApiResource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
    ApiResource("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False),
)
# Cleared between clusters (custom kinds too); namespaces, RBAC and CRDs stay.
WORLD = ("replicasets", "daemonsets", "poddisruptionbudgets", "persistentvolumeclaims")
SERVER_SET = (
    *("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink"),
    *("finalizers", "deletionTimestamp", "deletionGracePeriodSeconds"),
)


class RealApiError(StackError):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        self.status = status
        super().__init__(f"{method} {path}: {status}: {body[:500]}")


class RealKube:
    """The API server at `url`, as the holder of `token`, its certificate checked with `ca_file`."""

    def __init__(self, url: str, token: str, ca_file: str | Path) -> None:
        self.url, self.token, self.ca_file = url, token, str(ca_file)
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {token}"
        self._kinds = {(r.group, r.plural): r for r in KINDS}

    def close(self) -> None:
        self._session.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        ok: Iterable[int] = (200, 201),
        content_type: str = "application/json",
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        headers = {"Content-Type": content_type} if body is not None else {}
        # verify on each request: requests lets REQUESTS_CA_BUNDLE override the session's own.
        answer = self._session.request(
            method, self.url + path, json=body, headers=headers, params=params, timeout=30, verify=self.ca_file
        )
        if answer.status_code not in tuple(ok):
            raise RealApiError(method, path, answer.status_code, answer.text)
        return answer.json() if answer.content else None

    # -- kinds and paths ------------------------------------------------------------------------------

    def resource(self, plural: str, group: str = "") -> ApiResource:
        try:
            return self._kinds[(group, plural)]
        except KeyError:
            raise StackError(f"{plural}.{group or 'core'} is not a kind the stack knows here") from None

    def path(self, res: ApiResource, namespace: str = "", name: str = "") -> str:
        base = f"/apis/{res.group}/{res.version}" if res.group else f"/api/{res.version}"
        scope = f"/namespaces/{namespace}" if res.namespaced and namespace else ""
        return f"{base}{scope}/{res.plural}" + (f"/{name}" if name else "")

    def _of(self, obj: Mapping[str, Any]) -> ApiResource:
        """The object's kind, in the version the object is written in."""
        group, _, version = obj["apiVersion"].rpartition("/")
        found = next((r for r in self._kinds.values() if r.group == group and r.kind == obj["kind"]), None)
        if found is None:
            raise StackError(f"{obj['apiVersion']} {obj['kind']} is not a kind the stack knows here")
        return dataclasses.replace(found, version=version)

    # -- the seeding API ------------------------------------------------------------------------------

    def objects(self, plural: str, group: str = "") -> list[dict[str, Any]]:
        return self.request("GET", self.path(self.resource(plural, group)))["items"]

    def get(self, plural: str, name: str, namespace: str = "", group: str = "") -> dict[str, Any] | None:
        found = self.request("GET", self.path(self.resource(plural, group), namespace, name), ok=(200, 404))
        return found if found.get("kind") != "Status" else None

    def add(self, *objs: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Create or update each object (server-side apply), then its status where the stack owns
        it; returns the objects as the server has them."""
        return [self._add(obj) for obj in objs]

    def _add(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        res = self._of(obj)
        body = copy.deepcopy(dict(obj))
        status = body.pop("status", None)
        if status and res.plural == PDBS.plural:
            raise StackError("a PodDisruptionBudget's status is the disruption controller's: add it without one")
        meta = body["metadata"] = {k: v for k, v in body["metadata"].items() if k not in SERVER_SET}
        path = self.path(res, meta.get("namespace", ""), meta["name"])
        applied = self._apply(path, body)
        if status and (res.plural in (PODS.plural, NODES.plural) or not res.builtin):
            applied = self.apply_status(applied | {"status": status})
        return applied

    def apply_status(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Apply the object's status alone, through the status subresource."""
        res = self._of(obj)
        meta = {k: obj["metadata"][k] for k in ("name", "namespace") if k in obj["metadata"]}
        body = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": meta, "status": obj["status"]}
        return self._apply(self.path(res, meta.get("namespace", ""), meta["name"]) + "/status", body)

    def _apply(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", path, body, content_type=APPLY, params={"fieldManager": MANAGER, "force": "true"})

    def remove(self, plural: str, name: str, namespace: str = "", group: str = "") -> None:
        path = self.path(self.resource(plural, group), namespace, name)
        self.request("DELETE", path, {"gracePeriodSeconds": 0}, ok=(200, 202, 404))

    @contextlib.contextmanager
    def locked(self) -> Any:
        yield self

    def clear(self, timeout_s: float = 60.0) -> None:
        """Delete every workload, pod, PDB, custom object, Node and Node lease; keep namespaces,
        RBAC, secrets and CRDs. Returns once no pod or Node is left."""
        custom = [r for r in self._kinds.values() if not r.builtin]
        for res in [*(r for r in KINDS if r.plural in WORLD), *custom, PODS]:
            items = self.request("GET", self.path(res))["items"]
            # A collection is deleted a namespace at a time (none for a cluster-scoped kind).
            for namespace in sorted({o["metadata"].get("namespace", "") for o in items}):
                self.request("DELETE", self.path(res, namespace), params={"gracePeriodSeconds": 0})
        self.request("DELETE", self.path(NODES))
        self.request("DELETE", self.path(LEASES, "kube-node-lease"))
        deadline = time.monotonic() + timeout_s
        while self.objects("pods") or self.objects("nodes"):
            if time.monotonic() > deadline:
                raise StackError(f"the cluster was not empty within {timeout_s:g}s")
            time.sleep(0.1)

    # -- set-up ------------------------------------------------------------------------------------------

    def namespace(self, name: str) -> None:
        self.request("POST", self.path(NAMESPACES), {"metadata": {"name": name}}, ok=(201, 409))

    def install_crds(self, paths: Iterable[str | Path], timeout_s: float = 60.0) -> list[ApiResource]:
        """Create the CustomResourceDefinitions of these YAML files (or folders of them), wait until
        their kinds are served, and know them (in their storage version) from then on."""
        files = [f for p in map(Path, paths) for f in (sorted(p.glob("*.yaml")) if p.is_dir() else [p])]
        crds = [
            doc
            for f in files
            for doc in yaml.safe_load_all(f.read_text(encoding="utf-8"))
            if doc and doc.get("kind") == "CustomResourceDefinition"
        ]
        path = self.path(self.resource("customresourcedefinitions", "apiextensions.k8s.io"))
        installed = []
        for crd in crds:
            self.request("POST", path, crd, ok=(201, 409))
            spec = crd["spec"]
            version = next(v["name"] for v in spec["versions"] if v.get("storage"))
            res = ApiResource(spec["group"], version, spec["names"]["plural"], spec["names"]["kind"],
                              spec["scope"] == "Namespaced", builtin=False)  # fmt: skip
            self._kinds[(res.group, res.plural)] = res
            installed.append(res)
        # Established is not yet served: a list answers 429 while the kind's storage initializes.
        deadline = time.monotonic() + timeout_s
        for res in installed:
            while self.request("GET", self.path(res), ok=(200, 404, 429)).get("kind") == "Status":
                if time.monotonic() > deadline:
                    raise StackError(f"{res.plural}.{res.group} was not served within {timeout_s:g}s")
                time.sleep(0.1)
        return installed
