"""Serve a synthetic cluster from the fake API server until stdin closes (used by bench/cycle.py).

    .venv/bin/python -m node_fleet.stack.kube_api --nodes 1000 --pods-per-node 30

Prints one line, `READY <url> <token> <objects>`, once the store is seeded.
"""

from __future__ import annotations

import argparse
import sys

from . import FakeKube, synthetic_cluster


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m node_fleet.stack.kube_api", description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--pods-per-node", type=int, default=30)
    parser.add_argument("--token", default="bench-token")
    args = parser.parse_args(argv)
    kube = FakeKube(token=args.token)
    objects = list(synthetic_cluster(args.nodes, args.pods_per_node))
    kube.add_all(objects)
    with kube:
        print(f"READY {kube.url} {args.token} {len(objects)}", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
