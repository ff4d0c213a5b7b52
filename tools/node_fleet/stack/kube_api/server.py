"""The fake API server: an in-memory object store behind a ThreadingHTTPServer on 127.0.0.1.

What it serves and what it leaves out is written at the top of `kube_api/__init__.py`.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import copy
import json
import math
import ssl
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .patches import PatchError, PatchTestFailed, json_patch, merge_patch, strategic_merge_patch
from .selectors import SelectorError, field_selector, label_selector, selector_matches


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    builtin: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


NODES = Resource("", "v1", "nodes", "Node", namespaced=False)
PODS = Resource("", "v1", "pods", "Pod", namespaced=True)
PDBS = Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", namespaced=True)
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
PVS = Resource("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False)
PVCS = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", namespaced=True)
STORAGE_CLASSES = Resource("storage.k8s.io", "v1", "storageclasses", "StorageClass", namespaced=False)
DAEMONSETS = Resource("apps", "v1", "daemonsets", "DaemonSet", namespaced=True)
BUILTIN = (NODES, PODS, PDBS, NAMESPACES, PVS, PVCS, STORAGE_CLASSES, DAEMONSETS)

KUSTOMIZATIONS = Resource("kustomize.toolkit.fluxcd.io", "v1", "kustomizations", "Kustomization", True, False)
HELMRELEASES = Resource("helm.toolkit.fluxcd.io", "v2", "helmreleases", "HelmRelease", True, False)
CANARIES = Resource("flagger.app", "v1beta1", "canaries", "Canary", True, False)
FLUX_KINDS = (KUSTOMIZATIONS, HELMRELEASES, CANARIES)

PATCH_TYPES = {
    "application/merge-patch+json": merge_patch,
    "application/strategic-merge-patch+json": strategic_merge_patch,
    "application/json-patch+json": json_patch,
}


def _now() -> str:
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


def _not_found(res: Resource, name: str) -> ApiError:
    group = {"group": res.group} if res.group else {}
    return ApiError(
        404, "NotFound", f'{res.plural}{"." + res.group if res.group else ""} "{name}" not found',
        {"name": name, **group, "kind": res.plural},
    )  # fmt: skip


NO_RESOURCE = ApiError(404, "NotFound", "the server could not find the requested resource")


@dataclass
class _Entry:
    obj: dict[str, Any]
    item_json: bytes | None = None
    """The object serialized as a list item, cached until it changes."""


@dataclass
class Fault:
    path: str
    """The request path must start with this (no query string)."""
    count: int
    status: int = 500
    hang_s: float = 0.0
    method: str | None = None
    query: str | None = None
    """When set, the raw query string must contain it."""

    def matches(self, method: str, path: str, query: str) -> bool:
        return (
            self.count > 0
            and path.startswith(self.path)
            and (self.method is None or self.method == method)
            and (self.query is None or self.query in query)
        )


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    content_type: str | None
    body: Any
    status: int = 0


@dataclass
class _Store:
    entries: dict[tuple[str, str], _Entry] = field(default_factory=dict)
    sorted_keys: list[tuple[str, str]] | None = None

    def ordered(self) -> list[tuple[str, str]]:
        if self.sorted_keys is None:
            self.sorted_keys = sorted(self.entries)
        return self.sorted_keys


class FakeKube:
    """An in-process Kubernetes API server for tests: `with FakeKube() as kube: kube.url ...`."""

    def __init__(  # nosec B107  # the fake server's default test token, not a credential
        self, token: str | None = "fake-token", *, evict_mode: str = "delete", tls: tuple[str, str] | None = None
    ) -> None:
        """`token`: the bearer token every request must carry (None: no auth check).
        `evict_mode`: "delete" removes an evicted pod at once; "terminate" keeps it with a
        deletionTimestamp, as a kubelet that is still stopping it would.
        `tls`: (certificate file, key file) to serve HTTPS instead of HTTP."""
        if evict_mode not in ("delete", "terminate"):
            raise ValueError(f"evict_mode must be 'delete' or 'terminate', not {evict_mode!r}")
        self.token = token
        self.evict_mode = evict_mode
        self.tls = tls
        self._lock = threading.RLock()
        self._resources: dict[tuple[str, str, str], Resource] = {(r.group, r.version, r.plural): r for r in BUILTIN}
        self._stores: dict[Resource, _Store] = {r: _Store() for r in BUILTIN}
        self._pinned_pdbs: set[tuple[str, str]] = set()
        self._rv = 1000
        self._faults: list[Fault] = []
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[Request] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeKube:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-kube", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeKube:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake API server is not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    # -- seeding and inspecting --------------------------------------------------------------

    def install(self, *resources: Resource) -> None:
        """Make custom resource kinds known (as if their CRDs were applied)."""
        with self._lock:
            for res in resources:
                self._resources[(res.group, res.version, res.plural)] = res
                self._stores.setdefault(res, _Store())

    @contextmanager
    def locked(self) -> Iterator[FakeKube]:
        """Hold the store's lock: no request is served meanwhile, so a read-modify-write of the
        seeding API (get, change, add) cannot lose a change a client made in between."""
        with self._lock:
            yield self

    def clear(self) -> None:
        """Forget every object (built-in and custom kinds; installed kinds stay installed), the
        injected faults and the requests seen."""
        with self._lock:
            for store in self._stores.values():
                store.entries.clear()
                store.sorted_keys = None
            self._pinned_pdbs.clear()
            self._faults.clear()
            self.requests.clear()

    def uninstall(self, res: Resource) -> None:
        with self._lock:
            self._resources.pop((res.group, res.version, res.plural), None)
            self._stores.pop(res, None)

    def resource(self, plural: str, group: str = "") -> Resource:
        with self._lock:
            for res in self._resources.values():
                if res.plural == plural and res.group == group:
                    return res
        raise KeyError(f"{plural}.{group} is not installed")

    def add(self, *objs: Mapping[str, Any]) -> None:
        """Store objects as given (kind and apiVersion pick the resource), replacing any of the same
        name, then let the disruption controller recompute the PDBs it owns. A PDB given with
        `status.disruptionsAllowed` keeps that value (pinned) until evictions decrement it."""
        with self._lock:
            for obj in objs:
                self._seed(copy.deepcopy(dict(obj)))
            self.sync_pdbs()

    def add_all(self, objs: Iterable[Mapping[str, Any]]) -> None:
        """`add` for many fresh objects (a generator's): stored without a deep copy, so faster."""
        with self._lock:
            for obj in objs:
                self._seed(dict(obj))
            self.sync_pdbs()

    def _seed(self, obj: dict[str, Any]) -> None:
        res = self._resource_of(obj)
        pinned = res is PDBS and "disruptionsAllowed" in (obj.get("status") or {})
        stored = self._stamp(obj, res)
        key = (stored["metadata"].get("namespace", ""), stored["metadata"]["name"])
        store = self._stores[res]
        if key not in store.entries:
            store.sorted_keys = None
        store.entries[key] = _Entry(stored)
        if pinned:
            self._pinned_pdbs.add(key)
        elif res is PDBS:
            self._pinned_pdbs.discard(key)

    def get(self, plural: str, name: str, namespace: str = "", group: str = "") -> dict[str, Any] | None:
        """A copy of the stored object, or None."""
        with self._lock:
            entry = self._stores[self.resource(plural, group)].entries.get((namespace, name))
            return copy.deepcopy(entry.obj) if entry else None

    def objects(self, plural: str, group: str = "") -> list[dict[str, Any]]:
        with self._lock:
            store = self._stores[self.resource(plural, group)]
            return [copy.deepcopy(store.entries[k].obj) for k in store.ordered()]

    def remove(self, plural: str, name: str, namespace: str = "", group: str = "") -> None:
        with self._lock:
            store = self._stores[self.resource(plural, group)]
            if store.entries.pop((namespace, name), None) is not None:
                store.sorted_keys = None
            self.sync_pdbs()

    def sync_pdbs(self) -> None:
        """What the disruption controller does: recompute the status of every PDB whose status
        was not pinned by the test, from the pods it selects."""
        with self._lock:
            pdbs = self._stores[PDBS]
            for key, entry in pdbs.entries.items():
                if key in self._pinned_pdbs:
                    continue
                status = self._pdb_status(entry.obj)
                if entry.obj.get("status") != status:
                    entry.obj["status"] = status
                    entry.obj["metadata"]["resourceVersion"] = self._next_rv()
                    entry.item_json = None

    # -- faults ------------------------------------------------------------------------------

    def fail_next(
        self, path: str, count: int = 1, status: int = 500, *, method: str | None = None, query: str | None = None
    ) -> None:
        """The next `count` requests whose path starts with `path` answer `status` (a Status body)."""
        with self._lock:
            self._faults.append(Fault(path, count, status, method=method, query=query))

    def hang_next(self, path: str, count: int = 1, seconds: float = 5.0, *, method: str | None = None) -> None:
        """The next `count` matching requests get no answer for `seconds` (then a normal one)."""
        with self._lock:
            self._faults.append(Fault(path, count, 0, hang_s=seconds, method=method))

    def requests_to(self, path: str, method: str = "GET") -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path and r.method == method]

    # -- internals ---------------------------------------------------------------------------

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _resource_of(self, obj: Mapping[str, Any]) -> Resource:
        api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
        group, _, version = api_version.rpartition("/")
        for res in self._resources.values():
            if res.group == group and res.version == version and res.kind == kind:
                return res
        raise KeyError(f"{api_version} {kind} is not served (install it first)")

    def _stamp(self, obj: dict[str, Any], res: Resource) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            raise ApiError(422, "Invalid", f"{res.kind} is invalid: metadata.name: Required value: name is required")
        if res.namespaced:
            meta.setdefault("namespace", "default")
        else:
            meta.pop("namespace", None)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        meta["resourceVersion"] = self._next_rv()
        obj["kind"], obj["apiVersion"] = res.kind, res.api_version
        return obj

    def _pods_selected(self, pdb: Mapping[str, Any]) -> list[dict[str, Any]]:
        namespace = pdb["metadata"]["namespace"]
        selector = (pdb.get("spec") or {}).get("selector")
        return [
            e.obj
            for (ns, _), e in self._stores[PODS].entries.items()
            if ns == namespace and selector_matches(selector, e.obj["metadata"].get("labels") or {})
        ]

    def _pdb_status(self, pdb: dict[str, Any]) -> dict[str, Any]:
        pods = [p for p in self._pods_selected(pdb) if not p["metadata"].get("deletionTimestamp")]
        previous = pdb.get("status") or {}
        spec = pdb.get("spec") or {}
        expected = len(pods)
        if spec.get("maxUnavailable") is not None or str(spec.get("minAvailable", "")).endswith("%"):
            # The real controller takes the owning controllers' scale here; the fake's stand-in is
            # the most pods the PDB has selected (evicted pods count as replaced later).
            expected = max(expected, previous.get("expectedPods", 0))
        healthy = sum(1 for p in pods if _pod_ready(p))
        if spec.get("minAvailable") is not None:
            desired = _scaled(spec["minAvailable"], expected)
        elif spec.get("maxUnavailable") is not None:
            desired = max(0, expected - _scaled(spec["maxUnavailable"], expected))
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

    # -- request handling (called from the HTTP handler threads) -----------------------------

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
        parts = urlsplit(raw_path)
        path, query_string = parts.path, parts.query
        query = dict(parse_qsl(query_string, keep_blank_values=True))
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower() or None
        try:
            parsed_body = json.loads(body) if body else None
        except ValueError:
            parsed_body = body.decode("utf-8", "replace")
        hang = 0.0
        with self._lock:
            fault = next((f for f in self._faults if f.matches(method, path, query_string)), None)
            if fault is not None:
                fault.count -= 1
                hang = fault.hang_s
        status, payload = 0, b""
        try:
            if hang:
                self._stopping.wait(hang)
            if fault is not None and fault.status:
                raise ApiError(
                    fault.status,
                    "InternalError" if fault.status >= 500 else "Expired" if fault.status == 410 else "Unknown",
                    f"injected fault: {fault.status}",
                )
            if self.token is not None and headers.get("Authorization") != f"Bearer {self.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            status, obj = self._route(method, path, query, content_type, parsed_body)
            payload = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        except ApiError as err:
            status, payload = err.code, json.dumps(err.status()).encode()
        finally:
            with self._lock:
                self.requests.append(Request(method, path, query, content_type, parsed_body, status))
        return status, payload

    def _route(
        self, method: str, path: str, query: Mapping[str, str], content_type: str | None, body: Any
    ) -> tuple[int, Any]:
        segments = [unquote(s) for s in path.strip("/").split("/")] if path.strip("/") else []
        if segments == ["version"]:
            return 200, {"major": "1", "minor": "32", "gitVersion": "v1.32.3+k3s1", "platform": "linux/amd64"}
        if len(segments) >= 2 and segments[0] == "api":
            group, version, rest = "", segments[1], segments[2:]
        elif len(segments) >= 3 and segments[0] == "apis":
            group, version, rest = segments[1], segments[2], segments[3:]
        else:
            raise NO_RESOURCE
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest:
            raise NO_RESOURCE
        with self._lock:
            res = self._resources.get((group, version, rest[0]))
            if res is None or (namespace and not res.namespaced):
                raise NO_RESOURCE
            name = rest[1] if len(rest) > 1 else None
            sub = rest[2] if len(rest) > 2 else None
            if len(rest) > 3 or (sub is not None and not (res is PODS and sub == "eviction")):
                raise NO_RESOURCE
            if name is None:
                if method == "GET":
                    return 200, self._list(res, namespace, query)
                if method == "POST":
                    if res.namespaced and not namespace:
                        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
                    return 201, self._create(res, namespace, body)
                raise ApiError(
                    405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
                )
            if res.namespaced and not namespace:
                raise NO_RESOURCE
            if sub == "eviction":
                if method != "POST":
                    raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
                return self._evict(namespace, name, body)
            if method == "GET":
                return 200, self._get(res, namespace, name)
            if method == "PATCH":
                return 200, self._patch(res, namespace, name, content_type, body)
            if method == "DELETE":
                return 200, self._delete(res, namespace, name)
            if method == "PUT":
                return 200, self._put(res, namespace, name, body)
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _entry(self, res: Resource, namespace: str, name: str) -> _Entry:
        entry = self._stores[res].entries.get((namespace, name))
        if entry is None:
            raise _not_found(res, name)
        return entry

    def _get(self, res: Resource, namespace: str, name: str) -> bytes:
        return json.dumps(self._entry(res, namespace, name).obj).encode()

    def _list(self, res: Resource, namespace: str, query: Mapping[str, str]) -> bytes:
        try:
            by_label = label_selector(query.get("labelSelector", ""))
            by_field = field_selector(query.get("fieldSelector", ""), res.plural)
        except SelectorError as err:
            raise ApiError(400, "BadRequest", str(err)) from None
        try:
            limit = int(query.get("limit") or 0)
        except ValueError:
            raise ApiError(400, "BadRequest", f"invalid limit {query['limit']!r}") from None
        store = self._stores[res]
        keys = store.ordered()
        list_rv = str(self._rv)
        start = 0
        if query.get("continue"):
            list_rv, after = _decode_continue(query["continue"])
            start = bisect.bisect_right(keys, after)
        filtered = bool(query.get("labelSelector") or query.get("fieldSelector"))
        items: list[bytes] = []
        last: tuple[str, str] | None = None
        more = remaining = 0
        for key in keys[start:]:
            if namespace and key[0] != namespace:
                continue
            entry = store.entries[key]
            obj = entry.obj
            if not (by_label(obj["metadata"].get("labels") or {}) and by_field(obj)):
                continue
            if limit and len(items) >= limit:
                more = 1
                if filtered:
                    break
                remaining += 1
                continue
            if entry.item_json is None:
                item = obj if not res.builtin else {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
                entry.item_json = json.dumps(item).encode()
            items.append(entry.item_json)
            last = key
        meta: dict[str, Any] = {"resourceVersion": list_rv}
        if more and last is not None:
            meta["continue"] = _encode_continue(list_rv, last)
            if not filtered:
                meta["remainingItemCount"] = remaining
        head = json.dumps({"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": meta})
        return head[:-1].encode() + b',"items":[' + b",".join(items) + b"]}"

    def _create(self, res: Resource, namespace: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request was in an unknown format")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if res.namespaced:
            if meta.get("namespace") not in (None, namespace):
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            meta["namespace"] = namespace
        meta.pop("resourceVersion", None)
        stored = self._stamp(obj, res)
        key = (namespace, meta["name"])
        store = self._stores[res]
        if key in store.entries:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{res.plural}{"." + res.group if res.group else ""} "{meta["name"]}" already exists',
                {"name": meta["name"], **({"group": res.group} if res.group else {}), "kind": res.plural},
            )
        store.entries[key] = _Entry(stored)
        store.sorted_keys = None
        if res in (PODS, PDBS):
            self.sync_pdbs()
        return stored

    def _patch(self, res: Resource, namespace: str, name: str, content_type: str | None, body: Any) -> dict[str, Any]:
        entry = self._entry(res, namespace, name)
        apply = PATCH_TYPES.get(content_type or "")
        if apply is None:
            raise ApiError(
                415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media types "
                f"include: {', '.join(PATCH_TYPES)}",
            )  # fmt: skip
        if apply is not json_patch:
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the patch must be a JSON object")
            wanted_rv = (body.get("metadata") or {}).get("resourceVersion")
            if wanted_rv is not None and wanted_rv != entry.obj["metadata"]["resourceVersion"]:
                raise _conflict(res, name)
        try:
            patched = apply(entry.obj, body)
        except PatchTestFailed as err:
            raise ApiError(422, "Invalid", str(err)) from None
        except (PatchError, KeyError, TypeError) as err:
            raise ApiError(422, "Invalid", f"the patch could not be applied: {err}") from None
        meta = patched.get("metadata") or {}
        if meta.get("name") != name or meta.get("namespace", "") != entry.obj["metadata"].get("namespace", ""):
            raise ApiError(422, "Invalid", f"{res.kind} is invalid: metadata.name: Invalid value: field is immutable")
        if meta.get("uid") != entry.obj["metadata"]["uid"]:
            raise ApiError(409, "Conflict", f"Precondition failed: UID in precondition: {meta.get('uid')}")
        patched["metadata"]["resourceVersion"] = self._next_rv()
        patched["kind"], patched["apiVersion"] = res.kind, res.api_version
        entry.obj, entry.item_json = patched, None
        if res in (PODS, PDBS):
            self.sync_pdbs()
        return patched

    def _put(self, res: Resource, namespace: str, name: str, body: Any) -> dict[str, Any]:
        entry = self._entry(res, namespace, name)
        if not isinstance(body, dict) or (body.get("metadata") or {}).get("name") != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
        wanted_rv = body["metadata"].get("resourceVersion")
        if wanted_rv is not None and wanted_rv != entry.obj["metadata"]["resourceVersion"]:
            raise _conflict(res, name)
        obj = copy.deepcopy(body)
        obj["metadata"]["uid"] = entry.obj["metadata"]["uid"]
        obj["metadata"]["creationTimestamp"] = entry.obj["metadata"]["creationTimestamp"]
        if res.namespaced:
            obj["metadata"]["namespace"] = namespace
        obj["metadata"]["resourceVersion"] = self._next_rv()
        obj["kind"], obj["apiVersion"] = res.kind, res.api_version
        entry.obj, entry.item_json = obj, None
        return obj

    def _delete(self, res: Resource, namespace: str, name: str) -> dict[str, Any]:
        store = self._stores[res]
        entry = self._entry(res, namespace, name)
        del store.entries[(namespace, name)]
        store.sorted_keys = None
        if res is PDBS:
            self._pinned_pdbs.discard((namespace, name))
        if res in (PODS, PDBS):
            self.sync_pdbs()
        return entry.obj

    def _evict(self, namespace: str, name: str, body: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict) or body.get("kind") != "Eviction":
            raise ApiError(400, "BadRequest", "the body of an eviction must be an Eviction")
        if body.get("apiVersion") not in ("policy/v1", "policy/v1beta1"):
            raise ApiError(400, "BadRequest", f"unsupported Eviction apiVersion {body.get('apiVersion')!r}")
        if (body.get("metadata") or {}).get("name") not in (None, name):
            raise ApiError(400, "BadRequest", "name in URL does not match name in Eviction object")
        entry = self._entry(PODS, namespace, name)
        pod = entry.obj
        success = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
        if pod["metadata"].get("deletionTimestamp"):
            return 201, success
        if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed", "Pending"):
            labels = pod["metadata"].get("labels") or {}
            pdbs = [
                e
                for (ns, _), e in self._stores[PDBS].entries.items()
                if ns == namespace and selector_matches((e.obj.get("spec") or {}).get("selector"), labels)
            ]
            if len(pdbs) > 1:
                raise ApiError(
                    500,
                    "InternalError",
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                )
            if pdbs:
                budget = pdbs[0].obj
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
                status.setdefault("disruptedPods", {})[name] = _now()
                budget["metadata"]["resourceVersion"] = self._next_rv()
                pdbs[0].item_json = None
        if self.evict_mode == "terminate":
            grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            pod["metadata"]["deletionTimestamp"] = _now()
            pod["metadata"]["deletionGracePeriodSeconds"] = grace
            pod["metadata"]["resourceVersion"] = self._next_rv()
            entry.item_json = None
        else:
            del self._stores[PODS].entries[(namespace, name)]
            self._stores[PODS].sorted_keys = None
        self.sync_pdbs()
        return 201, success


T_SYNC = "2025-03-01T08:00:00Z"


def _conflict(res: Resource, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {res.plural} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        {"name": name, "kind": res.plural},
    )


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    conditions = status.get("conditions")
    if not conditions:
        return True
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _scaled(value: int | str, total: int) -> int:
    """An IntOrString of a PDB: an int, or a percentage of `total` rounded up (as the controller does)."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


def _encode_continue(rv: str, after: tuple[str, str]) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": int(rv), "start": "/".join(after).lstrip("/") + "\x00"})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[str, tuple[str, str]]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        start = raw["start"].rstrip("\x00")
        namespace, _, name = start.rpartition("/")
        return str(raw["rv"]), (namespace, name)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ApiError(
            400, "BadRequest", "continue key is not valid: incorrect encoded start resourceVersion"
        ) from None


def _handler_for(kube: FakeKube) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "fake-kube/1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, payload = kube.handle(self.command, self.path, self.headers, body)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Audit-Id", str(uuid.uuid4()))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
