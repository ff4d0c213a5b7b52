"""Cold init of each handler: imports, then client set-up, in a fresh interpreter each time.

    .venv/bin/python bench/coldstart.py [--runs N]

"import" is the handler module as the Lambda runtime imports it. "set-up" is what the first
invocation then builds: the autoscaler's boto3 clients (EC2, DynamoDB, SSM), the `kubernetes`
ApiClient and the Prometheus session; the hook's Kubernetes client and DynamoDB client. Nothing
talks to the network. Median of N fresh processes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

PROBE = r"""
import json, os, time
os.environ.update({{"AWS_DEFAULT_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
                   "POWERTOOLS_METRICS_NAMESPACE": "NodeFleet", "POWERTOOLS_SERVICE_NAME": "bench"}})
t0 = time.perf_counter()
import {module}
t1 = time.perf_counter()
import boto3
from autoscaler.adapters.kube import KubeCluster
from autoscaler.config.kube import KubeOptions
kube = KubeCluster.from_options(KubeOptions(api_url="https://127.0.0.1:6443", token="t"))
clients = [boto3.client(name) for name in {clients}]
if {prometheus}:
    from autoscaler.adapters.prometheus import PrometheusMetrics, PrometheusOptions
    PrometheusMetrics(PrometheusOptions(url="http://127.0.0.1:9090"))
t2 = time.perf_counter()
import resource
print(json.dumps({{"import": t1 - t0, "setup": t2 - t1, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

HANDLERS = {
    "AutoscalerFunction": ("autoscaler.handler", ["ec2", "dynamodb", "ssm"], True),
    "GitopsHookFunction": ("gitops_hooks.handler", ["dynamodb", "ssm"], False),
}


def measure(module: str, clients: list[str], prometheus: bool) -> dict[str, float]:
    code = PROBE.format(module=module, clients=clients, prometheus=prometheus)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(
        f"{'function':<20} {'import s':>9} {'set-up s':>9} {'total s':>8} {'peak RSS MB':>12}   (median of {args.runs})"
    )
    for name, (module, clients, prometheus) in HANDLERS.items():
        runs = [measure(module, clients, prometheus) for _ in range(args.runs)]
        imp = statistics.median(r["import"] for r in runs)
        setup = statistics.median(r["setup"] for r in runs)
        rss = statistics.median(r["rss_mb"] for r in runs)
        print(f"{name:<20} {imp:>9.3f} {setup:>9.3f} {imp + setup:>8.3f} {rss:>12.1f}")


if __name__ == "__main__":
    main()
