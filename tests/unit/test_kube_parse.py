"""Raw Kubernetes objects into the model (autoscaler.adapters.kube_parse), no sockets.

The objects come from the fake API server's builders, shaped as a K3s API server returns them;
where a parsed field feeds the placement predicate, the test also asks the predicate, so a
field read but misread fails here.
"""

from __future__ import annotations

import pytest

import node_fleet.stack.kube_api as fk
from autoscaler.adapters.kube_parse import (
    DAEMON_TOLERATIONS,
    ClusterObjects,
    PodContext,
    parse_cluster,
    parse_pod,
)
from autoscaler.model import Node, Pod
from autoscaler.placement import VOLUMES, Slot, landing_daemonsets, terms_match
from autoscaler.room import Room
from autoscaler.scheduling import (
    NODE_NAME_FIELD,
    HostPort,
    LabelSelector,
    PodAffinityTerm,
    Requirement,
    SpreadConstraint,
    Taint,
    Toleration,
)

DEFAULT_TOLERATIONS = (
    Toleration("node.kubernetes.io/not-ready", "Exists", "", "NoExecute"),
    Toleration("node.kubernetes.io/unreachable", "Exists", "", "NoExecute"),
)


def one_pod(obj: dict, *others: dict) -> Pod:
    (pod,) = parse_cluster([obj, *others]).pods
    return pod


def node(name: str, zone: str = "eu-west-1a", **labels: str) -> Node:
    """A worker as the predicate sees it."""
    (parsed,) = parse_cluster([fk.node(name, az=zone, labels=labels)]).nodes
    return parsed


def volume_fits(pod: Pod, target: Node) -> bool:
    room = Room()
    slot = room.add(Slot.of(target))
    return room.static_failure(pod, slot) != VOLUMES


# -- nodes -------------------------------------------------------------------------------------


def test_node_fields():
    raw = fk.node(
        "worker-a",
        az="eu-west-1b",
        labels={"node-fleet.io/pool": "batch"},
        taints=[
            {"key": "dedicated", "value": "batch", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule", "timeAdded": "2025-03-01T09:00:00Z"},
        ],
        created="2025-03-01T08:00:00Z",
    )
    raw["status"]["allocatable"]["pods"] = "58"
    raw["status"]["addresses"] += [
        {"type": "InternalDNS", "address": "ip-10-0-1-23.eu-west-1.compute.internal"},
        {"type": "ExternalIP", "address": "54.1.2.3"},
    ]
    ready = next(c for c in raw["status"]["conditions"] if c["type"] == "Ready")
    ready["lastTransitionTime"] = "2025-03-01T08:01:30Z"
    (n,) = parse_cluster([raw]).nodes
    assert n.labels["node-fleet.io/pool"] == "batch" and n.labels["topology.kubernetes.io/zone"] == "eu-west-1b"
    assert n.taints == (
        Taint("dedicated", "batch", "NoSchedule"),
        Taint("node.kubernetes.io/unschedulable", "", "NoSchedule"),
    )
    assert n.alloc_pods == 58
    assert n.addresses == {"10.0.1.23", "worker-a", "ip-10-0-1-23.eu-west-1.compute.internal"}, "no ExternalIP"
    assert n.ready_since == 1_740_816_090.0  # 08:01:30Z
    assert n.instance_id == "i-0123456789abcdef0"


def test_a_k3s_node_keeps_no_instance_id_but_carries_its_addresses():
    (n,) = parse_cluster([fk.node("onprem-1", provider_id="k3s://onprem-1")]).nodes
    assert n.instance_id is None and n.az is None
    assert n.addresses == {"10.0.1.23", "onprem-1"}


# -- pods: node selection and tolerations --------------------------------------------------------


def test_node_selector_and_required_node_affinity_with_every_operator():
    expressions = [
        {"key": "a", "operator": "In", "values": ["1", "2"]},
        {"key": "b", "operator": "NotIn", "values": ["3"]},
        {"key": "c", "operator": "Exists"},
        {"key": "d", "operator": "DoesNotExist"},
        {"key": "e", "operator": "Gt", "values": ["4"]},
        {"key": "f", "operator": "Lt", "values": ["9"]},
    ]
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": expressions},
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["special"]}]},
                ]
            },
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": {"matchExpressions": [{"key": "z", "operator": "Exists"}]}}
            ],
        }
    }
    pod = one_pod(fk.pod("p", spec={"nodeSelector": {"kubernetes.io/os": "linux"}, "affinity": affinity}))
    p = pod.placement
    assert p.node_selector == (("kubernetes.io/os", "linux"),)
    assert p.node_affinity == (
        (
            Requirement("a", "In", ("1", "2")),
            Requirement("b", "NotIn", ("3",)),
            Requirement("c", "Exists"),
            Requirement("d", "DoesNotExist"),
            Requirement("e", "Gt", ("4",)),
            Requirement("f", "Lt", ("9",)),
        ),
        (Requirement(NODE_NAME_FIELD, "In", ("special",)),),
    ), "preferred terms never filter"
    assert terms_match(p.node_affinity, "w", {"a": "2", "c": "", "e": "5", "f": "8"})
    assert not terms_match(p.node_affinity, "w", {"a": "2", "c": "", "e": "4", "f": "8"}), "Gt is strict"
    assert terms_match(p.node_affinity, "special", {}), "matchFields names the node"


def test_no_node_affinity_is_none_not_an_empty_requirement():
    assert one_pod(fk.pod("p")).placement.node_affinity is None


def test_tolerations_with_their_defaults():
    tolerations = [
        {"key": "dedicated", "value": "batch", "effect": "NoSchedule"},
        {"key": "gpu", "operator": "Exists"},
        {"operator": "Exists"},
    ]
    pod = one_pod(fk.pod("p", spec={"tolerations": tolerations}))
    assert pod.placement.tolerations == (
        Toleration("dedicated", "Equal", "batch", "NoSchedule"),
        Toleration("gpu", "Exists", "", ""),
        Toleration("", "Exists", "", ""),
        *DEFAULT_TOLERATIONS,
    )


def test_host_ports_from_containers_and_sidecar_init_containers():
    containers = [
        {"name": "app", "ports": [{"containerPort": 8080, "hostPort": 80}, {"containerPort": 53, "protocol": "UDP"}]},
        {"name": "dns", "ports": [{"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.1.23"}]},
    ]
    init = [
        {"name": "setup", "ports": [{"containerPort": 7000, "hostPort": 7000}]},
        {"name": "sidecar", "restartPolicy": "Always", "ports": [{"containerPort": 9000, "hostPort": 9000}]},
    ]
    pod = one_pod(fk.pod("p", containers=containers, init_containers=init))
    assert pod.placement.host_ports == (HostPort(80), HostPort(53, "UDP", "10.0.1.23"), HostPort(9000)), (
        "a plain init container has exited by the time the pod runs: its port is free again"
    )


# -- pods: inter-pod affinity and spread -------------------------------------------------------


def term(selector: dict | None = None, **extra) -> dict:
    out = {"topologyKey": "kubernetes.io/hostname", **extra}
    if selector is not None:
        out["labelSelector"] = selector
    return out


@pytest.mark.parametrize(
    "desc, raw, namespaces, all_namespaces",
    [
        ("no namespaces: the pod's own", term({}), frozenset(), False),
        ("listed namespaces", term({}, namespaces=["a", "b"]), frozenset({"a", "b"}), False),
        ("namespaceSelector {}: every namespace", term({}, namespaceSelector={}), frozenset(), True),
        (
            "namespaceSelector with labels: cannot be read, every namespace",
            term({}, namespaceSelector={"matchLabels": {"team": "x"}}),
            frozenset(),
            True,
        ),
        ("listed and {}", term({}, namespaces=["a"], namespaceSelector={}), frozenset({"a"}), True),
    ],
)
def test_pod_affinity_term_namespaces(desc, raw, namespaces, all_namespaces):
    affinity = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [raw]}}
    (parsed,) = one_pod(fk.pod("p", "web", spec={"affinity": affinity})).placement.anti_affinity
    assert (parsed.namespaces, parsed.all_namespaces) == (namespaces, all_namespaces), desc


def test_pod_affinity_and_anti_affinity_terms():
    affinity = {
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                term({"matchLabels": {"app": "cache"}}, topologyKey="topology.kubernetes.io/zone")
            ],
        },
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                term(
                    {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
                    matchLabelKeys=["pod-template-hash"],
                    mismatchLabelKeys=["tenant", "absent"],
                ),
                term(None),
            ],
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "podAffinityTerm": term({})}],
        },
    }
    pod = one_pod(fk.pod("p", labels={"app": "web", "tenant": "t1"}, spec={"affinity": affinity}))
    assert pod.placement.affinity == (
        PodAffinityTerm(LabelSelector((("app", "cache"),)), "topology.kubernetes.io/zone"),
    )
    assert pod.placement.anti_affinity == (
        PodAffinityTerm(
            LabelSelector(
                (),
                (
                    Requirement("app", "In", ("web",)),
                    Requirement("pod-template-hash", "In", ("7d9f8b6c5",)),
                    Requirement("tenant", "NotIn", ("t1",)),
                ),
            ),
            "kubernetes.io/hostname",
        ),
        PodAffinityTerm(None, "kubernetes.io/hostname"),
    ), "label keys the pod lacks are skipped; a missing selector selects nothing"


def test_spread_constraints_keep_do_not_schedule_only_with_match_label_keys_folded_in():
    constraints = [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "web"}},
            "matchLabelKeys": ["pod-template-hash", "not-on-the-pod"],
        },
        {
            "maxSkew": 2,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "web"}},
            "minDomains": 3,
            "nodeAffinityPolicy": "Ignore",
            "nodeTaintsPolicy": "Honor",
        },
        {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway"},
    ]
    pod = one_pod(fk.pod("p", labels={"app": "web"}, spec={"topologySpreadConstraints": constraints}))
    web = (("app", "web"),)
    assert pod.placement.spread == (
        SpreadConstraint(
            1,
            "topology.kubernetes.io/zone",
            LabelSelector(web, (Requirement("pod-template-hash", "In", ("7d9f8b6c5",)),)),
            min_domains=1,
            honor_node_affinity=True,
            honor_taints=False,
        ),
        SpreadConstraint(
            2, "kubernetes.io/hostname", LabelSelector(web), min_domains=3, honor_node_affinity=False, honor_taints=True
        ),
    )


def test_replicas_share_a_placement_but_never_one_built_from_another_pods_labels():
    spread = [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "web"}},
            "matchLabelKeys": ["pod-template-hash"],
        }
    ]
    old = fk.pod(
        "web-old-1", labels={"app": "web", "pod-template-hash": "aaa"}, spec={"topologySpreadConstraints": spread}
    )
    new = fk.pod(
        "web-new-1", labels={"app": "web", "pod-template-hash": "bbb"}, spec={"topologySpreadConstraints": spread}
    )
    twin = fk.pod(
        "web-new-2", labels={"app": "web", "pod-template-hash": "bbb"}, spec={"topologySpreadConstraints": spread}
    )
    ported = fk.pod("web-new-3", labels={"app": "web", "pod-template-hash": "bbb"},
                    containers=[{"name": "app", "ports": [{"containerPort": 80, "hostPort": 80}]}],
                    spec={"topologySpreadConstraints": spread})  # fmt: skip
    init = [{"name": "proxy", "ports": [{"containerPort": 81, "hostPort": 81}]}]
    plain_init = fk.pod(
        "web-new-4",
        labels={"app": "web", "pod-template-hash": "bbb"},
        init_containers=init,
        spec={"topologySpreadConstraints": spread},
    )
    sidecar = fk.pod(
        "web-new-5",
        labels={"app": "web", "pod-template-hash": "bbb"},
        init_containers=[{**init[0], "restartPolicy": "Always"}],
        spec={"topologySpreadConstraints": spread},
    )
    pods = {p.name: p for p in parse_cluster([old, new, twin, ported, plain_init, sidecar]).pods}
    hashes = {n: p.placement.spread[0].selector.match_expressions for n, p in pods.items()}
    assert hashes["web-old-1"] == (Requirement("pod-template-hash", "In", ("aaa",)),)
    assert hashes["web-new-1"] == hashes["web-new-2"] == (Requirement("pod-template-hash", "In", ("bbb",)),)
    assert pods["web-new-1"].placement == pods["web-new-2"].placement
    assert pods["web-new-3"].placement.host_ports == (HostPort(80),) and pods["web-new-2"].placement.host_ports == ()
    assert pods["web-new-4"].placement.host_ports == () and pods["web-new-5"].placement.host_ports == (HostPort(81),)


# -- pods: volumes, mirror, budgets -----------------------------------------------------------


def test_local_volumes_and_mirror_pods():
    volumes = [
        {"name": "scratch", "emptyDir": {}},
        {"name": "logs", "hostPath": {"path": "/var/log"}},
        {"name": "config", "configMap": {"name": "c"}},
    ]
    mirror = fk.pod(
        "etcd-server-0",
        "kube-system",
        owner=("Node", "server-0"),
        annotations={"kubernetes.io/config.mirror": "4f1c", "kubernetes.io/config.source": "file"},
        volumes=volumes,
    )
    pod = one_pod(mirror)
    assert pod.local_volumes == ("scratch", "logs") and pod.local_storage
    assert pod.mirror and pod.stays
    plain = one_pod(fk.pod("web-1"))
    assert not plain.mirror and plain.local_volumes == () and not plain.local_storage


def test_pdbs_name_every_budget_that_selects_the_pod():
    pod = fk.pod("web-1", "shop", labels={"app": "web", "tier": "front"})
    budgets = [
        fk.pdb("web", "shop", match_labels={"app": "web"}, disruptions_allowed=1),
        fk.pdb("front", "shop", match_expressions=[{"key": "tier", "operator": "In", "values": ["front"]}],
               disruptions_allowed=0),
        fk.pdb("db", "shop", match_labels={"app": "db"}, disruptions_allowed=2),
        fk.pdb("web", "other", match_labels={"app": "web"}, disruptions_allowed=3),
        fk.pdb("everything", "shop", selector={}, disruptions_allowed=4),
    ]  # fmt: skip
    cluster = parse_cluster([pod, *budgets])
    (parsed,) = cluster.pods
    assert parsed.pdbs == ("shop/web", "shop/front", "shop/everything") and parsed.has_pdb
    assert cluster.budgets == {"shop/web": 1, "shop/front": 0, "shop/db": 2, "other/web": 3, "shop/everything": 4}
    assert one_pod(fk.pod("alone", "shop")).pdbs == () and not one_pod(fk.pod("alone", "shop")).has_pdb


def pvc_volume(claim: str, name: str = "data") -> dict:
    return {"name": name, "persistentVolumeClaim": {"claimName": claim}}


def test_a_local_path_volume_pins_its_pod_to_its_node():
    pod = one_pod(
        fk.pod("db-0", node="worker-a", volumes=[pvc_volume("data-db-0")]),
        fk.claim("data-db-0", volume="pvc-1", node="worker-a"),
        fk.volume("pvc-1", claim=("default", "data-db-0"), node="worker-a"),
        fk.storage_class(),
    )
    assert (
        pod.placement.volume_affinity == (((Requirement("kubernetes.io/hostname", "In", ("worker-a",)),),),)
        and pod.placement.volume_problem is None
    )
    assert volume_fits(pod, node("worker-a")) and not volume_fits(pod, node("worker-b"))


def test_a_zonal_ebs_volume_holds_its_pod_to_its_zone():
    zone_term = {
        "matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["eu-west-1b"]}]
    }
    ebs = {"csi": {"driver": "ebs.csi.aws.com", "volumeHandle": "vol-0abc", "fsType": "ext4"}}
    pod = one_pod(
        fk.pod("db-0", node="worker-b", volumes=[pvc_volume("data-db-0")]),
        fk.claim("data-db-0", volume="pvc-2", storage_class="gp3", provisioner="ebs.csi.aws.com"),
        fk.volume("pvc-2", claim=("default", "data-db-0"), node_affinity=[zone_term], source=ebs, storage_class="gp3"),
    )
    assert volume_fits(pod, node("worker-b", "eu-west-1b")) and volume_fits(pod, node("worker-d", "eu-west-1b"))
    assert not volume_fits(pod, node("worker-a", "eu-west-1a"))


@pytest.mark.parametrize(
    "desc, labels, fits, misfits",
    [
        ("GA zone label", {"topology.kubernetes.io/zone": "eu-west-1a"}, ["eu-west-1a"], ["eu-west-1c"]),
        ("beta zone label, read as the GA one", {"failure-domain.beta.kubernetes.io/zone": "eu-west-1c"},
         ["eu-west-1c"], ["eu-west-1a"]),
        ("several zones joined by __", {"topology.kubernetes.io/zone": "eu-west-1a__eu-west-1b"},
         ["eu-west-1a", "eu-west-1b"], ["eu-west-1c"]),
        ("zone and region", {"topology.kubernetes.io/zone": "eu-west-1a",
                             "failure-domain.beta.kubernetes.io/region": "eu-west-1"}, ["eu-west-1a"], ["eu-west-1b"]),
    ],
)  # fmt: skip
def test_a_legacy_volume_without_node_affinity_holds_to_the_zone_of_its_labels(desc, labels, fits, misfits):
    ebs = {"awsElasticBlockStore": {"volumeID": "vol-0abc", "fsType": "ext4"}}
    pod = one_pod(
        fk.pod("db-0", node="worker-a", volumes=[pvc_volume("data-db-0")]),
        fk.claim("data-db-0", volume="pv-ebs", storage_class="gp2", provisioner="kubernetes.io/aws-ebs"),
        fk.volume("pv-ebs", claim=("default", "data-db-0"), labels=labels, source=ebs, storage_class="gp2"),
    )
    for zone in fits:
        assert volume_fits(pod, node("w", zone)), (desc, zone)
    for zone in misfits:
        assert not volume_fits(pod, node("w", zone)), (desc, zone)


def test_a_volume_with_node_affinity_and_zone_labels_must_be_reachable_by_both():
    csi_zone = {
        "matchExpressions": [{"key": "topology.ebs.csi.aws.com/zone", "operator": "In", "values": ["eu-west-1a"]}]
    }
    pod = one_pod(
        fk.pod("db-0", node="worker-a", volumes=[pvc_volume("data-db-0")]),
        fk.claim("data-db-0", volume="pv-both", storage_class="gp3", provisioner="ebs.csi.aws.com"),
        fk.volume("pv-both", claim=("default", "data-db-0"), node_affinity=[csi_zone],
                  labels={"topology.kubernetes.io/zone": "eu-west-1a"}, source={"csi": {"driver": "ebs.csi.aws.com"}}),
    )  # fmt: skip
    csi_a = {"topology.ebs.csi.aws.com/zone": "eu-west-1a"}
    assert volume_fits(pod, node("w", "eu-west-1a", **csi_a))
    assert not volume_fits(pod, node("w", "eu-west-1a")), "the VolumeBinding filter: no CSI zone label"
    assert not volume_fits(pod, node("w", "eu-west-1b", **csi_a)), "the VolumeZone filter: another zone"


def test_a_host_path_volume_without_node_affinity_pins_a_scheduled_pod_to_its_node():
    raw = fk.volume("pv-host", claim=("default", "data-db-0"), storage_class="manual")
    pod = one_pod(
        fk.pod("db-0", node="worker-a", volumes=[pvc_volume("data-db-0")]),
        fk.claim("data-db-0", volume="pv-host", storage_class="manual", provisioner=""),
        raw,
    )
    assert "nodeAffinity" not in raw["spec"]
    assert volume_fits(pod, node("worker-a")) and not volume_fits(pod, node("worker-b"))


def test_a_network_volume_adds_no_constraint():
    nfs = {"nfs": {"server": "10.0.0.5", "path": "/exports/a"}}
    pod = one_pod(
        fk.pod("app-1", node="worker-a", volumes=[pvc_volume("shared")]),
        fk.claim("shared", volume="pv-nfs", storage_class="nfs", provisioner=""),
        fk.volume("pv-nfs", claim=("default", "shared"), source=nfs, storage_class="nfs"),
    )
    assert pod.placement.volume_affinity == () and pod.placement.volume_problem is None


@pytest.mark.parametrize(
    "desc, others, problem",
    [
        ("claim missing", [], "persistentvolumeclaim default/data-db-0 not found"),
        ("volume missing", [fk.claim("data-db-0", volume="pvc-9", storage_class="gp3", provisioner="ebs.csi.aws.com")],
         "persistentvolume pvc-9 of persistentvolumeclaim default/data-db-0 not found"),
        ("claim unbound though the pod runs", [fk.claim("data-db-0")],
         "persistentvolumeclaim default/data-db-0 is not bound"),
    ],
)  # fmt: skip
def test_a_scheduled_pod_whose_volume_cannot_be_found_fits_nowhere_else(desc, others, problem):
    pod = one_pod(fk.pod("db-0", node="worker-a", volumes=[pvc_volume("data-db-0")]), *others)
    assert pod.placement.volume_problem == problem, desc
    assert not volume_fits(pod, node("worker-b")), desc


def test_a_local_path_claim_whose_volume_is_unreadable_pins_to_the_pods_node():
    pod = one_pod(
        fk.pod("db-0", node="worker-a", volumes=[pvc_volume("data-db-0")]),
        fk.claim("data-db-0", volume="pvc-1", provisioner=""),  # the class says local-path
        fk.storage_class(),
    )
    assert pod.placement.volume_problem is None
    assert volume_fits(pod, node("worker-a")) and not volume_fits(pod, node("worker-b"))


def test_an_unbound_claim_of_a_pending_pod_adds_no_constraint():
    pending = fk.pod("db-0", unschedulable_since="2025-03-01T09:30:00Z", volumes=[pvc_volume("data-db-0")])
    pod = one_pod(pending, fk.claim("data-db-0"), fk.storage_class())
    assert pod.node is None
    assert pod.placement.volume_affinity == () and pod.placement.volume_problem is None


def test_a_generic_ephemeral_volume_resolves_through_its_pod_named_claim():
    ephemeral = {"name": "cache", "ephemeral": {"volumeClaimTemplate": {"spec": {"storageClassName": "local-path"}}}}
    pod = one_pod(
        fk.pod("web-1", node="worker-a", volumes=[ephemeral]),
        fk.claim("web-1-cache", volume="pvc-3"),
        fk.volume("pvc-3", claim=("default", "web-1-cache"), node="worker-a"),
    )
    assert volume_fits(pod, node("worker-a")) and not volume_fits(pod, node("worker-b"))
    waiting = one_pod(fk.pod("web-2", unschedulable_since="2025-03-01T09:30:00Z", volumes=[ephemeral]))
    assert waiting.placement.volume_problem is None, "its claim is made once the pod exists"


def test_claims_resolve_whatever_the_order_of_the_objects():
    objs = [
        fk.volume("pvc-1", claim=("default", "data-db-0"), node="worker-a"),
        fk.pod("db-0", node="worker-a", volumes=[pvc_volume("data-db-0")]),
        fk.claim("data-db-0", volume="pvc-1"),
    ]
    assert one_pod(*objs) == one_pod(*reversed(objs))


# -- DaemonSets -------------------------------------------------------------------------------


def test_a_daemonset_is_one_unbound_pod_with_the_controllers_tolerations():
    ds = fk.daemonset(
        "fluent-bit",
        cpu="50m",
        memory="100Mi",
        labels={"app": "fluent-bit"},
        spec={"tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]},
    )
    (pod,) = parse_cluster([ds]).daemonsets
    assert (pod.name, pod.namespace, pod.node, pod.owner_kind) == ("fluent-bit", "kube-system", None, "DaemonSet")
    assert (pod.cpu_m, pod.mem_mib) == (50, 100)
    assert pod.labels["app"] == "fluent-bit" and pod.is_daemonset
    assert pod.placement.tolerations == (Toleration("dedicated", "Exists", "", "NoSchedule"), *DAEMON_TOLERATIONS)
    assert {(t.key, t.effect) for t in DAEMON_TOLERATIONS} == {
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    }
    cordoned = Slot.of(Node("w", 2000, 4000, taints=(Taint("node.kubernetes.io/unschedulable", "", "NoSchedule"),)))
    assert landing_daemonsets(cordoned, [pod]) == [pod]
    network_down = Slot.of(
        Node("w", 2000, 4000, taints=(Taint("node.kubernetes.io/network-unavailable", "", "NoSchedule"),))
    )
    assert landing_daemonsets(network_down, [pod]) == [], "network-unavailable only for host-network pods"


def test_a_host_network_daemonset_tolerates_an_unavailable_network_and_binds_its_ports():
    ds = fk.daemonset(
        "node-exporter",
        spec={"hostNetwork": True},
    )
    ds["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 9100, "protocol": "TCP"}]
    (pod,) = parse_cluster([ds]).daemonsets
    assert Toleration("node.kubernetes.io/network-unavailable", "Exists", "", "NoSchedule") in pod.placement.tolerations
    assert pod.placement.host_ports == (HostPort(9100),), "the API server no longer defaults them in templates"


def test_a_toleration_the_daemonset_already_has_is_not_added_twice():
    own = {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}
    (pod,) = parse_cluster([fk.daemonset("ds", spec={"tolerations": [own]})]).daemonsets
    assert pod.placement.tolerations.count(DAEMON_TOLERATIONS[0]) == 1


# -- the whole listing ---------------------------------------------------------------------------


def test_parse_cluster_sorts_kinds_drops_finished_pods_and_ignores_other_kinds():
    objs = [
        fk.node("worker-a"),
        fk.pod("web-1", node="worker-a"),
        fk.pod("report-1", node="worker-a", owner=("Job", "report"), phase="Succeeded"),
        fk.pod("crashed-1", node="worker-a", owner=("Job", "crashed"), phase="Failed"),
        fk.pdb("web", match_labels={"app.kubernetes.io/name": "web"}, disruptions_allowed=1),
        fk.daemonset("fluent-bit"),
        {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c"}},
        fk.kustomization("apps"),
    ]
    cluster = parse_cluster(objs)
    assert isinstance(cluster, ClusterObjects)
    assert [n.name for n in cluster.nodes] == ["worker-a"]
    assert [p.name for p in cluster.pods] == ["web-1"]
    assert cluster.pods[0].pdbs == ("default/web",)
    assert cluster.budgets == {"default/web": 1}
    assert [d.name for d in cluster.daemonsets] == ["fluent-bit"]
    assert parse_cluster([]) == ClusterObjects()


def test_parse_pod_without_context_has_no_budgets_and_flags_its_claims():
    pod = parse_pod(fk.pod("db-0", node="w", volumes=[pvc_volume("c")]), PodContext())
    assert (
        pod is not None
        and pod.pdbs == ()
        and pod.placement.volume_problem == "persistentvolumeclaim default/c not found"
    )


def bad_operator() -> dict:
    terms = [{"matchExpressions": [{"key": "a", "operator": "Near", "values": ["1"]}]}]
    return fk.pod(
        "p",
        "shop",
        spec={
            "affinity": {
                "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}
            }
        },
    )


def nameless_node() -> dict:
    raw = fk.node("n")
    del raw["metadata"]["name"]
    return raw


def bad_match_field() -> dict:
    terms = [{"matchFields": [{"key": "spec.nodeName", "operator": "In", "values": ["n"]}]}]
    return fk.pod(
        "p",
        spec={
            "affinity": {
                "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}
            }
        },
    )


def bad_quantity() -> dict:
    return fk.pod("p", cpu="lots")


def claim_without_name() -> dict:
    return fk.pod("p", volumes=[{"name": "data", "persistentVolumeClaim": {}}])


@pytest.mark.parametrize(
    "desc, objs, message",
    [
        ("an item that is not an object", [fk.node("n"), ["not", "an", "object"]], "item 1 is not an object but list"),
        ("an item without a kind", [{"metadata": {"name": "x"}}], "item 0: kind: missing"),
        ("a Node without metadata.name", [nameless_node()], "Node ?: metadata.name: missing"),
        ("an operator the API does not know", [bad_operator()],
         "Pod shop/p: spec.affinity.nodeAffinity.required.nodeSelectorTerms.matchExpressions: operator 'Near'"),
        ("matchFields on another field", [bad_match_field()], "Pod default/p: spec.affinity.nodeAffinity.required"
         ".nodeSelectorTerms.matchFields: key 'spec.nodeName' is not metadata.name"),
        ("a request that is not a quantity", [bad_quantity()], "Pod default/p: 'lots' is not a Kubernetes quantity"),
        ("a claim volume without claimName", [claim_without_name()], "Pod default/p: missing field 'claimName'"),
        ("a PDB whose metadata is not an object", [{"kind": "PodDisruptionBudget", "metadata": "x"}],
         "PodDisruptionBudget ?:"),
    ],
)  # fmt: skip
def test_bad_input_names_the_object_and_the_field(desc, objs, message):
    with pytest.raises(ValueError) as err:
        parse_cluster(objs)
    assert str(err.value).startswith(message), (desc, str(err.value))
