"""Integration tests: the real handlers against the embedded stack (moto's server, the fake
Kubernetes API server with simulated kubelets, a real Prometheus), all on 127.0.0.1.

One EmbeddedStack per module (`embedded`); `cluster` gives each test a freshly seeded cluster on
it (`EmbeddedStack.reset()`), the functions' environment in os.environ, and the handlers' cached
wiring dropped, so each test starts as a cold Lambda container. A module may run its tests on the
real control plane too, by parametrizing `embedded` (indirect, module scope) with the APIs
"fake" and "controlplane". The whole directory is skipped, saying why, when Prometheus is not
installed (CI installs it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kube_objects import built_controlplane, flux_crds_dir
from node_fleet.stack.prometheus import INSTALL_HINT, binaries
from node_fleet.stack.stack import EmbeddedStack
from stack_driver import BASE_SETTINGS, Cluster, seeded

HERE = Path(__file__).resolve().parent

# A node is removed only while its CPU usage reads low: with a 5 s rate window and 1 s scrapes,
# a scrape late or skipped on a loaded machine moves an idle node's reading by a few tenths.
# The tests are about the mechanics around that reading, so the bar is set well above the noise.
SETTINGS = {**BASE_SETTINGS, "CPU_LOW": "0.6"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if binaries() is not None:
        return
    skip = pytest.mark.skip(reason=f"the integration tests run a real Prometheus: {INSTALL_HINT}")
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(HERE):
            item.add_marker(skip)


def stack_for(api: str, tmp_path_factory: pytest.TempPathFactory) -> EmbeddedStack:
    """The suite's stack over the fake API server ("fake"), or over a control plane of its own
    with the Flux CRDs ("controlplane")."""
    real = {"api": api, "controlplane": built_controlplane(), "crds": (flux_crds_dir(),)} if api != "fake" else {}
    workdir = tmp_path_factory.mktemp(f"stack-{api}")
    return EmbeddedStack(workers=2, boot_delay_s=1.5, settings=SETTINGS, workdir=workdir, **real)


@pytest.fixture(scope="module")
def embedded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    """One embedded stack for the module (its cluster is reseeded for each test), over the fake API
    server unless the module parametrizes it."""
    with stack_for(getattr(request, "param", "fake"), tmp_path_factory) as stack:
        yield stack


@pytest.fixture
def cluster(embedded: EmbeddedStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """A freshly seeded cluster (a server, two Ready workers), the functions' environment applied,
    and cold handlers (no cached wiring)."""
    yield seeded(embedded, monkeypatch)
    if embedded.kubelets.errors:
        # The simulation kept going; a test that relied on it would have failed by itself.
        print("kubelet loop errors:", embedded.kubelets.errors)
