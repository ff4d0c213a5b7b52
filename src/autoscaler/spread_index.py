"""Topology spread bookkeeping for the Room: the eligible domains of a constraint, and the
matching pods per domain, kept up to date on every move (PodTopologySpread, DoNotSchedule)."""

from __future__ import annotations

from collections import Counter

from autoscaler.model import Pod
from autoscaler.placement import Slot, node_affinity_matches, selector_matches, untolerated
from autoscaler.scheduling import SpreadConstraint


class Domains:
    """The topology domains of one key that count for a spread constraint, with the number of
    eligible nodes in each; shared by every constraint with the same key and node policies."""

    def __init__(self, owner: Pod, c: SpreadConstraint) -> None:
        self.owner, self.c = owner, c
        p = owner.placement
        # Only nodes with every one of the owner's topology keys count (nodeLabelsMatchSpreadConstraints).
        self.keys = tuple(sorted({k.topology_key for k in p.spread} - {c.topology_key}))
        # Most constraints ask only for the topology key: skip the per-node affinity checks then.
        self.any_node = not (c.honor_node_affinity and (p.node_selector or p.node_affinity is not None)) and not (
            c.honor_taints
        )
        self.nodes: dict[str, int] = {}

    def eligible(self, slot: Slot) -> bool:
        c = self.c
        if c.topology_key not in slot.labels or any(k not in slot.labels for k in self.keys):
            return False
        if self.any_node:
            return True
        if c.honor_node_affinity and not node_affinity_matches(self.owner, slot.name, slot.labels):
            return False
        return not (c.honor_taints and untolerated(self.owner, slot.taints) is not None)

    def node_in(self, slot: Slot, sign: int) -> None:
        if self.eligible(slot):
            domain = slot.labels[self.c.topology_key]
            self.nodes[domain] = self.nodes.get(domain, 0) + sign
            if not self.nodes[domain]:
                del self.nodes[domain]


class SpreadIndex:
    """Matching pods per topology domain for one spread constraint, as its owner pod sees them:
    kept up to date on every move, so a check costs a lookup rather than a pass over the cluster."""

    def __init__(self, owner: Pod, c: SpreadConstraint, domains: Domains) -> None:
        self.owner, self.c, self.domains = owner, c, domains
        self.counts: dict[str, int] = {}
        """Domains with at least one matching pod; every other domain counts 0."""
        self.histogram: Counter[int] = Counter()

    def selects(self, pod: Pod) -> bool:
        return pod.namespace == self.owner.namespace and selector_matches(self.c.selector, pod.labels)

    def pod_in(self, pod: Pod, slot: Slot, sign: int) -> None:
        if not (self.domains.eligible(slot) and self.selects(pod)):
            return
        domain = slot.labels[self.c.topology_key]
        before = self.counts.get(domain, 0)
        after = before + sign
        if before:
            self.histogram[before] -= 1
        if after:
            self.histogram[after] += 1
            self.counts[domain] = after
        else:
            del self.counts[domain]

    def floor(self) -> int:
        """The smallest count over the eligible domains (0 below minDomains)."""
        domains = len(self.domains.nodes)
        if domains < self.c.min_domains or len(self.counts) < domains:
            return 0
        return min((n for n, k in self.histogram.items() if k > 0), default=0)
