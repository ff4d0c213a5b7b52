"""`node-fleet plan`: what would node-fleet do to this cluster now? Read only.

The cluster comes from what `kubectl get nodes,pods,pdb,pv,pvc,daemonsets,storageclasses -A -o json`
prints (JSON or YAML), or from a live API server through a kubeconfig; the worker instances from
a JSON file or, without one, from the Nodes themselves. The planner then runs as the Lambda runs
it, with every timer run out: each unneeded node's unneeded time, the cool-downs after a
scale-up or a failure, and the window of sustained CPU. So each node's verdict answers "would
node-fleet remove it now, had it waited long enough?"; every other rule applies. Nothing is
written anywhere.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autoscaler.adapters.kube_parse import ClusterObjects, parse_cluster
from autoscaler.config import Settings
from autoscaler.matching import bind
from autoscaler.model import (
    ClusterSnapshot,
    Decision,
    Instance,
    InstanceState,
    MetricsView,
    Node,
    NodeVerdict,
    ScalingState,
)
from autoscaler.planner import plan
from autoscaler.scheduling import ZONE_LABEL

LIST_COMMAND = "kubectl get nodes,pods,pdb,pv,pvc,daemonsets,storageclasses -A -o json"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
NOT_A_WORKER = "not_a_worker"
NOT_ASSESSED = "not_assessed"


@dataclass(frozen=True, slots=True)
class Note:
    """Something the answer rests on that the planner's reasons do not say."""

    code: str
    detail: str


USAGE_ASSUMED_LOW = Note(
    "usage_assumed_low",
    "no --prometheus: CPU and memory usage taken as 0, so this is what the requests-driven rules do",
)


@dataclass(frozen=True, slots=True)
class Answer:
    decision: Decision
    nodes: Mapping[str, NodeVerdict]
    """A verdict for every node that is not the control plane."""
    notes: tuple[Note, ...]
    now: float


# -- reading ------------------------------------------------------------------------------------


def read_cluster_file(path: Path) -> ClusterObjects:
    data = _decode(path)
    kind = data.get("kind") if isinstance(data, Mapping) else None
    if not isinstance(kind, str) or not kind.endswith("List") or not isinstance(data.get("items"), list):
        raise ValueError(f"{path}: not a Kubernetes List (kind: List, items: [...]), as `{LIST_COMMAND}` prints")
    try:
        return parse_cluster(data["items"])
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def read_cluster_live(kubeconfig: Path, context: str | None) -> ClusterObjects:
    """Lists only, through the Lambda's own adapter: nothing is written to the cluster."""
    from autoscaler.adapters.kube import KubeCluster, KubeError
    from autoscaler.config.kube import KubeOptions

    cluster = KubeCluster.from_options(KubeOptions(kubeconfig=str(kubeconfig), context=context))
    try:
        pods = tuple(cluster.list_pods())  # before the budgets: they are read once, with the pods
        return ClusterObjects(
            tuple(cluster.list_nodes()), pods, dict(cluster.disruption_budgets()), tuple(cluster.daemonset_pods())
        )
    except KubeError as exc:
        raise ValueError(f"{kubeconfig}: {exc}") from None
    finally:
        cluster.close()


def _decode(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if path.suffix not in (".yaml", ".yml"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            if text.lstrip()[:1] in ("{", "[") or path.suffix == ".json":
                raise ValueError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    return _yaml(text, path)


def _yaml(text: str, path: Path) -> Any:
    try:
        import yaml
    except ImportError:
        raise ValueError(f"{path}: not JSON, and reading YAML needs PyYAML (pip install pyyaml)") from None
    try:
        return yaml.load(text, Loader=_yaml_loader(yaml))  # nosec B506  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{path}: neither JSON nor YAML ({getattr(exc, 'problem', None) or exc}{where})") from None


def _yaml_loader(yaml: Any) -> type:
    """The safe loader, fast when libyaml is there, with timestamps kept as the API's strings."""
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    resolvers = {
        first: [(tag, rx) for tag, rx in found if tag != "tag:yaml.org,2002:timestamp"]
        for first, found in base.yaml_implicit_resolvers.items()
    }
    return type("ApiLoader", (base,), {"yaml_implicit_resolvers": resolvers})


def read_instances(path: Path, settings: Settings, environ: Mapping[str, str]) -> tuple[list[Instance], list[Note]]:
    """The workers of this cluster in a JSON list of {"id", "zone", "state", "launched_at",
    "stopped_at", "private_ip", "private_dns_name", "vpc_id", "tags"}; an instance the Fleet port would not
    list (other tags, another VPC) is left out, and a note says so."""
    from autoscaler.adapters.ec2 import CLUSTER_TAG, ROLE_TAG, WORKER_ROLE

    data = _decode(path)
    if not isinstance(data, list):
        raise ValueError(f"{path}: not a JSON list of instances")
    vpc = environ.get("VPC_ID", "").strip()
    instances, foreign = [], []
    for i, raw in enumerate(data):
        where = f"{path}: instance {i}"
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where}: not an object but {type(raw).__name__}")
        instance = _instance(raw, where)
        tags = _tags(raw.get("tags"), f"{where} ({instance.id}): tags")
        vpc_id = _optional_str(raw, "vpc_id", where)
        ours = tags.get(CLUSTER_TAG) == settings.cluster_name and tags.get(ROLE_TAG) == WORKER_ROLE
        # EC2 drops a terminated instance's VPC, as the adapter knows.
        in_vpc = not vpc or vpc_id == vpc or instance.state is InstanceState.TERMINATED
        (instances if ours and in_vpc else foreign).append(instance)
    notes = []
    if foreign:
        want = f"tags {CLUSTER_TAG}={settings.cluster_name}, {ROLE_TAG}={WORKER_ROLE}" + (f", VPC {vpc}" if vpc else "")
        ids = ", ".join(i.id for i in foreign)
        notes.append(Note(NOT_A_WORKER, f"{ids}: not this cluster's worker ({want}), left out"))
    return instances, notes


def _instance(raw: Mapping[str, Any], where: str) -> Instance:
    iid = raw.get("id")
    if not isinstance(iid, str) or not iid:
        raise ValueError(f"{where}: id: missing or not a string")
    where = f"{where} ({iid})"
    zone = raw.get("zone")
    if not isinstance(zone, str):
        raise ValueError(f"{where}: zone: missing or not a string")
    try:
        state = InstanceState(raw.get("state"))
    except ValueError:
        allowed = ", ".join(s.value for s in InstanceState)
        raise ValueError(f"{where}: state: {raw.get('state')!r} is not one of {allowed}") from None
    return Instance(
        iid,
        state,
        zone,
        _optional_str(raw, "instance_type", where) or "",
        _time(raw.get("launched_at"), f"{where}: launched_at"),
        private_ip=_optional_str(raw, "private_ip", where),
        private_dns_name=_optional_str(raw, "private_dns_name", where),
        stopped_at=None if raw.get("stopped_at") is None else _time(raw["stopped_at"], f"{where}: stopped_at"),
    )


def _optional_str(raw: Mapping[str, Any], key: str, where: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{where}: {key}: not a string")
    return value or None


def _tags(raw: Any, where: str) -> dict[str, str]:
    """A mapping, or EC2's own list of {"Key", "Value"}."""
    if raw is None:
        return {}
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    if isinstance(raw, list) and all(isinstance(t, Mapping) and "Key" in t for t in raw):
        return {str(t["Key"]): str(t.get("Value", "")) for t in raw}
    raise ValueError(f"{where}: not an object of key: value, nor a list of {{Key, Value}}")


def _time(value: Any, where: str) -> float:
    """ISO 8601 (UTC when no offset is given) or epoch seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    raise ValueError(f"{where}: {value!r} is not an ISO 8601 time (e.g. 2026-01-31T09:30:00Z)")


def parse_now(text: str) -> float:
    return _time(text, "--now")


def instances_from_nodes(nodes: Iterable[Node]) -> list[Instance]:
    """Each Node that is not the control plane taken as its own running worker: its aws:///
    instance, or an id made from its name, found again by its addresses as K3s nodes are."""
    instances = []
    for node in nodes:
        if node.control_plane:
            continue
        ips = sorted(a for a in node.addresses if _is_ip(a))
        dns = sorted(a for a in node.addresses if not _is_ip(a) and "." in a)
        instances.append(
            Instance(
                node.instance_id or f"synthetic-{node.name}",
                InstanceState.RUNNING,
                node.labels.get(ZONE_LABEL) or node.az or "",
                node.labels.get(INSTANCE_TYPE_LABEL, ""),
                node.created_at,
                private_ip=ips[0] if ips else None,
                private_dns_name=dns[0] if dns else node.name,
            )
        )
    return instances


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def low_usage(nodes: Iterable[Node]) -> MetricsView:
    """No Prometheus: usage taken as nil, so the requests-driven rules alone decide."""
    idle = {n.name: 0.0 for n in nodes}
    return MetricsView(cluster_cpu=0.0, node_cpu=idle, cluster_mem=0.0, node_mem=dict(idle))


def prometheus_usage(url: str, environ: Mapping[str, str]) -> MetricsView:
    """Usage read as the Lambda reads it (PROMETHEUS_* variables apply; no credentials)."""
    import time

    from autoscaler.adapters.prometheus import PrometheusMetrics, PrometheusOptions

    metrics = PrometheusMetrics(PrometheusOptions.from_env({**environ, "PROMETHEUS_URL": url}))
    try:
        # Prometheus answers for the present, whatever --now says: its staleness is judged by the clock.
        return metrics.sample(time.time())
    finally:
        metrics.close()


# -- deciding -----------------------------------------------------------------------------------


def what_if(
    cluster: ClusterObjects,
    instances: Sequence[Instance],
    metrics: MetricsView,
    settings: Settings,
    now: float,
    notes: Sequence[Note] = (),
) -> Answer:
    snapshot = ClusterSnapshot(
        nodes=cluster.nodes,
        pods=cluster.pods,
        instances=tuple(instances),
        metrics=metrics,
        zones=tuple(sorted({i.az for i in instances if i.az})),
        pdbs=dict(cluster.budgets),
        daemonsets=cluster.daemonsets,
    )
    # Every timer run out: each node unneeded long enough, CPU high (if it is) for its window, no
    # scale-up or failure to cool down from.
    state = ScalingState(
        unneeded_since={n.name: now - settings.scale_down_unneeded_time_s for n in cluster.nodes},
        pressure_since=now - settings.cpu_high_window_s,
    )
    decision = plan(snapshot, state, settings, now)
    return Answer(decision, _verdicts(decision, cluster.nodes, instances), tuple(notes), now)


def _verdicts(decision: Decision, nodes: Sequence[Node], instances: Sequence[Instance]) -> dict[str, NodeVerdict]:
    """The planner's verdicts, and one for each other node that is not the control plane."""
    workers = bind(nodes, (i for i in instances if i.alive)).instance_of
    action = decision.action.value
    verdicts = dict(decision.nodes)
    for node in nodes:
        if node.control_plane or node.name in verdicts:
            continue
        if node.name in workers:
            verdicts[node.name] = NodeVerdict(False, NOT_ASSESSED, f"scale-down was not looked at (action {action})")
        else:
            verdicts[node.name] = NodeVerdict(False, NOT_A_WORKER, "no worker instance of this cluster matches it")
    return dict(sorted(verdicts.items()))


# -- answering ----------------------------------------------------------------------------------


def to_json(answer: Answer) -> dict[str, Any]:
    d = answer.decision
    return {
        "action": d.action.value,
        "launches": dict(d.launches),
        "remove": list(d.remove),
        "terminate": [d.instances[n] for n in d.remove if n in d.instances] + list(d.terminate_unjoined),
        "nodes": {
            name: {"candidate": v.candidate, "reason": v.reason, "detail": v.detail} for name, v in answer.nodes.items()
        },
        "unhelpable": [{"pod": u.pod, "reason": u.reason, "detail": u.detail} for u in d.unhelpable],
        "reasons": [{"code": r.code.value, "detail": r.detail} for r in d.reasons]
        + [{"code": n.code, "detail": n.detail} for n in answer.notes],
    }


def format_answer(answer: Answer) -> str:
    out = to_json(answer)
    at = datetime.fromtimestamp(answer.now, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    lines = [f"node-fleet plan at {at}: {out['action']}"]
    for zone, count in out["launches"].items():
        lines.append(f"  launch     {count} in {zone or '(any zone)'}")
    instances = answer.decision.instances
    for name in out["remove"]:
        lines.append(f"  remove     {name}" + (f" (instance {instances[name]})" if name in instances else ""))
    for iid in answer.decision.terminate_unjoined:
        lines.append(f"  terminate  {iid} (never joined)")
    lines += ["", "reasons:", *_table([(r["code"], r["detail"]) for r in out["reasons"]])]
    rows = [(name, "yes" if v["candidate"] else "no", v["reason"], v["detail"]) for name, v in out["nodes"].items()]
    lines += ["", "nodes (would it be removed once its timers ran out?):"]
    lines += _table([("NODE", "CANDIDATE", "REASON", "DETAIL"), *rows]) if rows else ["  (no worker nodes)"]
    if out["unhelpable"]:
        lines += ["", "pending pods no new worker could host (never launched for):"]
        lines += _table(
            [("POD", "REASON", "DETAIL"), *((u["pod"], u["reason"], u["detail"]) for u in out["unhelpable"])]
        )
    return "\n".join(lines)


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["  " + "  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]).rstrip() for r in rows]
