"""The Cluster port over the Kubernetes API of the K3s server, through the `kubernetes` client.

How it reaches the API server is `autoscaler.config.kube.KubeOptions`; `KubeCluster.from_options`
builds the adapter from them.

Reads: nodes, pods, PodDisruptionBudgets, PersistentVolumeClaims, PersistentVolumes,
StorageClasses and DaemonSets, each listed once a cycle; `kube_parse` turns them into the model
(the same parser `node-fleet plan` runs on `kubectl get -o json`).

Speed: lists are read a page at a time as raw JSON, decoded by msgspec into plain dicts of only
the fields the parser reads (`kube_fields`), with the cyclic GC paused and the next page fetched
while one is parsed; the client's models and API classes are never built (`bench/cycle.py`).

Errors: a refused request raises `KubeError` (`retryable` tells the service whether the next
cycle may succeed: connection failures, timeouts, 409, 429 and 5xx are); 401 and 403 raise
`KubeAuthError`, also a `PermanentError`, since only an operator can fix the credentials.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar
from urllib.parse import quote

import msgspec

from autoscaler.adapters import kube_fields
from autoscaler.adapters.kube_nodes import parse_node
from autoscaler.adapters.kube_parse import FINISHED_PHASES, PodContext, checked, parse_daemonset, parse_pod
from autoscaler.adapters.kube_storage import (
    DisruptionBudget,
    parse_claim,
    parse_pdb,
    parse_storage_class,
    parse_volume,
)
from autoscaler.config import ConfigError
from autoscaler.config.kube import DEFAULT_PAGE_SIZE, DEFAULT_TIMEOUT_S, KubeOptions
from autoscaler.gc_pause import gc_paused, quick_switches
from autoscaler.model import DRAINING_TAINT_KEY, Node, Pod
from autoscaler.ports import EvictionOutcome, PermanentError

if TYPE_CHECKING:
    from kubernetes.client.api_client import ApiClient
    from kubernetes.client.configuration import Configuration

T = TypeVar("T")

DRAINING_TAINT = {"key": DRAINING_TAINT_KEY, "value": "true", "effect": "NoSchedule"}
CONNECT_TIMEOUT_S = 5.0
BUDGETS_KEPT_S = 10.0
"""How long disruption_budgets may answer with the PDBs list_pods read (a cycle asks right after)."""
NODES = "/api/v1/nodes"
PODS = "/api/v1/pods"
PDBS = "/apis/policy/v1/poddisruptionbudgets"
CLAIMS = "/api/v1/persistentvolumeclaims"
VOLUMES = "/api/v1/persistentvolumes"
STORAGE_CLASSES = "/apis/storage.k8s.io/v1/storageclasses"
DAEMONSETS = "/apis/apps/v1/daemonsets"

# ---------------------------------------------------------------------------------------------
# The client


def configuration(options: KubeOptions) -> Configuration:
    """The `kubernetes` client's own Configuration for `options`."""
    from kubernetes.client.configuration import Configuration
    from urllib3.util.retry import Retry

    if options.api_url is not None:
        cfg = Configuration(host=options.api_url)
        cfg.api_key = {"authorization": options.token or ""}
        cfg.api_key_prefix = {"authorization": "Bearer"}
        if options.ca_pem is not None:
            cfg.ssl_ca_cert = _ca_file(options.ca_pem)
    elif options.kubeconfig is not None:
        from kubernetes.config.config_exception import ConfigException
        from kubernetes.config.kube_config import load_kube_config

        cfg = Configuration()
        try:
            load_kube_config(
                config_file=options.kubeconfig,
                context=options.context,
                client_configuration=cfg,
                persist_config=False,
            )
        except (ConfigException, OSError, ValueError) as exc:
            which = "K8S_CONTEXT" if options.context and "context" in str(exc).lower() else "KUBECONFIG"
            raise ConfigError(f"{which}: cannot load {options.kubeconfig!r}: {exc}") from exc
    else:
        raise ConfigError("K8S_API_URL or KUBECONFIG must be set")
    if not options.verify_ssl:
        cfg.verify_ssl = False
    # A connection that cannot be made is retried twice; a request the server took is never
    # replayed here (the next cycle retries it), so the Lambda's time budget stays bounded.
    cfg.retries = Retry(total=2, connect=2, read=0, status=0, other=0, redirect=0, backoff_factor=0.2)
    return cfg


def _ca_file(pem: str) -> str:
    """The client takes a CA only as a file (its kubeconfig loader writes one too); named by content."""
    path = Path(tempfile.gettempdir()) / f"node-fleet-ca-{hashlib.sha256(pem.encode()).hexdigest()[:16]}.pem"
    if not path.exists():
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(pem)
        partial.replace(path)
    return str(path)


def api_client(options: KubeOptions) -> ApiClient:
    from kubernetes.client.api_client import ApiClient

    return ApiClient(configuration(options))


# ---------------------------------------------------------------------------------------------
# The adapter


class KubeError(Exception):
    """The API server refused a request, or could not be reached."""

    def __init__(self, method: str, path: str, status: int, reason: str, message: str) -> None:
        self.method, self.path, self.status, self.reason, self.message = method, path, status, reason, message
        answer = " ".join(str(x) for x in (status or "no answer", reason) if x)
        super().__init__(f"{method} {path}: {answer}: {message}")

    @property
    def retryable(self) -> bool:
        """Worth another try next cycle: no answer, a timeout, 409, 429 or a server error."""
        return self.status == 0 or self.status in (409, 429) or self.status >= 500

    @classmethod
    def from_response(cls, method: str, path: str, status: int, data: bytes) -> KubeError:
        reason, message = "", data[:300].decode("utf-8", "replace").strip()
        try:
            body = json.loads(data)
            if isinstance(body, dict) and body.get("kind") == "Status":
                reason, message = body.get("reason", ""), body.get("message", "")
        except ValueError:
            pass
        if status == 401:
            message = (
                f"{message or 'Unauthorized'} (the API server refused the bearer token: "
                "check the token in K8S_TOKEN_PARAM, or the kubeconfig)"
            )
        elif status == 403:
            message = f"{message} (the token's identity lacks RBAC permission for this request)"
        kind = KubeAuthError if status in (401, 403) else cls
        return kind(method, path, status, reason, message)


class KubeAuthError(KubeError, PermanentError):
    """401 or 403: the credentials or their RBAC rights are wrong; retrying cannot fix that."""


class KubeCluster:
    """The Cluster port over an ApiClient; every call is one or a few raw JSON requests."""

    def __init__(
        self, api_client: ApiClient, *, page_size: int = DEFAULT_PAGE_SIZE, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be positive")
        self._api = api_client
        self.page_size = page_size
        self.timeout = (min(CONNECT_TIMEOUT_S, timeout_s), timeout_s)
        self._budgets: tuple[float, dict[str, int]] | None = None

    @classmethod
    def from_options(cls, options: KubeOptions) -> KubeCluster:
        return cls(api_client(options), page_size=options.page_size, timeout_s=options.timeout_s)

    def close(self) -> None:
        self._api.close()

    # -- the Cluster port --------------------------------------------------------------------

    def list_nodes(self) -> list[Node]:
        return self._list(NODES, kube_fields.Node, checked("Node", parse_node))

    def list_pods(self) -> list[Pod]:
        """Every pod not Succeeded or Failed (bound, or pending), its volumes resolved to node
        terms and its PDBs named. The PDBs, claims, volumes and classes are read first: a claim
        made after that reads as missing for one cycle, which holds its pod in place (safe)."""
        context = PodContext(
            budgets=self.list_pdbs(),
            claims=self._list(CLAIMS, kube_fields.PersistentVolumeClaim, checked("PersistentVolumeClaim", parse_claim)),
            volumes=self._list(VOLUMES, kube_fields.PersistentVolume, checked("PersistentVolume", parse_volume)),
            classes=self._list(STORAGE_CLASSES, kube_fields.StorageClass, checked("StorageClass", parse_storage_class)),
        )
        parse = checked("Pod", functools.partial(parse_pod, context=context))
        field_selector = ",".join(f"status.phase!={phase}" for phase in FINISHED_PHASES)
        pods = [p for p in self._list(PODS, kube_fields.Pod, parse, {"fieldSelector": field_selector}) if p is not None]
        self._budgets = (time.monotonic(), context.budget_table())
        return pods

    def disruption_budgets(self) -> dict[str, int]:
        """The budgets list_pods read, once and only just after it (so a cycle lists PDBs once,
        and pods' `pdbs` and the budgets agree); otherwise read now."""
        kept, self._budgets = self._budgets, None
        if kept is not None and time.monotonic() - kept[0] <= BUDGETS_KEPT_S:
            return kept[1]
        return PodContext(budgets=self.list_pdbs()).budget_table()

    def daemonset_pods(self) -> list[Pod]:
        return self._list(DAEMONSETS, kube_fields.DaemonSet, checked("DaemonSet", parse_daemonset))

    def list_pdbs(self) -> list[DisruptionBudget]:
        return self._list(PDBS, kube_fields.PodDisruptionBudget, checked("PodDisruptionBudget", parse_pdb))

    def cordon(self, node: str) -> None:
        """spec.unschedulable=true and the node-fleet.io/draining=true:NoSchedule taint, other taints kept."""
        self._update_node(node, cordon=True)

    def uncordon(self, node: str) -> None:
        """Undo cordon: schedulable again and without our taint; a node already gone is left alone."""
        self._update_node(node, cordon=False)

    def evict(self, pod: Pod) -> EvictionOutcome:
        path = f"/api/v1/namespaces/{quote(pod.namespace, safe='')}/pods/{quote(pod.name, safe='')}/eviction"
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": pod.name, "namespace": pod.namespace},
        }
        status, _ = self._call("POST", path, body=body, content_type="application/json", ok=(200, 201, 404, 429))
        if status == 429:
            return EvictionOutcome.BLOCKED
        if status == 404:
            return EvictionOutcome.GONE
        return EvictionOutcome.EVICTED

    def delete_node(self, node: str) -> None:
        self._call("DELETE", f"/api/v1/nodes/{quote(node, safe='')}", ok=(200, 202, 404))

    # -- GitOps gate -------------------------------------------------------------------------

    def list_custom(self, group: str, version: str, plural: str) -> list[dict[str, Any]] | None:
        """Every object of a custom kind, cluster-wide, as raw dicts; None when the kind is not
        installed (the API answers 404 for its path)."""
        path = f"/apis/{quote(group, safe='')}/{quote(version, safe='')}/{quote(plural, safe='')}"
        try:
            return self._list(path, Any, dict)
        except KubeError as err:
            if err.status == 404:
                return None
            raise

    # -- plumbing ----------------------------------------------------------------------------

    def _update_node(self, node: str, *, cordon: bool, attempts: int = 4) -> None:
        path = f"/api/v1/nodes/{quote(node, safe='')}"
        for attempt in range(attempts):
            status, data = self._call("GET", path, ok=(200, 404))
            if status == 404:
                if cordon:
                    raise KubeError("GET", path, 404, "NotFound", f'nodes "{node}" not found: cannot cordon it')
                return
            current = json.loads(data)
            spec = current.get("spec") or {}
            taints = [t for t in spec.get("taints") or () if t.get("key") != DRAINING_TAINT["key"]]
            if cordon:
                taints.append(dict(DRAINING_TAINT))
            if bool(spec.get("unschedulable")) == cordon and taints == list(spec.get("taints") or ()):
                return
            # Taints have no merge key: the list is sent whole, guarded by the resourceVersion read.
            patch = {
                "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                "spec": {"unschedulable": True if cordon else None, "taints": taints or None},
            }
            status, _ = self._call(
                "PATCH", path, body=patch, content_type="application/strategic-merge-patch+json", ok=(200, 404, 409)
            )
            if status == 200 or (status == 404 and not cordon):
                return
            if status == 404:
                raise KubeError("PATCH", path, 404, "NotFound", f'nodes "{node}" not found: cannot cordon it')
            if attempt == attempts - 1:
                raise KubeError(
                    "PATCH", path, 409, "Conflict", f"node {node} kept changing; gave up after {attempts} tries"
                )

    def _list(
        self, path: str, fields: Any, parse: Callable[[Any], T], query: Mapping[str, str] | None = None
    ) -> list[T]:
        """Every item of a list, read page by page, each item decoded with only `fields` (a
        TypedDict of kube_fields; Any keeps everything) and parsed; each page is dropped once
        parsed. A continue token that expired (410) restarts the list once from the beginning.

        The next page is requested, on a second thread, as soon as this one's continue token is
        decoded, so the server's time to serve it overlaps the parsing of this one (at 30,000
        pods, half a second of the fake server's against 0.75 s of parsing). Still one request
        at a time, in order."""
        decoder = _page_decoder(fields)
        restarted = False
        out: list[T] = []
        with gc_paused(), quick_switches(), ThreadPoolExecutor(1, thread_name_prefix="kube-page") as fetcher:
            status, data = self._page(path, query, None)
            while True:
                if status == 410:
                    if restarted:
                        raise KubeError("GET", path, 410, "Expired", "the list's continue token expired twice")
                    restarted, out = True, []
                    status, data = self._page(path, query, None)
                    continue
                try:
                    page = decoder.decode(data)
                except msgspec.ValidationError as exc:
                    # A shape the fields refuse: the parser, given the page whole, names the object.
                    for item in (msgspec.json.decode(data) or {}).get("items") or ():
                        parse(item)
                    raise ValueError(f"GET {path}: {exc}") from exc
                token = (page.get("metadata") or {}).get("continue")
                following = fetcher.submit(self._page, path, query, token) if token else None
                out.extend(parse(item) for item in page.get("items") or ())
                if following is None:
                    return out
                del page  # freed while the next page is on its way
                status, data = following.result()

    def _page(self, path: str, query: Mapping[str, str] | None, token: str | None) -> tuple[int, bytes]:
        params: list[tuple[str, Any]] = [("limit", self.page_size), *(query or {}).items()]
        if token:
            params.append(("continue", token))
        return self._call("GET", path, query=params, ok=(200, 410) if token else (200,))

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: Iterable[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str | None = None,
        ok: Sequence[int] = (200,),
    ) -> tuple[int, bytes]:
        """One raw request through the client (its auth, TLS and pool); the body is returned as bytes."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            response = self._api.call_api(
                path,
                method,
                query_params=list(query) if query else None,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=self.timeout,
            )
            data = response.read()
            response.release_conn()
        except ApiException as exc:
            # The client raises for every answer outside 2xx; an answer is judged below like any other.
            if not exc.status:
                raise KubeError(method, path, 0, "ApiException", str(exc.reason)) from exc
            return self._judged(method, path, exc.status, exc.body or b"", ok)
        except (HTTPError, OSError) as exc:
            raise KubeError(method, path, 0, type(exc).__name__, str(getattr(exc, "reason", None) or exc)) from exc
        return self._judged(method, path, response.status, data, ok)

    @staticmethod
    def _judged(method: str, path: str, status: int, data: bytes, ok: Sequence[int]) -> tuple[int, bytes]:
        if status not in ok:
            raise KubeError.from_response(method, path, status, data)
        return status, data


@functools.cache
def _page_decoder(fields: Any) -> msgspec.json.Decoder:
    # Functional form: the item type is a parameter, which class syntax (under postponed
    # annotations) could not resolve.
    page = TypedDict("Page", {"metadata": kube_fields.ListMeta, "items": list[fields]}, total=False)  # type: ignore[misc]  # noqa: UP013
    return msgspec.json.Decoder(page)
