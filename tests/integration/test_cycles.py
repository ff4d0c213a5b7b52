"""Scaling cycles end to end (issue 4's "Done when"): autoscaler.handler.lambda_handler on schedule
ticks against moto's server (EC2, DynamoDB, SSM), a Kubernetes API with simulated kubelets, and a
real Prometheus scraping them. Every test runs twice: on the fake API server (`fake`), and on the
real control plane of tools/controlplane (`controlplane`: kube-scheduler places the pods, the
ReplicaSet and disruption controllers keep the workloads and budgets, RBAC judges the functions'
ServiceAccount token). The situations are reached by the same real means on both: a budget spent
by another eviction, a pod two PDBs select (the Eviction API answers 500), never an injected fault.

Each test starts from a freshly seeded cluster: the K3s server (tainted, not a worker) and two
Ready workers of 2000m / 7680Mi in two zones. Timers whose minimum is long (drain timeout 30 s,
provision time 60 s, lease 30 s) are crossed with a clock offset on the handler's wiring rather
than by waiting; Prometheus then has no sample inside its 5 s rate window at that future time, so
metrics read "unknown" there, which the paths under test do not need.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from autoscaler.adapters.kube import KubeError
from node_fleet.stack.kube_api import objects
from node_fleet.stack.prometheus import OpenMetrics
from stack_driver import codes

pytestmark = pytest.mark.parametrize(
    "embedded",
    ["fake", pytest.param("controlplane", marks=pytest.mark.controlplane)],
    indirect=True,
    scope="module",
)


def light_web_load(cluster, unneeded_s: int = 0) -> None:
    """Two 300m web pods over the two seeded workers, a node unneeded after `unneeded_s`, and
    Prometheus caught up: one worker is removable."""
    cluster.set(SCALE_DOWN_UNNEEDED_TIME_S=str(unneeded_s))
    cluster.kubelets.add_workload("web", replicas=2, cpu_m=300, nodes=cluster.stack.seeded_workers)
    cluster.stack.wait_for_metrics()


def two_budgets_on_web(cluster) -> None:
    """Two PDBs select the web pods, each allowing one disruption: the planner may move a web pod,
    but the Eviction API cannot judge such a pod and answers 500 (the cycle raises, and the
    invoker would retry it)."""
    for name in ("web", "web-too"):
        cluster.kube.add(objects.pdb(name, match_labels={"app": "web"}, max_unavailable=1))
        cluster.wait_budget(name, 1)


def settle(cluster, timeout_s: float = 10.0) -> None:
    """Wait until no pod waits (every pod of the workloads is bound)."""
    cluster.wait(lambda: all(p["spec"].get("nodeName") for p in cluster.pods()), timeout_s, "every pod bound")


def test_the_functions_reach_the_api_with_what_ssm_holds(cluster):
    """The token (and, for the control plane, the CA) come from SSM, never the environment. On the
    control plane the token is the `node-fleet` ServiceAccount's, so RBAC judges every call of these
    cycles, and every Node's kubelet keeps its Lease renewed."""
    env = cluster.stack.environ
    token = cluster.stack.secret(env["K8S_TOKEN_PARAM"])
    assert token not in env.values() and cluster.wiring().ports.cluster.list_nodes()
    if not cluster.real:
        assert token == cluster.kube.token and env["K8S_CA_PARAM"] == ""
        return
    assert cluster.stack.secret(env["K8S_CA_PARAM"]) == Path(cluster.kube.ca_file).read_text()
    review = requests.post(
        cluster.kube.url + "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        headers={"Authorization": f"Bearer {token}"},
        verify=cluster.kube.ca_file,
        timeout=10,
    ).json()
    assert review["status"]["userInfo"]["username"] == "system:serviceaccount:node-fleet:node-fleet"
    renewed = {
        lease["metadata"]["name"]: datetime.fromisoformat(lease["spec"]["renewTime"])
        for lease in cluster.kube.objects("leases", "coordination.k8s.io")
        if lease["metadata"]["namespace"] == "kube-node-lease"
    }
    assert set(renewed) == cluster.node_names()
    assert all(datetime.now(UTC) - at < timedelta(seconds=15) for at in renewed.values()), renewed


def test_scale_up_for_unschedulable_pods_launches_once_and_the_pods_land(cluster):
    first, second = cluster.stack.seeded_workers
    # 8 x 600m: three fit on each 2000m worker, two are left unschedulable (1200m: one more worker).
    cluster.kubelets.add_workload("sale", replicas=8, cpu_m=600)
    cluster.wait(lambda: len(cluster.unschedulable()) == 2, what="two pods unschedulable")
    before = set(cluster.alive())

    answer = cluster.tick()
    assert answer["action"] == "scale_up" and sum(answer["launches"].values()) == 1, answer
    assert "unschedulable_pods" in codes(answer)
    launched = set(cluster.alive()) - before
    assert len(launched) == 1
    (new,) = launched
    tags = {t["Key"]: t["Value"] for t in cluster.alive()[new]["Tags"]}
    assert tags["node-fleet.io/cluster"] == cluster.stack.cluster_name and tags["node-fleet.io/role"] == "worker"

    # While the pods wait for the new node (booting), further ticks launch nothing more.
    assert cluster.node(cluster.kubelets.node_of(new) or "-") is None
    again = cluster.tick()
    assert again["action"] == "none" and "capacity_in_flight" in codes(again), again
    assert set(cluster.alive()) == before | {new}

    node = cluster.wait(
        lambda: cluster.kubelets.node_of(new) in cluster.ready_workers() and cluster.kubelets.node_of(new)
    )
    settle(cluster)
    assert len(cluster.pods_on(node)) == 2
    after = cluster.tick()
    assert after["action"] == "none" and not after["launches"], after
    assert set(cluster.alive()) == before | {new}
    assert cluster.ready_workers() == {first, second, node}


def test_pods_pending_again_soon_after_a_scale_up_get_one_worker_more_for_the_ramp(cluster):
    cluster.set(RAMP_WINDOW_S="300")
    cluster.kubelets.add_workload("sale", replicas=8, cpu_m=600)
    cluster.wait(lambda: len(cluster.unschedulable()) == 2, what="two pods unschedulable")
    seeded = set(cluster.alive())
    first = cluster.tick()
    assert sum(first["launches"].values()) == 1 and "ramp" not in codes(first), first
    (new,) = set(cluster.alive()) - seeded
    cluster.wait(lambda: cluster.kubelets.node_of(new) in cluster.ready_workers(), what="the new worker joins")
    settle(cluster)

    # Three more: one fits beside the two on the new worker, two wait: the rise goes on.
    cluster.kubelets.scale("sale", 11)
    cluster.wait(lambda: len(cluster.unschedulable()) == 2, what="two more pods unschedulable")
    before = set(cluster.alive())
    again = cluster.tick()
    assert again["action"] == "scale_up" and "ramp" in codes(again), again
    assert sum(again["launches"].values()) == 2, "one for the pods, one for the ramp"
    launched = set(cluster.alive()) - before
    assert len(launched) == 2
    cluster.wait(
        lambda: all(cluster.kubelets.node_of(i) in cluster.ready_workers() for i in launched), what="both join"
    )
    settle(cluster)
    assert not cluster.unschedulable()


def test_scale_down_after_the_unneeded_time_drains_terminates_and_deletes_the_node(cluster):
    light_web_load(cluster, unneeded_s=2)
    cluster.set(WARM_POOL_SIZE="0")  # the warm pool's stop has its own test
    workers = cluster.stack.seeded_workers
    instances = {cluster.node(n)["spec"]["providerID"].rsplit("/", 1)[1]: n for n in workers}

    waiting = cluster.tick()
    assert waiting["action"] == "none" and "no_candidate" in codes(waiting), waiting
    assert set(cluster.state().unneeded_since) == set(workers)

    time.sleep(2.2)  # the unneeded time, for real
    cluster.stack.wait_for_metrics()
    answer = cluster.tick()
    assert answer["action"] == "scale_down" and len(answer["remove"]) == 1, answer
    (gone,) = answer["remove"]
    (kept,) = set(workers) - {gone}
    assert cluster.cordoned(gone)
    assert [d.node for d in cluster.state().drains] == [gone]
    # The eviction went through; the ReplicaSet replaces the pod, and it lands on the kept node.
    cluster.wait(lambda: not cluster.pods_on(gone), what="the drained node is empty")
    settle(cluster)
    assert len(cluster.pods_on(kept)) == 2

    cluster.tick()
    gone_id = next(i for i, n in instances.items() if n == gone)
    assert cluster.instance_state(gone_id) in ("shutting-down", "terminated")
    assert cluster.node(gone) is None
    assert set(cluster.alive()) == {i for i, n in instances.items() if n == kept}
    state = cluster.state()
    assert state.drains == () and state.last_scale_down is not None
    evictions = [m for m in cluster.mutations() if m[1].endswith("/eviction")]
    assert [status for _, _, status in evictions] == [201]


def stop_one_into_the_pool(cluster) -> tuple[str, str]:
    """Two workers under light load, one removed and stopped into a warm pool of 1: its node and instance."""
    light_web_load(cluster, unneeded_s=2)
    cluster.set(WARM_POOL_SIZE="1")
    cluster.tick()
    time.sleep(2.2)
    cluster.stack.wait_for_metrics()
    answer = cluster.tick()
    assert answer["action"] == "scale_down" and "warm_pool" in codes(answer), answer
    (gone,) = answer["remove"]
    gone_id = cluster.instance_of(gone)
    cluster.wait(lambda: not cluster.pods_on(gone), what="the drained node is empty")
    settle(cluster)

    cluster.tick()
    assert cluster.instance_state(gone_id) in ("stopping", "stopped")
    assert cluster.node(gone) is not None and cluster.cordoned(gone), "the Node stays, cordoned, while stopped"
    cluster.wait(lambda: gone not in cluster.ready_workers(), what="the stopped worker's Node NotReady")
    assert cluster.state().drains == ()
    return gone, gone_id


def test_the_warm_pool_stops_a_removed_worker_then_starts_it_for_pending_pods(cluster):
    gone, gone_id = stop_one_into_the_pool(cluster)

    # 3 x 600m next to the web pods' 600m on the worker left: one is left waiting.
    cluster.kubelets.add_workload("sale", replicas=3, cpu_m=600)
    cluster.wait(lambda: len(cluster.unschedulable()) == 1, what="one pod unschedulable")
    before = set(cluster.alive())
    answer = cluster.tick()
    assert answer["action"] == "scale_up" and answer["starts"] == [gone_id], answer
    assert not answer["launches"] and "warm_start" in codes(answer)
    assert cluster.instance_state(gone_id) in ("pending", "running")
    assert set(cluster.alive()) == before | {gone_id}, "started, not launched anew"
    assert not cluster.cordoned(gone), "given back to the scheduler as it starts"
    cluster.wait(lambda: gone in cluster.ready_workers(), what="the started worker Ready again")
    settle(cluster)
    assert len(cluster.pods_on(gone)) == 1


def test_soon_after_a_scale_up_a_stopped_worker_is_started_for_the_spare_room(cluster):
    gone, gone_id = stop_one_into_the_pool(cluster)
    (kept,) = set(cluster.stack.seeded_workers) - {gone}
    cluster.set(RAMP_WINDOW_S="1800")
    # The web pods' 600m and 2 x 600m on the worker left: 200m free, no room for a 600m pod (the median).
    cluster.kubelets.add_workload("sale", replicas=2, cpu_m=600)
    cluster.wait(lambda: len(cluster.pods_on(kept)) == 4, what="the sale pods running beside the web pods")
    settle(cluster)

    quiet = cluster.tick()
    assert quiet["starts"] == [] and "spare_room" not in codes(quiet), "no scale-up yet: no window"
    store = cluster.wiring().ports.state
    store.save(replace(store.load(), last_scale_up=time.time() - 60))

    answer = cluster.tick()
    assert answer["action"] == "scale_up" and answer["starts"] == [gone_id], answer
    assert not answer["launches"] and "spare_room" in codes(answer)
    assert cluster.instance_state(gone_id) in ("pending", "running")
    assert cluster.state().last_scale_up < time.time() - 30, "the spare room's start opens no new window"
    cluster.wait(lambda: gone in cluster.ready_workers(), what="the started worker Ready again")
    settle(cluster)
    cluster.stack.wait_for_metrics()

    cluster.tick()
    time.sleep(2.2)  # past the unneeded time: empty, yet it holds the room
    cluster.stack.wait_for_metrics()
    after = cluster.tick()
    assert after["action"] == "none" and after["starts"] == [], "kept, though the pool is empty now"
    assert cluster.instance_state(gone_id) == "running"
    assert any(r["code"] == "spare_room" and r["detail"].startswith(f"{gone} kept") for r in after["reasons"]), after


def test_a_worker_stopped_past_the_limit_is_terminated_and_its_node_deleted(cluster):
    gone, gone_id = stop_one_into_the_pool(cluster)
    cluster.set(WARM_POOL_MAX_STOPPED_S="60")

    kept = cluster.tick(offset=30)
    assert cluster.instance_state(gone_id) == "stopped" and "stopped over" not in str(kept["reasons"]), kept

    answer = cluster.tick(offset=90)  # EC2's stop time (moto's StateTransitionReason) 60 s behind
    assert any("stopped over 60s ago" in r["detail"] for r in answer["reasons"]), answer
    assert cluster.instance_state(gone_id) in ("shutting-down", "terminated")
    cluster.tick(offset=91)
    assert cluster.node(gone) is None


def test_a_pdb_with_no_disruption_left_keeps_its_node_and_another_goes(cluster):
    """Once a node whose PDB allowed no disruption was cordoned and its other pods evicted, over and
    over (7 drains, 14 evictions in 2 h). The budget now rules the node out before any cordon."""
    cluster.set(SCALE_DOWN_UNNEEDED_TIME_S="0", DRAIN_TIMEOUT_S="30")
    busy, light = cluster.stack.seeded_workers
    cluster.kubelets.add_workload("web", replicas=1, cpu_m=700, nodes=[busy])
    cluster.kubelets.add_workload("db", replicas=1, cpu_m=300, nodes=[light])
    cluster.kube.add(objects.pdb("db", match_labels={"app": "db"}, min_available=1))
    cluster.wait_budget("db", 0)
    cluster.stack.wait_for_metrics()

    answer = cluster.tick()
    assert answer["action"] == "scale_down" and answer["remove"] == [busy], answer
    assert not cluster.cordoned(light)
    evicted = [path for _, path, _ in cluster.mutations() if path.endswith("/eviction")]
    assert evicted and all("/pods/db-" not in path for path in evicted), evicted


def test_a_drain_whose_evictions_stay_refused_is_undone_at_the_timeout(cluster):
    cluster.set(SCALE_DOWN_UNNEEDED_TIME_S="0", DRAIN_TIMEOUT_S="30")
    busy, light = cluster.stack.seeded_workers
    cluster.kubelets.add_workload("web", replicas=1, cpu_m=700, nodes=[busy])
    cluster.kubelets.add_workload("db", replicas=2, cpu_m=300, nodes=[light, busy])
    # The budget allows one disruption when the node is chosen (busy, half requested, is no candidate).
    cluster.kube.add(objects.pdb("db", match_labels={"app": "db"}, min_available=1))
    cluster.wait_budget("db", 1)
    cluster.stack.wait_for_metrics()
    (db_pod,) = cluster.pods_on(light)

    # Before each of the drain's evictions, another disruption spends the budget: an operator
    # evicts the db pod on busy (or its replacement), so the API server answers the drain 429.
    # The kubelets stand still meanwhile: a replacement made Ready between the two evictions
    # would give the budget back.
    ports = cluster.wiring().ports
    evict = ports.cluster.evict

    def after_another_disruption(pod):
        cluster.kubelets.pause()
        try:
            for other in cluster.pods("db"):
                if other["spec"].get("nodeName") != light and not other["metadata"].get("deletionTimestamp"):
                    cluster.evict(other)
            return evict(pod)
        finally:
            cluster.kubelets.start()

    cluster.monkeypatch.setattr(ports.cluster, "evict", after_another_disruption)

    def drain_evictions() -> list[int]:
        return [status for _, path, status in cluster.mutations() if path.endswith(f"/pods/{db_pod}/eviction")]

    answer = cluster.tick()
    assert answer["action"] == "scale_down" and answer["remove"] == [light], answer
    assert cluster.cordoned(light)
    again = cluster.tick(offset=10)
    assert again["action"] == "none", again
    assert drain_evictions() == [429, 429]
    assert cluster.pods_on(light) == [db_pod]
    assert cluster.cordoned(light)

    # Past the drain timeout: the drain is undone, nothing forced, the node serves again.
    cluster.tick(offset=31)
    assert not cluster.cordoned(light)
    assert cluster.pods_on(light) == [db_pod]
    assert len(cluster.alive()) == 2
    state = cluster.state()
    assert state.drains == () and state.last_failure is not None
    assert len(drain_evictions()) == 2, "no eviction is tried past the deadline"


def test_a_cycle_that_crashes_mid_drain_is_resumed_by_the_next(cluster):
    light_web_load(cluster)
    two_budgets_on_web(cluster)

    with pytest.raises(KubeError) as failed:
        cluster.tick()
    assert failed.value.status == 500 and failed.value.retryable
    (drain,) = cluster.state().drains
    assert drain.phase == "cordoned" and cluster.cordoned(drain.node)
    assert cluster.lease_item() is None, "the crashed cycle released its lease"
    assert len(cluster.pods_on(drain.node)) == 1

    cluster.kube.remove("poddisruptionbudgets", "web-too", "default", "policy")  # an operator fixes it
    resumed = cluster.tick()
    assert resumed["action"] == "none" and resumed["remove"] == [], "the drain is resumed, not started again"
    assert [d.phase for d in cluster.state().drains] == ["evicting"]
    cluster.wait(lambda: not cluster.pods_on(drain.node), what="the drained node is empty")
    settle(cluster)

    cluster.tick()
    assert cluster.instance_state(drain.instance_id) in ("shutting-down", "terminated")
    assert cluster.node(drain.node) is None
    assert len(cluster.alive()) == 1 and cluster.state().drains == ()


def test_a_drain_whose_node_was_deleted_meanwhile_does_not_wedge_the_autoscaler(cluster):
    light_web_load(cluster)
    two_budgets_on_web(cluster)
    with pytest.raises(KubeError):
        cluster.tick()  # the drain is saved as CORDONED, then the cycle crashes
    (drain,) = cluster.state().drains
    cluster.kube.remove("nodes", drain.node)  # meanwhile an operator deletes the Node (kubectl delete node)

    cluster.tick()  # the Node is gone: nothing to drain, the instance still goes
    assert cluster.state().drains == ()
    assert cluster.instance_state(drain.instance_id) in ("shutting-down", "terminated")


def test_a_cycle_killed_between_terminate_and_node_deletion_is_resumed_after_its_lease(cluster):
    cluster.set(LEASE_DURATION_S="30")
    light_web_load(cluster)
    answer = cluster.tick()
    (gone,) = answer["remove"]
    cluster.wait(lambda: not cluster.pods_on(gone), what="the drained node is empty")
    settle(cluster)

    # The next cycle terminates the instance, then dies before it records the phase after it:
    # the state save raises (through botocore's event hooks) and the lease is never released,
    # as when the Lambda is killed at its timeout.
    wiring = cluster.wiring()
    killed: list[str] = []

    def kill(params, **kwargs):
        if not killed and '"phase":"deleting"' in params["Item"].get("body", {}).get("S", ""):
            killed.append(gone)
            raise RuntimeError("Task timed out after 60.00 seconds")

    wiring.ports.state.client.meta.events.register("provide-client-params.dynamodb.PutItem", kill)
    release = wiring.lease.release
    wiring.lease.release = lambda owner: None
    with pytest.raises(RuntimeError, match="timed out"):
        cluster.tick()
    wiring.lease.release = release
    assert killed == [gone]
    (drain,) = cluster.state().drains
    assert drain.phase == "terminating" and cluster.instance_state(drain.instance_id) in ("shutting-down", "terminated")
    assert cluster.node(gone) is not None, "the Node object is still there"

    # The lease outlives the dead cycle: the next tick does nothing, and says so.
    assert cluster.tick()["status"] == "lease_taken"
    # Once the lease has expired, a tick picks the drain up where it stopped.
    resumed = cluster.tick(offset=31)
    assert resumed["status"] == "acted"
    assert cluster.node(gone) is None
    assert cluster.state().drains == () and len(cluster.alive()) == 1


def test_a_launch_that_never_joins_is_terminated_after_the_provision_time_with_back_off(cluster):
    cluster.set(MAX_NODE_PROVISION_TIME_S="60", PROVISION_BACKOFF_S="120")
    cluster.kubelets.add_workload("burst", replicas=8, cpu_m=600)
    cluster.wait(lambda: len(cluster.unschedulable()) == 2, what="two pods unschedulable")
    cluster.kubelets.never_join(1)
    before = set(cluster.alive())
    # EC2 launch times have a one-second resolution, and a worker launched in the same second as
    # the broken one would count as a healthy launch since it (no back-off then): be a second later.
    time.sleep(1.1)

    launched = cluster.tick()
    assert launched["action"] == "scale_up", launched
    (broken,) = set(cluster.alive()) - before
    time.sleep(cluster.stack.boot_delay_s + 0.5)  # long enough for a healthy worker to join
    assert cluster.kubelets.node_of(broken) not in cluster.node_names()
    waiting = cluster.tick(offset=10)
    assert waiting["action"] == "none" and "capacity_in_flight" in codes(waiting), waiting

    # Past max_node_provision_time: terminated, and the pool backs off instead of relaunching.
    expired = cluster.tick(offset=62)
    assert "unjoined_instance" in codes(expired) and "backing_off" in codes(expired), expired
    assert not expired["launches"]
    assert cluster.instance_state(broken) in ("shutting-down", "terminated")
    assert set(cluster.alive()) == before
    state = cluster.state()
    assert state.backoff_until is not None and state.backoff_until >= time.time() + 62 + 100
    assert state.last_failure is not None and state.launches == ()
    held = cluster.tick(offset=90)
    assert held["action"] == "none" and "backing_off" in codes(held), held

    # After the back-off, a new launch; this one joins and the pods land.
    retried = cluster.tick(offset=62 + 121)
    assert retried["action"] == "scale_up", retried
    (healthy,) = set(cluster.alive()) - before
    cluster.wait(lambda: cluster.kubelets.node_of(healthy) in cluster.ready_workers(), what="the new worker joins")
    settle(cluster)


def test_a_kustomization_in_progress_holds_scale_down_and_the_hook_writes_the_gate(cluster):
    cluster.set(SCALE_DOWN_UNNEEDED_TIME_S="0")
    busy, idle = cluster.stack.seeded_workers
    cluster.kubelets.add_workload("web", replicas=1, cpu_m=300, nodes=[busy])
    cluster.kube.add(objects.kustomization("apps", ready=False))
    cluster.stack.wait_for_metrics()

    # The autoscaler's own fresh check holds (no gate item has been written yet).
    assert cluster.gate_item() is None
    held = cluster.tick()
    assert held["action"] == "none" and "gitops_hold" in codes(held), held
    assert any("Kustomization flux-system/apps" in r["detail"] for r in held["reasons"]), held
    assert not cluster.cordoned(idle) and len(cluster.alive()) == 2

    # The hook's poll writes the gate item the autoscaler reads.
    polled = cluster.poll_gate()
    assert polled["status"] == "ok" and polled["blocked"] is True, polled
    item = cluster.gate_item()
    assert item["blocked"] is True
    assert [(r["kind"], r["name"]) for r in item["reasons"]] == [("Kustomization", "apps")]

    # Flux finishes: the hook opens the gate, and the idle worker goes.
    cluster.kube.add(objects.kustomization("apps", ready=True))
    assert cluster.poll_gate()["blocked"] is False
    assert cluster.gate_item()["blocked"] is False
    cluster.stack.wait_for_metrics()
    answer = cluster.tick()
    assert answer["action"] == "scale_down" and answer["remove"] == [idle], answer
    assert cluster.node(idle) is None and len(cluster.alive()) == 1


def yesterdays_ramp(now: float, rise_m: int) -> str:
    """kube-state-metrics series of the same time yesterday: a steady 600m web, and a job asking
    `rise_m` more from two minutes after this time of day."""
    om = OpenMetrics()
    yesterday = now - 86_400
    for t in range(int(yesterday - 1200), int(yesterday + 1200), 30):
        for pod, cpu_m, since in (("web-yesterday", 600, -1200), ("job-yesterday", rise_m, 120)):
            if t < yesterday + since:
                continue
            om.add_pod({"namespace": "default", "pod": pod}, t, "Running", "Job", [(cpu_m / 1000, cpu_m * 2**20)])
    return om.text()


def test_the_forecast_launches_ahead_of_yesterdays_ramp_from_prometheus_history(cluster):
    # Second to last in the module: it restarts the module's Prometheus with yesterday's history.
    cluster.set(FORECAST_MAX_PREWARM="2", FORECAST_LEAD_S="300")
    cluster.kubelets.add_workload("web", replicas=2, cpu_m=300, nodes=cluster.stack.seeded_workers)
    cluster.stack.wait_for_metrics()
    # No history of a day yet: no forecast, nothing ahead.
    quiet = cluster.tick()
    assert quiet["action"] == "none" and "forecast_ramp" not in codes(quiet), quiet

    # Yesterday, 6000m more came two minutes after this time. The forecast keeps at most two
    # workers' room (4000m) ahead of it; the free room is 3400m: one worker more.
    cluster.stack.prometheus.add_history(yesterdays_ramp(time.time(), 6000))
    cluster.stack.wait_for_metrics()
    before = set(cluster.alive())
    answer = cluster.tick()
    assert answer["action"] == "scale_up" and "forecast_ramp" in codes(answer), answer
    assert sum(answer["launches"].values()) == 1 and not cluster.unschedulable()
    assert len(set(cluster.alive()) - before) == 1


def test_prometheus_down_means_no_scale_down_while_scale_up_from_pending_pods_still_works(cluster):
    # Last in the module: it stops the module's Prometheus (started again at the end).
    cluster.set(SCALE_DOWN_UNNEEDED_TIME_S="0")
    busy, idle = cluster.stack.seeded_workers
    cluster.kubelets.add_workload("web", replicas=1, cpu_m=300, nodes=[busy])
    cluster.stack.wait_for_metrics()
    prometheus = cluster.stack.prometheus
    prometheus.stop()
    try:
        held = cluster.tick()
        assert held["action"] == "none" and "metrics_unknown" in codes(held), held
        assert not cluster.cordoned(idle) and len(cluster.alive()) == 2

        cluster.kubelets.add_workload("burst", replicas=4, cpu_m=900)
        cluster.wait(lambda: len(cluster.unschedulable()) == 1, what="one pod unschedulable")
        before = set(cluster.alive())
        answer = cluster.tick()
        assert answer["action"] == "scale_up" and sum(answer["launches"].values()) == 1, answer
        assert len(set(cluster.alive()) - before) == 1
    finally:
        prometheus.start()
