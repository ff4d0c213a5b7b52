"""Supply chain: `bandit` finds nothing in src/, and `pip-audit` finds no known vulnerability in the
Lambda's locked runtime dependencies (requirements.lock, the closure of src/requirements.txt).

pip-audit asks a vulnerability service (PyPI's JSON API) about every locked release. Before the audit,
one bounded request for a locked release finds out whether that service answers from here: when it does
not (no route, no DNS, or an index proxy that does not serve the per-release JSON), the audit is skipped
with the reason, so `make test` passes on a machine without it. NODE_FLEET_OFFLINE=1 skips it without
asking. Once the service has answered, a failure to audit fails the test (unless NODE_FLEET_OFFLINE=1),
and a dependency the service does not know counts as not audited (`--strict`), never as clean.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
REQUIREMENTS = ROOT / "src" / "requirements.txt"
OFFLINE = os.environ.get("NODE_FLEET_OFFLINE") == "1"
PYPI_RELEASE_JSON = "https://pypi.org/pypi/{name}/{version}/json"
"""What pip-audit's PyPI service asks for each release."""
PROBE_TIMEOUT_S = (3.05, 5.0)

# What pip-audit prints when the service, not the dependencies, is the problem.
SERVICE_TROUBLE = (
    "could not be audited",
    "ConnectionError",
    "Max retries exceeded",
    "Failed to establish a new connection",
    "Name or service not known",
    "Temporary failure in name resolution",
    "timed out",
    "ServiceError",
)


def _requirements(path: Path) -> list[Requirement]:
    found = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            found.append(Requirement(line))
    return found


def _pins(path: Path) -> dict[str, str]:
    """Canonical name -> exact version, for a file where every line is `name==version`."""
    pins = {}
    for req in _requirements(path):
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version, (
            f"{path.name}: {req} is not pinned to one exact version"
        )
        assert not req.marker and not req.extras and not req.url, f"{path.name}: {req} must be a plain name==version"
        name = canonicalize_name(req.name)
        assert name not in pins, f"{path.name}: {req.name} is listed twice"
        pins[name] = specs[0].version
    return pins


def service_problem(url: str) -> str | None:
    """Why a vulnerability service answering at `url` (a release's JSON) cannot audit from here, or None."""
    try:
        response = requests.get(url, timeout=PROBE_TIMEOUT_S, allow_redirects=False)
    except requests.RequestException as exc:
        return f"{url} could not be reached ({type(exc).__name__})"
    if response.status_code != 200:
        return f"{url} answered HTTP {response.status_code}"
    return None


def _require_module(module: str, package: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.fail(f"{package} is not installed in this environment: pip install -e '.[dev]' (a dev dependency)")


def test_the_lock_pins_every_requirement_at_its_version():
    locked = _pins(LOCK)
    for req in _requirements(REQUIREMENTS):
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is in src/requirements.txt but not in requirements.lock: regenerate it"
        assert req.specifier.contains(locked[name], prereleases=True), (
            f"requirements.lock pins {req.name}=={locked[name]}, src/requirements.txt asks {req}: regenerate the lock"
        )


def test_the_lock_is_closed_under_the_runtime_requirements_of_what_it_pins():
    """Each locked release's own runtime requirements (read from its installed metadata, where this
    environment has that very release) are locked too, so `--no-deps` audits the whole closure."""
    locked = _pins(LOCK)
    checked, missing = 0, []
    for name, version in locked.items():
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if dist.version != version:
            continue
        checked += 1
        for raw in dist.requires or ():
            req = Requirement(raw)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            dep = canonicalize_name(req.name)
            if dep not in locked:
                missing.append(f"{name}=={version} needs {req}")
            elif not req.specifier.contains(locked[dep], prereleases=True):
                missing.append(f"{name}=={version} needs {req}, the lock has {locked[dep]}")
    assert checked, "none of the locked releases is installed here: cannot check the lock's closure"
    assert not missing, "requirements.lock is not a closed set; regenerate it:\n" + "\n".join(missing)


def test_bandit_finds_nothing_in_src():
    _require_module("bandit", "bandit")
    result = subprocess.run(
        [sys.executable, "-m", "bandit", "-r", "src", "tools", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"bandit -r src found issues:\n{result.stdout}\n{result.stderr}"


def test_the_service_probe_tells_an_answer_from_none():
    """Bounded and local: a closed port and a 404 (an index proxy without the JSON API) are problems."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path.endswith("/known/json") else 404)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert service_problem(f"{base}/pypi/boto3/known/json") is None
        assert "answered HTTP 404" in (service_problem(f"{base}/pypi/boto3/1.0/json") or "")
    finally:
        server.shutdown()
        server.server_close()
    assert "could not be reached" in (service_problem(f"{base}/pypi/boto3/1.0/json") or "")


def test_pip_audit_finds_no_known_vulnerability_in_the_lock(tmp_path):
    _require_module("pip_audit", "pip-audit")
    if OFFLINE:
        pytest.skip("NODE_FLEET_OFFLINE=1: no vulnerability service on this machine, the lock is not audited")
    name, version = next(iter(_pins(LOCK).items()))
    if (problem := service_problem(PYPI_RELEASE_JSON.format(name=name, version=version))) is not None:
        pytest.skip(
            f"the vulnerability service (PyPI's JSON API) does not answer from here, nothing audited: {problem}"
        )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip_audit",
            "--requirement",
            str(LOCK),
            "--no-deps",
            "--disable-pip",
            "--strict",
            "--vulnerability-service",
            "pypi",
            "--format",
            "json",
            "--progress-spinner",
            "off",
            "--timeout",
            "30",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    try:
        report = json.loads(result.stdout) if result.stdout.strip() else None
    except json.JSONDecodeError:
        report = None
    if result.returncode == 0 and report is not None:
        assert all(not d.get("vulns") for d in report["dependencies"]), result.stdout
        audited = [d for d in report["dependencies"] if "skip_reason" not in d]
        assert len(audited) == len(_pins(LOCK)), f"not every locked package was audited: {result.stdout}"
        return
    if report is not None and any(d.get("vulns") for d in report.get("dependencies", ())):
        found = [
            f"{d['name']}=={d['version']}: {v['id']} (fixed in {', '.join(v.get('fix_versions') or ['no release yet'])})"
            for d in report["dependencies"]
            for v in d.get("vulns") or ()
        ]
        pytest.fail("known vulnerabilities in requirements.lock; upgrade and regenerate the lock:\n" + "\n".join(found))
    output = f"{result.stdout}\n{result.stderr}".strip()
    if any(marker in output for marker in SERVICE_TROUBLE):
        why = (
            "PyPI's JSON API answered 404 for a locked release, which pip installs from the same index: the "
            "index or proxy in use does not serve the per-release JSON (https://pypi.org/pypi/NAME/VERSION/json)"
            if "not found on PyPI" in output
            else "the vulnerability service (PyPI's JSON API) could not be reached"
        )
        # The probe had an answer, so this is the service failing mid-audit, not its absence.
        pytest.fail(f"pip-audit audited nothing: {why}. pip-audit said:\n{output[-2000:]}")
    pytest.fail(f"pip-audit failed (exit {result.returncode}):\n{output[-4000:]}")
