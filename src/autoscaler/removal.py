"""Scale-down's view of one plan: every worker's verdict, and the removals chosen so far.

Destinations are the nodes the scheduler could use now (any Ready, schedulable node, not only
ours), with their DaemonSet pods, and with room already taken by the pods still on draining
nodes. Each removal consumes the room its pods move into and the PDB budgets they use, so two
removals never count on the same room or the same disruption.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from autoscaler.model import Node, NodeVerdict, Pod, ReasonCode
from autoscaler.placement import Move
from autoscaler.plan_base import Draft
from autoscaler.rules import movers, node_blocker, requested_utilization
from autoscaler.spare import SPARE_NAMESPACE, describe


class Removal:
    """The verdicts and removals of one plan, over the room the chosen removals leave."""

    def __init__(self, draft: Draft) -> None:
        self.draft = draft
        base = draft.base
        fleet = base.fleet
        self.pods_by_node = base.pods_by_node
        self.room = base.room_left()
        self.budgets = dict(base.snapshot.pdbs)
        self.workers = sorted(fleet.ready_by_instance.values(), key=lambda n: n.name)
        self.remove: list[str] = []
        self._moved: list[Pod] = []
        """The pods of the nodes chosen so far, and where they were placed together."""
        self._moves: list[Move] = []
        self._spare: list[Pod] = []
        """Pods that exist only in the plan, whose room the removals must leave (autoscaler/spare.py)."""
        self.unneeded: dict[str, float] = {}
        self.verdicts: dict[str, NodeVerdict] = {}
        for node in fleet.binding.node_of.values():
            if not node.control_plane:
                self.verdicts[node.name] = self._standing(node)
        for names in fleet.binding.ambiguous.values():
            for name in names:
                self.verdicts[name] = NodeVerdict(False, "ambiguous_instance", "two nodes claim one instance")

    def _standing(self, node: Node) -> NodeVerdict:
        """The verdict before any room is looked at."""
        fleet = self.draft.base.fleet
        if node.name in fleet.draining:
            return NodeVerdict(False, "draining", "a drain is under way")
        if any(node is d for d in fleet.dead):
            return NodeVerdict(False, "not_ready", "not Ready in time: replaced, then removed")
        if not node.ready:
            return NodeVerdict(False, "not_ready", "NotReady, within scale_down_unready_time")
        if node.cordoned:
            return NodeVerdict(False, "cordoned", "cordoned by someone else")
        return NodeVerdict(False, "not_assessed", "scale-down was not looked at")

    def movers(self, name: str) -> list[Pod]:
        return movers(self.pods_by_node.get(name, ()))

    def mark(self, reason: str, detail: str) -> None:
        """Scale-down is off for the whole cluster: say so on every worker not already judged."""
        for name, v in self.verdicts.items():
            if v.reason == "not_assessed":
                self.verdicts[name] = NodeVerdict(False, reason, detail)

    def movable(self) -> list[Node]:
        """Ready workers whose pods may all move, best to remove first: empty ones, then from the
        zone with most workers, then the least used."""
        nodes = [n for n in self.workers if self.verdicts[n.name].reason == "not_assessed"]
        found = []
        for node in nodes:
            verdict = self.protected(node)
            if verdict is not None:
                self.verdicts[node.name] = verdict
            else:
                found.append(node)
        per_zone = Counter(n.az for n in self.workers)
        found.sort(
            key=lambda n: (
                bool(self.movers(n.name)),
                -per_zone[n.az],
                requested_utilization(n, self.pods_by_node.get(n.name, ())),
                n.name,
            )
        )
        return found

    def protected(self, node: Node) -> NodeVerdict | None:
        moving = self.movers(node.name)
        verdict = node_blocker(node, moving)
        if verdict is not None:
            return verdict
        short = self._pdb_short(moving)
        return None if short is None else NodeVerdict(False, "pdb_exhausted", short)

    def _pdb_short(self, pods: Sequence[Pod]) -> str | None:
        need = Counter(key for p in pods for key in p.pdbs if key in self.budgets)
        for key, n in sorted(need.items()):
            if self.budgets[key] < n:
                return f"PodDisruptionBudget {key} allows {self.budgets[key]} disruptions, {n} pods would go"
        return None

    def keep_room(self, pods: Sequence[Pod]) -> bool:
        """Keep room for `pods` in every later check, if the room left has it now."""
        self.room.undo(self._moves)
        moves, stuck = self.room.place_all([*self._moved, *pods])
        if stuck is None:
            self._moves, self._spare = moves, list(pods)
            return True
        self.room.undo(moves)
        self._moves, _ = self.room.place_all(self._moved)
        return False

    def fits(self, node: Node) -> NodeVerdict:
        """Would every pod of `node` find a place on the other nodes, in the room the removals
        chosen so far leave? The room is left exactly as it was."""
        return self._try(node, keep=False)

    def _try(self, node: Node, *, keep: bool) -> NodeVerdict:
        # Every removal of this cycle drains at once: their pods are placed together, afresh, so
        # none counts on a pod that is itself about to move (for spread or affinity) or lands on a
        # node that goes too.
        own = self.movers(node.name)
        short = self._pdb_short(own)
        if short is not None:
            return NodeVerdict(False, "pdb_exhausted", short)
        self.room.undo(self._moves)
        slot = self.room.withdraw(node.name)
        moves, stuck = self.room.place_all([*self._moved, *own, *self._spare])
        verdict = None
        unsettled = self._unsettled(moves) if stuck is None else None
        if stuck is not None and stuck.namespace == SPARE_NAMESPACE:
            verdict = NodeVerdict(False, "spare_room", f"its room is kept for {describe(self._spare)}")
        elif unsettled is not None:
            verdict = NodeVerdict(
                False, "no_room", f"{unsettled.key}: its spread or affinity breaks once every drained pod has moved"
            )
        elif stuck is not None:
            others = list(self.room.slots.values())
            pinned = bool(others) and all(self.room.static_failure(stuck, s) for s in others)
            code = "pod_cannot_move" if pinned else "no_room"
            verdict = NodeVerdict(False, code, f"{stuck.key}: {self.room.why_not(stuck)}")
        if verdict is None and keep:
            self._moves, self._moved = moves, [*self._moved, *own]
            for key in (k for p in own for k in p.pdbs if k in self.budgets):
                self.budgets[key] -= 1
            return NodeVerdict(True, "unneeded" if own else "empty", f"{len(own)} pods to move")
        self.room.undo(moves)
        if slot is not None:
            self.room.restore(slot)
        self._moves, _ = self.room.place_all([*self._moved, *self._spare])  # first-fit: the same moves
        return verdict or NodeVerdict(True, "unneeded" if own else "empty", f"{len(own)} pods to move")

    def _unsettled(self, moves: Sequence[Move]) -> Pod | None:
        """A moved pod whose spread or affinity the moves placed after it break: the drains run
        in parallel, so any of them may land first. Each such pod is checked against the final
        layout, as if it were the last to be scheduled."""
        for move in moves:
            p = move.pod.placement
            if p.spread or p.affinity or p.anti_affinity:
                self.room.undo([move])
                ok = self.room.failure(move.pod, move.slot) is None
                self.room.place(move.pod, move.slot)
                if not ok:
                    return move.pod
        return None

    def select(self, candidates: Sequence[Node], limit: int, code: ReasonCode | None = None) -> None:
        """Up to `limit` of `candidates` within max_empty_bulk_delete and max_drains_in_parallel,
        each only if its pods fit in the room the earlier choices left."""
        base = self.draft.base
        settings, fleet, now = base.settings, base.fleet, base.now
        empty_budget = settings.max_empty_bulk_delete
        drain_budget = settings.max_drains_in_parallel - len(fleet.draining)
        for node in candidates:
            if len(self.remove) >= limit:
                break
            moving = self.movers(node.name)
            if (drain_budget if moving else empty_budget) <= 0:
                continue
            verdict = self._try(node, keep=True)
            self.verdicts[node.name] = verdict
            if not verdict.candidate:
                continue
            self.remove.append(node.name)
            if moving:
                drain_budget -= 1
            else:
                empty_budget -= 1
            since = self.unneeded.get(node.name)
            why = f"unneeded for {now - since:.0f}s, " if since is not None and code is None else ""
            self.draft.say(
                code or (ReasonCode.NODE_UNNEEDED if moving else ReasonCode.EMPTY_NODE),
                f"{node.name} {why}{len(moving)} pods to move",
            )
