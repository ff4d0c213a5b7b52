"""Test-only HTTP servers that misbehave on purpose, for the Prometheus adapter's fault tests.

The real Prometheus (OpenMetrics history, backfill, a server on loopback) lives in
`node_fleet.stack.prometheus`, shared with the integration tests and `make demo`.

- `misbehaving_server` answers every request with a fixed status, or too slowly (all at once after a
  delay, or a byte at a time), and counts requests.

Sockets: 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Misbehaving:
    url: str
    requests: list[tuple[str, str, dict[str, str]]]
    """(method, path, headers) of every request received."""


@contextlib.contextmanager
def misbehaving_server(
    status: int = 500,
    delay_s: float = 0.0,
    body: bytes = b"",
    tls: tuple[Path, Path] | None = None,
    drip_s: float = 0.0,
) -> Iterator[Misbehaving]:
    """An HTTP server on 127.0.0.1 that sleeps `delay_s`, then answers `status` with `body`; HTTPS
    with `tls` = (certificate file, key file). With `drip_s`, the headers go at once and the body one
    byte every `drip_s` seconds, until the client hangs up."""
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
                if not drip_s:
                    self.wfile.write(body)
                for byte in body if drip_s else b"":
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(drip_s)
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
