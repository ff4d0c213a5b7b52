"""The embedded stack: real or faithful local stand-ins for AWS, Kubernetes and Prometheus, for
tests, `make demo` and `node-fleet invoke --local`; never used by the deployed Lambda.

    from node_fleet.stack.stack import EmbeddedStack

    with EmbeddedStack(workers=2, settings={"SCALE_DOWN_UNNEEDED_TIME_S": "0"}) as stack:
        os.environ.update(stack.environ)         # what template.yaml would set, pointing here
        stack.kubelets.add_workload("web", replicas=4, cpu_m=500)
        ...                                      # call the real handlers

- `aws`: moto's server (`moto.server.ThreadedMotoServer`) on a free 127.0.0.1 port, with the VPC,
  the worker launch template, the state table built from template.yaml's `StateTable`, the SSM
  SecureString parameters the functions read, and the operators' SNS topic.
- `kube_api`: a fake Kubernetes API server over HTTP (the real `kubernetes` client talks to it);
  its limits are written at its top.
- `kubelets`: a simulated fleet of kubelets and a scheduler: EC2 instances of the cluster become
  Nodes after a boot delay, pending pods are bound first-fit, evicted pods are replaced as a
  ReplicaSet would, and per-node usage is served as node-exporter metrics for Prometheus.
- `prometheus`: the Debian package's real `prometheus` (and `promtool` to backfill history) on a
  free 127.0.0.1 port; missing, it fails with `apt-get install prometheus`.
- `stack`: `EmbeddedStack`, which starts all of the above, seeds a cluster, hands out the
  functions' environment (`environ`: resolved from template.yaml), and stops every process and
  thread it started.

Everything listens on 127.0.0.1 only and uses fake AWS credentials; nothing reaches real AWS.
Importing this package imports nothing heavy: each module pulls in what it needs (moto for
`aws`), so the Lambda's import path never meets it.
"""
