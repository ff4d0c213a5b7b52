"""A synthetic cluster for benchmarks and `python -m node_fleet.stack.kube_api`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .objects import claim, daemonset, node, pdb, storage_class, volume
from .pods import pod


def synthetic_cluster(nodes: int, pods_per_node: int, *, light_every: int = 10) -> Iterator[dict[str, Any]]:
    """A cluster for benchmarks: one control-plane node, `nodes` workers with `pods_per_node`
    pods each (spread over 20 namespaces and 10 deployments a namespace), a PDB per deployment,
    and three DaemonSets.

    Every `light_every`-th worker carries small pods (a scale-down candidate); the others are
    about 75% requested. The pods carry what real ones do besides requests: app labels, the API
    server's default tolerations (a tenth tolerate a dedicated taint too), a zone spread
    constraint on three deployments in ten and a hostname anti-affinity on one; the last pod of
    each node is a StatefulSet pod with a local-path volume (claim, volume and class)."""
    yield node("server-0", instance_id="i-0000000000000000a", control_plane=True, cpu="2", memory="3883Mi")
    yield storage_class()
    for name, namespace in (
        ("svclb-traefik", "kube-system"),
        ("fluent-bit", "logging"),
        ("node-exporter", "monitoring"),
    ):
        yield daemonset(name, namespace, cpu="10m", memory="32Mi", spec={"hostNetwork": name == "node-exporter"})
    zones = ("eu-west-1a", "eu-west-1b", "eu-west-1c")
    for n in range(nodes):
        name = f"ip-10-0-{n // 250}-{n % 250 + 1}.eu-west-1.compute.internal"
        yield node(name, instance_id=f"i-{n + 1:017x}", az=zones[n % 3])
        light = light_every and n % light_every == 0
        for k in range(pods_per_node):
            namespace = f"team-{(n * pods_per_node + k) % 20:02d}"
            app = f"svc-{k % 10}"
            labels = {"app": app, "app.kubernetes.io/part-of": namespace, "app.kubernetes.io/version": "1.4.2"}
            spec: dict[str, Any] = {}
            if k % 10 == 0:
                spec["tolerations"] = [
                    {"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}
                ]
            if k % 10 in (1, 2, 3):
                spec["topologySpreadConstraints"] = [
                    {
                        "maxSkew": 1,
                        "topologyKey": "topology.kubernetes.io/zone",
                        "whenUnsatisfiable": "DoNotSchedule",
                        "labelSelector": {"matchLabels": {"app": app}},
                        "matchLabelKeys": ["pod-template-hash"],
                    }
                ]
            if k % 10 == 4:
                spec["affinity"] = {
                    "podAntiAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": [
                            {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": "kubernetes.io/hostname"}
                        ]
                    }
                }
            owner, volumes = ("ReplicaSet", f"{app}-7d9f8b6c5"), ()
            pod_name = f"{app}-{n:05d}-{k:03d}"
            if k == pods_per_node - 1:
                owner, pod_name = ("StatefulSet", "db"), f"db-{n}"
                claim_name, volume_name = f"data-db-{n}", f"pvc-{n:08d}"
                volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}]
                yield claim(claim_name, namespace, volume=volume_name, node=name)
                yield volume(volume_name, claim=(namespace, claim_name), node=name)
            yield pod(
                pod_name,
                namespace,
                node=name,
                cpu="10m" if light else "50m",
                memory="16Mi" if light else "200Mi",
                owner=owner,
                labels=labels,
                volumes=volumes,
                spec=spec,
            )
    for t in range(20):
        for k in range(10):
            yield pdb(f"svc-{k}", f"team-{t:02d}", match_labels={"app": f"svc-{k}"}, max_unavailable=1)
