"""A real Prometheus on 127.0.0.1: the Debian package's `prometheus`, started and stopped here.

- `OpenMetrics` collects samples and writes the text `promtool tsdb create-blocks-from openmetrics`
  reads (one family at a time, each series' samples in time order, `# EOF` at the end).
- `PrometheusServer` backfills such a text into a fresh data directory (optional), writes a
  configuration with the scrape targets it is given (none by default), starts `prometheus` on a
  free 127.0.0.1 port, waits for `/-/ready`, and stops it. It can be stopped and started again on
  the same port and data (a Prometheus outage, then recovery). Optional basic auth through
  Prometheus' own `--web.config.file` (bcrypt, hashed with the C library's crypt()).

Prometheus only serves what it loaded: backfilled history must be recent (timestamps relative to
now), inside the retention time, and older than nothing it would compact away while it runs.
"""

from __future__ import annotations

import contextlib
import json
import math
import secrets
import shutil
import socket
import subprocess  # nosec B404  # runs the prometheus and promtool binaries found on PATH, no shell
import time
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

INSTALL_HINT = "the Debian package `prometheus` is not installed: apt-get install prometheus"


class PrometheusMissing(RuntimeError):
    """The prometheus or promtool binary is not on PATH."""


class _PortTaken(Exception):
    """Prometheus exited because its listen address was taken."""


def binaries() -> tuple[str, str] | None:
    """(prometheus, promtool) paths, or None when the package is missing."""
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    return (prometheus, promtool) if prometheus and promtool else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
"""kube-state-metrics' `kube_pod_status_phase` has one series per phase, 1 for the pod's own."""


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

    def add_pod(
        self,
        labels: Mapping[str, str],
        ts: float,
        phase: str,
        owner_kind: str,
        containers: Sequence[tuple[float, float]],
    ) -> None:
        """What kube-state-metrics v2 exports for one pod at `ts`: its phase, its controller's kind,
        and each container's requests, (CPU cores, memory bytes). `labels` hold namespace and pod."""
        for each in POD_PHASES:
            self.add(
                "kube_pod_status_phase",
                "gauge",
                "kube_pod_status_phase",
                {**labels, "phase": each},
                ts,
                float(each == phase),
            )
        owner = {**labels, "owner_kind": owner_kind, "owner_is_controller": "true"}
        self.add("kube_pod_owner", "gauge", "kube_pod_owner", owner, ts, 1.0)
        name = "kube_pod_container_resource_requests"
        for i, (cores, mem_bytes) in enumerate(containers):
            for resource, unit, value in (("cpu", "core", cores), ("memory", "byte", mem_bytes)):
                series = {**labels, "container": f"c{i}", "resource": resource, "unit": unit}
                self.add(name, "gauge", name, series, ts, value)

    def text(self) -> str:
        lines: list[str] = []
        for family, kind in self._types.items():
            lines.append(f"# TYPE {family} {kind}")
            for (name, *labels), samples in self._series[family].items():
                rendered = ",".join(f'{k}="{v}"' for k, v in labels)
                for ts, value in sorted(samples):
                    lines.append(f"{name}{{{rendered}}} {number(value)} {ts:.3f}")
        lines.append("# EOF")
        return "\n".join(lines) + "\n"


def number(value: float) -> str:
    """A sample value as the exposition formats write it."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def duration(seconds: float) -> str:
    """A Prometheus duration ("1s", "800ms"): whole units only."""
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def bcrypt_hash(password: str) -> str | None:
    """A bcrypt hash of `password` for Prometheus' web config, or None when this Python cannot
    make one (the `crypt` module is gone from Python 3.13, or the C library lacks bcrypt)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt  # the C library's crypt(3): libxcrypt knows bcrypt ($2b$)
        except ImportError:
            return None
    try:
        # Cost 4 (2**4 rounds): the password only guards a loopback test server; checks stay fast.
        salt = crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)  # nosec B324  # bcrypt: what Prometheus' web config takes
        hashed = crypt.crypt(password, salt)
    except (AttributeError, OSError, ValueError):
        return None
    return hashed if hashed and hashed.startswith("$2") else None


class PrometheusServer:
    """A real Prometheus on 127.0.0.1; use as a context manager, or start() and stop().

    `openmetrics`: history to backfill before the first start. `scrape_configs`: Prometheus
    `scrape_configs` entries (dicts), every `scrape_interval_s`. `basic_auth`: (user, password)
    that every request must carry. The port is chosen once, so a restart keeps the URL.
    """

    def __init__(
        self,
        workdir: Path,
        openmetrics: str | None = None,
        *,
        scrape_configs: Sequence[Mapping[str, Any]] = (),
        scrape_interval_s: float = 15.0,
        basic_auth: tuple[str, str] | None = None,
        lookback_delta: str = "5m",
        ready_timeout_s: float = 20.0,
    ) -> None:
        found = binaries()
        if found is None:
            raise PrometheusMissing(INSTALL_HINT)
        self._prometheus, self._promtool = found
        self._workdir = Path(workdir)
        self._openmetrics = openmetrics
        self._scrape_configs = [dict(c) for c in scrape_configs]
        self._scrape_interval_s = scrape_interval_s
        self._basic_auth = basic_auth
        self._lookback_delta = lookback_delta
        self._ready_timeout_s = ready_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._log = self._workdir / "prometheus.log"
        self._backfilled = False
        self._started_once = False
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> PrometheusServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def auth(self) -> tuple[str, str] | None:
        """(user, password) for requests, when basic auth is on."""
        return self._basic_auth

    def start(self) -> None:
        """Start (or start again after stop(), on the same port and data) and wait until ready.

        The port was only free when it was chosen: if another process took it meanwhile, the first
        start moves to another free port (a restart keeps its port, or fails: its URL is in use)."""
        if self.running:
            return
        self._workdir.mkdir(parents=True, exist_ok=True)
        data = self._workdir / "data"
        if self._openmetrics is not None and not self._backfilled:
            self._backfill(data)
        first = not self._started_once
        for attempt in range(3 if first else 1):
            try:
                self._launch(data)
            except _PortTaken:
                if attempt == 2 or not first:
                    raise RuntimeError(f"prometheus could not listen on {self.url}:\n{self.log_tail()}") from None
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"
                continue
            self._started_once = True
            return

    def add_history(self, openmetrics: str) -> None:
        """Backfill more history (OpenMetrics text) into the data. Prometheus loads blocks when it
        starts, so a running server is stopped and started again, on the same port."""
        running = self.running
        self.stop()
        self._openmetrics, self._backfilled = openmetrics, False
        if running:
            self.start()

    def _launch(self, data: Path) -> None:
        args = [
            self._prometheus,
            f"--config.file={self._write_config()}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            # Keep backfilled blocks: retention counts from the newest block, and a generous
            # time keeps even a slow CI run's history.
            "--storage.tsdb.retention.time=30d",
            # Instant queries see a series until this long after its last sample (the default
            # 5m, spelled out: the stale-series tests rely on it).
            f"--query.lookback-delta={self._lookback_delta}",
        ]
        web_config = self._write_web_config()
        if web_config is not None:
            args.append(f"--web.config.file={web_config}")
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)  # nosec B603  # fixed argv
        self._wait_ready()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s); nothing happens if it is not running."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def query(self, expr: str, at: float | None = None, timeout_s: float = 5.0) -> list[dict[str, Any]]:
        """An instant query's result list (raises on an HTTP or PromQL error)."""
        params: dict[str, str] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        response = requests.get(f"{self.url}/api/v1/query", params=params, auth=self._basic_auth, timeout=timeout_s)
        response.raise_for_status()
        body = response.json()
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus: {body.get('errorType')}: {body.get('error')}")
        return list(body["data"]["result"])

    def log_tail(self, lines: int = 30) -> str:
        if not self._log.exists():
            return ""
        return "\n".join(self._log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    # -- internals -------------------------------------------------------------------------------

    def _backfill(self, data: Path) -> None:
        source = self._workdir / "history.om"
        source.write_text(self._openmetrics or "", encoding="utf-8")
        backfill = subprocess.run(  # nosec B603  # fixed argv, no shell
            [self._promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if backfill.returncode != 0:
            raise RuntimeError(f"promtool backfill failed:\n{backfill.stdout}\n{backfill.stderr}")
        self._backfilled = True

    def _write_config(self) -> Path:
        interval = duration(self._scrape_interval_s)
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": self._scrape_configs,
        }
        path = self._workdir / "prometheus.yml"
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML
        return path

    def _write_web_config(self) -> Path | None:
        if self._basic_auth is None:
            return None
        user, password = self._basic_auth
        hashed = bcrypt_hash(password)
        if hashed is None:
            raise RuntimeError("cannot hash a password with bcrypt here; start Prometheus without basic_auth")
        path = self._workdir / "web.yml"
        path.write_text(json.dumps({"basic_auth_users": {user: hashed}}), encoding="utf-8")
        return path

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._ready_timeout_s
        assert self._process is not None  # nosec B101  # set by start() just before
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = self.log_tail()
                if "address already in use" in self.log_tail(3):
                    raise _PortTaken()
                raise RuntimeError(f"prometheus exited with {self._process.returncode}:\n{tail}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/-/ready", auth=self._basic_auth, timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"prometheus not ready after {self._ready_timeout_s}s:\n{self.log_tail()}")


def random_password() -> str:
    return secrets.token_urlsafe(18)
