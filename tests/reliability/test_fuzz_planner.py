"""The planner on random valid snapshots, fuzzed: within max_nodes and min_nodes, and never removes
what it must not. Profiles and shared strategies: fuzzing.py.
"""

from __future__ import annotations

from fuzzing import NOW, fuzz, note_outcome
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.config import Settings
from autoscaler.model import (
    DO_NOT_DISRUPT,
    SAFE_TO_EVICT,
    SCALE_DOWN_DISABLED_ANNOTATIONS,
    Action,
    ClusterSnapshot,
    Drain,
    Instance,
    InstanceState,
    Intent,
    IntentKind,
    Launch,
    MetricsView,
    Node,
    Pod,
    ScalingState,
)
from autoscaler.planner import LAUNCH_VISIBILITY_GRACE_S, plan

ZONES = ("eu-west-1a", "eu-west-1b", "eu-west-1c")


@st.composite
def planner_cases(draw: st.DrawFn) -> tuple[ClusterSnapshot, ScalingState, Settings, Intent | None]:
    """A snapshot with workers (some launching, some never joining, some gone), a control plane, nodes
    of no worker, pods of every kind, metrics known or not, and a state with clocks, launches and drains."""
    min_nodes = draw(st.integers(min_value=0, max_value=5))
    settings_ = Settings(
        min_nodes=min_nodes,
        max_nodes=draw(st.integers(min_value=max(1, min_nodes), max_value=12)),
        max_nodes_per_scale_up=draw(st.integers(min_value=1, max_value=6)),
        max_drains_in_parallel=draw(st.integers(min_value=1, max_value=3)),
        max_empty_bulk_delete=draw(st.integers(min_value=1, max_value=4)),
        scale_down_unneeded_time_s=draw(st.sampled_from((0, 60, 600))),
        scale_down_delay_after_add_s=draw(st.sampled_from((0, 600))),
        scale_down_delay_after_failure_s=draw(st.sampled_from((0, 180))),
        new_pod_scale_up_delay_s=draw(st.sampled_from((0, 30))),
        cpu_high_window_s=draw(st.sampled_from((0, 180))),
        max_node_provision_time_s=draw(st.sampled_from((60, 900))),
        scale_down_utilization_threshold=draw(st.sampled_from((0.5, 1.0, 0.0))),
        node_cpu_m=2000,
        node_mem_mib=7680,
    )
    zones = ZONES[: draw(st.integers(min_value=0, max_value=3))]
    calm = draw(st.booleans())  # quiet hours: everything running, nothing pending, old clocks (scale-down's turn)
    instances, nodes = [], []
    for i in range(draw(st.integers(min_value=3 if calm else 0, max_value=9))):
        inst = Instance(
            f"i-{i:04d}",
            InstanceState.RUNNING if calm else draw(st.sampled_from(list(InstanceState))),
            draw(st.sampled_from((*zones, "us-east-1a"))) if zones else "eu-west-1a",
            "t3.large",
            NOW - (7200.0 if calm else draw(st.sampled_from((0.0, 30.0, 200.0, 1000.0, 7200.0)))),
            draw(st.sampled_from(("on-demand", "spot"))),
        )
        instances.append(inst)
        if calm or draw(st.integers(min_value=0, max_value=4)):  # registered as a Node (else: launching, never joined)
            nodes.append(node_for(draw(NODE_FIELDS), f"n{i}", inst.id, inst.az))
    for j in range(draw(st.integers(min_value=0, max_value=2))):  # the server, and nodes of no tagged worker
        owner = draw(st.sampled_from((None, "i-unknown", f"i-{j:04d}")))
        nodes.append(node_for(draw(NODE_FIELDS), f"x{j}", owner, None, j == 0))
    names = [n.name for n in nodes]

    def subset(items: list[str], most: int | None = None) -> list[str]:
        return sorted(draw(st.sets(st.sampled_from(items), max_size=most))) if items else []

    places = names if calm and names else [None, *names]
    where = st.sampled_from(places)
    pods = [pod_on(draw(POD_FIELDS), k, draw(where)) for k in range(draw(st.integers(min_value=0, max_value=12)))]
    if calm or draw(st.integers(min_value=0, max_value=3)):
        cpu = draw(st.floats(min_value=0, max_value=1))
        known = names if calm else subset(names)
        node_cpu = {n: draw(st.sampled_from((0.05, 0.2, 0.9))) for n in known}
        custom = None if calm else draw(st.none() | st.floats(min_value=0, max_value=10))
        metrics = MetricsView(cluster_cpu=cpu, node_cpu=node_cpu, custom=custom)
    else:
        metrics = MetricsView(unknown_reason="prometheus down")
    ago = (
        st.sampled_from((None, NOW - 3600)) if calm else st.none() | st.sampled_from((NOW - 30, NOW - 300, NOW - 3600))
    )
    ids = [i.id for i in instances] + ["i-unseen-0", "i-unseen-1"]
    state = ScalingState(
        version=draw(st.integers(min_value=0, max_value=5)),
        last_scale_up=draw(ago),
        last_scale_down=draw(ago),
        last_failure=draw(ago),
        pressure_since=draw(ago),
        unneeded_since={
            n: draw(st.sampled_from((NOW - 700, NOW - 5, NOW))) for n in (names if calm else subset(names))
        },
        launches=tuple(
            Launch(i, "eu-west-1a", NOW - draw(st.sampled_from((10.0, 100.0, 1000.0))), NOW + 900)
            for i in draw(st.sets(st.sampled_from(ids), max_size=0 if calm else 3))
        ),
        drains=tuple(Drain(n, None, NOW - 60, NOW + 240) for n in subset(names, 2)),
        backoff_until=draw(st.none() | st.sampled_from((NOW - 10, NOW + 300))),
        paused=draw(st.sampled_from((False,) * 9 + (True,))),
    )
    intent = None
    if draw(st.sampled_from((False, False, False, True))):
        kind = draw(st.sampled_from(list(IntentKind)))
        count = (
            0
            if kind in (IntentKind.PAUSE, IntentKind.RESUME)
            else draw(st.integers(min_value=0 if kind is IntentKind.SET else 1, max_value=15))
        )
        intent = Intent(kind, count, "fuzz")
    snapshot = ClusterSnapshot(tuple(nodes), tuple(pods), tuple(instances), metrics, zones)
    return snapshot, state, settings_, intent


_RARELY = st.sampled_from((False,) * 5 + (True,))
NODE_FIELDS = st.tuples(
    st.sampled_from((2000, 4000, 500)),
    st.sampled_from((7680, 15360, 1024)),
    _RARELY,  # not Ready
    _RARELY,  # cordoned
    st.none() | st.tuples(st.sampled_from(SCALE_DOWN_DISABLED_ANNOTATIONS), st.sampled_from(("true", "false"))),
)
POD_FIELDS = st.tuples(
    st.sampled_from(("default", "default", "kube-system", "apps")),
    st.sampled_from((10, 250, 500, 1500, 2500)),
    st.sampled_from((16, 512, 2048, 8000)),
    st.sampled_from(("ReplicaSet", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", None)),
    st.dictionaries(
        st.sampled_from((SAFE_TO_EVICT, DO_NOT_DISRUPT, "other")), st.sampled_from(("true", "false")), max_size=2
    ),
    st.booleans(),  # has a PodDisruptionBudget
    _RARELY,  # local storage
    st.sampled_from((None, 0.0, 60.0)),  # unschedulable for (when not bound)
)


def node_for(fields: tuple, name: str, instance_id: str | None, az: str | None, control_plane: bool = False) -> Node:
    cpu, mem, not_ready, cordoned, disabled = fields
    return Node(
        name,
        cpu,
        mem,
        instance_id,
        az,
        ready=not not_ready,
        cordoned=cordoned,
        control_plane=control_plane,
        annotations=dict([disabled]) if disabled else {},
        created_at=NOW - 3600,
    )


def pod_on(fields: tuple, k: int, node: str | None) -> Pod:
    namespace, cpu, mem, owner, annotations, has_pdb, local_storage, waiting = fields
    return Pod(
        f"p{k}",
        namespace,
        cpu,
        mem,
        node=node,
        owner_kind=owner,
        annotations=annotations,
        has_pdb=has_pdb,
        local_storage=local_storage,
        unschedulable_since=NOW - waiting if node is None and waiting is not None else None,
    )


def unmovable(pod: Pod) -> bool:
    """DESIGN.md's rule, written out again: a pod that pins its node."""
    ann = pod.annotations
    if ann.get(SAFE_TO_EVICT) == "false" or ann.get(DO_NOT_DISRUPT) == "true":
        return True
    if ann.get(SAFE_TO_EVICT) == "true":
        return False
    return pod.owner_kind is None or (pod.namespace == "kube-system" and not pod.has_pdb) or pod.local_storage


@fuzz(1000)
@given(case=planner_cases())
def test_the_planner_keeps_its_bounds_and_never_removes_what_it_must_not(case):
    snapshot, state, s, intent = case
    decision = plan(snapshot, state, s, NOW, intent)

    alive = {i.id: i for i in snapshot.instances if i.alive}
    seen = {i.id for i in snapshot.instances}
    unseen = {
        x.instance_id
        for x in state.launches
        if x.instance_id not in seen and NOW - x.launched_at < LAUNCH_VISIBILITY_GRACE_S
    }
    fleet = len(alive) + len(unseen)
    draining = {d.node for d in state.drains}
    nodes = {n.name: n for n in snapshot.nodes}
    assert decision.state.version == state.version
    added = decision.launch_count + len(decision.starts)
    assert (decision.action is Action.SCALE_UP) == bool(added)
    assert (decision.action is Action.SCALE_DOWN) == bool(decision.remove)
    assert decision.reasons

    # Launches and warm starts: within max_nodes, per cycle within max_nodes_per_scale_up, into the
    # fleet's zones; a start only of a stopped worker of this fleet.
    assert all(count > 0 for count in decision.launches.values())
    stopped = {i.id for i in snapshot.instances if i.state is InstanceState.STOPPED}
    assert len(set(decision.starts)) == len(decision.starts) and set(decision.starts) <= stopped
    if added:
        assert fleet + added <= s.max_nodes, (fleet, dict(decision.launches), decision.starts)
        assert set(decision.launches) <= (set(snapshot.zones) or {""})
        if intent is None:
            assert added <= s.max_nodes_per_scale_up
        assert not state.paused or (intent is not None and intent.kind is IntentKind.RESUME)

    # Removals: only Ready workers of this fleet that nothing pins, never below min_nodes Ready
    # workers; a NotReady worker only once it is dead (past the unready or provision time).
    assert len(set(decision.remove)) == len(decision.remove)
    for name in decision.remove:
        node = nodes[name]
        assert not node.control_plane, f"removes the control plane {name}"
        assert not node.scale_down_disabled, f"removes {name}, annotated scale-down-disabled"
        assert node.instance_id in alive, f"removes {name}, whose instance {node.instance_id} is not a live worker"
        assert decision.instances[name] == node.instance_id
        assert name not in draining
        if not node.ready:
            since = node.ready_since if node.ready_since is not None else node.created_at
            launched = alive[node.instance_id].launched_at
            assert NOW - since > s.scale_down_unready_time_s or NOW - launched > s.max_node_provision_time_s
        pinned = [p.key for p in snapshot.pods if p.node == name and not p.is_daemonset and unmovable(p)]
        assert not pinned, f"removes {name}, which holds {pinned}"
    removed_ready = [n for n in decision.remove if nodes[n].ready]
    if removed_ready:
        ready = {n.name for n in snapshot.nodes if n.ready and n.instance_id in alive and not n.control_plane}
        assert len(ready - draining) - len(removed_ready) >= s.min_nodes, "goes below min_nodes Ready workers"
    if decision.remove:
        assert not state.paused or (intent is not None and intent.kind is IntentKind.RESUME)
        unhelpable = {u.pod for u in decision.unhelpable}
        # A pending DaemonSet or mirror pod waits for its own node, not for capacity (as in Cluster Autoscaler).
        waiting = [p.key for p in snapshot.pods if p.node is None and p.unschedulable_since is not None and not p.stays]
        assert removed_ready == [] or set(waiting) <= unhelpable, "scale-down while pods a worker could host wait"
        if intent is None and removed_ready and set(decision.remove) == set(removed_ready):
            assert snapshot.metrics.known or fleet > s.max_nodes, "scale-down on unknown metrics"

    # Instances terminated before they joined: live, no Node object at all, and past the provision time,
    # or late and overtaken by a worker launched since that is Ready, or still launching while the
    # fleet is above max_nodes (never below it).
    registered = {n.instance_id for n in snapshot.nodes}
    ready_since = [alive[n.instance_id].launched_at for n in snapshot.nodes if n.ready and n.instance_id in alive]
    terminated = decision.terminate_unjoined
    young = [
        i
        for i in terminated
        if NOW - alive[i].launched_at <= s.max_node_provision_time_s
        and not (
            NOW - alive[i].launched_at > s.launch_late_after_s and any(t >= alive[i].launched_at for t in ready_since)
        )
    ]
    for instance_id in terminated:
        assert instance_id not in registered
    assert not young or fleet - len(terminated) >= s.max_nodes, f"cancels {young} with {fleet} workers"
    # Node objects deleted as orphans: their worker is shutting down or gone.
    gone = {
        i.id
        for i in snapshot.instances
        if not i.alive and i.state in (InstanceState.SHUTTING_DOWN, InstanceState.TERMINATED)
    }
    for name in decision.delete_nodes:
        assert nodes[name].instance_id in gone and not nodes[name].control_plane
    note_outcome(f"{decision.action.value}{' (asked)' if intent else ''}")
