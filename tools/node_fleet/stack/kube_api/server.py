"""The fake API server: an in-memory object store behind a ThreadingHTTPServer on 127.0.0.1.

What it serves and what it leaves out is written at the top of `kube_api/__init__.py`; the
store, the routing, the verbs and the disruption rules each have their own module.
"""

from __future__ import annotations

import copy
import json
import ssl
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .resources import ApiError, ApiResource
from .routing import route
from .store import ObjectStore


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
        self._store = ObjectStore()
        self._lock = self._store.lock
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

    def install(self, *resources: ApiResource) -> None:
        """Make custom resource kinds known (as if their CRDs were applied)."""
        with self._lock:
            for res in resources:
                self._store.install(res)

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
            self._store.clear()
            self._faults.clear()
            self.requests.clear()

    def uninstall(self, res: ApiResource) -> None:
        with self._lock:
            self._store.uninstall(res)

    def resource(self, plural: str, group: str = "") -> ApiResource:
        with self._lock:
            return self._store.resource(plural, group)

    def add(self, *objs: Mapping[str, Any]) -> None:
        """Store objects as given (kind and apiVersion pick the resource), replacing any of the same
        name, then let the disruption controller recompute the PDBs it owns. A PDB given with
        `status.disruptionsAllowed` keeps that value (pinned) until evictions decrement it."""
        with self._lock:
            for obj in objs:
                self._store.seed(copy.deepcopy(dict(obj)))
            self._store.sync_pdbs()

    def add_all(self, objs: Iterable[Mapping[str, Any]]) -> None:
        """`add` for many fresh objects (a generator's): stored without a deep copy, so faster."""
        with self._lock:
            for obj in objs:
                self._store.seed(dict(obj))
            self._store.sync_pdbs()

    def get(self, plural: str, name: str, namespace: str = "", group: str = "") -> dict[str, Any] | None:
        """A copy of the stored object, or None."""
        with self._lock:
            entry = self._store.tables[self._store.resource(plural, group)].entries.get((namespace, name))
            return copy.deepcopy(entry.obj) if entry else None

    def objects(self, plural: str, group: str = "") -> list[dict[str, Any]]:
        with self._lock:
            table = self._store.tables[self._store.resource(plural, group)]
            return [copy.deepcopy(table.entries[k].obj) for k in table.ordered()]

    def remove(self, plural: str, name: str, namespace: str = "", group: str = "") -> None:
        with self._lock:
            self._store.tables[self._store.resource(plural, group)].drop((namespace, name))
            self._store.sync_pdbs()

    def sync_pdbs(self) -> None:
        """What the disruption controller does: recompute the status of every PDB whose status
        was not pinned by the test, from the pods it selects."""
        with self._lock:
            self._store.sync_pdbs()

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
            status, obj = route(self._store, self.evict_mode, method, path, query, content_type, parsed_body)
            payload = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        except ApiError as err:
            status, payload = err.code, json.dumps(err.status()).encode()
        finally:
            with self._lock:
                self.requests.append(Request(method, path, query, content_type, parsed_body, status))
        return status, payload


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
