"""Scale-down and the estimate over random constrained clusters, checked by brute force.

Random workers (labels, taints, pod slots) carry random pods (requests, owners, nodeSelectors,
tolerations, hostPorts, hostname anti-affinity, zone spread, PDBs, node-local and zonal volumes),
and `planner.plan` decides. Then an independent checker (its own filters and bookkeeping, sharing
only the one-line matchers `requirement_matches` and `tolerates` with placement.py) asks:

- removal: for the nodes the planner removes, is there a destination for each of their pods, on
  the nodes kept, such that every pod passes every filter in the room left after all the other
  moves (the pods placed in the planner's order: removal order, largest first)? Are the PDB
  budgets kept, and does no removed node hold a pod that must not move?
- estimate: is every pending pod that no new worker could ever host (its selector, taints,
  volumes, a hostPort a landing DaemonSet holds, or its size beside those DaemonSets) reported
  as unhelpable, and is no worker launched for it?

- Room's books: after any sequence of place, undo, withdraw, restore and checks (which build
  its lazy indexes), every verdict equals the one a Room built afresh from the same nodes and
  pods gives (it finds the undo-on-a-withdrawn-node spread bug fixed in d53209d).

Default profile: a few seconds, the same examples every run (derandomized). `HYPOTHESIS_PROFILE=long`
runs ten times as many, random, as in tests/reliability/test_fuzz_*.py. The long profile found two
planner bugs, kept below as regression examples: a node that received moved pods was removed
from under them, and removals drained in parallel were each checked while the others' pods
still counted.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from autoscaler.config import Settings
from autoscaler.model import SAFE_TO_EVICT, ClusterSnapshot, MetricsView, Node, Pod, ScalingState
from autoscaler.placement import requirement_matches, tolerates
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
from builders import NOW, ZONES, worker

LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
SCALE = 10 if LONG else 1


def budget(examples: int) -> settings:
    """`examples` in the default profile, the same every run (derandomized); ten times as many in
    `long`, random."""
    return settings(
        max_examples=examples * SCALE,
        derandomize=not LONG,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


# -- the independent checker ---------------------------------------------------------------------


def selects(selector: LabelSelector | None, labels: Mapping[str, str]) -> bool:
    if selector is None:
        return False
    for k, v in selector.match_labels:
        if labels.get(k) != v:
            return False
    return all(requirement_matches(r, labels.get(r.key)) for r in selector.match_expressions)


def node_term_ok(term: Sequence[Requirement], name: str, labels: Mapping[str, str]) -> bool:
    if not term:
        return False
    return all(requirement_matches(r, name if r.key == NODE_NAME_FIELD else labels.get(r.key)) for r in term)


def affinity_ok(pod: Pod, name: str, labels: Mapping[str, str]) -> bool:
    p = pod.placement
    if any(labels.get(k) != v for k, v in p.node_selector):
        return False
    return p.node_affinity is None or any(node_term_ok(t, name, labels) for t in p.node_affinity)


def taints_ok(pod: Pod, taints: Sequence[Taint]) -> bool:
    return all(
        t.effect == "PreferNoSchedule" or any(tolerates(tol, t) for tol in pod.placement.tolerations) for t in taints
    )


def volumes_ok(pod: Pod, name: str, labels: Mapping[str, str]) -> bool:
    p = pod.placement
    if p.volume_problem is not None:
        return False
    return all(any(node_term_ok(t, name, labels) for t in terms) for terms in p.volume_affinity)


def ports_clash(a: HostPort, b: HostPort) -> bool:
    wild = ("", "0.0.0.0")
    return a.port == b.port and a.protocol == b.protocol and (a.ip == b.ip or a.ip in wild or b.ip in wild)


def counts_in(term: PodAffinityTerm, owner: Pod, other: Pod) -> bool:
    if term.all_namespaces:
        ns_ok = True
    elif term.namespaces:
        ns_ok = other.namespace in term.namespaces
    else:
        ns_ok = other.namespace == owner.namespace
    return ns_ok and selects(term.selector, other.labels)


@dataclass
class Host:
    """A kept node in the checker's own books."""

    name: str
    labels: Mapping[str, str]
    taints: tuple[Taint, ...]
    cpu: int
    mem: int
    slots: int
    pods: list[Pod] = field(default_factory=list)

    def take(self, pod: Pod) -> None:
        self.pods.append(pod)
        self.cpu -= pod.cpu_m
        self.mem -= pod.mem_mib
        self.slots -= 1

    def drop(self, pod: Pod) -> None:
        self.pods.remove(pod)
        self.cpu += pod.cpu_m
        self.mem += pod.mem_mib
        self.slots += 1


def spread_ok(pod: Pod, host: Host, hosts: Sequence[Host]) -> bool:
    """PodTopologySpread (DoNotSchedule), the pod not counted where it is."""
    p = pod.placement
    keys = [c.topology_key for c in p.spread]
    for c in p.spread:
        value = host.labels.get(c.topology_key)
        if value is None:
            return False
        domains: Counter[str] = Counter()
        for h in hosts:
            if any(k not in h.labels for k in keys):
                continue
            if c.honor_node_affinity and not affinity_ok(pod, h.name, h.labels):
                continue
            if c.honor_taints and not taints_ok(pod, h.taints):
                continue
            domains[h.labels[c.topology_key]] += sum(
                1 for q in h.pods if q is not pod and q.namespace == pod.namespace and selects(c.selector, q.labels)
            )
        floor = 0 if len(domains) < c.min_domains else min(domains.values(), default=0)
        own = 1 if selects(c.selector, pod.labels) else 0
        if domains.get(value, 0) + own - floor > c.max_skew:
            return False
    return True


def admits(pod: Pod, host: Host, hosts: Sequence[Host], *, spread: bool = True) -> bool:
    """kube-scheduler's filters, written out again."""
    p = pod.placement
    if (pod.cpu_m > 0 and pod.cpu_m > host.cpu) or (pod.mem_mib > 0 and pod.mem_mib > host.mem) or host.slots < 1:
        return False
    if not taints_ok(pod, host.taints) or not affinity_ok(pod, host.name, host.labels):
        return False
    if not volumes_ok(pod, host.name, host.labels):
        return False
    if any(ports_clash(a, b) for a in p.host_ports for q in host.pods for b in q.placement.host_ports):
        return False
    if spread and not spread_ok(pod, host, hosts):
        return False
    # InterPodAffinity: the pod's anti-affinity, the existing pods' anti-affinity, the pod's affinity
    for term in p.anti_affinity:
        value = host.labels.get(term.topology_key)
        if value is not None and any(
            counts_in(term, pod, q) for h in hosts if h.labels.get(term.topology_key) == value for q in h.pods
        ):
            return False
    for h in hosts:
        for q in h.pods:
            for term in q.placement.anti_affinity:
                value = h.labels.get(term.topology_key)
                if value is not None and host.labels.get(term.topology_key) == value and counts_in(term, q, pod):
                    return False
    return not p.affinity  # not generated: a pod with affinity is refused rather than judged here


def blocked(pod: Pod) -> bool:
    """Cluster Autoscaler's drainability rules, written out again (DaemonSet and mirror pods stay)."""
    if pod.mirror or pod.owner_kind == "DaemonSet":
        return False
    ann = pod.annotations
    if ann.get(SAFE_TO_EVICT) == "false" or ann.get("karpenter.sh/do-not-disrupt") == "true":
        return True
    if ann.get(SAFE_TO_EVICT) == "true":
        return False
    if pod.owner_kind is None:
        return True
    if pod.namespace == "kube-system" and not (pod.has_pdb or pod.pdbs):
        return True
    return pod.local_storage  # no safe-to-evict-local-volumes generated


def placeable(movers: Sequence[Pod], hosts: Sequence[Host]) -> list[str] | None:
    """A destination for each mover such that, once all are placed, each passes every filter in
    the room the others leave (the pod itself not counted); None if there is none. Exhaustive:
    every host is tried for every pod. Resources, ports and (anti-)affinity are pairwise, so they
    are checked as pods are placed; topology spread is not monotone, so it is checked on each
    complete assignment."""

    def spread_holds() -> bool:
        for h in hosts:
            for q in h.pods:
                if q in movers and q.placement.spread and not spread_ok(q, h, hosts):
                    return False
        return True

    def go(i: int) -> list[str] | None:
        if i == len(movers):
            return [] if spread_holds() else None
        pod = movers[i]
        for host in hosts:
            if admits(pod, host, hosts, spread=False):
                host.take(pod)
                rest = go(i + 1)
                if rest is not None:
                    return [host.name, *rest]
                host.drop(pod)
        return None

    return go(0)


# -- random clusters -----------------------------------------------------------------------------

INFRA = Taint("dedicated", "infra", "NoSchedule")
TOLERATE_INFRA = Toleration("dedicated", "Exists")
APPS = ("web", "db", "batch")


def app_selector(app: str) -> LabelSelector:
    return LabelSelector(match_labels=(("app", app),))


@st.composite
def a_node(draw, i: int) -> Node:
    _, node = worker(i)
    labels = {ZONE_LABEL: node.az, HOSTNAME_LABEL: node.name}
    disk = draw(st.sampled_from([None, "ssd", "hdd"]))
    if disk:
        labels["disk"] = disk
    taints = draw(st.sampled_from([(), (), (INFRA,), (Taint("spot", "", "PreferNoSchedule"),)]))
    slots = draw(st.sampled_from([3, 5, 110]))
    return replace(node, labels=labels, taints=taints, alloc_pods=slots)


@st.composite
def a_pod(draw, name: str, node: Node, pdb_names: Sequence[str]) -> Pod:
    app = draw(st.sampled_from(APPS))
    kind = draw(st.sampled_from(["ReplicaSet"] * 16 + ["StatefulSet", "DaemonSet", "mirror", "bare"]))
    owner = {"mirror": None, "bare": None}.get(kind, kind)
    placement = Placement(
        node_selector=draw(st.sampled_from([()] * 4 + [(("disk", "ssd"),)])),
        tolerations=draw(st.sampled_from([(), (), (TOLERATE_INFRA,)])),
        host_ports=draw(st.sampled_from([()] * 6 + [(HostPort(9100),), (HostPort(80, ip="10.0.0.1"),)])),
        anti_affinity=draw(st.sampled_from([()] * 3 + [(PodAffinityTerm(app_selector(app), HOSTNAME_LABEL),)])),
        spread=draw(
            st.sampled_from(
                [
                    *[()] * 4,
                    (SpreadConstraint(1, ZONE_LABEL, app_selector(app)),),
                    (SpreadConstraint(1, ZONE_LABEL, app_selector(app), honor_taints=True),),
                    (SpreadConstraint(2, HOSTNAME_LABEL, app_selector(app)),),
                ]
            )
        ),
        volume_affinity=draw(
            st.sampled_from(
                [
                    *[()] * 8,
                    (((Requirement(HOSTNAME_LABEL, "In", (node.name,)),),),),  # local-path
                    (((Requirement(ZONE_LABEL, "In", (node.az,)),),),),  # zonal EBS
                ]
            )
        ),
    )
    return Pod(
        name,
        draw(st.sampled_from(["default"] * 20 + ["kube-system"])),
        draw(st.sampled_from([0, 50, 100, 200, 300, 500])),
        draw(st.sampled_from([0, 128, 256, 512, 1024])),
        node=node.name,
        owner_kind=owner,
        mirror=kind == "mirror",
        annotations=draw(st.sampled_from([{}] * 20 + [{SAFE_TO_EVICT: "true"}, {SAFE_TO_EVICT: "false"}])),
        labels={"app": app},
        placement=placement,
        pdbs=draw(st.sampled_from([(), (), (), (), *((n,) for n in pdb_names)])),
        local_storage=draw(st.sampled_from([False] * 25 + [True])),
    )


@st.composite
def clusters(draw) -> tuple[ClusterSnapshot, ScalingState, Settings]:
    count = draw(st.integers(2, 5))
    nodes = [draw(a_node(i)) for i in range(count)]
    pdbs = {f"default/{app}": draw(st.integers(0, 4)) for app in APPS}
    pdbs["kube-system/dns"] = draw(st.integers(0, 2))
    pods = []
    for n in nodes:
        for k in range(draw(st.sampled_from([0, 1, 2, 2, 3, 3, 4]))):
            pods.append(draw(a_pod(f"{n.name}-{k}", n, list(pdbs))))
    # A pending pod no worker can host sometimes: it must neither launch nor hold scale-down.
    if draw(st.booleans()):
        pods.append(
            Pod(
                "gpu-job",
                "default",
                100,
                128,
                unschedulable_since=NOW - 600,
                placement=Placement(node_selector=(("gpu", "true"),)),
            )
        )
    instances = tuple(worker(i)[0] for i in range(count))
    metrics = MetricsView(cluster_cpu=0.1, node_cpu={n.name: 0.05 for n in nodes})
    snap = ClusterSnapshot(tuple(nodes), tuple(pods), instances, metrics, ZONES, pdbs=pdbs)
    state = ScalingState(unneeded_since={n.name: NOW - 3600 for n in nodes})
    s = Settings(
        min_nodes=1,
        max_nodes=10,
        scale_down_utilization_threshold=draw(st.sampled_from([0.5, 0.8, 1.0, 1.0])),
        max_drains_in_parallel=draw(st.sampled_from([1, 2, 3, 3])),
    )
    return snap, state, s


def hosts_after(snap: ClusterSnapshot, removed: set[str]) -> list[Host]:
    hosts = []
    for n in snap.nodes:
        if n.name in removed or not n.ready or n.cordoned:
            continue
        h = Host(n.name, n.labels, n.taints, n.alloc_cpu_m, n.alloc_mem_mib, n.alloc_pods)
        for p in snap.pods:
            if p.node == n.name:
                h.take(p)
        hosts.append(h)
    return hosts


def describe(snap: ClusterSnapshot) -> str:
    """The cluster in a few lines, for a failing example."""
    lines = []
    for n in snap.nodes:
        pods = [
            f"{p.name}({p.owner_kind or ('mirror' if p.mirror else 'bare')} {p.cpu_m}m/{p.mem_mib}Mi {dict(p.labels)}"
            f"{' ' + repr(p.placement) if p.placement != Placement() else ''}{' pdbs=' + repr(p.pdbs) if p.pdbs else ''})"
            for p in snap.pods
            if p.node == n.name
        ]
        lines.append(f"{n.name} {dict(n.labels)} taints={n.taints} pods<={n.alloc_pods}: {pods}")
    lines.append(f"pdbs {dict(snap.pdbs)}")
    return "\n".join(lines)


def idle_four(nodes: list[Node], pods: list[Pod]) -> tuple[ClusterSnapshot, ScalingState, Settings]:
    """The four workers' `nodes` holding `pods`, every node idle and unneeded for an hour; two drains
    may run at once."""
    snap = ClusterSnapshot(
        tuple(nodes),
        tuple(pods),
        tuple(worker(i)[0] for i in range(4)),
        MetricsView(cluster_cpu=0.1, node_cpu={n.name: 0.05 for n in nodes}),
        ZONES,
    )
    state = ScalingState(unneeded_since={n.name: NOW - 3600 for n in nodes})
    return snap, state, Settings(min_nodes=1, max_drains_in_parallel=2)


def stranded() -> tuple[ClusterSnapshot, ScalingState, Settings]:
    """The smallest cluster the long profile found: n0's pod moves onto n1 (first fit), then n1 is
    removed too and only its own pods are moved; n3's one free slot pair cannot take all three."""
    nodes = []
    for i in range(4):
        _, n = worker(i)
        nodes.append(replace(n, labels={ZONE_LABEL: n.az, HOSTNAME_LABEL: n.name}, alloc_pods=3))
    pods = [
        Pod(f"{n}-{k}", "default", 0, 0, node=n, labels={"app": "web"})
        for n, k in (("n0", 0), ("n1", 0), ("n1", 1), ("n3", 0))
    ]
    return idle_four(nodes, pods)


@settings(max_examples=1, database=None, deadline=None)
@given(st.just(stranded()))
def test_the_stranding_example(case):
    check_removal(case)


def parallel_spread() -> tuple[ClusterSnapshot, ScalingState, Settings]:
    """Found by the long profile (with the stranding bug fixed locally), then made small: n2 and n3
    are removed in one decision, so drained in parallel. n2's db pod (hostPort 9100, zone spread
    maxSkew 1) can only go to n0 (zone A; n1 holds the port), which the planner allows because
    n3's db pod still counts in zone B; but n3's db pod (nodeSelector disk=ssd) moves to n0 too.
    Once both have moved, zone A holds 2 db pods and zone B none: if n3 is drained first, n2's pod
    has nowhere to go."""
    keep = {"cluster-autoscaler.kubernetes.io/scale-down-disabled": "true"}
    nodes = []
    for i, extra in enumerate(({"disk": "ssd"}, {}, {}, {})):
        _, n = worker(i)
        labels = {ZONE_LABEL: n.az, HOSTNAME_LABEL: n.name, **extra}
        nodes.append(replace(n, labels=labels, annotations=keep if i < 2 else {}))
    db = {"app": "db"}
    pods = [
        Pod("exporter", "default", 0, 0, node="n1", placement=Placement(host_ports=(HostPort(9100),))),
        Pod(
            "db-0",
            "default",
            0,
            0,
            node="n2",
            labels=db,
            placement=Placement(
                host_ports=(HostPort(9100),), spread=(SpreadConstraint(1, ZONE_LABEL, app_selector("db")),)
            ),
        ),
        Pod("db-1", "default", 0, 0, node="n3", labels=db, placement=Placement(node_selector=(("disk", "ssd"),))),
    ]
    return idle_four(nodes, pods)


@settings(max_examples=1, database=None, deadline=None)
@given(st.just(parallel_spread()))
def test_the_parallel_drain_spread_example(case):
    check_removal(case)


@budget(100)
@given(clusters())
def test_every_removed_nodes_pods_have_a_place_in_the_room_left(case):
    check_removal(case)


def check_removal(case) -> None:
    snap, state, s = case
    decision = plan(snap, state, s, NOW)
    removed = list(decision.remove)
    note(describe(snap))
    note(f"removed {removed}; verdicts {dict(decision.nodes)}")
    assert decision.launch_count == 0, "no launch for a pod no new worker can host"
    event(f"removed {len(removed)} nodes")
    if not removed:
        return
    movers: list[Pod] = []
    for name in removed:
        own = [p for p in snap.pods if p.node == name and not (p.mirror or p.owner_kind == "DaemonSet")]
        assert not any(blocked(p) for p in own), f"{name} holds a pod that must not move"
        movers += sorted(own, key=lambda p: (p.cpu_m, p.mem_mib), reverse=True)
    used = Counter(k for p in movers for k in p.pdbs if k in snap.pdbs)
    assert all(n <= snap.pdbs[k] for k, n in used.items()), f"PDB budgets exceeded: {used}"
    assert len(snap.nodes) - len(removed) >= s.min_nodes
    where = placeable(movers, hosts_after(snap, set(removed)))
    assert where is not None, f"no place for the pods of {removed} on the nodes kept"
    event(f"moved {min(len(movers), 4)}+ pods" if len(movers) >= 4 else f"moved {len(movers)} pods")


# -- the estimate: nothing is launched for a pod no new worker can host -----------------------------

GPU = (("gpu", "true"),)


@st.composite
def pending_cases(draw) -> tuple[ClusterSnapshot, Settings]:
    count = draw(st.integers(2, 3))
    nodes = [replace(draw(a_node(i)), alloc_pods=2) for i in range(count)]
    full = [Pod(f"full-{n.name}", "default", 1900, 512, node=n.name) for n in nodes]
    worker_labels = draw(st.sampled_from(["", "pool=general", "pool=batch"]))
    worker_taints = draw(st.sampled_from(["", "dedicated=infra:NoSchedule"]))
    daemonsets = draw(
        st.sampled_from(
            [
                (),
                (Pod("agent", "kube-system", 300, 256, owner_kind="DaemonSet"),),
                (
                    Pod(
                        "exporter",
                        "kube-system",
                        100,
                        64,
                        owner_kind="DaemonSet",
                        placement=Placement(host_ports=(HostPort(9100),), tolerations=(Toleration(operator="Exists"),)),
                    ),
                ),
                (
                    Pod(
                        "batch-agent",
                        "kube-system",
                        500,
                        256,
                        owner_kind="DaemonSet",
                        placement=Placement(node_selector=(("pool", "batch"),)),
                    ),
                ),
            ]
        )
    )
    pending = []
    for k in range(draw(st.integers(1, 6))):
        app = draw(st.sampled_from(APPS))
        placement = Placement(
            node_selector=draw(st.sampled_from([(), (), (("pool", "batch"),), GPU])),
            tolerations=draw(st.sampled_from([(), (TOLERATE_INFRA,)])),
            host_ports=draw(st.sampled_from([(), (), (HostPort(9100),), (HostPort(8080),)])),
            anti_affinity=draw(st.sampled_from([(), (PodAffinityTerm(app_selector(app), HOSTNAME_LABEL),)])),
            spread=draw(st.sampled_from([(), (SpreadConstraint(1, ZONE_LABEL, app_selector(app)),)])),
            volume_affinity=draw(
                st.sampled_from(
                    [
                        (),
                        (),
                        (((Requirement(ZONE_LABEL, "In", (ZONES[1],)),),),),
                        (((Requirement(ZONE_LABEL, "In", ("eu-west-1c",)),),),),
                        (((Requirement(HOSTNAME_LABEL, "In", (nodes[0].name,)),),),),
                    ]
                )
            ),
            volume_problem=draw(st.sampled_from([None] * 6 + ["PersistentVolume pv-x not found"])),
        )
        pending.append(
            Pod(
                f"p{k}",
                "default",
                draw(st.sampled_from([100, 500, 1200, 1800, 2500])),
                draw(st.sampled_from([128, 1024, 7000])),
                labels={"app": app},
                unschedulable_since=NOW - 300,
                placement=placement,
            )
        )
    instances = tuple(worker(i)[0] for i in range(count))
    metrics = MetricsView(cluster_cpu=0.2, node_cpu={n.name: 0.2 for n in nodes})
    snap = ClusterSnapshot(tuple(nodes), tuple(full + pending), instances, metrics, ZONES, daemonsets=daemonsets)
    return snap, Settings(min_nodes=1, worker_labels=worker_labels, worker_taints=worker_taints)


def no_new_worker_hosts(pod: Pod, snap: ClusterSnapshot, s: Settings) -> bool:
    """True when, in every zone, a new worker of the template turns the pod away for a reason no
    other pending pod can change: taints, selector, volumes, a landing DaemonSet's hostPort, or
    size beside the landing DaemonSets."""
    for zone in snap.zones:
        name = f"template-{zone}"
        labels = {**s.labels, ZONE_LABEL: zone, HOSTNAME_LABEL: name}
        landing = [d for d in snap.daemonsets if affinity_ok(d, name, labels) and taints_ok(d, s.taints)]
        cpu = s.node_cpu_m - sum(d.cpu_m for d in landing)
        mem = s.node_mem_mib - sum(d.mem_mib for d in landing)
        if (
            (pod.cpu_m > 0 and pod.cpu_m > cpu)
            or (pod.mem_mib > 0 and pod.mem_mib > mem)
            or s.node_max_pods - len(landing) < 1
        ):
            continue
        if not taints_ok(pod, s.taints) or not affinity_ok(pod, name, labels) or not volumes_ok(pod, name, labels):
            continue
        if any(ports_clash(a, b) for a in pod.placement.host_ports for d in landing for b in d.placement.host_ports):
            continue
        return False
    return True


@budget(100)
@given(pending_cases())
def test_no_launch_for_a_pod_no_new_worker_can_host(case):
    snap, s = case
    decision = plan(snap, ScalingState(), s, NOW)
    pending = [p for p in snap.pods if p.node is None]
    hopeless = {p.key for p in pending if no_new_worker_hosts(p, snap, s)}
    reported = {u.pod for u in decision.unhelpable}
    note(f"hopeless {hopeless}; reported {reported}; launches {dict(decision.launches)}")
    assert hopeless <= reported, "a pod no new worker can host must be reported"
    assert decision.launch_count <= len(pending) - len(hopeless), "a launch for a pod no new worker can host"
    event(f"{len(hopeless)} of {len(pending)} hopeless, {decision.launch_count} launched")
    if hopeless == {p.key for p in pending}:
        assert decision.launch_count == 0


# -- Room's incremental books against a Room built afresh -------------------------------------------

PROBE_APPS = ("web", "db")


def probes() -> list[Pod]:
    """Pods whose verdicts read every index the Room keeps: spread counts and domains (zone and
    hostname, skews 1-3, minDomains, the taints policy), anti-affinity both ways, affinity and
    its first-pod rule, ports and room."""
    out = []
    for app in PROBE_APPS:
        sel = app_selector(app)
        for skew in (1, 2, 3):
            out.append(
                Pod(
                    f"z{skew}-{app}",
                    "default",
                    0,
                    0,
                    labels={"app": app},
                    placement=Placement(spread=(SpreadConstraint(skew, ZONE_LABEL, sel),)),
                )
            )
        out += [
            Pod(
                f"h1-{app}",
                "default",
                0,
                0,
                labels={"app": app},
                placement=Placement(spread=(SpreadConstraint(1, HOSTNAME_LABEL, sel),)),
            ),
            Pod(
                f"min3-{app}",
                "default",
                0,
                0,
                labels={"app": app},
                placement=Placement(spread=(SpreadConstraint(1, ZONE_LABEL, sel, min_domains=3),)),
            ),
            Pod(
                f"taints-{app}",
                "default",
                0,
                0,
                labels={"app": app},
                placement=Placement(spread=(SpreadConstraint(1, HOSTNAME_LABEL, sel, honor_taints=True),)),
            ),
            Pod(
                f"anti-{app}",
                "default",
                0,
                0,
                labels={"app": app},
                placement=Placement(anti_affinity=(PodAffinityTerm(sel, ZONE_LABEL),)),
            ),
            Pod(f"plain-{app}", "default", 0, 0, labels={"app": app}),
            Pod(
                f"aff-{app}",
                "default",
                0,
                0,
                labels={"app": app},
                placement=Placement(affinity=(PodAffinityTerm(sel, ZONE_LABEL),)),
            ),
        ]
    out.append(Pod("port", "default", 0, 0, placement=Placement(host_ports=(HostPort(9100),))))
    out.append(Pod("big", "default", 1500, 0))
    return out


@st.composite
def room_scripts(draw):
    nodes = [replace(draw(a_node(i)), alloc_pods=110) for i in range(draw(st.integers(2, 4)))]
    steps = []
    for k in range(draw(st.integers(1, 20))):
        op = draw(st.sampled_from(["place", "place", "place", "undo", "withdraw", "restore", "check"]))
        app = draw(st.sampled_from(PROBE_APPS))
        placement = Placement(
            host_ports=draw(st.sampled_from([(), (), (HostPort(9100),)])),
            anti_affinity=draw(st.sampled_from([(), (), (PodAffinityTerm(app_selector(app), HOSTNAME_LABEL),)])),
        )
        pod = Pod(f"m{k}", "default", draw(st.sampled_from([0, 200, 700])), 0, labels={"app": app}, placement=placement)
        steps.append((op, draw(st.integers(0, 99)), pod))
    return nodes, steps


@budget(100)
@given(room_scripts())
def test_room_books_match_a_room_built_afresh(script):
    """place, undo, withdraw and restore in any order: every verdict equals the one a Room built
    from scratch, with the same nodes and pods, gives."""
    from autoscaler.placement import Slot
    from autoscaler.room import Room

    nodes, steps = script
    room = Room()
    for n in nodes:
        room.add(Slot.of(n))
    live_moves, withdrawn = [], []
    all_probes = probes()
    for op, pick, pod in steps:
        live = list(room.slots.values())
        if op == "place" and live:
            live_moves.append(room.place(pod, live[pick % len(live)]))
        elif op == "undo" and live_moves:
            room.undo([live_moves.pop(pick % len(live_moves))])
        elif op == "withdraw" and len(live) > 1:
            withdrawn.append(room.withdraw(live[pick % len(live)].name))
        elif op == "restore" and withdrawn:
            room.restore(withdrawn.pop(pick % len(withdrawn)))
        elif op == "check" and live:  # builds the indexes the probe reads, so later steps must keep them
            room.failure(all_probes[pick % len(all_probes)], live[pick % len(live)])
    fresh = Room()
    by_name = {n.name: n for n in nodes}
    for name, slot in room.slots.items():
        fresh.add(Slot.of(by_name[name]), list(slot.pods))
    for name, slot in room.slots.items():
        again = fresh.slots[name]
        assert (slot.cpu_m, slot.mem_mib, slot.pods_left) == (again.cpu_m, again.mem_mib, again.pods_left)
        for probe in all_probes:
            assert room.failure(probe, slot) == fresh.failure(probe, again), (probe.name, name)
