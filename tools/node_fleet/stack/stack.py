"""`EmbeddedStack`: moto, the fake API server, simulated kubelets and a real Prometheus, started
together on 127.0.0.1, with a seeded cluster and the functions' environment pointing at them.
With `api="controlplane"`, a real control plane (tools/controlplane) replaces the fake API server:
the kubelets only run what the real kube-scheduler binds, and the functions use the `node-fleet`
ServiceAccount's token and the API server's CA, both in SSM, as deployed.

    with EmbeddedStack(workers=2, settings={"MIN_NODES": "1"}) as stack:
        stack.environ              # what template.yaml sets for the functions (+ AWS_ENDPOINT_URL...)
        stack.kube                 # the fake API server (add pods, PDBs...; inject faults), or RealKube
        stack.kubelets             # the simulated kubelets, scheduler and ReplicaSets
        stack.prometheus           # the real Prometheus (stop() and start() it for an outage)
        stack.account              # what exists in moto: subnets, launch template, table, topic...
        stack.reset()              # a fresh cluster on the same servers
    # every process and thread it started is stopped here, also on an exception or Ctrl-C

The seeded cluster: one K3s server (an EC2 instance tagged `node-fleet.io/role=server`, not a
worker, and its control-plane Node, tainted NoSchedule), and `workers` workers launched through
moto from the worker launch template with the cluster's worker tags, spread over the zones, whose
Nodes are registered at once. Prometheus scrapes the kubelets every `scrape_interval_s` (1 s).

The rate window (PROMETHEUS_RATE_WINDOW, 5 s by default) is short on purpose: rate() underestimates
a series younger than its window, so a node that has just joined reads busy for 5 s, not 5 minutes. The price: an instant query far from now (a clock
offset of more than a few seconds) finds no sample in the window and the metrics read "unknown".
`wait_for_metrics()` waits until the adapter reads every node's current usage.

`environ` is built from template.yaml itself: both functions' Environment.Variables resolved by
`node_fleet.local_invoke` with the template parameters pointing here (ClusterName, VpcId, WorkerSubnetIds,
LaunchTemplateId, K8sApiUrl, PrometheusUrl, the SSM parameter names...), the table and topic
filled in (CloudFormation would), plus what the local endpoints need (AWS_ENDPOINT_URL, fake
credentials and region, PROMETHEUS_RATE_WINDOW), then the caller's `settings`, last. The secrets
live in SSM (moto) only: the K8s token the fake API server checks (or the ServiceAccount's, and the
real one's CA), Prometheus' basic-auth credentials (when this Python can hash them with bcrypt;
otherwise Prometheus runs without auth and PROMETHEUS_AUTH_PARAM is empty), the webhook HMAC key.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from node_fleet.stack import aws
from node_fleet.stack.aws import forget_cached_clients
from node_fleet.stack.controlplane import RealApi, start_real_api
from node_fleet.stack.environ import applied, function_environs, merged
from node_fleet.stack.errors import StackError
from node_fleet.stack.kube_api import FLUX_KINDS, FakeKube, objects
from node_fleet.stack.kube_real import RealKube
from node_fleet.stack.kubelets import (
    CLUSTER_TAG,
    ROLE_TAG,
    WORKER_ROLE,
    KubeletFleet,
    WorkerShape,
    describe_workers,
    iso,
)
from node_fleet.stack.prometheus import INSTALL_HINT, PrometheusMissing, PrometheusServer, bcrypt_hash, binaries

T = TypeVar("T")

PROMETHEUS_USER = "node-fleet"
SERVER_ROLE = "server"
K8S_CA_PARAM = "/node-fleet/k8s-ca"
APIS = ("fake", "controlplane")
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def wait_until(predicate: Callable[[], T], timeout_s: float = 10.0, interval_s: float = 0.1, what: str = "") -> T:
    """Poll `predicate` until it returns something truthy (returned); TimeoutError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout_s:g}s: {what or getattr(predicate, '__name__', 'condition')}")
        time.sleep(interval_s)


class EmbeddedStack:
    """See the module docstring. Arguments:

    cluster_name, workers (seeded), zones, region, shape (allocatable and instance type of a worker),
    boot_delay_s (running instance -> Node), usage_factor (pods' CPU use / request),
    scrape_interval_s, rate_window (PROMETHEUS_RATE_WINDOW), settings (variables set last, e.g.
    {"SCALE_DOWN_UNNEEDED_TIME_S": "0"}), workdir (a temporary one, removed at stop, by default),
    clock (lifecycle time of the kubelets), template (template.yaml), log_level (LOG_LEVEL),
    api ("fake" or "controlplane"), controlplane (the control plane's binary, for "controlplane"),
    crds (CRD files or folders installed on a real API server: the fake knows the Flux kinds).
    """

    def __init__(
        self,
        *,
        cluster_name: str = "node-fleet",
        workers: int = 2,
        zones: tuple[str, ...] = aws.ZONES,
        region: str = aws.REGION,
        shape: WorkerShape | None = None,
        boot_delay_s: float = 2.0,
        usage_factor: float = 0.5,
        scrape_interval_s: float = 1.0,
        rate_window: str = "5s",
        settings: Mapping[str, str] | None = None,
        workdir: str | os.PathLike[str] | None = None,
        clock: Callable[[], float] = time.time,
        template: str | os.PathLike[str] = aws.TEMPLATE,
        log_level: str = "INFO",
        kubelet_interval_s: float = 0.2,
        api: str = "fake",
        controlplane: str | os.PathLike[str] | None = None,
        crds: tuple[str | os.PathLike[str], ...] = (),
    ) -> None:
        if workers < 0 or not zones:
            raise StackError("workers must be >= 0 and zones not empty")
        if api not in APIS or (api == "controlplane") != (controlplane is not None):
            raise StackError(f"api is one of {APIS}; the control plane's binary goes with, and only with, the real one")
        self.controlplane, self.crds = controlplane, tuple(crds)
        self.cluster_name, self.workers, self.zones, self.region = cluster_name, workers, tuple(zones), region
        self.shape = shape or WorkerShape()
        self.boot_delay_s, self.usage_factor = boot_delay_s, usage_factor
        self.scrape_interval_s, self.rate_window = scrape_interval_s, rate_window
        self.settings = {k: str(v) for k, v in (settings or {}).items()}
        self.clock, self.template, self.log_level = clock, Path(template), log_level
        self.kubelet_interval_s = kubelet_interval_s
        self._workdir_given = workdir is not None
        self.workdir = Path(workdir) if workdir is not None else None

        self.moto: aws.MotoServer | None = None
        self.clients: dict[str, Any] = {}
        self.kube: FakeKube | RealKube | None = None
        self.real: RealApi | None = None
        self.kubelets: KubeletFleet | None = None
        self.prometheus: PrometheusServer | None = None
        self.account: aws.Account | None = None
        self.server_node = ""
        self.server_instance_id = ""
        self.seeded_workers: list[str] = []
        """Node names of the workers seeded by the last start() or reset()."""
        self.secrets: dict[str, str] = {}
        self.environ: dict[str, str] = {}
        self.function_environ: dict[str, dict[str, str]] = {}
        self._generation = 0
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------------------

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> EmbeddedStack:
        """Start everything and seed the cluster. A failure (or Ctrl-C) stops what had started."""
        if self._started:
            return self
        if binaries() is None:
            raise PrometheusMissing(f"the embedded stack needs a real Prometheus: {INSTALL_HINT}")
        self._started = True
        atexit.register(self.stop)
        try:
            if self.workdir is None:
                self.workdir = Path(tempfile.mkdtemp(prefix="node-fleet-stack-"))
            self.workdir.mkdir(parents=True, exist_ok=True)
            forget_cached_clients()
            k8s_token, hmac_key = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
            self.secrets = {aws.K8S_TOKEN_PARAM: k8s_token, aws.WEBHOOK_HMAC_PARAM: hmac_key}
            password = secrets.token_urlsafe(18)
            basic_auth = (PROMETHEUS_USER, password) if bcrypt_hash(password) else None
            if basic_auth is not None:
                self.secrets[aws.PROMETHEUS_AUTH_PARAM] = f"{PROMETHEUS_USER}:{password}"

            self.moto = aws.MotoServer()
            endpoint = self.moto.start()
            self.clients = aws.clients(endpoint, self.region)
            if self.controlplane is not None:
                self.real = start_real_api(self.controlplane, self.workdir / "controlplane", self.crds)
                self.kube = self.real.kube
                self.secrets |= {aws.K8S_TOKEN_PARAM: self.real.token, K8S_CA_PARAM: self.real.ca_pem}
            else:
                self.kube = FakeKube(token=self.secrets[aws.K8S_TOKEN_PARAM], evict_mode="terminate").start()
            self.kubelets = KubeletFleet(
                self.kube,
                self.clients["ec2"],
                self.cluster_name,
                shape=self.shape,
                boot_delay_s=self.boot_delay_s,
                usage_factor=self.usage_factor,
                clock=self.clock,
                interval_s=self.kubelet_interval_s,
            )
            self.kubelets.serve_metrics()
            self.prometheus = PrometheusServer(
                self.workdir / "prometheus",
                scrape_configs=[self.kubelets.scrape_config(self.scrape_interval_s)],
                scrape_interval_s=self.scrape_interval_s,
                basic_auth=basic_auth,
            )
            self.prometheus.start()
            self._seed()
            self.kubelets.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every thread and process started here (idempotent); remove a temporary workdir."""
        if not self._started:
            return
        self._started = False
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        for stop in (
            self.kubelets.stop if self.kubelets else None,
            self.prometheus.stop if self.prometheus else None,
            self.real.stop if self.real else None,
            self.kube.stop if isinstance(self.kube, FakeKube) else None,
            self.moto.stop if self.moto else None,
        ):
            if stop is not None:
                with contextlib.suppress(Exception):
                    stop()
        forget_cached_clients()
        if self.workdir is not None and not self._workdir_given:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def reset(self) -> None:
        """A fresh cluster on the same servers: AWS emptied and seeded again (new subnet, template
        and table ids, so `environ` changes), the API's objects and the kubelets forgotten, faults
        cleared, a new server and workers seeded. Prometheus keeps running (the new nodes have new
        names; the old series go stale)."""
        self._require()
        assert self.kubelets and self.kube and self.moto  # nosec B101  # _require() checked
        self.kubelets.pause()
        self.moto.reset()
        self.kube.clear()
        self.kubelets.reset()
        forget_cached_clients()
        self._seed()
        self.kubelets.start()

    # -- the functions' environment -----------------------------------------------------------------------

    def env_vars_file(self, path: str | os.PathLike[str] | None = None) -> Path:
        """`sam local invoke --env-vars` JSON for every function ({"LogicalId": {VAR: value}})."""
        self._require()
        target = Path(path) if path is not None else self._dir() / "env.json"
        target.write_text(json.dumps(self.function_environ, indent=2, sort_keys=True), encoding="utf-8")
        return target

    def applied(self) -> contextlib.AbstractContextManager[None]:
        """os.environ with `environ` applied for the block (AWS_PROFILE and the like unset), then restored."""
        return applied(self.environ)

    def secret(self, name: str) -> str:
        """The value of an SSM parameter, read back from moto."""
        return self.clients["ssm"].get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]

    # -- looking at the cluster -----------------------------------------------------------------------

    def instances(self, *, states: tuple[str, ...] = ("pending", "running")) -> list[dict[str, Any]]:
        """This cluster's worker instances in `states` (EC2's answer, tags included)."""
        return describe_workers(self.clients["ec2"], self.cluster_name, states)

    def metrics(self, now: float | None = None) -> Any:
        """What the autoscaler's Prometheus adapter reads now (a MetricsView), with its credentials."""
        from autoscaler.adapters.prometheus import PrometheusAuth, PrometheusMetrics, PrometheusOptions

        options = PrometheusOptions.from_env(self.environ)
        auth = None
        if self.environ.get("PROMETHEUS_AUTH_PARAM"):
            user, password = self.secrets[aws.PROMETHEUS_AUTH_PARAM].split(":", 1)
            auth = PrometheusAuth.basic(user, password)
        adapter = PrometheusMetrics(options, auth=auth)
        try:
            return adapter.sample(time.time() if now is None else now)
        finally:
            adapter.close()

    def wait_for_metrics(self, timeout_s: float = 30.0, tolerance: float = 0.1) -> Any:
        """Wait until the autoscaler's adapter reads the cluster's CPU and, for every node whose
        metrics are served, a CPU usage within `tolerance` of what the kubelets run now (a young
        series reads high until it spans the rate window); returns the MetricsView."""
        self._require()
        assert self.kubelets  # nosec B101  # _require() checked
        kubelets = self.kubelets
        kubelets.step()  # what they run now, including changes made since their last pass

        def settled() -> Any:
            view = self.metrics()
            if not view.known:
                return None
            for node in kubelets.serving():
                expected, seen = kubelets.cpu_share(node), view.node_cpu.get(node)
                if expected is None or seen is None or abs(seen - expected) > tolerance:
                    return None
            return view

        return wait_until(settled, timeout_s, 0.25, "Prometheus reads every served node's current CPU usage")

    # -- internals ---------------------------------------------------------------------------------------

    def _require(self) -> None:
        if not self._started:
            raise StackError("the embedded stack is not started")

    def _dir(self) -> Path:
        assert self.workdir is not None  # nosec B101  # set by start()
        return self.workdir

    def _seed(self) -> None:
        assert self.kube and self.kubelets and self.moto and self.prometheus  # nosec B101  # start() set them
        self.account = aws.seed_account(
            self.clients,
            endpoint=self.moto.endpoint,
            region=self.region,
            cluster_name=self.cluster_name,
            zones=self.zones,
            instance_type=self.shape.instance_type,
            parameters=self.secrets,
            template_path=self.template,
            subnet_offset=self._generation * len(self.zones),
        )
        self._generation += 1
        if isinstance(self.kube, FakeKube):
            self.kube.install(*FLUX_KINDS)
        ec2 = self.clients["ec2"]
        now = self.clock()

        server_tags = {"Name": f"{self.cluster_name}-server", CLUSTER_TAG: self.cluster_name, ROLE_TAG: SERVER_ROLE}
        server = aws.launch(ec2, self.account, self.zones[0], server_tags, self.shape.instance_type)[0]
        self.server_instance_id = server["InstanceId"]
        self.server_node = server.get("PrivateDnsName") or "k3s-server"
        node = objects.node(
            self.server_node,
            instance_id=self.server_instance_id,
            az=self.zones[0],
            cpu="2",
            memory="3883Mi",
            control_plane=True,
            taints=[CONTROL_PLANE_TAINT],
            created=iso(now),
            instance_type=self.shape.instance_type,
        )
        self.kube.add(node)
        self.kubelets.add_static_node(self.server_node, 2000, 3883)

        worker_tags = {"Name": f"{self.cluster_name}-worker", CLUSTER_TAG: self.cluster_name, ROLE_TAG: WORKER_ROLE}
        self.seeded_workers = []
        for i in range(self.workers):
            zone = self.zones[i % len(self.zones)]
            instance = aws.launch(ec2, self.account, zone, worker_tags, self.shape.instance_type)[0]
            self.seeded_workers.append(self.kubelets.adopt(instance))
        self.kubelets.step()  # usage and metrics of the seeded nodes from now on
        self._build_environ()

    def _build_environ(self) -> None:
        assert self.account and self.kube and self.prometheus and self.moto and self.workdir  # nosec B101
        auth_param = aws.PROMETHEUS_AUTH_PARAM if aws.PROMETHEUS_AUTH_PARAM in self.secrets else ""
        parameters = {
            "ClusterName": self.cluster_name,
            "LogLevel": self.log_level,
            "WorkerSubnetIds": ",".join(self.account.subnet_ids),
            "VpcId": self.account.vpc_id,
            "LaunchTemplateId": self.account.launch_template_id,
            "LaunchTemplateVersion": "$Latest",
            "InstanceTypes": self.shape.instance_type,
            "K8sApiUrl": self.kube.url,
            "K8sTokenParam": aws.K8S_TOKEN_PARAM,
            "K8sCaParam": K8S_CA_PARAM if self.real else "",
            "PrometheusUrl": self.prometheus.url,
            "PrometheusAuthParam": auth_param,
            "PrometheusCaParam": "",
            "WebhookHmacParam": aws.WEBHOOK_HMAC_PARAM,
            "NodeCpuM": str(self.shape.cpu_m),
            "NodeMemMib": str(self.shape.mem_mib),
        }
        self.function_environ = function_environs(self.template, parameters, self.account.refs, self.settings)
        self.environ = {
            **aws.client_environ(self.moto.endpoint, self.region, self.workdir),
            **merged(self.function_environ),
            "PROMETHEUS_RATE_WINDOW": self.rate_window,
            "PROMETHEUS_RETRIES": "1",
            "PROMETHEUS_BACKOFF_S": "0.1",
            **self.settings,
        }
