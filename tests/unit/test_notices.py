"""What the operators are told after a cycle (autoscaler.notices): the lines, and a capped GitOps hold
told once."""

from __future__ import annotations

import pytest

from autoscaler.actuator import Outcome
from autoscaler.config import Settings
from autoscaler.model import Action, ClusterSnapshot, Decision, Reason, ReasonCode, ScalingState
from autoscaler.notices import CAP_NOTICE_WINDOW_S, notice
from autoscaler.service import CycleResult

NOW = 1_000_000.0
SETTINGS = Settings(cluster_name="prod", gate_max_hold_s=1800)


def cycle(action=Action.NONE, reasons=(), outcome=None, held_since=None) -> CycleResult:
    state = ScalingState(gate_held_since=held_since)
    decision = Decision(action, reasons=tuple(reasons), state=state)
    return CycleResult(ClusterSnapshot((), (), ()), decision, outcome or Outcome(), state)


def test_a_cycle_that_changed_nothing_says_nothing():
    assert notice(cycle(reasons=[Reason(ReasonCode.STEADY, "")]), SETTINGS, NOW) is None


def test_what_changed_is_told_with_why():
    outcome = Outcome(
        launched=["i-1", "i-2"],
        launch_failures=["eu-west-1a: InsufficientInstanceCapacity"],
        cordoned=["n3"],
        terminated=["i-0"],
        drains_timed_out=["n4"],
        drains_dropped=["n5: its instance is gone"],
    )
    subject, message = notice(
        cycle(Action.SCALE_UP, [Reason(ReasonCode.UNSCHEDULABLE_PODS, "3 pods")], outcome), SETTINGS, NOW
    )
    assert subject == "node-fleet prod: scale_up"
    assert message.splitlines() == [
        "launched i-1, i-2",
        "launch failures: eu-west-1a: InsufficientInstanceCapacity",
        "draining n3",
        "terminated i-0",
        "drains undone: n4",
        "drains dropped: n5: its instance is gone",
        "why: unschedulable_pods: 3 pods",
    ]


@pytest.mark.parametrize(
    ("held_for_s", "told"),
    [
        (1800, True),  # the first cycle past the cap
        (1800 + CAP_NOTICE_WINDOW_S - 1, True),
        (1800 + CAP_NOTICE_WINDOW_S, False),  # later cycles past the same cap stay quiet
        (7200, False),
    ],
)
def test_a_capped_gitops_hold_is_told_once(held_for_s, told):
    capped = Reason(ReasonCode.GITOPS_HOLD_CAPPED, "held 1800s, past gate_max_hold_s: Kustomization apps")
    answer = notice(cycle(reasons=[capped], held_since=NOW - held_for_s), SETTINGS, NOW)
    assert (answer is not None) == told
    if told:
        assert answer[1].splitlines()[0] == (
            "GitOps hold capped, scale-down goes on: held 1800s, past gate_max_hold_s: Kustomization apps"
        )
