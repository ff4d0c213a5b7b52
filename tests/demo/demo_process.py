"""Running `node-fleet` in a subprocess and looking at what it started (shared by tests/demo)."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NODE_FLEET = Path(sys.executable).parent / "node-fleet"
CYCLE_LINE = re.compile(r"^\s*\d+\.\ds\s+\d+\s+\d+\s+\d+\s+(none|scale_up|scale_down|acted|lease_taken|\?)")
STACK_UP = re.compile(r"^stack up in .*: moto (\S+), kube API (\S+), prometheus (\S+)$")


def command(*args: str) -> list[str]:
    return [str(NODE_FLEET), *args]


def environ() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Running:
    """A `node-fleet` subprocess in its own session, its output read line by line on a thread."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            command(*args),
            cwd=ROOT,
            env=environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: re.Pattern[str], timeout_s: float) -> re.Match[str]:
        """The first line (from now on) matching `pattern`; AssertionError with the output otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.0, min(1.0, deadline - time.monotonic())))
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
            found = pattern.search(line)
            if found:
                return found
        raise AssertionError(f"no line matching {pattern.pattern!r}; output:\n" + "\n".join(self.lines[-60:]))

    def finish(self, timeout_s: float) -> int:
        """Wait for the exit (killing the session after `timeout_s`) and read the rest of the output."""
        try:
            code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            raise AssertionError("timed out; output:\n" + "\n".join(self.lines[-60:])) from None
        self._reader.join(timeout=10)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return code

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def cmdline(pid: int) -> list[str]:
    try:
        return [part.decode() for part in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if part]
    except OSError:
        return []


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def prometheus_children(pid: int) -> list[int]:
    return [child for child in children(pid) if cmdline(child) and cmdline(child)[0].endswith("prometheus")]


def refuses(url: str) -> bool:
    """Nothing accepts connections at the URL's host:port any more."""
    host, port = url.removeprefix("http://").split("/")[0].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return False
    except OSError:
        return True
