"""Cluster Autoscaler's own test tables, through `planner.plan`.

Each table ports rows of a Cluster Autoscaler test (kubernetes/autoscaler, cited on the table and
where a row comes from elsewhere) onto this planner's inputs and outputs: a snapshot in, and the
Decision's `remove`, `launches`, `nodes` (a NodeVerdict per worker) and `unhelpable` out.

- Drainability: which pods keep their node (simulator/drainability/rules/*/rule_test.go,
  utils/drain/drain_test.go, core/scaledown/pdb/basic_test.go).
- Eligibility: which nodes are looked at (core/scaledown/eligibility/eligibility_test.go).
- Removal: do the pods fit on the nodes kept, in the room left (simulator/cluster_test.go).
- Estimate: how many new workers the pending pods need, and which pods none can host
  (estimator/binpacking_estimator_test.go).

All at a fixed `now`, no mocks.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from autoscaler.config import Settings
from autoscaler.model import (
    DO_NOT_DISRUPT,
    SAFE_TO_EVICT,
    SAFE_TO_EVICT_LOCAL_VOLUMES,
    Action,
    Drain,
    DrainPhase,
    Node,
    ReasonCode,
    ScalingState,
)
from autoscaler.planner import plan
from autoscaler.scheduling import (
    HOSTNAME_LABEL,
    NODE_NAME_FIELD,
    ZONE_LABEL,
    HostPort,
    LabelSelector,
    Placement,
    PodAffinityTerm,
    Requirement,
    SpreadConstraint,
    Taint,
    Toleration,
)
from builders import NOW, ZONES, pending, pod, snapshot, worker

A, B = ZONES
R = ReasonCode


def wk(i: int, labels: dict | None = None, **kw):
    """A Ready worker labelled with its zone and hostname, as the kubelet labels it."""
    inst, node = worker(i, **kw)
    if node is not None:
        node = replace(node, labels={ZONE_LABEL: inst.az, HOSTNAME_LABEL: node.name, **(labels or {})})
    return inst, node


def decide(snap, state: ScalingState | None = None, **settings):
    """Cluster Autoscaler's own cases: it terminates what it removes, so no warm pool here, and its
    utilization threshold is 0.5."""
    ca = {"warm_pool_size": 0, "scale_down_utilization_threshold": 0.5}
    return plan(snap, state or ScalingState(), Settings().replace(**{**ca, **settings}), NOW)


def fill(node: str, *, prefix: str = "f", cpu: int = 1000) -> list:
    """Ordinary pods that keep `node` at 50 % (at the utilization threshold: not a candidate)."""
    return [pod(f"{prefix}-{node}-{k}", node, cpu // 2, 512) for k in range(2)]


def ripe(*names: str) -> ScalingState:
    """Unneeded long enough: a candidate is removed now."""
    return ScalingState(unneeded_since={n: NOW - 3600 for n in names})


# -- drainability ---------------------------------------------------------------------------------
#
# Three workers: n0 and n1 kept busy at the threshold (not candidates, 1000m free each), n2 holding
# the pods of the row and unneeded for an hour. Drainable: n2 is removed. Not: it stays, and its
# verdict says why.

DRAIN_WORKERS = [wk(0), wk(1), wk(2)]
DRAIN_BUSY = [*fill("n0"), *fill("n1")]


def on2(name: str = "p", cpu: int = 100, **kw):
    return pod(name, "n2", cpu, 128, **kw)


def drain_row(desc, pods, want_reason, *, pdbs=None, removed=None, marks=()):
    removed = want_reason in ("unneeded", "empty") if removed is None else removed
    return pytest.param(pods, pdbs or {}, want_reason, removed, id=desc, marks=marks)


LOCAL = {"local_storage": True, "local_volumes": ("scratch", "cache")}

DRAINABILITY = [
    # replicated/rule_test.go
    drain_row("a ReplicaSet pod moves", [on2()], "unneeded"),
    drain_row("a StatefulSet pod moves", [on2(owner_kind="StatefulSet")], "unneeded"),
    drain_row("a Job pod moves", [on2(owner_kind="Job")], "unneeded"),
    drain_row("a bare pod (no controller) blocks", [on2(owner_kind=None)], "pod_cannot_move"),
    # safetoevict/rule_test.go
    drain_row(
        "a bare pod annotated safe-to-evict=true moves",
        [on2(owner_kind=None, annotations={SAFE_TO_EVICT: "true"})],
        "unneeded",
    ),
    # mirror/rule_test.go
    drain_row("a mirror pod stays with its node (the node is empty)", [on2(owner_kind=None, mirror=True)], "empty"),
    drain_row(
        "a mirror pod annotated safe-to-evict=false still does not block",
        [on2(owner_kind="Node", mirror=True, annotations={SAFE_TO_EVICT: "false"})],
        "empty",
    ),
    # daemonset/rule_test.go
    drain_row("a DaemonSet pod stays with its node (the node is empty)", [on2(owner_kind="DaemonSet")], "empty"),
    drain_row(
        "a DaemonSet pod annotated safe-to-evict=false does not block",
        [on2(owner_kind="DaemonSet", annotations={SAFE_TO_EVICT: "false"})],
        "empty",
    ),
    drain_row(
        "a kube-system DaemonSet pod without a PDB does not block",
        [on2(owner_kind="DaemonSet", namespace="kube-system")],
        "empty",
    ),
    # system/rule_test.go
    drain_row("a kube-system pod without a PDB blocks", [on2(namespace="kube-system")], "pod_cannot_move"),
    drain_row(
        "a kube-system pod with a PDB that allows a disruption moves",
        [on2(namespace="kube-system", pdbs=("kube-system/dns",))],
        "unneeded",
        pdbs={"kube-system/dns": 1},
    ),
    drain_row(
        "a kube-system pod annotated safe-to-evict=true moves",
        [on2(namespace="kube-system", annotations={SAFE_TO_EVICT: "true"})],
        "unneeded",
    ),
    # notsafetoevict/rule_test.go
    drain_row(
        "a pod annotated safe-to-evict=false blocks",
        [on2(annotations={SAFE_TO_EVICT: "false"})],
        "pod_cannot_move",
    ),
    drain_row(
        "a Job pod annotated safe-to-evict=false blocks",
        [on2(owner_kind="Job", annotations={SAFE_TO_EVICT: "false"})],
        "pod_cannot_move",
    ),
    # Karpenter's do-not-disrupt (karpenter.sh/docs/concepts/disruption): honoured the same way.
    drain_row(
        "a pod annotated do-not-disrupt=true blocks", [on2(annotations={DO_NOT_DISRUPT: "true"})], "pod_cannot_move"
    ),
    # localstorage/rule_test.go (volumes "scratch" and "cache")
    drain_row("pod with EmptyDir", [on2(**LOCAL)], "pod_cannot_move"),
    drain_row(
        "pod with local storage annotated safe-to-evict=true (safetoevict runs first)",
        [on2(**LOCAL, annotations={SAFE_TO_EVICT: "true"})],
        "unneeded",
    ),
    drain_row(
        "pod with EmptyDir and SafeToEvictLocalVolumesKey annotation (every volume)",
        [on2(**LOCAL, annotations={SAFE_TO_EVICT_LOCAL_VOLUMES: "scratch,cache"})],
        "unneeded",
    ),
    drain_row(
        "pod with EmptyDir and SafeToEvictLocalVolumesKey annotation with matching values (a superset)",
        [on2(**LOCAL, annotations={SAFE_TO_EVICT_LOCAL_VOLUMES: "scratch,cache,logs"})],
        "unneeded",
    ),
    drain_row(
        "pod with EmptyDir and empty value for SafeToEvictLocalVolumesKey annotation",
        [on2(**LOCAL, annotations={SAFE_TO_EVICT_LOCAL_VOLUMES: ""})],
        "pod_cannot_move",
    ),
    drain_row(
        "pod with EmptyDir and SafeToEvictLocalVolumesKey annotation empty values (',')",
        [on2(**LOCAL, annotations={SAFE_TO_EVICT_LOCAL_VOLUMES: ","})],
        "pod_cannot_move",
    ),
    drain_row(
        "pod with EmptyDir and non-matching value for SafeToEvictLocalVolumesKey annotation",
        [on2(**LOCAL, annotations={SAFE_TO_EVICT_LOCAL_VOLUMES: "data,logs"})],
        "pod_cannot_move",
    ),
    drain_row(
        "pod with EmptyDir and SafeToEvictLocalVolumesKey annotation with some matching values",
        [on2(**LOCAL, annotations={SAFE_TO_EVICT_LOCAL_VOLUMES: "scratch"})],
        "pod_cannot_move",
    ),
    # utils/drain/drain.go getNonBlockingVolumes splits on "," and trims nothing: " scratch" is not
    # "scratch".
    drain_row(
        "a space after the comma is part of the volume name",
        [on2(**LOCAL, annotations={SAFE_TO_EVICT_LOCAL_VOLUMES: "cache, scratch"})],
        "pod_cannot_move",
    ),
    # pdb/rule_test.go and core/scaledown/pdb/basic_test.go (CanRemovePods)
    drain_row(
        "a PDB with 0 disruptionsAllowed blocks",
        [on2(pdbs=("default/web",))],
        "pdb_exhausted",
        pdbs={"default/web": 0},
    ),
    drain_row(
        "a PDB with 1 disruptionsAllowed lets one pod go",
        [on2(pdbs=("default/web",))],
        "unneeded",
        pdbs={"default/web": 1},
    ),
    drain_row(
        "a PDB with 1 disruptionsAllowed and two of its pods on the node blocks",
        [on2("p1", pdbs=("default/web",)), on2("p2", pdbs=("default/web",))],
        "pdb_exhausted",
        pdbs={"default/web": 1},
    ),
    drain_row(
        "a pod under two PDBs: the exhausted one blocks",
        [on2(pdbs=("default/web", "default/all"))],
        "pdb_exhausted",
        pdbs={"default/web": 3, "default/all": 0},
    ),
    drain_row(
        "one blocking pod among movable ones blocks the node",
        [on2("a"), on2("b", owner_kind="StatefulSet"), on2("c", owner_kind=None)],
        "pod_cannot_move",
    ),
    # utils/drain/drain_test.go: a pod whose volume cannot be read (claim missing) cannot be placed
    drain_row(
        "a pod whose volume cannot be read blocks",
        [on2(placement=Placement(volume_problem="PersistentVolumeClaim data-0 not found"))],
        "pod_cannot_move",
    ),
]


@pytest.mark.parametrize(("pods", "pdbs", "want_reason", "removed"), DRAINABILITY)
def test_drainability(pods, pdbs, want_reason, removed):
    snap = replace(snapshot(DRAIN_WORKERS, DRAIN_BUSY + pods), pdbs=pdbs)
    decision = decide(snap, ripe("n2"))
    verdict = decision.nodes["n2"]
    assert (verdict.candidate, verdict.reason) == (want_reason in ("unneeded", "empty"), want_reason), verdict
    assert decision.remove == (("n2",) if removed else ())
    if removed:
        assert decision.action is Action.SCALE_DOWN
        assert decision.codes == ((R.NODE_UNNEEDED,) if want_reason == "unneeded" else (R.EMPTY_NODE,))


def test_pdb_budget_is_used_up_across_removals():
    """core/scaledown/pdb/basic_test.go: removing one node's pod uses the budget the next needs."""
    ws = [wk(0), wk(1), wk(2), wk(3)]
    pods = [*fill("n0"), *fill("n1"), on2("a", pdbs=("default/web",)), pod("b", "n3", 100, 128, pdbs=("default/web",))]
    snap = replace(snapshot(ws, pods), pdbs={"default/web": 1})
    decision = decide(snap, ripe("n2", "n3"), max_drains_in_parallel=2)
    assert len(decision.remove) == 1
    other = ({"n2", "n3"} - set(decision.remove)).pop()
    assert decision.nodes[other].reason == "pdb_exhausted"


# -- eligibility ----------------------------------------------------------------------------------
#
# core/scaledown/eligibility/eligibility_test.go: which nodes scale-down looks at. n0 and n1 busy;
# the row's node is n2 (or the extra node given).


def elig_row(desc, n2_kw, pods, want_reason, *, extra=(), settings=None, node="n2", state=None):
    return pytest.param(n2_kw, pods, want_reason, extra, settings or {}, node, state, id=desc)


ELIGIBILITY = [
    # eligibility_test.go getTestCases (node of 1000m there, 2000m here: pods doubled)
    elig_row("underutilized node stays", {}, [on2(cpu=200)], "unneeded"),
    elig_row("highly utilized node is filtered out", {}, [pod("p", "n2", 1200, 128)], "utilization_high"),
    elig_row(
        "marked no scale down is filtered out",
        {"annotations": {"cluster-autoscaler.kubernetes.io/scale-down-disabled": "true"}},
        [on2()],
        "scale_down_disabled",
    ),
    elig_row(
        "high utilization daemonsets node is filtered out (IgnoreDaemonSetsUtilization=false)",
        {},
        [pod("small", "n2", 200, 128), pod("ds", "n2", 1000, 128, owner_kind="DaemonSet")],
        "utilization_high",
    ),
    elig_row(
        "recently deleted node is filtered out (a drain under way)",
        {},
        [on2()],
        "draining",
        state=ScalingState(drains=(Drain("n2", "i-0002", NOW - 30, NOW + 270),)),
    ),
    elig_row(
        "unready node stays while within scale_down_unready_time",
        {"ready": False, "ready_since": NOW - 60, "created_at": NOW - 7200},
        [on2()],
        "not_ready",
    ),
    elig_row(
        "unready node past scale_down_unready_time is removed (ScaleDownUnreadyEnabled)",
        {"ready": False, "ready_since": NOW - 1300, "created_at": NOW - 7200},
        [on2()],
        "unneeded",
    ),
    # the threshold and what counts toward it (eligibility.go: utilization >= threshold is not unneeded)
    elig_row("a node at the threshold is not unneeded", {}, [pod("p", "n2", 1000, 128)], "utilization_high"),
    elig_row("memory counts: the higher of CPU and memory", {}, [pod("p", "n2", 100, 4000)], "utilization_high"),
    elig_row(
        "mirror pods count toward utilization",
        {},
        [pod("p", "n2", 600, 128), pod("static", "n2", 400, 128, owner_kind=None, mirror=True)],
        "utilization_high",
    ),
    elig_row(
        "a lower threshold makes a node busy",
        {},
        [pod("p", "n2", 500, 128)],
        "utilization_high",
        settings={"scale_down_utilization_threshold": 0.2},
    ),
    elig_row(
        "node-fleet's scale-down-disabled annotation",
        {"annotations": {"node-fleet.io/scale-down-disabled": "true"}},
        [on2()],
        "scale_down_disabled",
    ),
    elig_row(
        "scale-down-disabled=false does not disable",
        {"annotations": {"cluster-autoscaler.kubernetes.io/scale-down-disabled": "false"}},
        [on2()],
        "unneeded",
    ),
    elig_row("an empty node", {}, [], "empty"),
    elig_row("a node cordoned by someone else is left alone", {"cordoned": True}, [on2()], "cordoned"),
]


@pytest.mark.parametrize(("n2_kw", "pods", "want_reason", "extra", "overrides", "name", "state"), ELIGIBILITY)
def test_eligibility(n2_kw, pods, want_reason, extra, overrides, name, state):
    ws = [wk(0), wk(1), wk(2, **n2_kw), *extra]
    decision = decide(snapshot(ws, DRAIN_BUSY + pods), state, **overrides)
    assert decision.nodes[name].reason == want_reason
    assert decision.nodes[name].candidate is (want_reason in ("unneeded", "empty"))


def test_the_server_node_is_never_a_worker_verdict():
    """Cluster Autoscaler judges only the nodes of its node groups: here, this fleet's workers."""
    ws = [wk(0), wk(1), wk(2)]
    server = Node("server", 2000, 4096, "i-server", A, control_plane=True)
    stranger = Node("stranger", 2000, 4096, "i-not-ours", A)
    decision = decide(snapshot(ws, DRAIN_BUSY, extra_nodes=(server, stranger)), ripe("server", "stranger", "n2"))
    assert "server" not in decision.nodes and "stranger" not in decision.nodes
    assert decision.remove == ("n2",)


# -- removal: do the pods fit elsewhere, in the room left ------------------------------------------
#
# simulator/cluster_test.go (TestFindNodesToRemove: pods fit elsewhere or not) with the filters
# its scheduling simulator runs (kube-scheduler's): n0 and n1 are the destinations (busy at the
# threshold, 1000m free each unless the row says otherwise); n2 is the candidate.


def removal_row(desc, ws, pods, want: tuple, *, state=None, marks=(), **settings):
    return pytest.param(ws, pods, want, state, settings, id=desc, marks=marks)


TAINTED = Taint("dedicated", "infra", "NoSchedule")
LOCAL_PATH_PV = (((Requirement(HOSTNAME_LABEL, "In", ("n2",)),),),)
WEB = {"app": "web"}
WEB_SELECTOR = LabelSelector(match_labels=(("app", "web"),))
ANTI_WEB = (PodAffinityTerm(WEB_SELECTOR, HOSTNAME_LABEL),)
W3 = [wk(0), wk(1), wk(2)]
BUSY01 = [*fill("n0"), *fill("n1")]
SQUEEZED = [*fill("n0", cpu=1600), *fill("n1", cpu=1600)]
"""Destinations with 400m free each."""

REMOVAL = [
    removal_row("a pod that fits in the room left moves", W3, [*BUSY01, on2(cpu=900)], (True, "unneeded")),
    removal_row(
        "pods fit only within the room left: 450m + 450m, 400m free on each",
        W3,
        [*SQUEEZED, pod("p", "n2", 450, 128), pod("q", "n2", 450, 128)],
        (False, "no_room"),
    ),
    removal_row(
        "pods spread over the destinations' room: 350m + 350m, 400m free on each",
        W3,
        [*SQUEEZED, pod("p", "n2", 350, 128), pod("q", "n2", 350, 128)],
        (True, "unneeded"),
    ),
    removal_row(
        "room is not pooled across nodes: 700m, 400m free on each",
        W3,
        [*SQUEEZED, pod("p", "n2", 700, 128)],
        (False, "no_room"),
    ),
    removal_row(
        "pods-per-node: destinations with no pod slot left",
        [wk(0, alloc_pods=2), wk(1, alloc_pods=2), wk(2)],
        [*BUSY01, on2()],
        (False, "no_room"),
    ),
    removal_row(
        "DaemonSet pods on a destination take its room",
        W3,
        [
            *BUSY01,
            pod("ds0", "n0", 300, 128, owner_kind="DaemonSet"),
            pod("ds1", "n1", 300, 128, owner_kind="DaemonSet"),
            pod("p", "n2", 800, 128),
        ],
        (False, "no_room"),
    ),
    removal_row(
        "the candidate's own DaemonSet pods need no room elsewhere",
        W3,
        [*BUSY01, pod("ds2", "n2", 900, 128, owner_kind="DaemonSet")],
        (True, "empty"),
    ),
    removal_row(
        "a NoSchedule taint on every destination keeps the pod where it is",
        [wk(0, taints=(TAINTED,)), wk(1, taints=(TAINTED,)), wk(2)],
        [*BUSY01, on2()],
        (False, "pod_cannot_move"),
    ),
    removal_row(
        "a pod tolerating the destinations' taint moves",
        [wk(0, taints=(TAINTED,)), wk(1, taints=(TAINTED,)), wk(2)],
        [*BUSY01, on2(placement=Placement(tolerations=(Toleration("dedicated", "Exists"),)))],
        (True, "unneeded"),
    ),
    removal_row(
        "a PreferNoSchedule taint does not keep it",
        [wk(0, taints=(Taint("x", "", "PreferNoSchedule"),)), wk(1, taints=(TAINTED,)), wk(2)],
        [*BUSY01, on2()],
        (True, "unneeded"),
    ),
    removal_row(
        "a nodeSelector only this node matches",
        [wk(0), wk(1), wk(2, labels={"disk": "ssd"})],
        [*BUSY01, on2(placement=Placement(node_selector=(("disk", "ssd"),)))],
        (False, "pod_cannot_move"),
    ),
    removal_row(
        "a nodeSelector another node matches",
        [wk(0), wk(1, labels={"disk": "ssd"}), wk(2, labels={"disk": "ssd"})],
        [*BUSY01, on2(placement=Placement(node_selector=(("disk", "ssd"),)))],
        (True, "unneeded"),
    ),
    removal_row(
        "a local-path PV pins the pod to its node",
        W3,
        [*BUSY01, on2(placement=Placement(volume_affinity=LOCAL_PATH_PV))],
        (False, "pod_cannot_move"),
    ),
    removal_row(
        "a node-name PV affinity (matchFields) pins too",
        W3,
        [*BUSY01, on2(placement=Placement(volume_affinity=(((Requirement(NODE_NAME_FIELD, "In", ("n2",)),),),)))],
        (False, "pod_cannot_move"),
    ),
    removal_row(
        "a zonal volume moves within its zone",
        W3,
        [*BUSY01, on2(placement=Placement(volume_affinity=(((Requirement(ZONE_LABEL, "In", (A,)),),),)))],
        (True, "unneeded"),
    ),
    removal_row(
        "a zonal volume whose zone has no other node",
        [wk(0, az=B), wk(1, az=B), wk(2, az=A)],
        [*BUSY01, on2(placement=Placement(volume_affinity=(((Requirement(ZONE_LABEL, "In", (A,)),),),)))],
        (False, "pod_cannot_move"),
    ),
    removal_row(
        "a hostPort taken on every destination",
        W3,
        [
            *BUSY01,
            pod("h0", "n0", 10, 10, placement=Placement(host_ports=(HostPort(9100),))),
            pod("h1", "n1", 10, 10, placement=Placement(host_ports=(HostPort(9100),))),
            on2(placement=Placement(host_ports=(HostPort(9100),))),
        ],
        (False, "no_room"),
    ),
    removal_row(
        "a hostPort free on one destination",
        W3,
        [
            *BUSY01,
            pod("h0", "n0", 10, 10, placement=Placement(host_ports=(HostPort(9100),))),
            on2(placement=Placement(host_ports=(HostPort(9100),))),
        ],
        (True, "unneeded"),
    ),
    removal_row(
        "hostname anti-affinity with pods on every destination",
        W3,
        [
            *BUSY01,
            pod("w0", "n0", 10, 10, labels=WEB),
            pod("w1", "n1", 10, 10, labels=WEB),
            on2(labels=WEB, placement=Placement(anti_affinity=ANTI_WEB)),
        ],
        (False, "no_room"),
    ),
    removal_row(
        "an existing pod's anti-affinity repels the mover from its node",
        W3,
        [
            *BUSY01,
            pod("w0", "n0", 10, 10, labels=WEB, placement=Placement(anti_affinity=ANTI_WEB)),
            pod("w1", "n1", 10, 10, labels=WEB, placement=Placement(anti_affinity=ANTI_WEB)),
            on2(labels=WEB),
        ],
        (False, "no_room"),
    ),
    removal_row(
        "zone spread: the mover may not pile into the zone it leaves",
        [wk(0), wk(1), wk(2), wk(3)],
        [
            *fill("n0"),
            *fill("n1", cpu=2000),
            *fill("n3", cpu=2000),
            pod("s0", "n0", 10, 10, labels=WEB),
            on2(labels=WEB, placement=Placement(spread=(SpreadConstraint(1, ZONE_LABEL, WEB_SELECTOR),))),
        ],
        (False, "no_room"),
    ),
    removal_row(
        "... without the spread constraint it moves",
        [wk(0), wk(1), wk(2), wk(3)],
        [
            *fill("n0"),
            *fill("n1", cpu=2000),
            *fill("n3", cpu=2000),
            pod("s0", "n0", 10, 10, labels=WEB),
            on2(labels=WEB),
        ],
        (True, "unneeded"),
    ),
    removal_row(
        "a cordoned node is no destination",
        [wk(0, cordoned=True), wk(1, cordoned=True), wk(2)],
        [*BUSY01, on2()],
        (False, "no_room"),
    ),
    removal_row(
        "a cordoned node is no destination (another node without room)",
        [wk(0, cordoned=True), wk(1), wk(2)],
        [*fill("n0"), *fill("n1", cpu=2000), on2()],
        (False, "no_room"),
    ),
    removal_row(
        "the server node takes pods when nothing keeps them off (K3s does not taint it)",
        [wk(0, cordoned=True), wk(1, cordoned=True), wk(2)],
        [*BUSY01, on2()],
        (True, "unneeded"),
        server=True,
    ),
    removal_row(
        "pods still on a draining node take their room first",
        [wk(0), wk(1), wk(2), wk(3)],
        [*BUSY01, *fill("n3", cpu=1800), on2(cpu=900)],
        (False, "no_room"),
        state=ScalingState(
            unneeded_since={"n2": NOW - 3600},
            drains=(Drain("n3", "i-0003", NOW - 60, NOW + 240, DrainPhase.EVICTING),),
        ),
        min_nodes=1,
    ),
]


@pytest.mark.parametrize(("ws", "pods", "want", "state", "overrides"), REMOVAL)
def test_removal(ws, pods, want, state, overrides):
    overrides = dict(overrides)
    extra = ()
    if overrides.pop("server", False):
        extra = (Node("server", 4000, 8192, None, A, control_plane=True, labels={HOSTNAME_LABEL: "server"}),)
    decision = decide(snapshot(ws, pods, extra_nodes=extra), state or ripe("n2"), **overrides)
    verdict = decision.nodes["n2"]
    assert (verdict.candidate, verdict.reason) == want, verdict
    assert ("n2" in decision.remove) is want[0]


def test_two_candidates_never_count_on_the_same_room():
    """cluster_test.go: the second removal sees the room the first one used."""
    ws = [wk(0), wk(1), wk(2), wk(3)]
    pods = [*fill("n0"), *fill("n1", cpu=2000), pod("p", "n2", 800, 128), pod("q", "n3", 800, 128)]
    decision = decide(snapshot(ws, pods), ripe("n2", "n3"), max_drains_in_parallel=2)
    assert len(decision.remove) == 1
    other = ({"n2", "n3"} - set(decision.remove)).pop()
    assert decision.nodes[other].reason == "no_room"


def test_a_node_that_received_moved_pods_is_not_removed_from_under_them():
    """planner/planner.go categorizeNodes: a node chosen for removal stops being a destination, and
    a pod moved in the simulation must still have a node once every removal is done.

    n0 and n1 have 700m free. n2 (40 %) goes first: its 800m pod fits only on n3. Then n3 (42.5 %):
    its 600m and 250m pods fit on n0 and n1. Removing both would leave n2's pod nowhere."""
    ws = [wk(0), wk(1), wk(2), wk(3)]
    pods = [
        *fill("n0", cpu=1300),
        *fill("n1", cpu=1300),
        pod("p", "n2", 800, 128),
        pod("q", "n3", 600, 128),
        pod("r", "n3", 250, 128),
    ]
    decision = decide(snapshot(ws, pods), ripe("n2", "n3"), max_drains_in_parallel=2)
    assert len(decision.remove) == 1, decision.remove


# -- the estimate ---------------------------------------------------------------------------------
#
# estimator/binpacking_estimator_test.go: new workers of the template (2000m, 7680Mi, 110 pods,
# WORKER_LABELS, WORKER_TAINTS, the DaemonSets that land on it). Two running workers, full.

EST_WORKERS = [wk(0), wk(1)]
EST_FULL = [pod(f"f{k}", f"n{k % 2}", 1000, 512) for k in range(4)]


def est_row(desc, pending_pods, launches, unhelpable=(), *, daemonsets=(), **settings):
    return pytest.param(pending_pods, launches, unhelpable, daemonsets, settings, id=desc)


def many(n: int, prefix: str = "p", **kw) -> list:
    return [pending(f"{prefix}{k}", **kw) for k in range(n)]


HOSTNAME_ANTI = Placement(anti_affinity=ANTI_WEB)
ZONE_SPREAD = Placement(spread=(SpreadConstraint(1, ZONE_LABEL, LabelSelector(match_labels=(("app", "web"),))),))
HOSTNAME_SPREAD_2 = Placement(
    spread=(SpreadConstraint(2, HOSTNAME_LABEL, LabelSelector(match_labels=(("app", "web"),))),)
)
BATCH_TAINT = "dedicated=batch:NoSchedule"
TOLERATES_BATCH = Placement(tolerations=(Toleration("dedicated", "Equal", "batch", "NoSchedule"),))

ESTIMATE = [
    est_row("simple resource-based binpacking", many(10, cpu=500), {A: 2, B: 1}),
    est_row("memory-bound pods", many(3, cpu=100, mem=5000), {A: 2, B: 1}),
    est_row("pods-per-node bound binpacking", many(5, cpu=100), {A: 2, B: 1}, node_max_pods=2),
    est_row(
        "hostport conflict forces pod-per-node",
        many(3, cpu=100, placement=Placement(host_ports=(HostPort(8080),))),
        {A: 2, B: 1},
    ),
    est_row(
        "hostports on other ports share a node",
        [pending(f"p{k}", cpu=100, placement=Placement(host_ports=(HostPort(8080 + k),))) for k in range(3)],
        {A: 1},
    ),
    est_row(
        "hostname anti-affinity forces pod-per-node",
        many(3, cpu=100, labels=WEB, placement=HOSTNAME_ANTI),
        {A: 2, B: 1},
    ),
    est_row(
        "hostname topology spreading with maxSkew=2 forces 2 pods per node",
        many(6, cpu=100, labels=WEB, placement=HOSTNAME_SPREAD_2),
        {A: 2, B: 1},
    ),
    est_row("limiter cuts binpacking (max_nodes_per_scale_up)", many(20, cpu=1000), 5, max_nodes_per_scale_up=5),
    est_row("limiter cuts binpacking (max_nodes)", many(20, cpu=1000), 4, max_nodes=6),
    est_row(
        "zone spread puts new workers in both zones", many(4, cpu=100, labels=WEB, placement=ZONE_SPREAD), {A: 1, B: 1}
    ),
    est_row(
        "DaemonSet pods that land on a new worker take its room",
        many(4, cpu=500),
        {A: 1, B: 1},
        daemonsets=(pod("agent", None, 300, 128, namespace="kube-system", owner_kind="DaemonSet"),),
    ),
    est_row(
        "a DaemonSet that does not land on the template takes no room",
        many(4, cpu=500),
        {A: 1},
        daemonsets=(
            pod(
                "gpu-agent",
                None,
                300,
                128,
                namespace="kube-system",
                owner_kind="DaemonSet",
                placement=Placement(node_selector=(("gpu", "true"),)),
            ),
        ),
    ),
    est_row(
        "a nodeSelector the template's WORKER_LABELS satisfy",
        many(1, placement=Placement(node_selector=(("pool", "batch"),))),
        {A: 1},
        worker_labels="pool=batch",
    ),
    est_row(
        "a nodeSelector no new worker satisfies: reported, never launched for",
        many(1, placement=Placement(node_selector=(("gpu", "true"),))),
        {},
        [("default/p0", "NodeAffinity")],
    ),
    est_row(
        "a pod that does not tolerate WORKER_TAINTS: reported",
        many(1),
        {},
        [("default/p0", "TaintToleration")],
        worker_taints=BATCH_TAINT,
    ),
    est_row(
        "a pod tolerating WORKER_TAINTS is launched for",
        many(1, placement=TOLERATES_BATCH),
        {A: 1},
        worker_taints=BATCH_TAINT,
    ),
    est_row(
        "a pod larger than a worker: reported", [pending("huge", cpu=3000)], {}, [("default/huge", "NodeResourcesFit")]
    ),
    est_row(
        "a pod that fits a worker but not beside its DaemonSets: reported",
        [pending("big", cpu=1900)],
        {},
        [("default/big", "NodeResourcesFit")],
        daemonsets=(pod("agent", None, 300, 128, namespace="kube-system", owner_kind="DaemonSet"),),
    ),
    est_row(
        "a zonal volume: the worker goes to the volume's zone",
        many(1, placement=Placement(volume_affinity=(((Requirement(ZONE_LABEL, "In", (B,)),),),))),
        {B: 1},
    ),
    est_row(
        "a zonal volume in a zone the fleet cannot launch in: reported",
        many(1, placement=Placement(volume_affinity=(((Requirement(ZONE_LABEL, "In", ("eu-west-1c",)),),),))),
        {},
        [("default/p0", "VolumeBinding")],
    ),
    est_row(
        "a node-local volume on a running node: reported",
        many(1, placement=Placement(volume_affinity=LOCAL_PATH_PV)),
        {},
        [("default/p0", "VolumeBinding")],
    ),
    est_row(
        "a volume that cannot be read: reported",
        many(1, placement=Placement(volume_problem="PersistentVolume pv-1 not found")),
        {},
        [("default/p0", "VolumeBinding")],
    ),
    est_row(
        "hostable pods are launched for beside an unhelpable one",
        [*many(2, cpu=1500), pending("huge", cpu=3000)],
        {A: 1, B: 1},
        [("default/huge", "NodeResourcesFit")],
    ),
    est_row(
        "pod affinity to a running pod's zone: launched in that zone",
        many(
            1,
            placement=Placement(affinity=(PodAffinityTerm(LabelSelector(match_labels=(("app", "db"),)), ZONE_LABEL),)),
        ),
        {B: 1},
    ),
]


@pytest.mark.parametrize(("pending_pods", "launches", "unhelpable", "daemonsets", "overrides"), ESTIMATE)
def test_estimate(pending_pods, launches, unhelpable, daemonsets, overrides):
    running = [*EST_FULL, pod("db", "n1", 10, 10, labels={"app": "db"})]
    snap = replace(snapshot(EST_WORKERS, running + pending_pods), daemonsets=daemonsets)
    decision = decide(snap, **overrides)
    if isinstance(launches, int):  # how many, whatever the zones
        assert decision.launch_count == launches
        assert max(decision.launches.values()) - min(decision.launches.values()) <= 1
    else:
        assert dict(decision.launches) == launches
    assert [(u.pod, u.reason) for u in decision.unhelpable] == list(unhelpable)
    if launches:
        assert decision.action is Action.SCALE_UP and R.UNSCHEDULABLE_PODS in decision.codes
    else:
        assert decision.action is not Action.SCALE_UP
    if unhelpable:
        assert R.NO_WORKER_FITS in decision.codes


def test_zonal_spread_only_allows_max_skew_pods_in_the_one_zone_the_fleet_launches_in():
    """binpacking_estimator_test.go "zonal topology spreading with maxSkew=2 only allows 2 pods to
    schedule": the template's zone may run 2 more than an empty zone (a running node's), so 2 of
    the 8 pods get a new worker and 6 are reported."""
    spread2 = Placement(spread=(SpreadConstraint(2, ZONE_LABEL, WEB_SELECTOR),))
    snap = snapshot(EST_WORKERS, [*EST_FULL, *many(8, cpu=20, mem=100, labels=WEB, placement=spread2)])
    decision = decide(replace(snap, zones=(A,)))
    assert dict(decision.launches) == {A: 1}
    assert [u.reason for u in decision.unhelpable] == ["PodTopologySpread"] * 6


def test_unhelpable_pods_say_which_filter_and_where():
    snap = snapshot(EST_WORKERS, [*EST_FULL, pending("gpu", placement=Placement(node_selector=(("gpu", "true"),)))])
    (u,) = decide(snap).unhelpable
    assert (u.pod, u.reason) == ("default/gpu", "NodeAffinity")
    assert "didn't match Pod's node affinity/selector" in u.detail


def test_an_unhelpable_pod_never_launches_even_over_many_cycles():
    """Cluster Autoscaler: a pod no node group can host is not retried into a launch."""
    snap = snapshot(EST_WORKERS, [*EST_FULL, pending("gpu", placement=Placement(node_selector=(("gpu", "true"),)))])
    state = ScalingState()
    for minute in range(5):
        decision = plan(snap, state, Settings(), NOW + 60 * minute)
        assert decision.launch_count == 0
        state = decision.state
