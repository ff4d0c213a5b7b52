"""A simulated fleet of kubelets, a scheduler and ReplicaSet controllers over the fake API server;
over a real one (`kube_real.RealKube`), the kubelets alone (`real`), next to the real controllers.

What a K3s cluster on EC2 does around the autoscaler, simply and in the open:

- Kubelets: every EC2 instance tagged as this cluster's worker (`node-fleet.io/cluster=<name>`,
  `node-fleet.io/role=worker`, read from moto) that has been `running` for `boot_delay_s`
  registers a Node: `spec.providerID` `aws:///<az>/<instance-id>`, Ready, allocatable of the
  worker shape, the pool, zone and instance-type labels, named by its private DNS name as K3s
  names it. Instances chosen with `never_join()` boot but never register (a broken AMI, a wrong
  join token). An instance that is shutting down, terminated, stopping or stopped stops its
  kubelet: its Node, if still there, turns Ready=Unknown and its metrics are no longer served. A
  stopped instance started again (the warm pool) is back `boot_delay_s` after it runs: Ready on
  the Node it left, cordon and taints as they were.
- Scheduler: pending pods, oldest first, go first-fit (by CPU and memory requests) onto Ready,
  schedulable nodes whose NoSchedule/NoExecute taints they tolerate; a pod that fits nowhere gets
  `PodScheduled=False`, reason `Unschedulable`, with the time it first did (lastTransitionTime).
- Pod lifecycle: a terminating pod (an eviction gave it a deletionTimestamp) is removed (its
  containers stop at once); a pod bound to a Node that no longer exists is removed (pod GC).
- Controllers: `add_workload()` makes a ReplicaSet (its pods owned by it); a pod of it that goes away
  (evicted, removed with its node) is replaced by a new pending one, and `scale()` adds or
  removes pods, as the ReplicaSet controller would. Pods added to the API directly are left as
  they are (a bare pod is not replaced).
- Metrics: for each node with a running kubelet (and the static nodes, such as the server), a
  node-exporter-style `node_cpu_seconds_total{cpu,mode}` counter and
  `node_memory_MemTotal_bytes`/`node_memory_MemAvailable_bytes` gauges, each with
  `instance="<node name>"`, on one HTTP `/metrics` endpoint on 127.0.0.1 (`metrics_target`),
  which Prometheus scrapes with `honor_labels: true`. A node's CPU use is `base_usage_m` plus
  its bound pods' requests times their usage factor (`usage_factor`, or the workload's own).

Time: lifecycle (boot delays, condition times, creation times) follows `clock`, which may run
faster than real time (the demo). Counters advance on `metrics_clock` (real time by default),
since Prometheus computes rates over real seconds.

`start()` runs `step()` every `interval_s` on a thread; tests may also call `step()` themselves.

On a real API server the kubelets also renew their Nodes' Leases and start the pods bound to
them through the status subresource; kube-scheduler binds (and marks pods Unschedulable), and
the ReplicaSet, disruption and pod GC controllers are the real ones (see `real`).

Modules: `kubelet` (one a worker instance), `scheduler`, `controllers` (ReplicaSets, pod GC),
`exporter` (node-exporter metrics), `pods` (what they read off raw objects), `real` (the kubelets'
part on a real API server), `fleet` (all run together).
"""

from .controllers import ReplicaSet
from .fleet import KubeletFleet
from .kubelet import CLUSTER_TAG, POOL_LABEL, ROLE_TAG, WORKER_ROLE, WorkerShape, describe_workers
from .pods import iso

__all__ = [
    "CLUSTER_TAG",
    "POOL_LABEL",
    "ROLE_TAG",
    "WORKER_ROLE",
    "KubeletFleet",
    "ReplicaSet",
    "WorkerShape",
    "describe_workers",
    "iso",
]
