"""Real-Prometheus pieces for the adapter tests: OpenMetrics history, backfill, a server on loopback,
and tiny HTTP servers that misbehave on purpose.

- `OpenMetrics` collects samples and writes the text `promtool tsdb create-blocks-from openmetrics`
  reads (one family at a time, each series' samples in time order, `# EOF` at the end).
- `PrometheusServer` backfills that text into a fresh data directory, starts the Debian package's
  `prometheus` on a free 127.0.0.1 port with no scrape targets, waits for `/-/ready`, and stops it
  (also when the test fails). Prometheus only serves what it loaded: the history must be recent
  (timestamps relative to now), inside the retention time, and older than nothing it would
  compact away while the tests run.
- `misbehaving_server` answers every request with a fixed status, or too slowly, and counts requests.

Sockets: 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

INSTALL_HINT = "the Debian package `prometheus` is not installed: apt-get install prometheus"

# No scrape targets: every sample comes from the backfilled blocks.
MINIMAL_CONFIG = """\
global:
  scrape_interval: 15s
  evaluation_interval: 15s
scrape_configs: []
"""


def binaries() -> tuple[str, str] | None:
    """(prometheus, promtool) paths, or None when the package is missing."""
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    return (prometheus, promtool) if prometheus and promtool else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


@dataclass
class OpenMetrics:
    """Samples grouped by family; `text()` renders them as OpenMetrics for promtool."""

    _types: dict[str, str] = field(default_factory=dict)
    _series: dict[str, dict[tuple[tuple[str, str], ...], list[tuple[float, float]]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )

    def add(self, family: str, kind: str, name: str, labels: Mapping[str, str], ts: float, value: float) -> None:
        """One sample. For a counter, `family` is the name without `_total` and `name` the sample name."""
        self._types[family] = kind
        self._series[family][(name, *sorted(labels.items()))].append((ts, value))

    def text(self) -> str:
        lines: list[str] = []
        for family, kind in self._types.items():
            lines.append(f"# TYPE {family} {kind}")
            for (name, *labels), samples in self._series[family].items():
                rendered = ",".join(f'{k}="{v}"' for k, v in labels)
                for ts, value in sorted(samples):
                    lines.append(f"{name}{{{rendered}}} {_number(value)} {ts:.3f}")
        lines.append("# EOF")
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class PrometheusServer:
    """A real Prometheus on 127.0.0.1 serving backfilled history; use as a context manager."""

    def __init__(self, workdir: Path, openmetrics: str, *, ready_timeout_s: float = 20.0) -> None:
        found = binaries()
        if found is None:
            raise RuntimeError(INSTALL_HINT)
        self._prometheus, self._promtool = found
        self._workdir = workdir
        self._openmetrics = openmetrics
        self._ready_timeout_s = ready_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._log = workdir / "prometheus.log"
        self.url = ""

    def __enter__(self) -> PrometheusServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        data = self._workdir / "data"
        source = self._workdir / "history.om"
        config = self._workdir / "prometheus.yml"
        source.write_text(self._openmetrics, encoding="utf-8")
        config.write_text(MINIMAL_CONFIG, encoding="utf-8")
        backfill = subprocess.run(
            [self._promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if backfill.returncode != 0:
            raise RuntimeError(f"promtool backfill failed:\n{backfill.stdout}\n{backfill.stderr}")
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    self._prometheus,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={data}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    # Keep the backfilled blocks: retention counts from the newest block, and a
                    # generous time keeps even a slow CI run's history.
                    "--storage.tsdb.retention.time=30d",
                    # Instant queries see a series until 5 minutes after its last sample (the
                    # default, spelled out: the stale-series tests rely on it).
                    "--query.lookback-delta=5m",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._ready_timeout_s
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self._process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"prometheus not ready after {self._ready_timeout_s}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)

    def log_tail(self, lines: int = 30) -> str:
        if not self._log.exists():
            return ""
        return "\n".join(self._log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


@dataclass
class Misbehaving:
    url: str
    requests: list[tuple[str, str, dict[str, str]]]
    """(method, path, headers) of every request received."""


@contextlib.contextmanager
def misbehaving_server(
    status: int = 500, delay_s: float = 0.0, body: bytes = b"", tls: tuple[Path, Path] | None = None
) -> Iterator[Misbehaving]:
    """An HTTP server on 127.0.0.1 that sleeps `delay_s`, then answers `status` with `body`; HTTPS
    with `tls` = (certificate file, key file)."""
    seen: list[tuple[str, str, dict[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            seen.append((self.command, self.path, dict(self.headers)))
            if delay_s:
                time.sleep(delay_s)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the client gave up (timeout): nothing to answer

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        # A client that rejects the certificate fails the handshake in accept(): socketserver
        # drops that connection quietly (an OSError in get_request).
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Misbehaving(f"{scheme}://127.0.0.1:{server.server_address[1]}", seen)
    finally:
        server.shutdown()
        server.server_close()
