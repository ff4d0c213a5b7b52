"""`node-fleet gate --objects` answers for every status shape the gate knows."""

from __future__ import annotations

import copy
import json

import pytest
from test_flux import CANARY_CASES, HELM_RELEASE_CASES, KUSTOMIZATION_CASES, State, canary

from autoscaler.gitops.flux import supported
from node_fleet.cli import main

# Objects of other kinds are refused as input (exit 1), which test_sim covers.
# Copied at collection: test_flux's tests may change their case objects in place as they run.
SHAPES = [(d, copy.deepcopy(o), s) for d, o, s, _ in KUSTOMIZATION_CASES + HELM_RELEASE_CASES if supported(o)] + [
    (f"canary phase {phase or 'empty'}", canary(phase), state) for phase, state, _ in CANARY_CASES
]


@pytest.mark.parametrize(("desc", "obj", "state"), SHAPES, ids=[s[0] for s in SHAPES])
def test_gate_command_answers_each_status_shape(tmp_path, capsys, desc, obj, state):
    objects = tmp_path / "objects.json"
    objects.write_text(json.dumps([obj]))
    assert main(["gate", "--objects", str(objects)]) == 0
    out = json.loads(capsys.readouterr().out)
    holds = state in (State.IN_PROGRESS, State.UNKNOWN)
    assert out["blocked"] is holds, desc
    assert [r["name"] for r in out["reasons"]] == ([obj["metadata"]["name"]] if holds else [])
