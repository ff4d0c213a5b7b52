"""Small builders for snapshots, so each table case states only what it is about."""

from __future__ import annotations

from autoscaler.model import ClusterSnapshot, Instance, InstanceState, MetricsView, Node, Pod

NOW = 1_800_000_000.0
ZONES = ("eu-west-1a", "eu-west-1b")
CPU, MEM = 2000, 7680


def worker(i: int, *, ready: bool = True, launched_ago: float = 3600.0, az: str | None = None, **node_kw) -> tuple:
    """An instance and its Node (None when `ready` is None: launched, not joined)."""
    zone = az or ZONES[i % 2]
    inst = Instance(f"i-{i:04d}", InstanceState.RUNNING, zone, "t3.large", NOW - launched_ago)
    node = None if ready is None else Node(f"n{i}", CPU, MEM, inst.id, zone, ready=ready, **node_kw)
    return inst, node


def pod(name: str, node: str | None, cpu: int = 500, mem: int = 512, **kw) -> Pod:
    return Pod(name, kw.pop("namespace", "default"), cpu, mem, node=node, **kw)


def pending(name: str, cpu: int = 500, mem: int = 512, since: float = 60.0, **kw) -> Pod:
    return pod(name, None, cpu, mem, unschedulable_since=NOW - since, **kw)


def snapshot(
    workers,
    pods=(),
    *,
    cpu: float | None = 0.4,
    node_cpu: dict | None = None,
    custom: float | None = None,
    extra_nodes=(),
) -> ClusterSnapshot:
    instances = tuple(w[0] for w in workers)
    nodes = tuple(w[1] for w in workers if w[1] is not None) + tuple(extra_nodes)
    if cpu is None:
        metrics = MetricsView(unknown_reason="prometheus down")
    else:
        per_node = {n.name: 0.1 for n in nodes} if node_cpu is None else node_cpu
        metrics = MetricsView(cluster_cpu=cpu, node_cpu=per_node, custom=custom)
    return ClusterSnapshot(nodes, tuple(pods), instances, metrics, ZONES)


def busy(node: str, count: int, cpu: int = 500, mem: int = 512, prefix: str = "b") -> list[Pod]:
    """`count` ordinary ReplicaSet pods bound to `node`."""
    return [pod(f"{prefix}-{node}-{k}", node, cpu, mem) for k in range(count)]
