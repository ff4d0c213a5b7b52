"""`node-fleet gate --objects` answers for every status shape the gate knows."""

from __future__ import annotations

import copy
import json

import pytest
import yaml
from test_flux import CANARY_CASES, HELM_RELEASE_CASES, KUSTOMIZATION_CASES, State, canary

from autoscaler.gitops.flux import supported
from node_fleet import exits
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
    holds = state in (State.IN_PROGRESS, State.UNKNOWN)
    assert main(["gate", "--objects", str(objects)]) == (exits.GATE_HOLDS if holds else exits.OK)
    out = json.loads(capsys.readouterr().out)
    assert out["blocked"] is holds, desc
    assert [r["name"] for r in out["reasons"]] == ([obj["metadata"]["name"]] if holds else [])


def _yaml_documents(*objects) -> str:
    return "".join("---\n" + yaml.safe_dump(o, sort_keys=False) for o in objects)


READY = canary("Succeeded")
PROGRESSING = canary("Progressing")


YAML_CASES = [
    ("one YAML object at rest", yaml.safe_dump(READY), exits.OK, []),
    ("one YAML object in progress", yaml.safe_dump(PROGRESSING), exits.GATE_HOLDS, ["demo-app"]),
    (
        "a List, as kubectl get -o yaml prints it",
        yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [READY, PROGRESSING]}),
        exits.GATE_HOLDS,
        ["demo-app"],
    ),
    ("several --- documents", _yaml_documents(READY, READY), exits.OK, []),
    (
        "documents mixing a List and an object",
        _yaml_documents({"apiVersion": "v1", "kind": "List", "items": [READY]}, PROGRESSING),
        exits.GATE_HOLDS,
        ["demo-app"],
    ),
]


@pytest.mark.parametrize(("desc", "text", "code", "holding"), YAML_CASES, ids=[c[0] for c in YAML_CASES])
def test_gate_reads_yaml_as_users_keep_flux_objects(tmp_path, capsys, desc, text, code, holding):
    objects = tmp_path / "objects.yaml"
    objects.write_text(text)
    assert main(["gate", "--objects", str(objects)]) == code, desc
    assert [r["name"] for r in json.loads(capsys.readouterr().out)["reasons"]] == holding


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("objects.yaml", "kind: [unclosed", "neither JSON nor YAML"),
        ("objects.json", "kind: Canary", "not JSON"),
    ],
)
def test_gate_refuses_unreadable_files_in_one_line(tmp_path, capsys, name, text, message):
    objects = tmp_path / name
    objects.write_text(text)
    assert main(["gate", "--objects", str(objects)]) == exits.FAILED
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
