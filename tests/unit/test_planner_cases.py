"""The cases reproduced against the planner before it saw what kube-scheduler sees, and before it
counted only workers it could prove were its own; each row failed then and passes now."""

from __future__ import annotations

from dataclasses import replace

import pytest

from autoscaler.config import Settings
from autoscaler.model import Drain, Instance, InstanceState, Intent, IntentKind, Node, Pod, ReasonCode, ScalingState
from autoscaler.planner import plan
from autoscaler.scheduling import HostPort, Placement, Requirement, Taint, Toleration
from builders import CPU, MEM, NOW, ZONES, busy, pending, pod, snapshot, worker

A, B = ZONES
R = ReasonCode
RIPE = NOW - 700  # unneeded for longer than the default 600 s


def w(n: int, **kw):
    return [worker(i, **kw) for i in range(n)]


def ds(node: str | None, name: str = "agent", cpu: int = 300, **kw) -> Pod:
    return Pod(f"{name}-{node or 'template'}", "kube-system", cpu, 128, node=node, owner_kind="DaemonSet", **kw)


def ripe(*names: str, **kw) -> ScalingState:
    return ScalingState(unneeded_since={n: RIPE for n in names}, **kw)


def pinned_to(node: str) -> Placement:
    """A K3s local-path volume: its PV's node affinity names one node."""
    return Placement(volume_affinity=(((Requirement("kubernetes.io/hostname", "In", (node,)),),),))


def in_zone(zone: str) -> Placement:
    return Placement(volume_affinity=(((Requirement("topology.kubernetes.io/zone", "In", (zone,)),),),))


def zoned(i: int, zone: str, **kw):
    inst, node = worker(i, az=zone, **kw)
    return inst, replace(node, labels={"topology.kubernetes.io/zone": zone, "kubernetes.io/hostname": node.name})


def test_daemonset_pods_take_room_on_the_destinations():
    # Three 2000m workers with 300m of DaemonSets each: n2's 600m pod fits on no other node's 500m.
    pods = [ds("n0"), ds("n1"), ds("n2"), *busy("n0", 1, cpu=1200), *busy("n1", 1, cpu=1200), *busy("n2", 1, cpu=600)]
    d = plan(snapshot(w(3), pods), ripe("n2"), Settings(), NOW)
    assert d.remove == ()
    assert d.nodes["n2"].reason == "no_room" and "Insufficient resources" in d.nodes["n2"].detail


def test_daemonset_pods_stay_and_are_not_moved():
    # Only the DaemonSet pod runs on n2: the node is empty for scale-down.
    pods = [ds("n2"), *busy("n0", 1), *busy("n1", 1)]
    d = plan(snapshot(w(3), pods), ripe("n2"), Settings(), NOW)
    assert d.remove == ("n2",) and R.EMPTY_NODE in d.codes


def test_a_pdb_with_no_disruptions_left_keeps_the_node():
    web = pod("web-0", "n2", labels={"app": "web"}, pdbs=("default/web",))
    snap = replace(snapshot(w(3), [*busy("n0", 1), *busy("n1", 1), web]), pdbs={"default/web": 0})
    d = plan(snap, ripe("n2"), Settings(), NOW)
    assert d.remove == ()
    assert d.nodes["n2"].reason == "pdb_exhausted" and "default/web" in d.nodes["n2"].detail


def test_pdb_budget_is_used_up_as_candidates_are_chosen():
    web = [pod(f"web-{i}", f"n{i}", pdbs=("default/web",)) for i in (2, 3)]
    snap = replace(snapshot(w(4), [*busy("n0", 1), *busy("n1", 1), *web]), pdbs={"default/web": 1})
    d = plan(snap, ripe("n2", "n3"), Settings(max_drains_in_parallel=2), NOW)
    assert len(d.remove) == 1


def test_a_pending_pod_no_worker_can_host_neither_launches_nor_blocks():
    gpu = pending("trainer", placement=Placement(node_selector=(("nvidia.com/gpu", "true"),)))
    snap = snapshot(w(3), [*busy("n0", 1), *busy("n1", 1), gpu])
    d = plan(snap, ripe("n2"), Settings(), NOW)
    assert d.launches == {}
    assert [(u.pod, u.reason) for u in d.unhelpable] == [("default/trainer", "NodeAffinity")]
    assert d.remove == ("n2",)


def test_worker_labels_make_the_same_pod_helpable():
    gpu = pending("trainer", placement=Placement(node_selector=(("nvidia.com/gpu", "true"),)))
    d = plan(snapshot(w(3), [gpu]), ScalingState(), Settings(worker_labels="nvidia.com/gpu=true"), NOW)
    assert sum(d.launches.values()) == 1 and d.unhelpable == ()


def test_worker_taints_need_tolerations():
    tainted = Settings(worker_taints="dedicated=batch:NoSchedule")
    plain = pending("web")
    tolerant = pending("job", placement=Placement(tolerations=(Toleration("dedicated", "Equal", "batch"),)))
    d = plan(snapshot(w(3), [plain, tolerant]), ScalingState(), tainted, NOW)
    assert sum(d.launches.values()) == 1
    assert [(u.pod, u.reason) for u in d.unhelpable] == [("default/web", "TaintToleration")]


@pytest.mark.parametrize(
    ("desc", "destination_taints", "tolerations", "removed"),
    [
        ("a NoSchedule taint on the only destination keeps the node", (Taint("disk-pressure"),), (), False),
        (
            "a tolerated taint does not",
            (Taint("disk-pressure"),),
            (Toleration("disk-pressure", "Exists"),),
            True,
        ),
        ("PreferNoSchedule never filters", (Taint("soft", effect="PreferNoSchedule"),), (), True),
    ],
)
def test_destination_taints(desc, destination_taints, tolerations, removed):
    workers = w(2)
    workers[0] = (workers[0][0], replace(workers[0][1], taints=destination_taints))
    mover = pod("mover", "n1", placement=Placement(tolerations=tolerations))
    d = plan(snapshot(workers, [mover]), ripe("n1"), Settings(min_nodes=1), NOW)
    assert (d.remove == ("n1",)) is removed, desc


def test_a_pod_pinned_by_a_local_path_volume_makes_its_node_unremovable():
    db = pod("db-0", "n2", owner_kind="StatefulSet", placement=pinned_to("n2"))
    d = plan(snapshot(w(3), [*busy("n0", 1), *busy("n1", 1), db]), ripe("n2"), Settings(), NOW)
    assert d.remove == ()
    assert d.nodes["n2"].reason == "pod_cannot_move" and "default/db-0" in d.nodes["n2"].detail


@pytest.mark.parametrize(("other_zone", "removed"), [(A, True), (B, False)])
def test_a_zonal_volume_moves_only_within_its_zone(other_zone, removed):
    workers = [zoned(0, other_zone), zoned(1, A)]
    db = pod("db-0", "n1", owner_kind="StatefulSet", placement=in_zone(A))
    d = plan(snapshot(workers, [db]), ripe("n1"), Settings(min_nodes=1), NOW)
    assert (d.remove == ("n1",)) is removed


def test_cordoned_nodes_are_no_destination():
    workers = w(2)
    workers[0] = (workers[0][0], replace(workers[0][1], cordoned=True))
    d = plan(snapshot(workers, busy("n1", 1)), ripe("n1"), Settings(min_nodes=0), NOW)
    assert d.remove == ()


def test_pods_still_on_a_draining_node_reserve_their_room():
    # n3 is draining a 1500m pod; n0 has 1500m free; n2's 900m pod would fit only in that room.
    pods = [*busy("n0", 1, cpu=500), *busy("n1", 1, cpu=1900), *busy("n2", 1, cpu=900), *busy("n3", 1, cpu=1500)]
    state = ripe("n2", drains=(Drain("n3", "i-0003", NOW - 30, NOW + 270),))
    d = plan(snapshot(w(4), pods), state, Settings(max_drains_in_parallel=2, min_nodes=1), NOW)
    assert d.remove == ()
    assert d.nodes["n2"].reason == "no_room"


def test_a_manual_scale_down_keeps_max_drains_in_parallel():
    pods = [p for i in range(6) for p in busy(f"n{i}", 1, cpu=200)]
    d = plan(snapshot(w(6), pods), ScalingState(), Settings(min_nodes=1), NOW, Intent(IntentKind.SCALE_DOWN, 5, "ops"))
    assert len(d.remove) == 1


def test_mirror_pods_neither_block_nor_move():
    static = pod("etcd-proxy-n2", "n2", owner_kind=None, mirror=True)
    d = plan(snapshot(w(3), [*busy("n0", 1), *busy("n1", 1), static]), ripe("n2"), Settings(), NOW)
    assert d.remove == ("n2",)


@pytest.mark.parametrize(
    ("listed", "removed"), [("cache,scratch", True), ("cache", False), ("", False)], ids=["all", "some", "none"]
)
def test_safe_to_evict_local_volumes(listed, removed):
    annotations = {"cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes": listed} if listed else {}
    cache = pod("cache", "n2", local_storage=True, local_volumes=("cache", "scratch"), annotations=annotations)
    d = plan(snapshot(w(3), [*busy("n0", 1), *busy("n1", 1), cache]), ripe("n2"), Settings(), NOW)
    assert (d.remove == ("n2",)) is removed


def test_the_estimate_counts_pods_per_node():
    tiny = [pending(f"t{i}", cpu=10, mem=10) for i in range(7)]
    d = plan(snapshot(w(3), tiny), ScalingState(), Settings(node_max_pods=3), NOW)
    assert sum(d.launches.values()) == 3


def test_the_estimate_counts_the_daemonsets_that_land_on_a_new_worker():
    snap = replace(snapshot(w(3), [pending(f"p{i}", cpu=500) for i in range(4)]), daemonsets=(ds(None, cpu=500),))
    d = plan(snap, ScalingState(), Settings(), NOW)
    assert sum(d.launches.values()) == 2


def test_a_daemonset_that_does_not_tolerate_the_worker_taint_takes_no_room():
    snap = replace(
        snapshot(
            w(3),
            [
                pending(f"p{i}", cpu=500, placement=Placement(tolerations=(Toleration(operator="Exists"),)))
                for i in range(4)
            ],
        ),
        daemonsets=(ds(None, cpu=500),),
    )
    d = plan(snap, ScalingState(), Settings(worker_taints="dedicated=batch:NoSchedule"), NOW)
    assert sum(d.launches.values()) == 1


def test_host_ports_force_one_pod_per_new_worker():
    web = [pending(f"lb{i}", cpu=10, placement=Placement(host_ports=(HostPort(80),))) for i in range(3)]
    d = plan(snapshot(w(3), web), ScalingState(), Settings(), NOW)
    assert sum(d.launches.values()) == 3


def test_new_workers_open_in_the_zone_a_zonal_pod_needs():
    d = plan(snapshot(w(3), [pending("db", placement=in_zone(B))]), ScalingState(), Settings(), NOW)
    assert d.launches == {B: 1}


# -- ownership: which Node is which instance --------------------------------------------------


def k3s_worker(i: int, *, ready: bool = True, launched_ago: float = 3600.0):
    """A worker joined with K3s's default providerID (k3s://<hostname>): found by its address."""
    ip = f"10.0.1.{i + 10}"
    inst = Instance(
        f"i-{i:04d}",
        InstanceState.RUNNING,
        ZONES[i % 2],
        "t3.large",
        NOW - launched_ago,
        private_ip=ip,
        private_dns_name=f"ip-10-0-1-{i + 10}.eu-west-1.compute.internal",
    )
    node = Node(f"ip-10-0-1-{i + 10}", CPU, MEM, None, None, ready=ready, addresses=frozenset({ip}))
    return inst, node


def test_k3s_provider_ids_are_matched_by_address_and_never_terminated_as_unjoined():
    d = plan(snapshot([k3s_worker(i) for i in range(3)], busy("ip-10-0-1-10", 3)), ScalingState(), Settings(), NOW)
    assert d.terminate_unjoined == ()
    assert R.UNJOINED_INSTANCE not in d.codes


def test_k3s_workers_are_removed_through_their_matched_instance():
    workers = [k3s_worker(i) for i in range(3)]
    d = plan(snapshot(workers, busy("ip-10-0-1-10", 1)), ripe("ip-10-0-1-12"), Settings(), NOW)
    assert d.remove == ("ip-10-0-1-12",) and d.instances == {"ip-10-0-1-12": "i-0002"}


def test_two_nodes_claiming_one_instance_are_acted_on_by_no_one():
    workers = w(3)
    impostor = Node("impostor", CPU, MEM, "i-0002", A)
    d = plan(snapshot(workers, busy("n0", 1), extra_nodes=(impostor,)), ripe("n2", "impostor"), Settings(), NOW)
    assert "n2" not in d.remove and "impostor" not in d.remove
    assert d.terminate_unjoined == ()
    assert R.AMBIGUOUS_INSTANCE in d.codes
    assert d.nodes["n2"].reason == "ambiguous_instance"


def test_a_node_naming_a_foreign_instance_is_never_ours():
    stranger = Node("stranger", CPU, MEM, "i-foreign", A)
    d = plan(snapshot(w(3), busy("n0", 1), extra_nodes=(stranger,)), ripe("stranger"), Settings(), NOW)
    assert "stranger" not in d.remove and "stranger" not in d.nodes


# -- min_nodes counts workers of use ----------------------------------------------------------


def dead(i: int, since: float = 3600.0):
    inst, node = worker(i, ready=False)
    return inst, replace(node, created_at=NOW - 7200, ready_since=NOW - since)


def test_a_worker_notready_past_the_unready_time_is_replaced():
    d = plan(snapshot([worker(0)[0:2], dead(1)], busy("n0", 1)), ScalingState(), Settings(min_nodes=2), NOW)
    assert sum(d.launches.values()) == 1
    assert R.UNREADY_NODE in d.codes and R.BELOW_MIN in d.codes
    assert d.remove == ()


def test_then_removed_once_ready_workers_meet_min_nodes_again():
    d = plan(snapshot([*w(2), dead(2)], busy("n0", 1)), ScalingState(), Settings(min_nodes=2), NOW)
    assert d.remove == ("n2",) and d.instances == {"n2": "i-0002"}
    assert "n1" not in d.remove


def test_a_worker_briefly_notready_still_counts():
    d = plan(snapshot([*w(1), dead(1, since=120)], busy("n0", 1)), ScalingState(), Settings(min_nodes=2), NOW)
    assert d.launches == {} and d.remove == ()


def test_a_registered_node_never_ready_by_the_provision_time_is_replaced_then_removed():
    inst, node = worker(2, ready=False, launched_ago=1000)
    node = replace(node, created_at=NOW - 950, ready_since=NOW - 950)
    d = plan(snapshot([*w(2), (inst, node)], busy("n0", 1)), ScalingState(), Settings(min_nodes=2), NOW)
    assert d.remove == ("n2",) and d.codes.count(R.UNREADY_NODE) >= 1


def test_min_nodes_never_lets_a_ready_worker_go_while_another_is_dead():
    d = plan(snapshot([*w(2), dead(2)], []), ripe("n0", "n1"), Settings(min_nodes=2), NOW)
    assert "n0" not in d.remove and "n1" not in d.remove


def test_a_fleet_above_max_is_brought_back_under_the_removal_rules():
    pods = [p for i in range(4) for p in busy(f"n{i}", 1, cpu=300)]
    d = plan(snapshot(w(4), pods), ScalingState(), Settings(min_nodes=1, max_nodes=3), NOW)
    assert len(d.remove) == 1 and R.ABOVE_MAX in d.codes


def test_above_max_the_workers_still_launching_go_first_newest_first():
    # max_nodes lowered while workers launch: stopping a launch moves nothing; draining a Ready worker would.
    launching = [worker(5, ready=None, launched_ago=30), worker(6, ready=None, launched_ago=10)]
    snap = snapshot([*w(2), *launching], busy("n0", 1) + busy("n1", 1))
    d = plan(snap, ScalingState(), Settings(min_nodes=1, max_nodes=3), NOW)
    assert d.terminate_unjoined == ("i-0006",) and d.remove == () and R.ABOVE_MAX in d.codes
    d = plan(snap, ScalingState(), Settings(min_nodes=1, max_nodes=1), NOW)
    assert d.terminate_unjoined == ("i-0006", "i-0005") and len(d.remove) == 1


def test_pause_stops_the_unjoined_clean_up():
    snap = snapshot([*w(2), worker(9, ready=None, launched_ago=2000)], busy("n0", 1))
    d = plan(snap, ScalingState(paused=True), Settings(), NOW)
    assert d.terminate_unjoined == () and d.remove == () and d.launches == {}
