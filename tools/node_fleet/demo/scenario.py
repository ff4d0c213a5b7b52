"""The demo's story: its workloads, and its phases as a table of steps (timers and settings: `timing`).

The cluster: the K3s server and two seeded workers of 2000m / 7680Mi, with the shop (4 pods of
600m, two on each worker: 60 % requested, so neither is a scale-down candidate), and the Flux
Kustomizations flux-system -> infrastructure -> apps, all Ready. Then, on ticks every `tick_s`
(production: 10 s by default):

1. Flash sale: 8 pods of 600m, then 14: the scheduler marks what does not fit Unschedulable, the
   autoscaler launches workers for them (bin-packed), the kubelets join after `boot_delay_s`, the
   pods are bound.
2. The quiet: the sale ends and the shop scales in to 2 pods. The empty workers become unneeded.
3. A Flux reconcile of `apps` starts in the quiet (Ready=Unknown, Reconciling=True/Progressing):
   the GitOps gate holds scale-down while it runs and for GATE_SETTLE_S after it ends. It ends once
   the autoscaler has been held for `hold_cycles` cycles (and no earlier than `reconcile_min_s`).
   The revision it applied starts Flagger's analysis of the demo app's Canary: the gate holds while
   the canary goes through Flagger's phases (`flux.PROMOTION`), one iteration a look until the gate
   has held `hold_cycles` more cycles, then Promoting, Finalising and Succeeded, which releases it.
4. Scale-down, one node a cycle (MAX_EMPTY_BULK_DELETE=1, MAX_DRAINS_IN_PARALLEL=1): the empty
   workers go, then a seeded worker is drained (cordon, evictions, its pod moves) and terminated,
   down to MIN_NODES=1.
5. A launch that never joins: a batch job (2 pods of 900m) needs a worker; the instance launched
   for it never registers a Node (`kubelets.never_join`). After MAX_NODE_PROVISION_TIME_S (60 s,
   its minimum) the autoscaler terminates it and backs off for PROVISION_BACKOFF_S, then launches a
   replacement, which joins, and the batch runs.

Every phase waits for what it needs (all pods bound, the hold seen...) rather than a fixed time,
with a deadline for the whole run.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from node_fleet.demo.record import GONE, Record, View
from node_fleet.demo.timing import MIN_NODES, Timing

if TYPE_CHECKING:  # for annotations only: the run imports these when it starts the stack
    from node_fleet.demo.flux import FakeFlux
    from node_fleet.stack.kubelets import KubeletFleet

# The workloads (ReplicaSets of the simulated kubelets).
SHOP = "shop"
SHOP_REPLICAS, SHOP_QUIET_REPLICAS, SHOP_CPU_M, SHOP_MEM_MIB = 4, 2, 600, 1024
SALE = "sale"
SALE_WAVES, SALE_CPU_M, SALE_MEM_MIB = (8, 14), 600, 512
BATCH = "batch"
BATCH_REPLICAS, BATCH_CPU_M, BATCH_MEM_MIB = 2, 900, 1024
RECONCILED = "apps"
"""The Kustomization whose reconcile holds scale-down."""

SEEDED_WORKERS = 2


# -- the story, phase by phase ----------------------------------------------------------------------------


class Phase(enum.Enum):
    WARM = "warm"
    SALE = "flash sale"
    QUIET = "quiet"
    RECONCILING = "Flux reconcile"
    CANARY = "canary analysis"
    SCALING_DOWN = "scale-down"
    BATCH = "batch (never joins)"
    DONE = "done"


class Story(Protocol):
    """What a phase's step reads and moves on (the run's `Demo`)."""

    record: Record
    timing: Timing
    flux: FakeFlux
    phase: Phase
    wave: int
    """Sale waves started."""
    last_wave_at: float
    stop_after: int | None
    """Stop the run once this many cycles are recorded."""

    @property
    def kubelets(self) -> KubeletFleet: ...

    def mark(self, t: float, label: str, detail: str = "") -> None: ...


def _warm(s: Story, view: View) -> None:
    t = view.t
    if t >= s.timing.sale_at_s:
        s.kubelets.add_workload(SALE, SALE_WAVES[0], SALE_CPU_M, SALE_MEM_MIB)
        s.wave, s.record.sale_at, s.last_wave_at, s.phase = 1, t, t, Phase.SALE
        s.mark(t, "flash sale", f"{SALE_WAVES[0]} pods of {SALE_CPU_M}m")


def _sale(s: Story, view: View) -> None:
    t, r = view.t, s.record
    assert r.sale_at is not None  # nosec B101  # set with the phase
    if s.wave < len(SALE_WAVES) and t >= r.sale_at + s.wave * s.timing.wave_every_s:
        s.kubelets.scale(SALE, SALE_WAVES[s.wave])
        s.last_wave_at = t
        s.mark(t, "sale grows", f"{SALE_WAVES[s.wave]} pods")
        s.wave += 1
    target = SALE_WAVES[-1]
    if s.wave == len(SALE_WAVES) and r.sale_bound_at is None and view.bound.get(SALE, 0) >= target:
        r.sale_bound_at = t
        s.mark(
            t,
            "sale served",
            f"all {target} sale pods bound, {t - r.sale_at:.1f}s after the sale began "
            f"({t - s.last_wave_at:.1f}s after its last wave)",
        )
    if r.sale_bound_at is not None and t >= r.sale_at + s.timing.sale_for_s:
        s.kubelets.scale(SALE, 0)
        s.kubelets.scale(SHOP, SHOP_QUIET_REPLICAS)
        r.quiet_at, s.phase = t, Phase.QUIET
        s.mark(t, "the quiet", f"sale over, shop scales in to {SHOP_QUIET_REPLICAS} pods")


def _quiet(s: Story, view: View) -> None:
    t, r = view.t, s.record
    if r.quiet_at is not None and t >= r.quiet_at + s.timing.reconcile_after_s:
        rev = s.flux.start_reconcile(RECONCILED)
        r.reconcile_started, s.phase = t, Phase.RECONCILING
        s.mark(t, "Flux reconcile starts", f"Kustomization flux-system/{RECONCILED} -> {rev[:18]}")


def _reconciling(s: Story, view: View) -> None:
    t, r, timing = view.t, s.record, s.timing
    assert r.reconcile_started is not None  # nosec B101  # set with the phase
    held = [c for c in r.held_cycles if c.t >= r.reconcile_started]
    long_enough = t >= r.reconcile_started + timing.reconcile_min_s
    if (len(held) >= timing.hold_cycles and long_enough) or t >= r.reconcile_started + timing.reconcile_max_s:
        s.flux.finish_reconcile(RECONCILED)
        r.reconcile_ended, s.phase = t, Phase.CANARY
        s.mark(t, "Flux reconcile done", f"{RECONCILED} Ready; scale-down held {len(held)} cycles")
        phase = s.flux.advance_canary()
        r.canary_started = t
        s.mark(t, "canary analysis starts", f"Canary apps/demo-app {phase}: Flagger checks the new revision")


def _canary(s: Story, view: View) -> None:
    """One look, one step of Flagger's: iterations while the gate holds, then promotion, phase by phase."""
    t, r, timing = view.t, s.record, s.timing
    assert r.canary_started is not None  # nosec B101  # set with the phase
    phase = s.flux.canary_phase
    held = r.canary_held_cycles
    if phase == "Progressing" and len(held) < timing.hold_cycles and t < r.canary_started + timing.reconcile_max_s:
        s.flux.canary_step(phase)
        return
    following = s.flux.advance_canary()
    if following == "Succeeded":
        r.canary_ended, s.phase = t, Phase.SCALING_DOWN
        s.mark(
            t,
            "canary promoted",
            f"demo-app {following}; scale-down held {len(held)} cycles in the analysis, settles {timing.settle_s}s",
        )


def _scaling_down(s: Story, view: View) -> None:
    t, r = view.t, s.record
    assert r.canary_ended is not None  # nosec B101  # set with the phase
    settled = (
        view.workers == MIN_NODES
        and len(view.ready) == MIN_NODES
        and not view.cordoned
        and view.pending == 0
        and all(state in GONE for i, state in view.instances.items() if i in r.terminated)
    )
    late = t >= r.canary_ended + 120
    if settled or late:
        if late:
            r.failures.append(f"scale-down did not reach {MIN_NODES} worker(s) within 120s of the promotion")
        s.kubelets.never_join(1)
        s.kubelets.add_workload(BATCH, BATCH_REPLICAS, BATCH_CPU_M, BATCH_MEM_MIB)
        r.batch_at, s.phase = t, Phase.BATCH
        s.mark(t, "batch job", f"{BATCH_REPLICAS} pods of {BATCH_CPU_M}m; the next instance launched will never join")


def _batch(s: Story, view: View) -> None:
    t, r = view.t, s.record
    assert r.batch_at is not None  # nosec B101  # set with the phase
    if r.broken is None:
        for c in r.cycles:
            if c.t >= r.batch_at and c.launched:
                r.broken, r.broken_launched_at = c.launched[0], c.t
                break
    if r.broken is not None and r.broken_gone_at is None and view.instances.get(r.broken) in GONE:
        r.broken_gone_at = t
        assert r.broken_launched_at is not None  # nosec B101  # set with broken
        s.mark(t, "unjoined instance terminated", f"{r.broken}, {t - r.broken_launched_at:.0f}s after its launch")
    if r.broken_gone_at is not None and view.bound.get(BATCH, 0) >= BATCH_REPLICAS:
        r.batch_bound_at, s.phase = t, Phase.DONE
        s.mark(t, "batch runs", "on the replacement worker")
        s.stop_after = len(r.cycles) + 1


STORY: tuple[tuple[Phase, Callable[[Story, View], None]], ...] = (
    (Phase.WARM, _warm),
    (Phase.SALE, _sale),
    (Phase.QUIET, _quiet),
    (Phase.RECONCILING, _reconciling),
    (Phase.CANARY, _canary),
    (Phase.SCALING_DOWN, _scaling_down),
    (Phase.BATCH, _batch),
)
"""Each phase's step, in story order: a look at the cluster runs the step of the current phase, and
of the next one at once when that step moved the story on (so one look can start the sale and
run its first check). DONE has no step."""
