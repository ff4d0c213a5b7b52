"""Faults, each with an asserted safe outcome: the real handlers on the embedded stack (moto's server,
the fake Kubernetes API server with simulated kubelets, a real Prometheus), the fault injected where
the outside system would produce it.

Safe means: no scale-down on data that cannot be trusted, no double launch, no node left cordoned,
no state lost; a failure a retry can fix raises (the invoker delivers the event again) after
changing nothing, or the cycle completes and says why it held back.

- Prometheus down (a closed port), slow (a proxy that answers after the read timeout), 5xx, NaN,
  stale (a stuck cache replaying an old answer): no scale-down, the reason names the fault, the
  cycle stays within its time, and pending pods still scale up (they come from the Kubernetes API).
- The API server: 500s, 503s and timeouts on the lists make the cycle raise a retryable KubeError
  that changed nothing, and the redelivered event launches once; a 401 is answered, not retried;
  errors on the Flux objects hold scale-down (the gate is unreadable).
- EC2 (errors injected through botocore's `before-send` event on the adapter's own client, so
  botocore's retry logic sees a real error response): throttling retried by botocore; persistent
  throttling raises, and the redelivered event completes the launch without launching twice; no
  capacity falls back across instance types, then backs off; a quota lets part of a launch
  through, then backs off.
- DynamoDB: another writer bumps the state version mid-cycle: StaleStateError, nothing overwritten,
  and no action taken twice.
- The function killed before any one of its actuation steps (a drain and a launch), its lease left
  to expire: the next cycles finish the job, nothing stays cordoned, nothing launches twice.
- A launch that never joins; a PDB that never allows eviction.

Botocore's retry back-off and adaptive rate limiter are not waited for (the sleeps they ask are
recorded instead), and timers of minutes are crossed with a clock offset on the handler's wiring,
as in tests/integration.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar
from urllib.parse import parse_qs

import botocore.endpoint
import botocore.retries.bucket
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from autoscaler import handler
from autoscaler.adapters.kube import KubeError
from autoscaler.adapters.prometheus import PrometheusAuth, PrometheusMetrics, PrometheusOptions
from autoscaler.ports import StaleStateError
from node_fleet.stack import aws
from node_fleet.stack.kube_api import objects
from node_fleet.stack.prometheus import closed_port_url
from stack_driver import Cluster, codes


def emf(out: str) -> dict[str, float]:
    """The metrics of every EMF document printed in `out`, summed by name."""
    found: dict[str, float] = {}
    for line in out.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        doc = json.loads(line)
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = doc[metric["Name"]]
                found[metric["Name"]] = found.get(metric["Name"], 0) + (
                    sum(value) if isinstance(value, list) else value
                )
    return found


def idle_and_busy(cluster: Cluster, busy_cpu_m: int = 300) -> tuple[str, str]:
    """One worker runs a small workload, the other nothing: (busy, idle)."""
    busy, idle = cluster.stack.seeded_workers
    cluster.kubelets.add_workload("web", replicas=1, cpu_m=busy_cpu_m, nodes=[busy])
    return busy, idle


def unchanged(before: dict[str, Any], after: dict[str, Any], *, state_may_change: bool = False) -> None:
    for key in before:
        if key == "state" and state_may_change:
            continue
        assert after[key] == before[key], f"{key} changed: {before[key]!r} -> {after[key]!r}"


# -- Prometheus ---------------------------------------------------------------------------------------------

PROMETHEUS_FAULTS = {
    # fault: (what the reason must say, extra environment)
    "down": ("cannot connect", {}),
    "slow": ("read timeout", {"PROMETHEUS_TIMEOUT_S": "1"}),
    "5xx": ("HTTP 503", {}),
    "nan": ("NaN", {}),
    "stale": ("stale", {"PROMETHEUS_STALENESS_S": "2"}),
}
PROXY_DELAY_S = 3.0


def record_answers(cluster: Cluster, proxy_url: str) -> None:
    """Ask Prometheus through the proxy (in record mode) exactly as the autoscaler will ask it, until
    the recorded answer is a good one (known: every value present and fresh)."""
    options = PrometheusOptions.from_env({**os.environ, "PROMETHEUS_URL": proxy_url})
    user, password = cluster.stack.secrets[aws.PROMETHEUS_AUTH_PARAM].split(":", 1)
    adapter = PrometheusMetrics(options, auth=PrometheusAuth.basic(user, password))
    try:
        cluster.wait(lambda: adapter.sample(time.time()).known, 10, "a good answer to replay")
    finally:
        adapter.close()


def test_baseline_the_idle_worker_is_removed_when_prometheus_answers(cluster, prom_proxy):
    """The setup of the Prometheus fault tests, without a fault: the idle worker goes. So when a
    fault test keeps it, the fault is why."""
    cluster.set(SCALE_DOWN_UNNEEDED_TIME_S="0", PROMETHEUS_URL=prom_proxy.url)
    _, idle = idle_and_busy(cluster)
    cluster.metrics_ready()
    answer = cluster.tick()
    assert answer["action"] == "scale_down" and answer["remove"] == [idle], answer
    assert cluster.node(idle) is None and len(cluster.alive()) == 1
    assert prom_proxy.requests >= 1, "the autoscaler read Prometheus through the proxy"


@pytest.mark.parametrize("fault", PROMETHEUS_FAULTS)
def test_untrusted_prometheus_means_no_scale_down_but_pending_pods_still_scale_up(cluster, prom_proxy, fault):
    said, extra = PROMETHEUS_FAULTS[fault]
    url = closed_port_url() if fault == "down" else prom_proxy.url
    cluster.set(SCALE_DOWN_UNNEEDED_TIME_S="0", PROMETHEUS_URL=url, **extra)
    _, idle = idle_and_busy(cluster)
    cluster.metrics_ready()
    if fault == "stale":
        prom_proxy.set("record")
        record_answers(cluster, prom_proxy.url)
        time.sleep(3.0)  # the recorded samples are now older than PROMETHEUS_STALENESS_S
        prom_proxy.set("stale")
    else:
        prom_proxy.set({"down": "pass", "slow": "slow", "5xx": "error", "nan": "nan"}[fault], delay_s=PROXY_DELAY_S)
    cluster.wiring()  # a warm container: the adapters are built before the clock starts
    before = cluster.world()

    started = time.monotonic()
    held = cluster.tick()
    elapsed = time.monotonic() - started

    assert held["status"] == "acted" and held["action"] == "none", held
    assert "metrics_unknown" in codes(held), held
    detail = next(r["detail"] for r in held["reasons"] if r["code"] == "metrics_unknown")
    assert said in detail, detail
    unchanged(before, cluster.world(), state_may_change=True)
    assert not cluster.cordoned(idle) and cluster.node(idle) is not None
    if fault == "slow":
        # Bounded by the read timeout (1 s, not retried), not by the proxy's delay.
        assert elapsed < PROXY_DELAY_S, f"the cycle waited {elapsed:.1f}s for a slow Prometheus"
    if fault == "5xx":
        assert prom_proxy.requests >= 2, "a 503 is retried (PROMETHEUS_RETRIES) before it counts as unknown"

    # Scale-up from unschedulable pods comes from the Kubernetes API: it still works.
    cluster.kubelets.add_workload("burst", replicas=2, cpu_m=1800)  # one fits on the idle worker
    cluster.wait(lambda: len(cluster.unschedulable()) == 1, what="one pod unschedulable")
    workers = set(cluster.alive())
    answer = cluster.tick()
    assert answer["action"] == "scale_up" and sum(answer["launches"].values()) == 1, answer
    assert len(set(cluster.alive()) - workers) == 1


# -- the Kubernetes API server ---------------------------------------------------------------------------------

API_FAULTS = {
    "list nodes 500": ("fail", "/api/v1/nodes", 500),
    "list pods 503": ("fail", "/api/v1/pods", 503),
    "list nodes timeout": ("hang", "/api/v1/nodes", 0),
}


@pytest.mark.parametrize("fault", API_FAULTS)
def test_api_server_errors_fail_the_cycle_retryably_and_change_nothing(cluster, fault):
    kind, path, status = API_FAULTS[fault]
    cluster.set(K8S_TIMEOUT_S="1")
    cluster.kubelets.add_workload("burst", replicas=3, cpu_m=1800)  # two fit, one needs a new worker
    cluster.wait(lambda: len(cluster.unschedulable()) == 1, what="one pod unschedulable")
    cluster.wiring()  # the container is warm: its adapters are built before the fault
    before = cluster.world()
    if kind == "fail":
        cluster.kube.fail_next(path, count=1, status=status)
    else:
        cluster.kube.hang_next(path, count=1, seconds=3)
    event = cluster.tick_event()

    with pytest.raises(KubeError) as failed:
        cluster.invoke(event)
    assert failed.value.retryable, failed.value
    assert failed.value.status == status  # 0: no answer within K8S_TIMEOUT_S
    unchanged(before, cluster.world())
    assert cluster.lease_item() is None, "the failed cycle released its lease"

    # The invoker delivers the same event again: now it launches, once.
    workers = set(cluster.alive())
    answer = cluster.invoke(event)
    assert answer["action"] == "scale_up" and sum(answer["launches"].values()) == 1, answer
    assert len(set(cluster.alive()) - workers) == 1
    again = cluster.tick()
    assert again["action"] == "none" and "capacity_in_flight" in codes(again), again
    assert len(set(cluster.alive()) - workers) == 1


def test_a_rejected_api_token_is_answered_as_permanent_and_changes_nothing(cluster):
    cluster.kubelets.add_workload("burst", replicas=3, cpu_m=1800)
    cluster.wait(lambda: len(cluster.unschedulable()) == 1, what="one pod unschedulable")
    cluster.wiring()
    before = cluster.world()
    cluster.kube.fail_next("/api/v1/nodes", count=1, status=401)

    answer = cluster.tick()

    assert answer["status"] == "error" and "401" in answer["error"], answer
    assert "K8S_TOKEN_PARAM" in answer["error"], "the answer says which setting to fix"
    unchanged(before, cluster.world())
    assert cluster.lease_item() is None


def test_api_errors_on_the_flux_objects_hold_scale_down(cluster):
    cluster.set(SCALE_DOWN_UNNEEDED_TIME_S="0")
    _, idle = idle_and_busy(cluster)
    cluster.kube.add(objects.kustomization("apps", ready=True))
    cluster.metrics_ready()
    cluster.kube.fail_next("/apis/kustomize.toolkit.fluxcd.io/", count=5, status=500)

    held = cluster.tick()

    assert held["status"] == "acted" and held["action"] == "none" and not held["remove"], held
    hold = [r["detail"] for r in held["reasons"] if r["code"] == "gitops_hold"]
    assert hold and "gate unreadable" in hold[0], held
    assert not cluster.cordoned(idle) and len(cluster.alive()) == 2
    assert cluster.mutations() == []


# -- EC2 -----------------------------------------------------------------------------------------------------

EC2_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{code}</Code>'
    "<Message>{code} (injected by the test)</Message></Error></Errors><RequestID>{rid}</RequestID></Response>"
)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


class Ec2Faults:
    """Answers chosen EC2 calls of one client with an error, before they are sent (botocore parses
    and retries it as if EC2 had answered). `decide(params)` returns an error code, or None to send."""

    def __init__(self, client: Any, operation: str, decide: Callable[[dict[str, str]], str | None]) -> None:
        self.decide = decide
        self.sent: list[dict[str, str]] = []
        self.failed: list[tuple[dict[str, str], str]] = []
        client.meta.events.register(f"before-send.ec2.{operation}", self._before_send)

    def _before_send(self, request: Any, **_: Any) -> AWSResponse | None:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        params = {k: v[0] for k, v in parse_qs(body).items()}
        code = self.decide(params)
        if code is None:
            self.sent.append(params)
            return None
        self.failed.append((params, code))
        status = 503 if code == "RequestLimitExceeded" else 400
        xml = EC2_ERROR.format(code=code, rid=len(self.failed)).encode()
        return AWSResponse(request.url, status, {"Content-Type": "text/xml"}, _Raw(xml))


class _NoWaitTime:
    """Stands for the `time` module in botocore.endpoint: retry back-offs are recorded, not slept."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture
def botocore_backoff(monkeypatch) -> _NoWaitTime:
    """Botocore's retry back-off and its adaptive rate limiter (the EC2 adapter's retry mode)
    without the waiting: the sleeps asked are recorded."""
    clock = _NoWaitTime()
    monkeypatch.setattr(botocore.endpoint, "time", clock)
    monkeypatch.setattr(botocore.retries.bucket.TokenBucket, "acquire", lambda self, amount=1, block=True: True)
    return clock


def pending_for(cluster: Cluster, nodes: int) -> None:
    """Pods that leave `nodes` workers' worth unschedulable (the two seeded workers are full after)."""
    cluster.kubelets.add_workload("burst", replicas=2 + nodes, cpu_m=1800)
    cluster.wait(lambda: len(cluster.unschedulable()) == nodes, what=f"{nodes} pods unschedulable")


def test_ec2_throttling_is_retried_by_botocore_and_launches_once(cluster, botocore_backoff):
    pending_for(cluster, 1)
    fleet = cluster.wiring().ports.fleet
    throttles = iter(["RequestLimitExceeded", "RequestLimitExceeded"])
    faults = Ec2Faults(fleet.client, "RunInstances", lambda params: next(throttles, None))
    workers = set(cluster.alive())

    answer = cluster.tick()

    assert answer["action"] == "scale_up", answer
    assert len(faults.failed) == 2 and len(faults.sent) == 1, "two throttled attempts, then one that went through"
    assert len(set(cluster.alive()) - workers) == 1
    assert len(botocore_backoff.slept) >= 2 and all(s >= 0 for s in botocore_backoff.slept)
    assert cluster.state().launches and len(cluster.state().launches) == 1


def test_persistent_ec2_throttling_raises_and_the_redelivered_event_launches_without_doubling(
    cluster, botocore_backoff
):
    pending_for(cluster, 2)  # two workers wanted: one per zone, one RunInstances call each
    fleet = cluster.wiring().ports.fleet
    zone_b = cluster.stack.account.subnets[aws.ZONES[1]]
    throttled = {"on": True}
    faults = Ec2Faults(
        fleet.client,
        "RunInstances",
        lambda params: "RequestLimitExceeded" if throttled["on"] and params.get("SubnetId") == zone_b else None,
    )
    workers = set(cluster.alive())
    event = cluster.tick_event()

    with pytest.raises(ClientError) as failed:
        cluster.invoke(event)
    assert failed.value.response["Error"]["Code"] == "RequestLimitExceeded"
    # RETRY_CONFIG's retries={"max_attempts": 5} counts the retries: six attempts in all.
    assert len(faults.failed) == 6, "the first attempt and botocore's five retries, then the error"
    assert len(botocore_backoff.slept) == 5
    launched = set(cluster.alive()) - workers
    assert len(launched) == 1, "the first zone's launch went through before the second zone's failed"
    assert cluster.lease_item() is None, "the failed cycle released its lease"
    assert cluster.cordoned_nodes() == set()

    throttled["on"] = False
    answer = cluster.invoke(event)  # the invoker delivers the same event again
    assert answer["action"] == "scale_up" and sum(answer["launches"].values()) == 1, answer
    assert len(set(cluster.alive()) - workers) == 2, "the second zone only: the first launch is not repeated"
    zones = sorted(
        i["Placement"]["AvailabilityZone"] for i in cluster.alive().values() if i["InstanceId"] not in workers
    )
    assert zones == list(aws.ZONES)
    again = cluster.tick()
    assert again["action"] == "none", again
    assert len(set(cluster.alive()) - workers) == 2


class DescribeLag:
    """DescribeInstances as EC2 answers it right after a launch (eventually consistent): instances
    launched by the autoscaler (they carry a launch token) less than `lag_s` ago are not listed yet.
    Applied to one client's answers (the adapter's), after they are parsed."""

    def __init__(self, client: Any, lag_s: float) -> None:
        self.lag_s = lag_s
        self.hidden: set[str] = set()
        client.meta.events.register("after-call.ec2.DescribeInstances", self._after_call)

    def _after_call(self, parsed: dict[str, Any], **_: Any) -> None:
        now = time.time()
        for reservation in parsed.get("Reservations", ()):
            kept = []
            for instance in reservation["Instances"]:
                tags = {t["Key"] for t in instance.get("Tags", ())}
                if "node-fleet.io/launch-token" in tags and now - instance["LaunchTime"].timestamp() < self.lag_s:
                    self.hidden.add(instance["InstanceId"])
                else:
                    kept.append(instance)
            reservation["Instances"] = kept


def test_a_launch_is_still_counted_when_a_later_zones_launch_fails_and_ec2_lists_it_late(cluster, botocore_backoff):
    pending_for(cluster, 2)  # one worker per zone
    cluster.kubelets.pause()  # the cluster stands still: no node joins, no pod moves
    try:
        fleet = cluster.wiring().ports.fleet
        zone_b = cluster.stack.account.subnets[aws.ZONES[1]]
        throttled = {"on": True}
        Ec2Faults(
            fleet.client,
            "RunInstances",
            lambda params: "RequestLimitExceeded" if throttled["on"] and params.get("SubnetId") == zone_b else None,
        )
        lag = DescribeLag(fleet.client, lag_s=60)
        workers = set(cluster.alive())
        with pytest.raises(ClientError):
            cluster.tick()
        assert len(set(cluster.alive()) - workers) == 1, "zone a's worker started"

        throttled["on"] = False
        answer = cluster.tick()  # the next minute's tick, EC2 not listing the new worker yet
        assert lag.hidden, "the new worker was not listed to the autoscaler"
        assert sum(answer["launches"].values()) <= 1, f"the started worker was launched again: {answer}"
        assert len(set(cluster.alive()) - workers) == 2
    finally:
        cluster.kubelets.start()


def test_no_capacity_falls_back_to_the_next_instance_type_then_backs_off(cluster, capsys):
    cluster.set(INSTANCE_TYPES="t3.large,m5.large", PROVISION_BACKOFF_S="120")
    pending_for(cluster, 1)
    fleet = cluster.wiring().ports.fleet
    no_room = {"t3.large"}
    faults = Ec2Faults(
        fleet.client,
        "RunInstances",
        lambda params: "InsufficientInstanceCapacity" if params.get("InstanceType") in no_room else None,
    )
    workers = set(cluster.alive())

    answer = cluster.tick()

    assert answer["action"] == "scale_up", answer
    (new,) = set(cluster.alive()) - workers
    assert cluster.alive()[new]["InstanceType"] == "m5.large"
    assert [code for _, code in faults.failed] == ["InsufficientInstanceCapacity"]
    assert cluster.state().backoff_until is None, "a fallback that launched is not a failure"

    # Then no room anywhere, for any type: nothing launches, the pool backs off, and the next ticks
    # do not hammer EC2.
    cluster.wait(lambda: cluster.kubelets.node_of(new) in cluster.ready_workers(), what="the new worker joins")
    cluster.settle()
    no_room.add("m5.large")
    cluster.kubelets.scale("burst", 4)
    cluster.wait(lambda: len(cluster.unschedulable()) == 1, what="one more pod unschedulable")
    capsys.readouterr()
    tried = len(faults.failed)
    failed = cluster.tick()
    assert failed["action"] == "scale_up", failed  # decided, but EC2 had no room
    assert len(faults.failed) - tried == 4, "each type in each zone's subnet was tried once"
    assert set(cluster.alive()) - workers == {new}
    state = cluster.state()
    assert state.backoff_until is not None and state.backoff_until > time.time() + 100
    assert emf(capsys.readouterr().out).get("LaunchFailures") == 4
    held = cluster.tick()
    assert held["action"] == "none" and "backing_off" in codes(held), held
    assert len(faults.failed) - tried == 4, "no RunInstances during the back-off"

    no_room.clear()
    retried = cluster.tick(offset=121)
    assert retried["action"] == "scale_up", retried
    assert len(set(cluster.alive()) - workers) == 2


def test_a_quota_lets_part_of_a_launch_through_then_backs_off(cluster):
    cluster.set(PROVISION_BACKOFF_S="120")
    pending_for(cluster, 2)
    # The worker that starts keeps booting: however slowly the ticks below run, no pod lands on it
    # between them, so each sees the same two pods waiting.
    cluster.kubelets.never_join(1)
    fleet = cluster.wiring().ports.fleet
    quota = len(cluster.every_worker()) + 1 + 1  # the server, the workers, and room for one more

    def over_quota(params: dict[str, str]) -> str | None:
        running = len(cluster.alive()) + 1  # + the K3s server
        return "InstanceLimitExceeded" if running >= quota else None

    faults = Ec2Faults(fleet.client, "RunInstances", over_quota)
    workers = set(cluster.alive())

    answer = cluster.tick()

    assert answer["action"] == "scale_up" and sum(answer["launches"].values()) == 2, answer
    launched = set(cluster.alive()) - workers
    assert len(launched) == 1, "what the quota allowed started"
    assert {code for _, code in faults.failed} == {"InstanceLimitExceeded"}
    state = cluster.state()
    assert [x.instance_id for x in state.launches] == list(launched), "the launch that started is recorded"
    assert state.backoff_until is None, "something launched: no back-off yet"

    tried = len(faults.failed)
    second = cluster.tick()
    assert second["action"] == "scale_up", second  # one more worker still wanted
    assert len(faults.failed) > tried and set(cluster.alive()) - workers == launched
    assert cluster.state().backoff_until is not None, "nothing could start: the pool backs off"
    tried = len(faults.failed)
    third = cluster.tick()
    assert third["action"] == "none" and "backing_off" in codes(third), third
    assert len(faults.failed) == tried and set(cluster.alive()) - workers == launched


def test_a_malformed_secret_is_a_permanent_error_of_the_autoscaler(cluster, kit):
    """An operator must fix it: answered (logged, counted), not raised for the invoker to retry."""
    cluster.stack.clients["ssm"].put_parameter(
        Name=aws.K8S_TOKEN_PARAM, Value="a token with spaces", Type="SecureString", Overwrite=True
    )
    answer = handler.lambda_handler(kit.tick_event(), kit.context())  # a cold container reads the secret
    assert answer["status"] == "error" and "K8S_TOKEN_PARAM" in answer["error"], answer
    assert cluster.lease_item() is None and cluster.mutations() == []


def test_a_malformed_secret_is_a_permanent_error_of_the_hook(cluster):
    cluster.stack.clients["ssm"].put_parameter(
        Name=aws.K8S_TOKEN_PARAM, Value="a token with spaces", Type="SecureString", Overwrite=True
    )
    answer = cluster.hook(cluster.tick_event("gitops_schedule_tick.json"))
    assert answer["status"] == "error" and "K8S_TOKEN_PARAM" in answer["error"], answer
    assert cluster.gate_item() is None


# -- DynamoDB --------------------------------------------------------------------------------------------------


class OtherWriter:
    """Bumps the stored state's version (as another writer's save would) just before the cycle's
    `at`-th state save reaches DynamoDB, so that save's version check fails."""

    def __init__(self, cluster: Cluster, client: Any, at: int) -> None:
        self.cluster, self.at, self.saves, self.bumped = cluster, at, 0, None
        client.meta.events.register("provide-client-params.dynamodb.PutItem", self._before_put)

    def _before_put(self, params: dict[str, Any], **_: Any) -> None:
        if params["Item"].get("sk", {}).get("S") != "state":
            return
        self.saves += 1
        if self.saves != self.at:
            return
        dynamodb = self.cluster.stack.clients["dynamodb"]
        item = self.cluster.item("state")
        if item is None:
            item = {**params["Item"], "version": {"N": "0"}}
        item["version"] = {"N": str(int(item["version"]["N"]) + 1)}
        dynamodb.put_item(TableName=self.cluster.table, Item=item)
        self.bumped = item


def test_a_conflicting_write_before_acting_stops_the_cycle_before_any_action(cluster):
    pending_for(cluster, 1)
    cluster.tick()  # a state item exists (version 1), and one worker is on its way
    cluster.wait(lambda: len(cluster.ready_workers()) == 3, what="the new worker joins")
    cluster.kubelets.scale("burst", 4)
    cluster.wait(lambda: len(cluster.unschedulable()) == 1, what="one more pod unschedulable")
    writer = OtherWriter(cluster, cluster.wiring().ports.state.client, at=1)
    before = cluster.world()

    with pytest.raises(StaleStateError):
        cluster.tick()

    after = cluster.world()
    assert after["state"] == writer.bumped, "the other writer's state is not overwritten"
    unchanged(before, after, state_may_change=True)
    assert cluster.lease_item() is None
    retried = cluster.tick()
    assert retried["action"] == "scale_up", retried
    assert len(cluster.alive()) == len(before["workers"]) + 1


def test_a_conflicting_write_after_a_launch_loses_the_record_but_not_the_instance(cluster):
    """Safe here because moto lists a new instance at once; with EC2's listing lag the lost record
    matters (see the test of a launch followed by a later zone's failure, same cause)."""
    pending_for(cluster, 1)
    writer = OtherWriter(cluster, cluster.wiring().ports.state.client, at=2)  # 1: the plan's, 2: the launch's
    workers = set(cluster.alive())
    event = cluster.tick_event()

    with pytest.raises(StaleStateError):
        cluster.invoke(event)

    assert writer.bumped is not None
    launched = set(cluster.alive()) - workers
    assert len(launched) == 1, "EC2 started the worker before the record of it failed"
    assert cluster.state().launches == (), "the launch record was lost with the conflicting save"
    # The next cycles count the instance EC2 lists: no second launch, redelivered or not.
    for answer in (cluster.invoke(event), cluster.tick()):
        assert answer["action"] == "none" and "capacity_in_flight" in codes(answer), answer
    assert set(cluster.alive()) - workers == launched
    cluster.wait(lambda: not cluster.unschedulable(), what="the pod lands on the new worker")


def test_a_conflicting_write_before_a_drain_is_recorded_leaves_nothing_cordoned(cluster):
    _, idle = idle_and_busy(cluster)
    writer = OtherWriter(cluster, cluster.wiring().ports.state.client, at=2)  # 1: the plan's, 2: the drain's
    event = cluster.manual_event("scale_down", count=1)

    with pytest.raises(StaleStateError):
        cluster.invoke(event)

    assert writer.bumped is not None
    assert cluster.cordoned_nodes() == set() and cluster.mutations() == []
    assert cluster.state().drains == ()
    assert len(cluster.alive()) == 2
    # The manual event delivered again (its idempotency record was released with the error) drains once.
    answer = cluster.invoke(event)
    assert answer["action"] == "scale_down" and answer["remove"] == [idle], answer
    assert cluster.node(idle) is None and len(cluster.alive()) == 1
    replay = cluster.invoke(event)
    assert replay == answer, "answered from the idempotency record"
    assert len(cluster.alive()) == 1


# -- the function killed between two actuation steps -----------------------------------------------------------


class Killed(BaseException):
    """The Lambda runtime ending the function (its timeout): no except clause runs, and the lease
    is not released (the release in `finally` is what a killed process never reaches)."""


class Killer:
    """Counts the actuation steps (every call of a mutating port method) across invocations, and
    kills the function just before step `at` (0: never)."""

    STEPS: ClassVar[dict[str, tuple[str, ...]]] = {
        "state": ("save",),
        "cluster": ("cordon", "uncordon", "evict", "delete_node"),
        "fleet": ("launch", "terminate"),
    }

    def __init__(self, at: int = 0) -> None:
        self.at = at
        self.steps: list[str] = []
        self.fired = False
        self.dying = False
        """The invocation being killed: its `finally` clauses must not release the lease."""
        self._armed: list[Any] = []

    def arm(self, wiring: Any) -> None:
        """Watch this container's ports (once per container)."""
        if any(w is wiring for w in self._armed):
            return
        self._armed.append(wiring)
        for port_name, methods in self.STEPS.items():
            port = getattr(wiring.ports, port_name)
            for method in methods:
                setattr(port, method, self._wrap(f"{port_name}.{method}", getattr(port, method)))
        release = wiring.lease.release
        wiring.lease.release = lambda owner: None if self.dying else release(owner)

    def _wrap(self, name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def step(*args: Any, **kwargs: Any) -> Any:
            if not self.fired and len(self.steps) + 1 == self.at:
                self.fired = self.dying = True
                raise Killed(f"killed before step {self.at}: {name}")
            self.steps.append(name + _detail(args))
            return call(*args, **kwargs)

        return step


def _detail(args: tuple[Any, ...]) -> str:
    """What a step was called with, for the failure message: the drains' phases of a saved state,
    the node, pod or instance acted on."""
    if not args:
        return ""
    arg = args[0]
    if hasattr(arg, "drains"):
        return "(drains: " + ",".join(str(d.phase) for d in arg.drains) + ")"
    return f"({getattr(arg, 'name', arg)})"


LEASE_S = 30


def run_drain(cluster: Cluster, killer: Killer) -> dict[str, Any]:
    """A requested scale-down that drains a worker with one pod, then ticks until no drain is left
    (at most four), the function killed once if `killer` says so. Returns what to check."""
    cluster.set(LEASE_DURATION_S=str(LEASE_S))
    busy, light = cluster.stack.seeded_workers
    cluster.kubelets.add_workload("web", replicas=1, cpu_m=700, nodes=[busy])
    cluster.kubelets.add_workload("db", replicas=1, cpu_m=300, nodes=[light])
    instances = {n: cluster.instance_of(n) for n in (busy, light)}
    invocations = [cluster.manual_event("scale_down", count=1)] + [cluster.tick_event() for _ in range(4)]
    return drive(cluster, killer, invocations, until=lambda: not cluster.state().drains) | {
        "instances": instances,
        "light": light,
    }


def drive(cluster: Cluster, killer: Killer, invocations: list[dict[str, Any]], until: Callable[[], bool]):
    """Each event in turn, in the container of the time; after a kill, a new container once the
    dead one's lease has expired. Stops after an invocation that lived when `until()` holds."""
    answers, killed_at = [], None
    for i, event in enumerate(invocations):
        killer.arm(cluster.wiring())
        try:
            answers.append(cluster.invoke(event))
        except Killed:
            killed_at, killer.dying = i, False
            cluster.cold()  # the next invocation runs in a new container
            cluster.offset += LEASE_S + 1  # ... once the dead one's lease has expired
            continue
        finally:
            cluster.kubelets.step()  # evicted pods go, their replacements are placed
            cluster.wait(lambda: not any(p["metadata"].get("deletionTimestamp") for p in cluster.pods()))
        if until():
            break
    return {"answers": answers, "killed_at": killed_at, "steps": killer.steps}


def drain_outcome(cluster: Cluster, run: dict[str, Any]) -> list[str]:
    """What must hold after any run of the drain: a list of what did not."""
    problems = []
    state, light = cluster.state(), run["light"]
    if state.drains:
        problems.append(f"drains left in the state: {state.drains}")
    if cluster.cordoned_nodes():
        problems.append(f"left cordoned: {cluster.cordoned_nodes()}")
    alive = set(cluster.alive())
    light_id = run["instances"][light]
    if light_id in alive:  # not drained (the kill came before the drain was recorded): untouched
        if alive != set(run["instances"].values()):
            problems.append(f"workers changed without a drain: {alive}")
        if cluster.node(light) is None:
            problems.append("the node was deleted but its instance runs")
    else:
        if cluster.node(light) is not None:
            problems.append("the instance was terminated but its Node object is left")
        if alive != {run["instances"][n] for n in run["instances"] if n != light}:
            problems.append(f"other workers were touched: {alive}")
    if cluster.unschedulable():
        problems.append(f"pods left unschedulable: {cluster.unschedulable()}")
    if cluster.lease_item() is not None:
        problems.append("the lease was left held")
    return problems


def test_killed_before_any_drain_step_the_next_cycles_finish_the_drain(cluster):
    control = run_drain(cluster, Killer())
    steps = control["steps"]
    assert drain_outcome(cluster, control) == []
    assert cluster.node(control["light"]) is None, "without a kill the drain completes"
    names = [s.split("(")[0] for s in steps]
    assert names.count("cluster.cordon") == 1 and names.count("fleet.terminate") == 1, json.dumps(steps, indent=1)

    failures = {}
    for at in range(1, len(steps) + 1):
        cluster.reseed()
        run = run_drain(cluster, Killer(at))
        assert run["killed_at"] is not None, f"step {at} was never reached"
        problems = drain_outcome(cluster, run)
        if problems:
            failures[f"killed before step {at} ({steps[at - 1]})"] = problems
    assert not failures, json.dumps(failures, indent=2)


def test_killed_before_any_launch_step_the_next_cycles_launch_once(cluster):
    cluster.set(LEASE_DURATION_S=str(LEASE_S))

    def run(killer: Killer) -> dict[str, Any]:
        pending_for(cluster, 1)
        workers = set(cluster.alive())
        result = drive(cluster, killer, [cluster.tick_event() for _ in range(3)], until=lambda: False)
        return result | {"new": set(cluster.alive()) - workers}

    control = run(Killer())
    steps = control["steps"]
    names = [s.split("(")[0] for s in steps]
    assert len(control["new"]) == 1 and names.count("fleet.launch") == 1, steps
    failures = {}
    for at in range(1, names.index("fleet.launch") + 3):
        cluster.reseed()
        outcome = run(Killer(at))
        if len(outcome["new"]) != 1:
            failures[f"killed before step {at} ({steps[at - 1]})"] = f"{len(outcome['new'])} workers launched"
    assert not failures, failures


# -- a launch that never joins; a PDB that never allows eviction --------------------------------------------------


def test_a_worker_that_never_joins_is_terminated_once_and_the_pool_backs_off(cluster):
    cluster.set(MAX_NODE_PROVISION_TIME_S="60", PROVISION_BACKOFF_S="120")
    cluster.kubelets.never_join(1)
    time.sleep(1.05)  # EC2 launch times have a one-second resolution: be after the seeded workers
    pending_for(cluster, 1)
    fleet = cluster.wiring().ports.fleet
    terminations = Ec2Faults(fleet.client, "TerminateInstances", lambda params: None)
    workers = set(cluster.alive())

    assert cluster.tick()["action"] == "scale_up"
    (broken,) = set(cluster.alive()) - workers
    for offset in (5, 20, 40):  # booting, then not joining: one launch, not one per tick
        waiting = cluster.tick(offset)
        assert waiting["action"] == "none" and "capacity_in_flight" in codes(waiting), waiting
    assert set(cluster.alive()) - workers == {broken}

    expired = cluster.tick(offset=61)
    assert "unjoined_instance" in codes(expired) and "backing_off" in codes(expired), expired
    assert cluster.instance_state(broken) in ("shutting-down", "terminated")
    for offset in (70, 100, 150):
        held = cluster.tick(offset)
        assert held["action"] == "none" and "backing_off" in codes(held), held
    assert [p["InstanceId.1"] for p in terminations.sent] == [broken], "terminated once"
    assert set(cluster.alive()) == workers and cluster.unschedulable()

    retried = cluster.tick(offset=61 + 121)
    assert retried["action"] == "scale_up", retried
    (healthy,) = set(cluster.alive()) - workers
    cluster.wait(lambda: cluster.kubelets.node_of(healthy) in cluster.ready_workers(), what="the new worker joins")
    cluster.settle()


def test_a_late_launch_overtaken_by_its_sibling_is_terminated_and_replaced_without_backing_off(cluster):
    cluster.kubelets.never_join(1)
    time.sleep(1.05)  # EC2 launch times have a one-second resolution: be after the seeded workers
    pending_for(cluster, 2)
    workers = set(cluster.alive())
    assert cluster.tick()["action"] == "scale_up"
    launched = set(cluster.alive()) - workers
    assert len(launched) == 2

    def joined():
        return {i for i in launched if cluster.kubelets.node_of(i) in cluster.ready_workers()}

    cluster.wait(lambda: len(joined()) == 1, what="one of the two launches joins")
    (stuck,) = launched - joined()
    early = cluster.tick(offset=120)  # not late yet: still room on its way
    assert early["action"] == "none" and "capacity_in_flight" in codes(early), early

    late = cluster.tick(offset=181)
    assert any(r["code"] == "unjoined_instance" and stuck in r["detail"] for r in late["reasons"]), late
    assert "backing_off" not in codes(late) and late["action"] == "scale_up", late
    assert sum(late["launches"].values()) == 1, late
    assert cluster.instance_state(stuck) in ("shutting-down", "terminated")
    cluster.wait(lambda: not cluster.unschedulable(), what="the replacement takes the last pod")
    cluster.settle()


def test_a_pdb_that_never_allows_eviction_undoes_the_drain_at_the_timeout(cluster, capsys):
    cluster.set(DRAIN_TIMEOUT_S="30")
    busy, light = cluster.stack.seeded_workers
    cluster.kubelets.add_workload("web", replicas=1, cpu_m=700, nodes=[busy])
    cluster.kubelets.add_workload("db", replicas=1, cpu_m=300, nodes=[light])
    # Allowed when the node is chosen; spent by another disruption before every eviction after.
    cluster.kube.add(objects.pdb("db", match_labels={"app": "db"}, min_available=1, disruptions_allowed=1))
    (db_pod,) = cluster.pods("db")
    cluster.kube.fail_next(f"/api/v1/namespaces/default/pods/{db_pod['metadata']['name']}/eviction", 3, 429)

    answer = cluster.manual("scale_down", count=1)
    assert answer["action"] == "scale_down" and answer["remove"] == [light], answer
    assert cluster.cordoned(light)
    for offset in (10, 20):
        blocked = cluster.tick(offset)
        assert blocked["action"] == "none" and cluster.cordoned(light), blocked
    capsys.readouterr()

    undone = cluster.tick(offset=31)

    assert emf(capsys.readouterr().out).get("DrainsTimedOut") == 1, "the failure is counted"
    assert not cluster.cordoned(light), "the drain is undone: the node serves again"
    assert cluster.pods_on(light) == [db_pod["metadata"]["name"]], "nothing forced"
    assert cluster.state().drains == () and cluster.state().last_failure is not None
    assert len(cluster.alive()) == 2
    evictions = [status for _, path, status in cluster.mutations() if path.endswith("/eviction")]
    assert evictions == [429, 429, 429], "one refused eviction a cycle, none past the deadline"
    assert undone["status"] == "acted"
    later = cluster.tick(offset=40)
    assert later["action"] == "none" and not cluster.cordoned(light), later
    assert len([m for m in cluster.mutations() if m[1].endswith("/eviction")]) == 3
