"""Which Node is which worker instance: by providerID, else by private DNS name or IP.

K3s's default providerID is `k3s://<hostname>`, which names no instance; such a node is found
by its addresses. A match must be unambiguous: when two Nodes claim one instance, neither is
acted on, and the instance is not "never joined" either, since something did join.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from autoscaler.model import Instance, Node


@dataclass(frozen=True, slots=True)
class Binding:
    node_of: Mapping[str, Node]
    """Instance id -> its one Node."""
    instance_of: Mapping[str, str]
    """Node name -> instance id, for unambiguous matches only."""
    ambiguous: Mapping[str, tuple[str, ...]]
    """Instance id -> the Nodes that all claim it."""

    def joined(self, instance_id: str) -> bool:
        """Some Node matches the instance, ambiguously or not."""
        return instance_id in self.node_of or instance_id in self.ambiguous


def _names(instance: Instance) -> set[str]:
    names = set()
    if instance.private_ip:
        names.add(instance.private_ip)
    if instance.private_dns_name:
        names.add(instance.private_dns_name)
        names.add(instance.private_dns_name.split(".", 1)[0])
    return names


def bind(nodes: Iterable[Node], instances: Iterable[Instance]) -> Binding:
    instances = list(instances)
    claims: dict[str, list[Node]] = defaultdict(list)
    ids = {i.id for i in instances}
    by_address: dict[str, list[Instance]] = defaultdict(list)
    for inst in instances:
        for name in _names(inst):
            by_address[name].append(inst)
    for node in nodes:
        if node.instance_id is not None:
            # An aws:/// providerID names its instance outright; one that is not ours matches nothing.
            if node.instance_id in ids:
                claims[node.instance_id].append(node)
            continue
        found = {i.id for a in (node.addresses | {node.name}) for i in by_address.get(a, ())}
        if len(found) == 1:
            claims[found.pop()].append(node)
        for instance_id in found:  # a node whose addresses point at two instances claims both
            claims[instance_id].extend((node, node))
    node_of, instance_of, ambiguous = {}, {}, {}
    for instance_id, claimants in claims.items():
        names = tuple(sorted({n.name for n in claimants}))
        if len(claimants) == 1:
            node_of[instance_id] = claimants[0]
            instance_of[claimants[0].name] = instance_id
        else:
            ambiguous[instance_id] = names
    # A node that claims two instances, or shares one, is nobody's.
    for names in ambiguous.values():
        for name in names:
            instance_of.pop(name, None)
    node_of = {i: n for i, n in node_of.items() if n.name in instance_of}
    return Binding(node_of, instance_of, ambiguous)
