"""node-fleet's placement predicate against the real kube-scheduler, on random cases.

Each case is a small cluster of its own: 2 to 4 nodes carrying a label only that case uses, pods
already bound there (created with spec.nodeName, as the scheduler would have left them), and one
new pod in a namespace of its own, whose nodeSelector names the case's label. The pod's other
constraints are random: nodeSelector, required node affinity, tolerations of random taints,
hostPorts, required pod affinity and anti-affinity (its own, and existing pods'), topology spread
(DoNotSchedule, with minDomains and node policies), pods-per-node, cordoned nodes, and bound
PersistentVolumes with node affinity or zone labels. All cases go to the server at once and the
scheduler judges them side by side.

The scheduler's verdict is a binding or PodScheduled=False/Unschedulable. Ours comes from the
same objects read back through node-fleet's adapter (list_nodes, list_pods: kube_parse turns the
API's JSON into the model) and placement.Room. They agree when the node the scheduler bound to
passes our predicate, and when an unschedulable pod fits none of its case's nodes for us.

Every disagreement fails the test. The one found so far was fixed in placement.py (a zone-labelled
volume on a node with no zone or region label: VolumeZone lets it through). None is kept on
purpose; one that were would be listed here with its reason and left out of the comparison.
"""

from __future__ import annotations

import dataclasses
import os
import random
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from autoscaler.model import Node, Pod
from autoscaler.placement import Slot
from autoscaler.room import Room
from kube_objects import Admin, ApiError, collection, node, pod, until

pytestmark = pytest.mark.controlplane

CASES = 500
SEED = int(os.environ.get("NODE_FLEET_PLACEMENT_SEED", "20251204"))
CASE_LABEL = "node-fleet.io/case"
PROBE_LABEL = "node-fleet.io/probe"
ZONE = "topology.kubernetes.io/zone"
HOSTNAME = "kubernetes.io/hostname"
ZONES = ("z1", "z2", "z3")
TAINTS = (
    {"key": "dedicated", "value": "batch", "effect": "NoSchedule"},
    {"key": "gpu", "effect": "NoExecute"},
    {"key": "spot", "value": "true", "effect": "PreferNoSchedule"},
    {"key": "dedicated", "value": "web", "effect": "NoSchedule"},
)


@dataclass
class Case:
    index: int
    namespace: str
    nodes: list[dict] = field(default_factory=list)
    pods: list[dict] = field(default_factory=list)
    """Already bound."""
    volumes: list[dict] = field(default_factory=list)
    probe: dict = field(default_factory=dict)
    features: set[str] = field(default_factory=set)

    @property
    def node_names(self) -> list[str]:
        return [n["metadata"]["name"] for n in self.nodes]


# -- generation -------------------------------------------------------------------------------------


def generate(rng: random.Random, index: int) -> Case:
    case = Case(index, f"place-{index}")
    tag = f"c{index}"
    for j in range(rng.randint(2, 4)):
        labels = {CASE_LABEL: tag}
        if rng.random() < 0.85:
            labels[ZONE] = rng.choice(ZONES)
        if rng.random() < 0.6:
            labels["disk"] = rng.choice(("ssd", "hdd"))
        if rng.random() < 0.6:
            labels["tier"] = str(rng.randint(1, 5))
        taints = [t for t in TAINTS if rng.random() < 0.1]
        if taints and len({t["key"] for t in taints}) < len(taints):
            taints = taints[:1]  # one taint per key and effect
        case.nodes.append(
            node(
                f"{tag}-n{j}",
                cpu=f"{rng.choice((1000, 1500, 2000, 4000))}m",
                memory=f"{rng.choice((1024, 2048, 4096))}Mi",
                pods=rng.randint(1, 6),
                labels=labels,
                taints=taints,
                unschedulable=rng.random() < 0.08,
            )
        )
    for k in range(rng.randint(0, 5)):
        host = rng.choice(case.nodes)["metadata"]["name"]
        spec: dict[str, Any] = {}
        if rng.random() < 0.2:
            spec["ports"] = [host_port(rng)]
        if rng.random() < 0.2:
            spec["affinity"] = {
                "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [affinity_term(rng)]}
            }
        case.pods.append(
            pod(
                f"old-{k}",
                case.namespace,
                node=host,
                cpu=f"{rng.choice((100, 250, 500, 1000, 1500))}m",
                memory=f"{rng.choice((64, 256, 512, 1024))}Mi",
                labels={"app": rng.choice(("a", "b"))},
                **spec,
            )
        )
    case.probe = probe(rng, case)
    return case


def host_port(rng: random.Random) -> dict:
    port: dict[str, Any] = {
        "containerPort": 80,
        "hostPort": rng.choice((8080, 8081)),
        "protocol": rng.choice(("TCP", "UDP")),
    }
    if rng.random() < 0.2:
        port["hostIP"] = rng.choice(("127.0.0.1", "0.0.0.0"))  # nosec B104  # a hostIP value, not a bind
    return port


def affinity_term(rng: random.Random) -> dict:
    return {
        "labelSelector": {"matchLabels": {"app": rng.choice(("a", "b"))}},
        "topologyKey": rng.choice((HOSTNAME, HOSTNAME, ZONE)),
    }


def requirement(rng: random.Random, case: Case) -> dict:
    key = rng.choice((ZONE, "disk", "tier", HOSTNAME))
    if key == "tier" and rng.random() < 0.5:
        return {"key": key, "operator": rng.choice(("Gt", "Lt")), "values": [str(rng.randint(1, 5))]}
    op = rng.choice(("In", "In", "NotIn", "Exists", "DoesNotExist"))
    values = {
        ZONE: list(ZONES),
        "disk": ["ssd", "hdd"],
        "tier": [str(i) for i in range(1, 6)],
        HOSTNAME: case.node_names,
    }[key]
    if op in ("Exists", "DoesNotExist"):
        return {"key": key, "operator": op}
    return {"key": key, "operator": op, "values": rng.sample(values, rng.randint(1, 2))}


def probe(rng: random.Random, case: Case) -> dict:
    """The pod the scheduler and the predicate both judge."""
    tag = f"c{case.index}"
    spec: dict[str, Any] = {"nodeSelector": {CASE_LABEL: tag}}
    labels = {PROBE_LABEL: "yes", "app": rng.choice(("a", "b"))}
    features = case.features
    if rng.random() < 0.2:
        spec["nodeSelector"]["disk"] = rng.choice(("ssd", "hdd"))
        features.add("nodeSelector")
    if rng.random() < 0.35:
        terms = []
        for _ in range(rng.randint(1, 2)):
            term: dict[str, Any] = {"matchExpressions": [requirement(rng, case) for _ in range(rng.randint(1, 2))]}
            if rng.random() < 0.1:
                term["matchFields"] = [
                    {"key": "metadata.name", "operator": "In", "values": [rng.choice(case.nodes)["metadata"]["name"]]}
                ]
            terms.append(term)
        spec.setdefault("affinity", {})["nodeAffinity"] = {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
        }
        features.add("nodeAffinity")
    tolerations = []
    for t in TAINTS:
        if rng.random() < 0.3:
            tol: dict[str, Any] = {"key": t["key"], "operator": "Exists"}
            if rng.random() < 0.5 and "value" in t:
                tol = {"key": t["key"], "operator": "Equal", "value": t["value"]}
            if rng.random() < 0.3:
                tol["effect"] = t["effect"]
            tolerations.append(tol)
    if rng.random() < 0.05:
        tolerations.append({"operator": "Exists"})
    if tolerations:
        spec["tolerations"] = tolerations
        features.add("tolerations")
    if rng.random() < 0.2:
        spec["ports"] = [host_port(rng)]
        features.add("hostPort")
    pod_affinity: dict[str, Any] = {}
    if rng.random() < 0.2:
        pod_affinity["podAntiAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": [affinity_term(rng)]}
        features.add("podAntiAffinity")
    if rng.random() < 0.1:
        pod_affinity["podAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": [affinity_term(rng)]}
        features.add("podAffinity")
    if pod_affinity:
        spec.setdefault("affinity", {}).update(pod_affinity)
    if rng.random() < 0.25:
        constraint: dict[str, Any] = {
            "maxSkew": rng.choice((1, 1, 2)),
            "topologyKey": rng.choice((ZONE, HOSTNAME)),
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": rng.choice(("a", "b"))}},
        }
        if rng.random() < 0.2:
            constraint["minDomains"] = rng.randint(2, 4)
        if rng.random() < 0.2:
            constraint["nodeAffinityPolicy"] = rng.choice(("Honor", "Ignore"))
        if rng.random() < 0.2:
            constraint["nodeTaintsPolicy"] = rng.choice(("Honor", "Ignore"))
        spec["topologySpreadConstraints"] = [constraint]
        features.add("topologySpread")
    if rng.random() < 0.15:
        spec["volumes"] = [volume(rng, case)]
        features.add("volume")
    return pod(
        "probe",
        case.namespace,
        cpu=f"{rng.choice((100, 250, 500, 1000, 1500))}m",
        memory=f"{rng.choice((64, 512, 1024, 3000))}Mi",
        labels=labels,
        **spec,
    )


def volume(rng: random.Random, case: Case) -> dict:
    """A PersistentVolume pre-bound to a claim, reachable from one node or one zone."""
    target = rng.choice(case.nodes)["metadata"]["labels"]
    if rng.random() < 0.6 or ZONE not in target:
        reach = {"key": HOSTNAME, "operator": "In", "values": [target[HOSTNAME]]}
    else:
        reach = {"key": ZONE, "operator": "In", "values": [target[ZONE]]}
    pv, claim = volume_objects(f"pv-c{case.index}", case.namespace, reach)
    if rng.random() < 0.3:
        pv["metadata"]["labels"][ZONE] = rng.choice(ZONES)  # the VolumeZone filter's legacy label
    case.volumes += [pv, claim]
    return {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}


def volume_objects(name: str, namespace: str, reach: dict) -> tuple[dict, dict]:
    """A local PersistentVolume that nodes matching `reach` can mount, and its claim `data`,
    each naming the other: the PV controller binds them (as it binds a pre-bound pair)."""
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {}},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "claimRef": {"namespace": namespace, "name": "data"},
            "local": {"path": "/mnt/data"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [reach]}]}},
        },
    }
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": namespace},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "volumeName": name,
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    return pv, claim


# -- the scheduler's verdicts -------------------------------------------------------------------------


def in_parallel(admin: Admin, objects: Iterable[dict], workers: int = 6) -> None:
    local = threading.local()

    def create(obj: dict) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.headers["Authorization"] = f"Bearer {admin.token}"
        r = session.post(admin.url + collection(obj), json=obj, timeout=60, verify=str(admin.ca_file))
        if r.status_code != 201:
            raise ApiError("POST", collection(obj), r.status_code, r.text)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(create, objects))


def settle(admin: Admin) -> None:
    """Wait until the scheduler has seen every node and pod made so far, so no verdict is given on
    a partial view: a pod that needs the node made last is bound only once the scheduler's node
    informer got that far, and its pod informer has then seen every pod made before it (each
    informer's stream is in order)."""
    ns = admin.namespace("place-settle")
    admin.create(node("settle-node", labels={CASE_LABEL: "settle"}))
    admin.create(pod("settle", ns, labels={}, nodeSelector={CASE_LABEL: "settle"}))
    until(
        lambda: admin.get(f"/api/v1/namespaces/{ns}/pods/settle")["spec"].get("nodeName"),
        what="the scheduler to catch up with the cases",
        timeout=120,
    )


def claims_bound(admin: Admin) -> None:
    """The PV controller has bound every pre-bound pair, so the scheduler sees bound claims."""
    until(
        lambda: all(c["status"].get("phase") == "Bound" for c in admin.get("/api/v1/persistentvolumeclaims")["items"]),
        what="the PV controller to bind every claim",
        timeout=120,
    )


def verdicts(admin: Admin, count: int, timeout: float = 300) -> dict[str, tuple[str | None, str]]:
    """namespace -> (node bound to, or None if Unschedulable; the scheduler's message)."""
    deadline = time.monotonic() + timeout
    while True:
        out: dict[str, tuple[str | None, str]] = {}
        for p in admin.get("/api/v1/pods", params={"labelSelector": f"{PROBE_LABEL}=yes"})["items"]:
            ns = p["metadata"]["namespace"]
            if p["spec"].get("nodeName"):
                out[ns] = (p["spec"]["nodeName"], "")
                continue
            for c in p["status"].get("conditions") or ():
                if c["type"] == "PodScheduled" and c["status"] == "False" and c.get("reason") == "Unschedulable":
                    out[ns] = (None, c.get("message", ""))
        if len(out) == count:
            return out
        assert time.monotonic() < deadline, f"the scheduler judged {len(out)} of {count} pods in {timeout:g} s"
        time.sleep(1)


# -- the comparison -----------------------------------------------------------------------------------


def whole_room(nodes: list[Node], pods: list[Pod]) -> Room:
    """Every node of the cluster with the pods bound to it, the probes left out. One room serves
    every case: a case's probe meets no other case's pods (namespaces) or nodes (its selector),
    but a spread constraint that ignores node affinity counts the domains of every node, as the
    scheduler does."""
    by_node: dict[str, list[Pod]] = {}
    for p in pods:
        if p.node is not None and p.labels.get(PROBE_LABEL) != "yes":
            by_node.setdefault(p.node, []).append(p)
    room = Room()
    for n in nodes:
        room.add(Slot.of(n), by_node.get(n.name, ()))
    return room


@pytest.fixture(scope="module")
def judged(controlplane: Admin) -> tuple[list[Case], dict, list[Node], list[Pod], float]:
    rng = random.Random(SEED)
    cases = [generate(rng, i) for i in range(CASES)]
    started = time.monotonic()
    in_parallel(
        controlplane, ({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": c.namespace}} for c in cases)
    )
    in_parallel(controlplane, (v for c in cases for v in c.volumes))
    claims_bound(controlplane)
    in_parallel(controlplane, (p for c in cases for p in c.pods))
    in_parallel(controlplane, (n for c in cases for n in c.nodes))
    settle(controlplane)
    in_parallel(controlplane, (c.probe for c in cases))
    found = verdicts(controlplane, len(cases))
    elapsed = time.monotonic() - started
    cluster = controlplane.cluster()
    try:
        nodes, pods = cluster.list_nodes(), cluster.list_pods()
    finally:
        cluster.close()
    return cases, found, nodes, pods, elapsed


def test_the_predicate_agrees_with_kube_scheduler(judged):
    cases, found, nodes, pods, elapsed = judged
    room = whole_room(nodes, pods)
    probes = {p.namespace: p for p in pods if p.labels.get(PROBE_LABEL) == "yes"}
    disagreements: list[str] = []
    for case in cases:
        bound, message = found[case.namespace]
        probe_pod = dataclasses.replace(probes[case.namespace], node=None)
        failures = {n: room.failure(probe_pod, room.slots[n]) for n in case.node_names}
        agree = failures[bound] is None if bound is not None else all(f is not None for f in failures.values())
        if agree:
            continue
        disagreements.append(
            f"case {case.index} ({sorted(case.features)}): scheduler {'bound to ' + bound if bound else message!r}; "
            f"predicate {failures}\n  probe spec: {case.probe['spec']}\n  nodes: "
            + "; ".join(f"{n['metadata']['name']} {n['metadata']['labels']} {n['spec']}" for n in case.nodes)
            + "\n  pods: "
            + "; ".join(
                f"{p['metadata']['name']}@{p['spec']['nodeName']} {p['spec'].get('affinity')}" for p in case.pods
            )
        )
    bound_count = sum(1 for b, _ in found.values() if b is not None)
    print(f"{len(cases)} cases ({bound_count} bound, {len(cases) - bound_count} unschedulable) in {elapsed:.1f} s")
    assert not disagreements, f"{len(disagreements)} disagreements (seed {SEED}):\n" + "\n".join(disagreements[:15])


def test_the_cases_cover_every_feature_both_ways(judged):
    """Each generated constraint is met by both verdicts often enough to mean something."""
    cases, found, *_ = judged
    for feature in (
        "nodeSelector",
        "nodeAffinity",
        "tolerations",
        "hostPort",
        "podAntiAffinity",
        "podAffinity",
        "topologySpread",
        "volume",
    ):
        with_it = [c for c in cases if feature in c.features]
        bound = sum(found[c.namespace][0] is not None for c in with_it)
        assert bound >= 3 and len(with_it) - bound >= 3, f"{feature}: {bound} bound of {len(with_it)}"
