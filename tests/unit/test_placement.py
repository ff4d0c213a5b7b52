"""The placement predicate, held to kube-scheduler's own filter tests.

Each table ports rows of one kube-scheduler filter plugin's test (or of the API helper it calls),
named on the row: the same pod, nodes and existing pods, and the same verdict (the filter that
rejects, or None). A row marked xfail is a place where placement.py still disagrees with
kube-scheduler; its reason says how.

Files cited (kubernetes/kubernetes):
  NA   pkg/scheduler/framework/plugins/nodeaffinity/node_affinity_test.go
  SEL  staging/src/k8s.io/apimachinery/pkg/labels/selector_test.go
  TT   pkg/scheduler/framework/plugins/tainttoleration/taint_toleration_test.go
  TOL  staging/src/k8s.io/api/core/v1/toleration_test.go
  NP   pkg/scheduler/framework/plugins/nodeports/node_ports_test.go
  FIT  pkg/scheduler/framework/plugins/noderesources/fit_test.go
  NU   pkg/scheduler/framework/plugins/nodeunschedulable/node_unschedulable_test.go
  IPA  pkg/scheduler/framework/plugins/interpodaffinity/filtering_test.go
  PTS  pkg/scheduler/framework/plugins/podtopologyspread/filtering_test.go
  VB   pkg/scheduler/framework/plugins/volumebinding/binder_test.go (checkBoundClaims)
  VZ   pkg/scheduler/framework/plugins/volumezone/volume_zone_test.go
  DS   pkg/controller/daemon/daemon_controller_test.go (nodeShouldRunDaemonPod)
  RUN  pkg/scheduler/framework/runtime/framework.go (RunFilterPlugins stops at the first failure)
  DEF  pkg/scheduler/apis/config/v1/default_plugins.go (the filters' order)
  GEN  pkg/scheduler/schedule_one.go (FitError's message)
"""

from __future__ import annotations

import dataclasses

import pytest

from autoscaler.model import Node, Pod
from autoscaler.placement import (
    NODE_AFFINITY,
    POD_AFFINITY,
    PORTS,
    RESOURCES,
    SPREAD,
    TAINTS,
    UNSCHEDULABLE,
    VOLUMES,
    Slot,
    landing_daemonsets,
    requirement_matches,
    tolerates,
    volume_zone_terms,
)
from autoscaler.room import Room
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

# -- builders ------------------------------------------------------------------------------------


def node(name: str, labels: dict | None = None, *, hostname: bool = True, **kw) -> Node:
    """A node with room for anything, labelled with its hostname as the kubelet does."""
    labels = dict(labels or {})
    if hostname:
        labels.setdefault(HOSTNAME_LABEL, name)
    kw.setdefault("alloc_cpu_m", 4000)
    kw.setdefault("alloc_mem_mib", 8192)
    return Node(name, kw.pop("alloc_cpu_m"), kw.pop("alloc_mem_mib"), labels=labels, **kw)


def pod(
    name: str = "p",
    on: str | None = None,
    *,
    labels: dict | None = None,
    ns: str = "default",
    cpu: int = 100,
    mem: int = 128,
    **placement,
) -> Pod:
    return Pod(name, ns, cpu, mem, node=on, labels=labels or {}, placement=Placement(**placement))


def room(nodes, pods=()) -> Room:
    r = Room()
    for n in nodes:
        r.add(Slot.of(n), [p for p in pods if p.node == n.name])
    return r


def verdict(p: Pod, nodes, target: str, pods=()) -> str | None:
    r = room(nodes, pods)
    return r.failure(p, r.slots[target])


def req(key: str, op: str, *values: str) -> Requirement:
    return Requirement(key, op, tuple(values))


def sel(**labels: str) -> LabelSelector:
    return LabelSelector(match_labels=tuple(labels.items()))


def exprs(*requirements: Requirement) -> LabelSelector:
    return LabelSelector(match_expressions=requirements)


def term(selector: LabelSelector | None, key: str = HOSTNAME_LABEL, **kw) -> PodAffinityTerm:
    return PodAffinityTerm(selector, key, **kw)


def row(desc, p, nodes, target, want, pods=(), marks=()):
    return pytest.param(p, nodes, target, want, pods, id=desc, marks=marks)


def check(p, nodes, target, want, pods):
    assert verdict(p, nodes, target, pods) == want


# -- label requirements: every operator --------------------------------------------------------

# SEL TestRequirementMatches / TestToString, and NA's operator rows: a requirement against one
# label value (None: the label is absent).
REQUIREMENTS = [
    ("In matches a listed value", req("foo", "In", "bar", "value2"), "bar", True),
    ("In does not match an unlisted value", req("foo", "In", "value1", "value2"), "bar", False),
    ("In does not match an absent label", req("foo", "In", "bar"), None, False),
    ("NotIn matches an unlisted value", req("mem-type", "NotIn", "DDR", "DDR2"), "DDR3", True),
    ("NotIn does not match a listed value", req("mem-type", "NotIn", "DDR", "DDR2"), "DDR", False),
    ("NotIn matches an absent label", req("mem-type", "NotIn", "DDR"), None, True),
    ("Exists matches any value", req("GPU", "Exists"), "NVIDIA-GRID-K1", True),
    ("Exists matches an empty value", req("GPU", "Exists"), "", True),
    ("Exists does not match an absent label", req("GPU", "Exists"), None, False),
    ("DoesNotExist matches an absent label", req("GPU", "DoesNotExist"), None, True),
    ("DoesNotExist does not match a present label", req("GPU", "DoesNotExist"), "", False),
    ("Gt compares as integers (0206 > 0204)", req("kernel-version", "Gt", "0204"), "0206", True),
    ("Gt is strict", req("n", "Gt", "5"), "5", False),
    ("Gt does not match an absent label", req("n", "Gt", "5"), None, False),
    ("Gt does not match a value that is not an integer", req("n", "Gt", "5"), "six", False),
    ("Lt compares as integers", req("n", "Lt", "10"), "9", True),
    ("Lt is strict", req("n", "Lt", "10"), "10", False),
    ("Lt against a negative bound", req("n", "Lt", "-1"), "0", False),
    ("Gt with two values matches nothing", req("n", "Gt", "1", "2"), "5", False),
    ("Gt with a bound that is not an integer matches nothing", req("n", "Gt", "x"), "5", False),
    # strconv.ParseInt(s, 10, 64): no digit separators, no values beyond int64.
    ("Gt: an underscore is not a digit separator in a label value", req("n", "Gt", "5"), "1_0", False),
    ("Gt: a value beyond int64 does not parse", req("n", "Gt", "5"), "9" * 20, False),
    ("an unknown operator matches nothing", req("foo", "Matches", "bar"), "bar", False),
]


@pytest.mark.parametrize(("r", "value", "want"), [pytest.param(*c[1:], id=c[0]) for c in REQUIREMENTS])
def test_requirement_matches(r, value, want):
    assert requirement_matches(r, value) is want


# -- NodeAffinity: nodeSelector and required node affinity -------------------------------------

FOO_BAR = {"foo": "bar"}


def affinity(*terms) -> dict:
    return {"node_affinity": tuple(tuple(t) for t in terms)}


NODE_AFFINITY_ROWS = [
    # NA TestNodeAffinity
    row("missing labels", pod(node_selector=(("foo", "bar"),)), [node("n1")], "n1", NODE_AFFINITY),
    row("same labels", pod(node_selector=(("foo", "bar"),)), [node("n1", FOO_BAR)], "n1", None),
    row(
        "node labels are superset",
        pod(node_selector=(("foo", "bar"),)),
        [node("n1", {"foo": "bar", "baz": "blah"})],
        "n1",
        None,
    ),
    row(
        "node labels are subset",
        pod(node_selector=(("foo", "bar"), ("baz", "blah"))),
        [node("n1", FOO_BAR)],
        "n1",
        NODE_AFFINITY,
    ),
    row("In matches", pod(**affinity([req("foo", "In", "bar", "value2")])), [node("n1", FOO_BAR)], "n1", None),
    row(
        "Gt matches",
        pod(**affinity([req("kernel-version", "Gt", "0204")])),
        [node("n1", {"kernel-version": "0206"})],
        "n1",
        None,
    ),
    row(
        "NotIn matches",
        pod(**affinity([req("mem-type", "NotIn", "DDR", "DDR2")])),
        [node("n1", {"mem-type": "DDR3"})],
        "n1",
        None,
    ),
    row("Exists matches", pod(**affinity([req("GPU", "Exists")])), [node("n1", {"GPU": "NVIDIA-GRID-K1"})], "n1", None),
    row(
        "affinity that doesn't match node's labels won't schedule onto the node",
        pod(**affinity([req("foo", "In", "value1", "value2")])),
        [node("n1", FOO_BAR)],
        "n1",
        NODE_AFFINITY,
    ),
    row(
        "an empty term (no matchExpressions) matches no node",
        pod(**affinity([])),
        [node("n1", FOO_BAR)],
        "n1",
        NODE_AFFINITY,
    ),
    row("no affinity schedules onto any node", pod(), [node("n1", FOO_BAR)], "n1", None),
    row(
        "multiple matchExpressions ANDed that match",
        pod(**affinity([req("GPU", "Exists"), req("GPU", "NotIn", "AMD", "INTER")])),
        [node("n1", {"GPU": "NVIDIA-GRID-K1"})],
        "n1",
        None,
    ),
    row(
        "multiple matchExpressions ANDed, one doesn't match",
        pod(**affinity([req("GPU", "Exists"), req("GPU", "In", "AMD", "INTER")])),
        [node("n1", {"GPU": "NVIDIA-GRID-K1"})],
        "n1",
        NODE_AFFINITY,
    ),
    row(
        "multiple NodeSelectorTerms ORed, one matches",
        pod(**affinity([req("foo", "In", "bar", "value2")], [req("diffkey", "In", "wrong", "value2")])),
        [node("n1", FOO_BAR)],
        "n1",
        None,
    ),
    row(
        "affinity and nodeSelector both satisfied",
        pod(node_selector=(("foo", "bar"),), **affinity([req("foo", "Exists")])),
        [node("n1", FOO_BAR)],
        "n1",
        None,
    ),
    row(
        "affinity satisfied but nodeSelector not",
        pod(node_selector=(("foo", "bar"),), **affinity([req("foo", "Exists")])),
        [node("n1", {"foo": "barrrrrr"})],
        "n1",
        NODE_AFFINITY,
    ),
    row(
        "matchFields metadata.name In matches the node",
        pod(**affinity([req(NODE_NAME_FIELD, "In", "node1")])),
        [node("node1")],
        "node1",
        None,
    ),
    row(
        "matchFields metadata.name In does not match another node",
        pod(**affinity([req(NODE_NAME_FIELD, "In", "node1")])),
        [node("node1"), node("node2")],
        "node2",
        NODE_AFFINITY,
    ),
    row(
        "two terms: matchFields does not match, but matchExpressions matches",
        pod(**affinity([req(NODE_NAME_FIELD, "In", "node1")], [req("foo", "In", "bar")])),
        [node("node2", FOO_BAR)],
        "node2",
        None,
    ),
    row(
        "one term: matchFields does not match, but matchExpressions matches",
        pod(**affinity([req(NODE_NAME_FIELD, "In", "node1"), req("foo", "In", "bar")])),
        [node("node2", FOO_BAR)],
        "node2",
        NODE_AFFINITY,
    ),
    row(
        "one term: both matchFields and matchExpressions match",
        pod(**affinity([req(NODE_NAME_FIELD, "In", "node1"), req("foo", "In", "bar")])),
        [node("node1", FOO_BAR)],
        "node1",
        None,
    ),
    row(
        "two terms: both matchFields and matchExpressions do not match",
        pod(**affinity([req(NODE_NAME_FIELD, "In", "node1")], [req("foo", "In", "not-match-to-bar")])),
        [node("node2", FOO_BAR)],
        "node2",
        NODE_AFFINITY,
    ),
    row(
        "two terms of node name affinity",
        pod(**affinity([req(NODE_NAME_FIELD, "In", "node1")], [req(NODE_NAME_FIELD, "In", "node2")])),
        [node("node2")],
        "node2",
        None,
    ),
    row(
        "two conflicting matchFields requirements",
        pod(**affinity([req(NODE_NAME_FIELD, "In", "node1"), req(NODE_NAME_FIELD, "In", "node2")])),
        [node("node2", FOO_BAR)],
        "node2",
        NODE_AFFINITY,
    ),
    row(
        "matchFields metadata.name NotIn keeps the pod off that node",
        pod(**affinity([req(NODE_NAME_FIELD, "NotIn", "node1")])),
        [node("node1")],
        "node1",
        NODE_AFFINITY,
    ),
    row(
        "matchFields reads the node's name, not a label of that name",
        pod(**affinity([req(NODE_NAME_FIELD, "In", "node1")])),
        [node("node2", {NODE_NAME_FIELD: "node1"})],
        "node2",
        NODE_AFFINITY,
    ),
    row(
        "DoesNotExist keeps the pod off a node with the label",
        pod(**affinity([req("spot", "DoesNotExist")])),
        [node("n1", {"spot": "true"})],
        "n1",
        NODE_AFFINITY,
    ),
    row(
        "Lt matches",
        pod(**affinity([req("cores", "Lt", "8")])),
        [node("n1", {"cores": "4"})],
        "n1",
        None,
    ),
]


@pytest.mark.parametrize(("p", "nodes", "target", "want", "pods"), NODE_AFFINITY_ROWS)
def test_node_affinity(p, nodes, target, want, pods):
    check(p, nodes, target, want, pods)


# -- TaintToleration -----------------------------------------------------------------------------

DEDICATED = Taint("dedicated", "user1", "NoSchedule")

TOLERATION_ROWS = [
    # TOL TestTolerationToleratesTaint
    ("empty toleration (no key, Equal) does not tolerate a keyed taint", Toleration(), DEDICATED, False),
    ("Exists with no key tolerates every taint", Toleration(operator="Exists"), DEDICATED, True),
    (
        "Exists with no key and an effect tolerates every taint of that effect",
        Toleration(operator="Exists", effect="NoSchedule"),
        DEDICATED,
        True,
    ),
    (
        "Exists with no key and another effect does not tolerate",
        Toleration(operator="Exists", effect="NoExecute"),
        DEDICATED,
        False,
    ),
    ("same key, Exists tolerates any value", Toleration("dedicated", "Exists"), DEDICATED, True),
    ("same key, Equal, same value tolerates", Toleration("dedicated", "Equal", "user1"), DEDICATED, True),
    ("same key, Equal, other value does not", Toleration("dedicated", "Equal", "user2"), DEDICATED, False),
    ("an empty operator means Equal", Toleration("dedicated", "", "user1"), DEDICATED, True),
    ("other key does not tolerate", Toleration("other", "Exists"), DEDICATED, False),
    ("same effect tolerates", Toleration("dedicated", "Equal", "user1", "NoSchedule"), DEDICATED, True),
    ("other effect does not tolerate", Toleration("dedicated", "Equal", "user1", "NoExecute"), DEDICATED, False),
    (
        "an empty effect tolerates every effect",
        Toleration("dedicated", "Exists"),
        Taint("dedicated", "", "NoExecute"),
        True,
    ),
]


@pytest.mark.parametrize(("t", "taint", "want"), [pytest.param(*c[1:], id=c[0]) for c in TOLERATION_ROWS])
def test_tolerates(t, taint, want):
    assert tolerates(t, taint) is want


def tainted(*taints: Taint) -> list[Node]:
    return [node("n1", taints=taints)]


TAINT_ROWS = [
    # TT TestTaintTolerationFilter
    row("a pod with no tolerations onto a node with no taints", pod(), tainted(), "n1", None),
    row("a pod with no tolerations onto a tainted node", pod(), tainted(DEDICATED), "n1", TAINTS),
    row(
        "a pod tolerating the taint (Equal, same value)",
        pod(tolerations=(Toleration("dedicated", "Equal", "user1", "NoSchedule"),)),
        tainted(DEDICATED),
        "n1",
        None,
    ),
    row(
        "a pod whose toleration's value differs",
        pod(tolerations=(Toleration("dedicated", "Equal", "user2", "NoSchedule"),)),
        tainted(DEDICATED),
        "n1",
        TAINTS,
    ),
    row(
        "a pod tolerating the key with Exists",
        pod(tolerations=(Toleration("foo", "Exists", effect="NoSchedule"),)),
        tainted(Taint("foo", "bar", "NoSchedule")),
        "n1",
        None,
    ),
    row(
        "a pod tolerating one taint of two",
        pod(tolerations=(Toleration("dedicated", "Equal", "user2", "NoSchedule"), Toleration("foo", "Exists"))),
        tainted(Taint("dedicated", "user2", "NoSchedule"), Taint("foo", "bar", "NoSchedule")),
        "n1",
        None,
    ),
    row(
        "a toleration of another effect leaves the taint untolerated",
        pod(tolerations=(Toleration("foo", "Equal", "bar", "PreferNoSchedule"),)),
        tainted(Taint("foo", "bar", "NoSchedule")),
        "n1",
        TAINTS,
    ),
    row(
        "an empty effect in the toleration tolerates the taint",
        pod(tolerations=(Toleration("foo", "Equal", "bar"),)),
        tainted(Taint("foo", "bar", "NoSchedule")),
        "n1",
        None,
    ),
    row(
        "a PreferNoSchedule taint never filters",
        pod(),
        tainted(Taint("foo", "bar", "PreferNoSchedule")),
        "n1",
        None,
    ),
    row("a NoExecute taint filters", pod(), tainted(Taint("foo", "bar", "NoExecute")), "n1", TAINTS),
    row(
        "a NoExecute taint tolerated for a while (tolerationSeconds) is tolerated",
        pod(tolerations=(Toleration("foo", "Exists", effect="NoExecute"),)),
        tainted(Taint("foo", "bar", "NoExecute")),
        "n1",
        None,
    ),
    row(
        "tolerate-everything (Exists, no key) passes every taint",
        pod(tolerations=(Toleration(operator="Exists"),)),
        tainted(DEDICATED, Taint("x", "", "NoExecute")),
        "n1",
        None,
    ),
]


@pytest.mark.parametrize(("p", "nodes", "target", "want", "pods"), TAINT_ROWS)
def test_taint_toleration(p, nodes, target, want, pods):
    check(p, nodes, target, want, pods)


# -- NodePorts -----------------------------------------------------------------------------------


def ports(spec: str) -> tuple[HostPort, ...]:
    """Host ports written as NP's newPod reads them: "UDP/127.0.0.1/8080,TCP/0.0.0.0/8001"."""
    out = []
    for item in spec.split(","):
        proto, ip, port = item.split("/")
        out.append(HostPort(int(port), proto, ip))
    return tuple(out)


def port_row(desc, incoming: str, existing: str, want, marks=()):
    return row(
        desc,
        pod("new", host_ports=ports(incoming)),
        [node("m1")],
        "m1",
        want,
        [pod("old", "m1", host_ports=ports(existing))],
        marks,
    )


NODE_PORTS_ROWS = [
    # NP TestNodePorts
    row("no host ports", pod(), [node("m1")], "m1", None),
    port_row("other port", "UDP/127.0.0.1/8080", "UDP/127.0.0.1/9090", None),
    port_row("same udp port", "UDP/127.0.0.1/8080", "UDP/127.0.0.1/8080", PORTS),
    port_row("same tcp port", "TCP/127.0.0.1/8080", "TCP/127.0.0.1/8080", PORTS),
    port_row("different host ip", "TCP/127.0.0.1/8080", "TCP/127.0.0.2/8080", None),
    port_row("different protocol", "UDP/127.0.0.1/8080", "TCP/127.0.0.1/8080", None),
    port_row("second udp port conflict", "UDP/127.0.0.1/8000,UDP/127.0.0.1/8080", "UDP/127.0.0.1/8080", PORTS),
    port_row(
        "first tcp port conflict",
        "TCP/127.0.0.1/8001,UDP/127.0.0.1/8080",
        "TCP/127.0.0.1/8001,UDP/127.0.0.1/8081",
        PORTS,
    ),
    port_row("first tcp port conflict due to 0.0.0.0 hostIP", "TCP/0.0.0.0/8001", "TCP/127.0.0.1/8001", PORTS),
    port_row(
        "TCP hostPort conflict due to 0.0.0.0 hostIP",
        "TCP/10.0.10.10/8001,TCP/0.0.0.0/8001",
        "TCP/127.0.0.1/8001",
        PORTS,
    ),
    port_row("second tcp port conflict to 0.0.0.0 hostIP", "TCP/127.0.0.1/8001", "TCP/0.0.0.0/8001", PORTS),
    port_row("second different protocol", "UDP/127.0.0.1/8001", "TCP/0.0.0.0/8001", None),
    port_row(
        "UDP hostPort conflict due to 0.0.0.0 hostIP", "UDP/127.0.0.1/8001", "TCP/0.0.0.0/8001,UDP/0.0.0.0/8001", PORTS
    ),
    # The API leaves hostIP empty when unset; the scheduler reads it as 0.0.0.0 (HostPortInfo sanitize).
    port_row("an empty hostIP binds every address", "TCP//8001", "TCP/10.0.0.1/8001", PORTS),
    # NP TestFits
    port_row(
        "multiple non-conflicting ports",
        "TCP/127.0.0.1/80,TCP/127.0.1.1/80,TCP/127.0.1.1/90,TCP/127.0.1.1/100",
        "TCP/127.0.0.1/9090,TCP/127.0.0.1/9191,TCP/127.0.1.1/8080",
        None,
    ),
    port_row(
        "multiple ports, some conflicting",
        "TCP/127.0.0.1/80,TCP/127.0.1.1/80,TCP/127.0.1.1/90,TCP/127.0.1.1/100",
        "TCP/127.0.0.1/9090,TCP/127.0.1.1/90,TCP/127.0.1.1/8080",
        PORTS,
    ),
    # types.go HostPortInfo: sanitize() makes an empty hostIP 0.0.0.0 and an empty protocol TCP;
    # CheckConflict's only wildcard is 0.0.0.0 ("::" is an address like any other); port 0 is no port.
    port_row("IPv6 :: is not kube-scheduler's wildcard", "TCP/::/8001", "TCP/10.0.0.1/8001", None),
    port_row("the same IPv6 address conflicts", "TCP/::/8001", "TCP/::/8001", PORTS),
    port_row("0.0.0.0 conflicts with an IPv6 address", "TCP/0.0.0.0/8001", "TCP/::/8001", PORTS),
    port_row("an empty protocol means TCP", "/10.0.0.1/8001", "TCP/10.0.0.1/8001", PORTS),
    port_row("hostPort 0 asks for no host port", "TCP/0.0.0.0/0", "TCP/0.0.0.0/0", None),
]


@pytest.mark.parametrize(("p", "nodes", "target", "want", "pods"), NODE_PORTS_ROWS)
def test_node_ports(p, nodes, target, want, pods):
    check(p, nodes, target, want, pods)


# -- NodeResourcesFit and pods-per-node; NodeUnschedulable ---------------------------------------


def full(cpu: int, mem: int, *, pods: int = 32, used_cpu: int = 0, used_mem: int = 0, used_pods: int = 0):
    """A node (FIT's makeAllocatableResources) and the pods already requesting part of it."""
    n = node("n1", alloc_cpu_m=cpu, alloc_mem_mib=mem, alloc_pods=pods)
    existing = [pod(f"e{k}", "n1", cpu=0, mem=0) for k in range(max(used_pods - 1, 0))]
    if used_pods or used_cpu or used_mem:
        existing.append(pod("used", "n1", cpu=used_cpu, mem=used_mem))
    return [n], existing


def fit_row(desc, p, cluster, want, marks=()):
    nodes, existing = cluster
    return row(desc, p, nodes, "n1", want, existing, marks)


RESOURCES_ROWS = [
    # FIT TestEnoughRequests (node: 10 milliCPU, 20 memory, 32 pods)
    fit_row("no resources requested always fits", pod(cpu=0, mem=0), full(10, 20, used_cpu=10, used_mem=20), None),
    fit_row("too many resources fails", pod(cpu=1, mem=1), full(10, 20, used_cpu=10, used_mem=20), RESOURCES),
    fit_row("too much cpu fails", pod(cpu=3, mem=1), full(10, 20, used_cpu=8, used_mem=19), RESOURCES),
    fit_row("too much memory fails", pod(cpu=1, mem=2), full(10, 20, used_cpu=5, used_mem=19), RESOURCES),
    fit_row("both resources fit", pod(cpu=1, mem=1), full(10, 20, used_cpu=5, used_mem=5), None),
    fit_row("equal edge case", pod(cpu=5, mem=4), full(10, 20, used_cpu=5, used_mem=16), None),
    fit_row("one resource memory fits", pod(cpu=2, mem=1), full(10, 20, used_cpu=9, used_mem=5), RESOURCES),
    # fitsRequest returns before comparing CPU and memory when the pod requests none: a
    # BestEffort pod fits a node whose requests already exceed its allocatable (static pods,
    # a shrunken allocatable).
    fit_row(
        "no resources requested fits an over-committed node",
        pod(cpu=0, mem=0),
        full(10, 20, used_cpu=12, used_mem=25),
        None,
    ),
    fit_row(
        "a zero request of one resource is not compared",
        pod(cpu=0, mem=1),
        full(10, 20, used_cpu=12, used_mem=5),
        None,
    ),
    # FIT TestNotEnoughRequests... "even without specified resources, predicate fails when there's no space for additional pod"
    fit_row("no space for an additional pod", pod(cpu=0, mem=0), full(10, 20, pods=1, used_pods=1), RESOURCES),
    fit_row("the last pod slot fits", pod(), full(1000, 1000, pods=2, used_pods=1), None),
]


@pytest.mark.parametrize(("p", "nodes", "target", "want", "pods"), RESOURCES_ROWS)
def test_resources_fit(p, nodes, target, want, pods):
    check(p, nodes, target, want, pods)


UNSCHEDULABLE_TOLERATION = Toleration("node.kubernetes.io/unschedulable", "Exists", effect="NoSchedule")

UNSCHEDULABLE_ROWS = [
    # NU TestNodeUnschedulable
    row("a schedulable node", pod(), [node("n1")], "n1", None),
    row("a cordoned node", pod(), [node("n1", cordoned=True)], "n1", UNSCHEDULABLE),
    row(
        "pod with toleration for unschedulable node can be scheduled",
        pod(tolerations=(UNSCHEDULABLE_TOLERATION,)),
        [node("n1", cordoned=True)],
        "n1",
        None,
    ),
    row(
        "a tolerate-everything toleration covers the cordon too",
        pod(tolerations=(Toleration(operator="Exists"),)),
        [node("n1", cordoned=True)],
        "n1",
        None,
    ),
]


@pytest.mark.parametrize(("p", "nodes", "target", "want", "pods"), UNSCHEDULABLE_ROWS)
def test_node_unschedulable(p, nodes, target, want, pods):
    check(p, nodes, target, want, pods)


# -- which filter is named: kube-scheduler's order -----------------------------------------------

ORDER_ROWS = [
    # DEF + RUN: NodeUnschedulable, TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit,
    # VolumeBinding, PodTopologySpread, InterPodAffinity; the first that fails is reported.
    row(
        "cordoned and too small: NodeUnschedulable",
        pod(cpu=9000),
        [node("n1", cordoned=True)],
        "n1",
        UNSCHEDULABLE,
    ),
    row(
        "tainted and too small: TaintToleration",
        pod(cpu=9000),
        [node("n1", taints=(DEDICATED,))],
        "n1",
        TAINTS,
    ),
    row(
        "tainted and not selected: TaintToleration before NodeAffinity",
        pod(node_selector=(("foo", "bar"),)),
        [node("n1", taints=(DEDICATED,))],
        "n1",
        TAINTS,
    ),
    row(
        "not selected and too small: NodeAffinity",
        pod(cpu=9000, node_selector=(("foo", "bar"),)),
        [node("n1")],
        "n1",
        NODE_AFFINITY,
    ),
    row(
        "port taken and too small: NodePorts",
        pod("new", cpu=9000, host_ports=(HostPort(80),)),
        [node("n1")],
        "n1",
        PORTS,
        [pod("old", "n1", host_ports=(HostPort(80),))],
    ),
    row(
        "too small and a volume elsewhere: NodeResourcesFit",
        pod(cpu=9000, volume_affinity=(((req(NODE_NAME_FIELD, "In", "n2"),),),)),
        [node("n1")],
        "n1",
        RESOURCES,
    ),
    row(
        "volume elsewhere and a port taken: NodePorts",
        pod("new", host_ports=(HostPort(80),), volume_affinity=(((req(NODE_NAME_FIELD, "In", "n2"),),),)),
        [node("n1")],
        "n1",
        PORTS,
        [pod("old", "n1", host_ports=(HostPort(80),))],
    ),
    row(
        "spread and anti-affinity both fail: PodTopologySpread",
        pod(
            "new",
            labels={"app": "a"},
            anti_affinity=(term(sel(app="a")),),
            spread=(SpreadConstraint(1, HOSTNAME_LABEL, sel(app="a")),),
        ),
        [node("n1"), node("n2")],
        "n1",
        SPREAD,
        [pod("old", "n1", labels={"app": "a"})],
    ),
]


@pytest.mark.parametrize(("p", "nodes", "target", "want", "pods"), ORDER_ROWS)
def test_filter_order(p, nodes, target, want, pods):
    check(p, nodes, target, want, pods)


# -- InterPodAffinity ----------------------------------------------------------------------------

SEC = {"security": "S1"}
SEC2 = {"security": "S2"}


def sec_in(*values: str) -> LabelSelector:
    return exprs(req("security", "In", *values))


ZONES2 = [
    node("nodeA", {ZONE_LABEL: "az1"}),
    node("nodeB", {ZONE_LABEL: "az1"}),
    node("nodeC", {ZONE_LABEL: "az2"}),
]

POD_AFFINITY_ROWS = [
    # IPA TestRequiredAffinitySingleNode
    row("a pod with no affinity", pod(), [node("n1")], "n1", None, [pod("e", "n1", labels=SEC)]),
    row(
        "satisfies with requiredDuringScheduling pod affinity (In)",
        pod(affinity=(term(sec_in("securityscan", "value2")),)),
        [node("n1")],
        "n1",
        None,
        [pod("e", "n1", labels={"security": "securityscan"})],
    ),
    row(
        "satisfies PodAffinity with NotIn",
        pod(affinity=(term(exprs(req("security", "NotIn", "securityscan3", "value3"))),)),
        [node("n1")],
        "n1",
        None,
        [pod("e", "n1", labels={"security": "securityscan"})],
    ),
    row(
        "does not satisfy PodAffinity because of a different namespace",
        pod(affinity=(term(sec_in("securityscan"), namespaces=frozenset({"DiffNameSpace"})),)),
        [node("n1")],
        "n1",
        POD_AFFINITY,
        [pod("e", "n1", labels={"security": "securityscan"}, ns="ns")],
    ),
    row(
        "an affinity term without namespaces counts only the pod's own namespace",
        pod(ns="team-a", affinity=(term(sel(**SEC)),)),
        [node("n1")],
        "n1",
        POD_AFFINITY,
        [pod("e", "n1", labels=SEC, ns="team-b")],
    ),
    row(
        "namespaceSelector {} counts every namespace",
        pod(ns="team-a", affinity=(term(sel(**SEC), all_namespaces=True),)),
        [node("n1")],
        "n1",
        None,
        [pod("e", "n1", labels=SEC, ns="team-b")],
    ),
    row(
        "doesn't satisfy PodAffinity because of an unmatching labelSelector",
        pod(affinity=(term(sec_in("antivirusscan", "value2")),)),
        [node("n1")],
        "n1",
        POD_AFFINITY,
        [pod("e", "n1", labels={"security": "securityscan"})],
    ),
    row(
        "matchExpressions are ANDed: one does not match",
        pod(
            affinity=(
                term(exprs(req("security", "Exists"), req("wrongkey", "DoesNotExist"))),
                term(exprs(req("security", "In", "securityscan2"))),
            )
        ),
        [node("n1")],
        "n1",
        POD_AFFINITY,
        [pod("e", "n1", labels={"security": "securityscan"})],
    ),
    row(
        "satisfies the PodAffinity and the PodAntiAffinity with the existing pod",
        pod(affinity=(term(sec_in("securityscan")),), anti_affinity=(term(sec_in("antivirusscan"), ZONE_LABEL),)),
        [node("n1", {ZONE_LABEL: "az1"})],
        "n1",
        None,
        [pod("e", "n1", labels={"security": "securityscan"})],
    ),
    row(
        "satisfies the PodAffinity but not the PodAntiAffinity with the existing pod",
        pod(affinity=(term(sec_in("securityscan")),), anti_affinity=(term(sec_in("securityscan"), ZONE_LABEL),)),
        [node("n1", {ZONE_LABEL: "az1"})],
        "n1",
        POD_AFFINITY,
        [pod("e", "n1", labels={"security": "securityscan"})],
    ),
    row(
        "satisfies both but not the existing pod's PodAntiAffinity (symmetry)",
        pod(labels=SEC, affinity=(term(sec_in("securityscan")),)),
        [node("n1", {ZONE_LABEL: "az1"})],
        "n1",
        POD_AFFINITY,
        [pod("e", "n1", labels={"security": "securityscan"}, anti_affinity=(term(sec_in("S1"), ZONE_LABEL),))],
    ),
    row(
        "pod matches its own label but the matching pod runs on another node",
        pod(labels={"security": "securityscan"}, affinity=(term(sec_in("securityscan")),)),
        [node("n1"), node("n2")],
        "n1",
        POD_AFFINITY,
        [pod("e", "n2", labels={"security": "securityscan"})],
    ),
    row(
        "an existing pod's anti-affinity repels a pod that has none",
        pod(labels=SEC),
        [node("n1", {ZONE_LABEL: "az1"})],
        "n1",
        POD_AFFINITY,
        [pod("e", "n1", anti_affinity=(term(sec_in("S1"), ZONE_LABEL),))],
    ),
    row(
        "an existing pod's anti-affinity that does not select the pod",
        pod(labels=SEC),
        [node("n1", {ZONE_LABEL: "az1"})],
        "n1",
        None,
        [pod("e", "n1", anti_affinity=(term(sec_in("S2"), ZONE_LABEL),))],
    ),
    row(
        "an existing pod's anti-affinity counts in its own namespace",
        pod(labels=SEC, ns="other"),
        [node("n1", {ZONE_LABEL: "az1"})],
        "n1",
        None,
        [pod("e", "n1", anti_affinity=(term(sec_in("S1"), ZONE_LABEL),))],
    ),
    row(
        "the incoming pod's anti-affinity matches the existing pod, not vice versa",
        pod(labels=SEC, anti_affinity=(term(sec_in("S2"), ZONE_LABEL),)),
        [node("n1", {ZONE_LABEL: "az1"})],
        "n1",
        POD_AFFINITY,
        [pod("e", "n1", labels=SEC2, anti_affinity=(term(sec_in("S3"), ZONE_LABEL),))],
    ),
    row(
        "a nil labelSelector selects no pod",
        pod(anti_affinity=(term(None),)),
        [node("n1")],
        "n1",
        None,
        [pod("e", "n1", labels=SEC)],
    ),
    row(
        "an empty labelSelector selects every pod",
        pod(anti_affinity=(term(LabelSelector()),)),
        [node("n1")],
        "n1",
        POD_AFFINITY,
        [pod("e", "n1", labels=SEC)],
    ),
    # IPA TestRequiredAffinityMultipleNodes
    row(
        "any node in the zone of a matching pod is allowed (zone key)",
        pod(affinity=(term(sel(foo="bar"), ZONE_LABEL),)),
        ZONES2,
        "nodeB",
        None,
        [pod("e", "nodeA", labels=FOO_BAR)],
    ),
    row(
        "a node in another zone is not",
        pod(affinity=(term(sel(foo="bar"), ZONE_LABEL),)),
        ZONES2,
        "nodeC",
        POD_AFFINITY,
        [pod("e", "nodeA", labels=FOO_BAR)],
    ),
    row(
        "the first pod of a self-affine group may go anywhere with the key",
        pod(labels=FOO_BAR, affinity=(term(sel(foo="bar"), ZONE_LABEL),)),
        ZONES2,
        "nodeC",
        None,
    ),
    row(
        "the first pod of a group still needs the topology key on the node",
        pod(labels=FOO_BAR, affinity=(term(sel(foo="bar"), ZONE_LABEL),)),
        [node("nodeA", {ZONE_LABEL: "az1"}), node("nodeX")],
        "nodeX",
        POD_AFFINITY,
    ),
    row(
        "a pod that does not match its own term is not the first of a group",
        pod(labels={"foo": "baz"}, affinity=(term(sel(foo="bar"), ZONE_LABEL),)),
        ZONES2,
        "nodeC",
        POD_AFFINITY,
    ),
    row(
        "the self-match exemption is all terms or none: one term met, the other only by itself",
        pod(
            labels={"foo": "bar", "app": "x"},
            affinity=(term(sel(foo="bar"), ZONE_LABEL), term(sel(app="x"), ZONE_LABEL)),
        ),
        ZONES2,
        "nodeA",
        POD_AFFINITY,
        [pod("e", "nodeA", labels=FOO_BAR)],
    ),
    row(
        "a matching pod on a node without the key does not end the exemption",
        pod(labels=FOO_BAR, affinity=(term(sel(foo="bar"), ZONE_LABEL),)),
        [*ZONES2, node("nodeX")],
        "nodeC",
        None,
        [pod("e", "nodeX", labels=FOO_BAR)],
    ),
    row(
        "affinity: every term's topology key must be on the node",
        pod(affinity=(term(sel(foo="bar"), ZONE_LABEL), term(sel(foo="bar"), "rack"))),
        ZONES2,
        "nodeA",
        POD_AFFINITY,
        [pod("e", "nodeA", labels=FOO_BAR)],
    ),
    row(
        "anti-affinity on the zone keeps the pod out of the whole zone",
        pod(anti_affinity=(term(sel(foo="bar"), ZONE_LABEL),)),
        ZONES2,
        "nodeB",
        POD_AFFINITY,
        [pod("e", "nodeA", labels=FOO_BAR)],
    ),
    row(
        "anti-affinity on the zone allows another zone",
        pod(anti_affinity=(term(sel(foo="bar"), ZONE_LABEL),)),
        ZONES2,
        "nodeC",
        None,
        [pod("e", "nodeA", labels=FOO_BAR)],
    ),
    row(
        "anti-affinity on the hostname keeps only that node",
        pod(anti_affinity=(term(sel(foo="bar")),)),
        ZONES2,
        "nodeB",
        None,
        [pod("e", "nodeA", labels=FOO_BAR)],
    ),
    row(
        "anti-affinity on a key the node lacks does not filter",
        pod(anti_affinity=(term(sel(foo="bar"), "rack"),)),
        ZONES2,
        "nodeA",
        None,
        [pod("e", "nodeA", labels=FOO_BAR)],
    ),
    row(
        "an existing pod's zone anti-affinity repels the whole zone",
        pod(labels=FOO_BAR),
        ZONES2,
        "nodeB",
        POD_AFFINITY,
        [pod("e", "nodeA", anti_affinity=(term(sel(foo="bar"), ZONE_LABEL),))],
    ),
    row(
        "an existing pod's anti-affinity does not reach a node without the key",
        pod(labels=FOO_BAR),
        [*ZONES2, node("nodeX")],
        "nodeX",
        None,
        [pod("e", "nodeA", anti_affinity=(term(sel(foo="bar"), ZONE_LABEL),))],
    ),
]


@pytest.mark.parametrize(("p", "nodes", "target", "want", "pods"), POD_AFFINITY_ROWS)
def test_inter_pod_affinity(p, nodes, target, want, pods):
    check(p, nodes, target, want, pods)


# -- PodTopologySpread (DoNotSchedule) -----------------------------------------------------------

FOO = sel(foo="")


def spread(max_skew: int = 1, key: str = ZONE_LABEL, selector=FOO, **kw) -> tuple[SpreadConstraint, ...]:
    return (SpreadConstraint(max_skew, key, selector, **kw),)


def zn(name: str, zone: str | None, **kw) -> Node:
    labels = {"node": name} | ({ZONE_LABEL: zone} if zone else {})
    return node(name, labels, **kw)


def existing(**per_node: int) -> list[Pod]:
    return [pod(f"p-{n}{k}", n, labels={"foo": ""}) for n, count in per_node.items() for k in range(count)]


ABXY = [zn("node-a", "zone1"), zn("node-b", "zone1"), zn("node-x", "zone2"), zn("node-y", "zone2")]
INCOMING = {"labels": {"foo": ""}}

SPREAD_ROWS = [
    # PTS TestSingleConstraint
    row("no existing pods", pod(**INCOMING, spread=spread()), ABXY, "node-a", None),
    row(
        "no existing pods, incoming pod doesn't match itself",
        pod(spread=spread(selector=sel(bar=""))),
        ABXY,
        "node-x",
        None,
    ),
    row(
        "existing pods in a different namespace do not count",
        pod(**INCOMING, spread=spread()),
        ABXY,
        "node-a",
        None,
        [pod("p-a1", "node-a", labels={"foo": ""}, ns="ns1"), *existing(**{"node-x": 1})],
    ),
    row(
        "pods spread across zones as 3/3, all nodes fit",
        pod(**INCOMING, spread=spread()),
        ABXY,
        "node-y",
        None,
        existing(**{"node-a": 1, "node-b": 2, "node-x": 2, "node-y": 1}),
    ),
    row(
        "pods spread across zones as 1/2 due to absence of label 'zone' on node-b: node-a fits",
        pod(**INCOMING, spread=spread()),
        [zn("node-a", "zone1"), zn("node-b", None), zn("node-x", "zone2"), zn("node-y", "zone2")],
        "node-a",
        None,
        existing(**{"node-a": 1, "node-b": 1, "node-x": 1, "node-y": 1}),
    ),
    row(
        "... node-b lacks the key: unschedulable",
        pod(**INCOMING, spread=spread()),
        [zn("node-a", "zone1"), zn("node-b", None), zn("node-x", "zone2"), zn("node-y", "zone2")],
        "node-b",
        SPREAD,
        existing(**{"node-a": 1, "node-b": 1, "node-x": 1, "node-y": 1}),
    ),
    row(
        "... node-x is in the fuller zone",
        pod(**INCOMING, spread=spread()),
        [zn("node-a", "zone1"), zn("node-b", None), zn("node-x", "zone2"), zn("node-y", "zone2")],
        "node-x",
        SPREAD,
        existing(**{"node-a": 1, "node-b": 1, "node-x": 1, "node-y": 1}),
    ),
    row(
        "pod cannot be scheduled as all nodes don't have label 'rack'",
        pod(**INCOMING, spread=spread(key="rack")),
        ABXY,
        "node-a",
        SPREAD,
    ),
    row(
        "pods spread across nodes as 2/1/0/3, only node-x fits",
        pod(**INCOMING, spread=spread(key="node")),
        ABXY,
        "node-x",
        None,
        existing(**{"node-a": 2, "node-b": 1, "node-y": 3}),
    ),
    row(
        "pods spread across nodes as 2/1/0/3, node-b does not fit at maxSkew 1",
        pod(**INCOMING, spread=spread(key="node")),
        ABXY,
        "node-b",
        SPREAD,
        existing(**{"node-a": 2, "node-b": 1, "node-y": 3}),
    ),
    row(
        "pods spread across nodes as 2/1/0/3, maxSkew is 2, node-b fits",
        pod(**INCOMING, spread=spread(2, key="node")),
        ABXY,
        "node-b",
        None,
        existing(**{"node-a": 2, "node-b": 1, "node-y": 3}),
    ),
    row(
        "pods spread across nodes as 2/1/0/3, maxSkew is 2, node-a does not fit",
        pod(**INCOMING, spread=spread(2, key="node")),
        ABXY,
        "node-a",
        SPREAD,
        existing(**{"node-a": 2, "node-b": 1, "node-y": 3}),
    ),
    row(
        "incoming pod that doesn't match itself: skew counts only existing pods",
        pod(spread=spread(key="node")),
        ABXY,
        "node-b",
        None,
        existing(**{"node-a": 2, "node-b": 1, "node-y": 3}),
    ),
    # PTS TestMultipleConstraints
    row(
        "two constraints on zone and node, both satisfied only on node-x",
        pod(**INCOMING, spread=(*spread(), *spread(key="node"))),
        ABXY,
        "node-x",
        None,
        existing(**{"node-a": 1, "node-b": 1, "node-y": 1}),
    ),
    row(
        "two constraints: zone is fine, node is not (node-y)",
        pod(**INCOMING, spread=(*spread(), *spread(key="node"))),
        ABXY,
        "node-y",
        SPREAD,
        existing(**{"node-a": 1, "node-b": 1, "node-y": 1}),
    ),
    row(
        "two constraints: a node lacking one constraint's key counts for neither",
        pod(**INCOMING, spread=(*spread(5), *spread(key="node"))),
        [zn("node-a", "zone1"), zn("node-b", None), zn("node-x", "zone2")],
        "node-a",
        None,
        existing(**{"node-a": 1, "node-x": 1}),
    ),
    # PTS minDomains rows
    row(
        "minDomains 3 with 2 zones: the global minimum is 0",
        pod(**INCOMING, spread=spread(min_domains=3)),
        ABXY,
        "node-a",
        SPREAD,
        existing(**{"node-a": 1, "node-x": 1}),
    ),
    row(
        "minDomains 2 with 2 zones: the real minimum counts",
        pod(**INCOMING, spread=spread(min_domains=2)),
        ABXY,
        "node-a",
        None,
        existing(**{"node-a": 1, "node-x": 1}),
    ),
    # PTS nodeAffinityPolicy / nodeTaintsPolicy rows
    row(
        "NodeAffinityPolicy Honor: a node the pod may not use does not count as a domain",
        pod(**INCOMING, node_selector=(("foo", ""),), spread=spread(key="node")),
        [zn("node-a", "zone1"), zn("node-b", "zone1"), node("node-c", {"node": "node-c", "foo": ""})],
        "node-c",
        None,
        existing(**{"node-c": 1}),
    ),
    row(
        "NodeAffinityPolicy Ignore: every node with the key counts",
        pod(**INCOMING, node_selector=(("foo", ""),), spread=spread(key="node", honor_node_affinity=False)),
        [zn("node-a", "zone1"), zn("node-b", "zone1"), node("node-c", {"node": "node-c", "foo": ""})],
        "node-c",
        SPREAD,
        existing(**{"node-c": 1}),
    ),
    row(
        "NodeTaintsPolicy Ignore (default): a tainted node counts as an empty domain",
        pod(**INCOMING, spread=spread(key="node")),
        [zn("node-a", "zone1"), zn("node-b", "zone1", taints=(Taint("foo", "", "NoSchedule"),))],
        "node-a",
        SPREAD,
        existing(**{"node-a": 1}),
    ),
    row(
        "NodeTaintsPolicy Honor: a node whose taint the pod does not tolerate does not count",
        pod(**INCOMING, spread=spread(key="node", honor_taints=True)),
        [zn("node-a", "zone1"), zn("node-b", "zone1", taints=(Taint("foo", "", "NoSchedule"),))],
        "node-a",
        None,
        existing(**{"node-a": 1}),
    ),
    row(
        "NodeTaintsPolicy Honor: a tolerated taint still counts",
        pod(
            **INCOMING,
            tolerations=(Toleration("foo", "Exists"),),
            spread=spread(key="node", honor_taints=True),
        ),
        [zn("node-a", "zone1"), zn("node-b", "zone1", taints=(Taint("foo", "", "NoSchedule"),))],
        "node-a",
        SPREAD,
        existing(**{"node-a": 1}),
    ),
    row(
        "NodeTaintsPolicy Honor: a PreferNoSchedule taint still counts",
        pod(**INCOMING, spread=spread(key="node", honor_taints=True)),
        [zn("node-a", "zone1"), zn("node-b", "zone1", taints=(Taint("foo", "", "PreferNoSchedule"),))],
        "node-a",
        SPREAD,
        existing(**{"node-a": 1}),
    ),
    row(
        "a nil selector counts no pod",
        pod(**INCOMING, spread=spread(key="node", selector=None)),
        ABXY,
        "node-a",
        None,
        existing(**{"node-a": 3}),
    ),
]


@pytest.mark.parametrize(("p", "nodes", "target", "want", "pods"), SPREAD_ROWS)
def test_topology_spread(p, nodes, target, want, pods):
    check(p, nodes, target, want, pods)


# -- VolumeBinding / VolumeZone ------------------------------------------------------------------


def pinned(*names: str) -> tuple:
    """A local PV's nodeAffinity (K3s local-path: kubernetes.io/hostname In <node>)."""
    return ((req(HOSTNAME_LABEL, "In", *names),),)


def zonal(*zones: str) -> tuple:
    """A volume's zone label, as kube_parse reads it (VolumeZone)."""
    return volume_zone_terms((req(ZONE_LABEL, "In", *zones),))


REGION = "topology.kubernetes.io/region"
VZ_NODES = [node("n1", {ZONE_LABEL: "us-west1-a"}), node("n2", {ZONE_LABEL: "us-west1-b"}), node("n3")]

VOLUME_ROWS = [
    # VB TestCheckBoundClaims / TestFindPodVolumesWithoutProvisioning ("bound-pvc,pv-not-exists" etc.)
    row("a pod without volumes", pod(), [node("n1")], "n1", None),
    row("a local volume on this node", pod(volume_affinity=(pinned("n1"),)), [node("n1")], "n1", None),
    row(
        "a local volume on another node", pod(volume_affinity=(pinned("n1"),)), [node("n1"), node("n2")], "n2", VOLUMES
    ),
    row(
        "two volumes: every volume's affinity must hold",
        pod(volume_affinity=(pinned("n1"), zonal("us-west1-b"))),
        VZ_NODES,
        "n1",
        VOLUMES,
    ),
    row(
        "a volume whose affinity has ORed terms",
        pod(volume_affinity=(((req(ZONE_LABEL, "In", "us-west1-b"),), (req(HOSTNAME_LABEL, "In", "n1"),)),)),
        VZ_NODES,
        "n1",
        None,
    ),
    row(
        "a PV affinity on metadata.name",
        pod(volume_affinity=(((req(NODE_NAME_FIELD, "In", "n2"),),),)),
        VZ_NODES,
        "n2",
        None,
    ),
    row(
        "bound pvc, pv not found: the pod fits nowhere",
        pod(volume_problem="pv pv-a not found"),
        [node("n1")],
        "n1",
        VOLUMES,
    ),
    # VZ TestSingleZone / TestMultiZone
    row("a zonal volume in the node's zone", pod(volume_affinity=(zonal("us-west1-a"),)), VZ_NODES, "n1", None),
    row("a zonal volume in another zone", pod(volume_affinity=(zonal("us-west1-a"),)), VZ_NODES, "n2", VOLUMES),
    row(
        "a regional volume in either zone",
        pod(volume_affinity=(zonal("us-west1-a", "us-west1-b"),)),
        VZ_NODES,
        "n2",
        None,
    ),
    # VZ TestSingleZone "node without labels": no zone or region label, no constraint (found by
    # tests/controlplane's differential test; this row said VOLUMES before).
    row("a zonal volume and a node without a zone", pod(volume_affinity=(zonal("us-west1-a"),)), VZ_NODES, "n3", None),
    # VZ TestSingleZone "pv with zone and region, node with only zone"
    row(
        "a volume with zone and region, a node with only the zone",
        pod(volume_affinity=(volume_zone_terms((req(ZONE_LABEL, "In", "us-west1-a"), req(REGION, "In", "us-west1"))),)),
        [node("n1", {ZONE_LABEL: "us-west1-a"})],
        "n1",
        VOLUMES,
    ),
    row(
        "a zonal volume and a node with only a region",
        pod(volume_affinity=(zonal("us-west1-a"),)),
        [node("n1", {REGION: "us-west1"})],
        "n1",
        VOLUMES,
    ),
]


@pytest.mark.parametrize(("p", "nodes", "target", "want", "pods"), VOLUME_ROWS)
def test_volumes(p, nodes, target, want, pods):
    check(p, nodes, target, want, pods)


# -- landing_daemonsets: what the DaemonSet controller starts on a node --------------------------


def ds(name: str, **placement) -> Pod:
    return Pod(name, "kube-system", 50, 64, owner_kind="DaemonSet", placement=Placement(**placement))


LOGS = ds("logs")
GPU_ONLY = ds("gpu", node_selector=(("gpu", "true"),))
TOLERATES_ALL = ds("cni", tolerations=(Toleration(operator="Exists"),))
NOT_ON_CP = ds("agent", node_affinity=((req("node-role.kubernetes.io/control-plane", "DoesNotExist"),),))
ALL_DS = (LOGS, GPU_ONLY, TOLERATES_ALL, NOT_ON_CP)

DAEMONSET_ROWS = [
    # DS TestNodeShouldRunDaemonPod / TestNodeAffinityDaemonLaunchesPods / TestTaintedNodeDaemonDoesNotLaunchIntolerantPod
    pytest.param(node("w"), ["logs", "cni", "agent"], id="a plain worker gets every DaemonSet without a selector"),
    pytest.param(node("w", {"gpu": "true"}), ["logs", "gpu", "cni", "agent"], id="a selector picks its nodes"),
    pytest.param(
        node("w", taints=(DEDICATED,)), ["cni"], id="a NoSchedule taint keeps off the pods that do not tolerate it"
    ),
    pytest.param(node("w", taints=(Taint("x", "", "NoExecute"),)), ["cni"], id="a NoExecute taint keeps them off too"),
    pytest.param(
        node("w", taints=(Taint("x", "", "PreferNoSchedule"),)),
        ["logs", "cni", "agent"],
        id="a PreferNoSchedule taint does not",
    ),
    pytest.param(
        node("cp", {"node-role.kubernetes.io/control-plane": "true"}),
        ["logs", "cni"],
        id="required node affinity is honoured",
    ),
]


@pytest.mark.parametrize(("n", "want"), DAEMONSET_ROWS)
def test_landing_daemonsets(n, want):
    assert [p.name for p in landing_daemonsets(Slot.of(n), ALL_DS)] == want


def test_landing_daemonsets_on_a_new_worker_consume_its_room():
    """The template node and the DaemonSet pods that land on it: what is left for pending pods."""
    template = node("template", alloc_cpu_m=1000, alloc_mem_mib=1000, alloc_pods=4)
    r = Room()
    slot = Slot.of(template)
    r.add(slot, landing_daemonsets(slot, ALL_DS))
    assert (slot.cpu_m, slot.mem_mib, slot.pods_left) == (850, 808, 1)
    assert r.failure(pod(cpu=900), slot) == RESOURCES
    assert r.failure(pod(cpu=800), slot) is None
    r.place(pod("a", cpu=10), slot)
    assert r.failure(pod("b", cpu=10), slot) == RESOURCES  # pods-per-node


# -- Room bookkeeping: place, undo, withdraw, restore ------------------------------------------


PROBES = [
    pod("probe-web", labels={"app": "web"}),
    pod("probe-web-anti", labels={"app": "web"}, anti_affinity=(term(sel(app="web"), ZONE_LABEL),)),
    *(
        pod(f"probe-db-{skew}", labels={"app": "db"}, spread=(SpreadConstraint(skew, ZONE_LABEL, sel(app="db")),))
        for skew in (1, 2, 3)
    ),
    pod("probe-db-node", labels={"app": "db"}, spread=(SpreadConstraint(1, HOSTNAME_LABEL, sel(app="db")),)),
    pod("probe-port", host_ports=(HostPort(80),)),
    pod("probe-big", cpu=3000),
    pod("probe-x-affinity", affinity=(term(sel(app="x"), ZONE_LABEL),)),
]


def state(r: Room) -> dict:
    """Everything a later verdict reads, seen from outside: each slot's room and pods, and the
    verdict of a set of probe pods on every slot (anti-affinity, spread, ports, affinity)."""
    return {
        "slots": {
            name: (s.cpu_m, s.mem_mib, s.pods_left, [p.key for p in s.pods], sorted(map(repr, s.ports)))
            for name, s in r.slots.items()
        },
        "verdicts": {(p.name, name): r.failure(p, s) for p in PROBES for name, s in r.slots.items()},
    }


def busy_room() -> Room:
    nodes = [node("n1", {ZONE_LABEL: "a"}), node("n2", {ZONE_LABEL: "a"}), node("n3", {ZONE_LABEL: "b"})]
    pods = [
        pod("web-1", "n1", labels={"app": "web"}, anti_affinity=(term(sel(app="web")),), host_ports=(HostPort(80),)),
        pod("db-1", "n2", labels={"app": "db"}, cpu=1000),
        pod("x", "n3", labels={"app": "x"}),
    ]
    return room(nodes, pods)


MOVERS = [
    pod("web-2", labels={"app": "web"}, anti_affinity=(term(sel(app="web")),), host_ports=(HostPort(80),)),
    pod("web-3", labels={"app": "web"}, anti_affinity=(term(sel(app="web"), ZONE_LABEL),)),
    pod("db-2", labels={"app": "db"}, cpu=2500, spread=spread(1, ZONE_LABEL, sel(app="db"))),
    pod("plain", cpu=10),
]


@pytest.mark.parametrize(
    "movers", [MOVERS[:1], MOVERS[1:3], MOVERS, MOVERS[::-1]], ids=["one", "two", "all", "reversed"]
)
def test_place_then_undo_leaves_the_room_as_it_was(movers):
    r = busy_room()
    before = state(r)
    verdicts = {(p.key, s): r.failure(p, r.slots[s]) for p in MOVERS for s in r.slots}
    moves = []
    for p in movers:
        slot = r.first_fit(p)
        if slot is not None:
            moves.append(r.place(p, slot))
    assert moves, "the movers should land somewhere"
    assert state(r) != before
    r.undo(reversed(moves))
    assert state(r) == before
    assert {(p.key, s): r.failure(p, r.slots[s]) for p in MOVERS for s in r.slots} == verdicts


def test_place_all_failure_leaves_the_room_as_it_was():
    r = busy_room()
    before = state(r)
    too_many = [pod(f"w{k}", labels={"app": "web"}, anti_affinity=(term(sel(app="web")),)) for k in range(4)]
    moves, stuck = r.place_all(too_many)
    assert (moves, stuck is not None) == ([], True)
    assert state(r) == before


def test_withdraw_then_restore_leaves_the_room_as_it_was():
    r = busy_room()
    before = state(r)
    probe = pod("web-9", labels={"app": "web"})
    assert r.failure(probe, r.slots["n1"]) == POD_AFFINITY
    slot = r.withdraw("n1")
    # Withdrawn, its pods stop counting: web-1's anti-affinity no longer repels from n1's domain.
    assert "n1" not in r.slots and r.first_fit(probe) is not None
    r.restore(slot)
    assert state(r) == before
    assert r.failure(probe, r.slots["n1"]) == POD_AFFINITY


@pytest.mark.parametrize("order", ["undo, then restore", "restore, then undo"])
def test_a_move_onto_a_withdrawn_node_undone_either_side_of_restore(order):
    """A move onto a node that is then withdrawn (removed in turn), undone before or after the
    node comes back: spread counts, anti-affinity and room end as they began."""
    r = busy_room()
    before = state(r)
    db = pod("db-9", labels={"app": "db"}, spread=spread(1, ZONE_LABEL, sel(app="db")))
    web = pod("web-9", labels={"app": "web"}, anti_affinity=(term(sel(app="web")),))
    moves = [r.place(db, r.slots["n3"]), r.place(web, r.slots["n3"])]
    slot = r.withdraw("n3")
    if order == "undo, then restore":
        r.undo(moves)
        r.restore(slot)
    else:
        r.restore(slot)
        r.undo(moves)
    assert state(r) == before


def test_undo_of_one_pod_keeps_an_equal_pods_anti_affinity():
    """Two equal pods (same value) on two slots: undoing one must not drop the other's hold."""
    r = room([node("n1"), node("n2")])
    twin = pod("t", labels={"app": "t"}, anti_affinity=(term(sel(app="t")),))
    m1 = r.place(twin, r.slots["n1"])
    r.place(dataclasses.replace(twin), r.slots["n2"])
    r.undo([m1])
    assert r.failure(pod("q", labels={"app": "t"}), r.slots["n2"]) == POD_AFFINITY
    assert r.failure(pod("q", labels={"app": "t"}), r.slots["n1"]) is None


# -- why_not: kube-scheduler's FitError message --------------------------------------------------


def test_why_not_counts_nodes_per_filter_like_kube_scheduler():
    # GEN: "0/3 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, 1 ..."
    nodes = [node("n1"), node("n2"), node("n3", {"gpu": "true"}, alloc_cpu_m=100)]
    r = room(nodes)
    p = pod(cpu=500, node_selector=(("gpu", "true"),))
    assert r.why_not(p) == (
        "0/3 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, 1 Insufficient resources"
    )


def test_why_not_on_a_cluster_with_no_node():
    assert Room().why_not(pod()) == "no node to place it on"


def test_why_not_names_only_the_nodes_that_reject():
    r = room([node("n1", cordoned=True), node("n2")])
    assert r.why_not(pod(), [r.slots["n1"]]) == "0/1 nodes are available: 1 node(s) were unschedulable"
