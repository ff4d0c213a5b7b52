"""What kube-scheduler's filters read from a pod spec: node selector and affinity, pod
(anti-)affinity, topology spread, host ports, tolerations, and the resources it reserves."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from autoscaler.adapters.kube_values import cpu_millis, mem_bytes
from autoscaler.scheduling import (
    NO_CONSTRAINTS,
    NODE_NAME_FIELD,
    HostPort,
    LabelSelector,
    NodeSelectorTerm,
    Placement,
    PodAffinityTerm,
    Requirement,
    SpreadConstraint,
    Toleration,
)

OPERATORS = frozenset(("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"))


def _requirement(raw: Mapping[str, Any], where: str) -> Requirement:
    operator = raw.get("operator")
    if operator not in OPERATORS:
        raise ValueError(f"{where}: operator {operator!r} is not one of {', '.join(sorted(OPERATORS))}")
    return Requirement(raw["key"], operator, tuple(raw.get("values") or ()))


def node_selector_terms(terms: Iterable[Mapping[str, Any]], where: str) -> tuple[NodeSelectorTerm, ...]:
    """nodeSelectorTerms (ORed); matchFields may only name metadata.name, as the API enforces."""
    out = []
    for term in terms:
        reqs = [_requirement(r, f"{where}.matchExpressions") for r in term.get("matchExpressions") or ()]
        for r in term.get("matchFields") or ():
            if r.get("key") != NODE_NAME_FIELD:
                raise ValueError(f"{where}.matchFields: key {r.get('key')!r} is not {NODE_NAME_FIELD}")
            reqs.append(_requirement(r, f"{where}.matchFields"))
        out.append(tuple(reqs))
    return tuple(out)


def label_selector(raw: Mapping[str, Any] | None, where: str) -> LabelSelector | None:
    """A metav1.LabelSelector; None (absent) selects nothing, {} selects everything."""
    if raw is None:
        return None
    return LabelSelector(
        tuple(sorted((raw.get("matchLabels") or {}).items())),
        tuple(_requirement(r, f"{where}.matchExpressions") for r in raw.get("matchExpressions") or ()),
    )


def _fold_label_keys(
    selector: LabelSelector | None, labels: Mapping[str, str], match: Iterable[str], mismatch: Iterable[str] = ()
) -> LabelSelector | None:
    """matchLabelKeys (and mismatchLabelKeys) as kube-scheduler reads them: `key In/NotIn
    [the pod's own value]` for each key the pod carries; a missing selector stays one that
    selects nothing."""
    extra = tuple(Requirement(k, "In", (labels[k],)) for k in match if k in labels) + tuple(
        Requirement(k, "NotIn", (labels[k],)) for k in mismatch if k in labels
    )
    if selector is None or not extra:
        return selector
    return LabelSelector(selector.match_labels, selector.match_expressions + extra)


def _affinity_terms(
    raw: Mapping[str, Any] | None, labels: Mapping[str, str], where: str
) -> tuple[PodAffinityTerm, ...]:
    terms = (raw or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or ()
    out = []
    for t in terms:
        # namespaceSelector {} means every namespace. One with labels cannot be evaluated (we do
        # not read namespaces), so it counts every namespace too: exact in anti-affinity's safe
        # direction, generous for affinity.
        out.append(
            PodAffinityTerm(
                selector=_fold_label_keys(
                    label_selector(t.get("labelSelector"), f"{where}.labelSelector"),
                    labels,
                    t.get("matchLabelKeys") or (),
                    t.get("mismatchLabelKeys") or (),
                ),
                topology_key=t["topologyKey"],
                namespaces=frozenset(t.get("namespaces") or ()),
                all_namespaces=t.get("namespaceSelector") is not None,
            )
        )
    return tuple(out)


def _spread(raw: Iterable[Mapping[str, Any]], labels: Mapping[str, str]) -> tuple[SpreadConstraint, ...]:
    where = "spec.topologySpreadConstraints"
    return tuple(
        SpreadConstraint(
            max_skew=int(c["maxSkew"]),
            topology_key=c["topologyKey"],
            selector=_fold_label_keys(
                label_selector(c.get("labelSelector"), f"{where}.labelSelector"), labels, c.get("matchLabelKeys") or ()
            ),
            min_domains=int(c.get("minDomains") or 1),
            honor_node_affinity=(c.get("nodeAffinityPolicy") or "Honor") == "Honor",
            honor_taints=(c.get("nodeTaintsPolicy") or "Ignore") == "Honor",
        )
        for c in raw
        # ScheduleAnyway only scores; it never filters a node out.
        if c.get("whenUnsatisfiable") == "DoNotSchedule"
    )


def _host_ports(spec: Mapping[str, Any]) -> tuple[HostPort, ...]:
    """The containers' and the restartable ("sidecar") init containers' hostPorts: the NodePorts
    filter counts no other init container's (kubernetes/kubernetes#132040), as they have exited
    by the time the pod runs."""
    # A host-network pod binds its container ports on the node. The API server writes them as
    # hostPorts into pods, but no longer into templates, so a DaemonSet's come from here.
    host_network = bool(spec.get("hostNetwork"))
    sidecars = [c for c in spec.get("initContainers") or () if c.get("restartPolicy") == "Always"]
    out = []
    for containers in (spec.get("containers"), sidecars):
        for c in containers or ():
            for p in c.get("ports") or ():
                port = p.get("hostPort") or (p.get("containerPort") if host_network else None)
                if port:
                    out.append(HostPort(int(port), p.get("protocol") or "TCP", p.get("hostIP") or ""))
    return tuple(out)


def _tolerations(raw: Iterable[Mapping[str, Any]]) -> tuple[Toleration, ...]:
    return tuple(
        Toleration(t.get("key") or "", t.get("operator") or "Equal", t.get("value") or "", t.get("effect") or "")
        for t in raw
    )


def pod_placement(
    spec: Mapping[str, Any],
    labels: Mapping[str, str],
    *,
    extra_tolerations: tuple[Toleration, ...] = (),
) -> Placement:
    """Everything but volumes (see PodContext.volume_placement)."""
    affinity = spec.get("affinity") or {}
    node_affinity = (affinity.get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    tolerations = _tolerations(spec.get("tolerations") or ())
    tolerations += tuple(t for t in extra_tolerations if t not in tolerations)
    placement = Placement(
        node_selector=tuple(sorted((spec.get("nodeSelector") or {}).items())),
        node_affinity=None
        if node_affinity is None
        else node_selector_terms(
            node_affinity.get("nodeSelectorTerms") or (), "spec.affinity.nodeAffinity.required.nodeSelectorTerms"
        ),
        tolerations=tolerations,
        host_ports=_host_ports(spec),
        affinity=_affinity_terms(affinity.get("podAffinity"), labels, "spec.affinity.podAffinity"),
        anti_affinity=_affinity_terms(affinity.get("podAntiAffinity"), labels, "spec.affinity.podAntiAffinity"),
        spread=_spread(spec.get("topologySpreadConstraints") or (), labels),
    )
    return NO_CONSTRAINTS if placement == NO_CONSTRAINTS else placement


# ---------------------------------------------------------------------------------------------
# Requests


def _container_requests(container: Mapping[str, Any]) -> tuple[int, int]:
    requests = (container.get("resources") or {}).get("requests")
    if not requests:
        return 0, 0
    cpu, mem = requests.get("cpu"), requests.get("memory")  # nosec B113  # a dict of resource requests, not HTTP
    return (cpu_millis(str(cpu)) if cpu is not None else 0, mem_bytes(str(mem)) if mem is not None else 0)


def pod_requests(spec: Mapping[str, Any]) -> tuple[int, int]:
    """(millicores, bytes) the scheduler reserves for a pod: the sum over its containers, or the
    largest init container (with the restartable "sidecar" init containers started before it)
    if that is more, plus the pod overhead; pod-level requests, when set, take precedence."""
    cpu = mem = 0
    for c in spec.get("containers") or ():
        c_cpu, c_mem = _container_requests(c)
        cpu += c_cpu
        mem += c_mem
    init_cpu = init_mem = side_cpu = side_mem = 0
    for c in spec.get("initContainers") or ():
        c_cpu, c_mem = _container_requests(c)
        if c.get("restartPolicy") == "Always":
            cpu += c_cpu
            mem += c_mem
            side_cpu += c_cpu
            side_mem += c_mem
            c_cpu, c_mem = side_cpu, side_mem
        else:
            c_cpu += side_cpu
            c_mem += side_mem
        init_cpu, init_mem = max(init_cpu, c_cpu), max(init_mem, c_mem)
    cpu, mem = max(cpu, init_cpu), max(mem, init_mem)
    pod_level = (spec.get("resources") or {}).get("requests") or {}
    if pod_level.get("cpu") is not None:
        cpu = cpu_millis(str(pod_level["cpu"]))
    if pod_level.get("memory") is not None:
        mem = mem_bytes(str(pod_level["memory"]))
    overhead = spec.get("overhead") or {}
    if overhead.get("cpu") is not None:
        cpu += cpu_millis(str(overhead["cpu"]))
    if overhead.get("memory") is not None:
        mem += mem_bytes(str(overhead["memory"]))
    return cpu, mem
