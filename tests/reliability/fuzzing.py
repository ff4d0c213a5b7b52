"""What the fuzzing modules (test_fuzz_*.py) share: the profiles and budgets, JSON-like values and
mutations of real documents, and the events vocabulary (the autoscaler's and the hook's handlers
both take events).

Default profile: about a thousand examples a target (well under 90 s on two cores). The `long`
profile runs ten times as many: `HYPOTHESIS_PROFILE=long pytest tests/reliability/test_fuzz_*.py`.
Each module ends with the shapes this fuzzing found breaking its target (since fixed), as
regression cases, each with its minimal example.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st

from autoscaler.config import Settings
from autoscaler.events import parse_alarm_actions
from lambda_context import LambdaContext

# --------------------------------------------------------------------------------------------------
# Profiles and budgets

settings.register_profile("long", deadline=None, max_examples=10 * settings.get_profile("default").max_examples)
LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
if LONG:
    settings.load_profile("long")
SCALE = 10 if LONG else 1


def fuzz(examples: int) -> settings:
    """`examples` in the default profile, ten times as many in `long`; no deadline (a loaded
    machine makes pure code slow too); the fixtures used are module-scoped and reset per example."""
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def note_outcome(label: str) -> None:
    """Counted in `pytest --hypothesis-show-statistics`, to see that the fuzzing reaches every outcome."""
    hypothesis_event(label)


# --------------------------------------------------------------------------------------------------
# JSON-like values


def json_values(
    vocabulary: tuple[str, ...] = (), keys: tuple[str, ...] = (), max_leaves: int = 12
) -> st.SearchStrategy:
    """Anything json.loads can return, with a bias to the words the target looks for."""
    text = st.text(max_size=16)
    if vocabulary:
        text = text | st.sampled_from(vocabulary)
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats()
        | st.sampled_from((0, 1, -1, 2, 1000, 1001, 2**63, 0.0, 1.5, -0.0, "", " ", "0", "1", "true", "null"))
        | text
    )
    key = st.text(max_size=12) | st.sampled_from(keys) if keys else st.text(max_size=12)
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(key, inner, max_size=5),
        max_leaves=max_leaves,
    )


ODD_VALUES = (None, True, False, 0, -1, 1.5, float("nan"), float("inf"), "", " ", "x" * 300, [], {}, [1], {"k": 1})


def locations(doc: Any, parent: Any = None, key: Any = None) -> Iterator[tuple[Any, Any]]:
    """(container, key) of every value under the root."""
    if parent is not None:
        yield parent, key
    if isinstance(doc, dict):
        for k in list(doc):
            yield from locations(doc[k], doc, k)
    elif isinstance(doc, list):
        for i in range(len(doc)):
            yield from locations(doc[i], doc, i)


@st.composite
def mutations(draw: st.DrawFn, bases: list[Any], junk: st.SearchStrategy, new_keys: tuple[str, ...] = ()) -> Any:
    """A real document with one to four changes: a key dropped, a value replaced by random JSON,
    by a value of another type, or wrapped; a key added."""
    doc = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        places = list(locations(doc))
        if not places:
            break
        parent, key = draw(st.sampled_from(places))
        op = draw(st.sampled_from(("drop", "replace", "retype", "wrap", "add")))
        if op == "drop":
            del parent[key]
        elif op == "replace":
            parent[key] = draw(junk)
        elif op == "retype":
            old = parent[key]
            parent[key] = copy.deepcopy(draw(st.sampled_from((*ODD_VALUES, str(old)[:40], [old], {"value": old}))))
        elif op == "wrap":
            parent[key] = [parent[key]] if draw(st.booleans()) else {"value": parent[key]}
        elif isinstance(parent[key], dict):
            name = draw(st.sampled_from(new_keys) | st.text(max_size=8)) if new_keys else draw(st.text(max_size=8))
            parent[key][name] = draw(junk)
        else:
            parent[key] = draw(junk)
    return doc


# --------------------------------------------------------------------------------------------------
# Events, and the settings' environment


EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
EVENT_FILES = sorted(EVENTS_DIR.glob("*.json"))
EVENT_DOCS = [json.loads(p.read_text(encoding="utf-8")) for p in EVENT_FILES]
ALARM = "node-fleet-scale-cpu-high"
ALARM_ACTIONS_ENV = json.dumps({ALARM: {"action": "scale_up", "count": 2}})
ALARM_ACTIONS = parse_alarm_actions(ALARM_ACTIONS_ENV)
FALLBACK_ID = LambdaContext.aws_request_id
"""The request id the handler falls back on: the test context's."""
EVENT_WORDS = (
    "aws.events",
    "aws.scheduler",
    "aws.cloudwatch",
    "node-fleet.manual",
    "Scheduled Event",
    "CloudWatch Alarm State Change",
    "ALARM",
    "OK",
    "INSUFFICIENT_DATA",
    ALARM,
    "other-alarm",
    "scale_up",
    "scale_down",
    "set",
    "pause",
    "resume",
    "SCALE_UP",
)
EVENT_KEYS = ("source", "detail-type", "id", "detail", "action", "count", "desired", "reason", "alarmName", "state")
EVENT_JSON = json_values(EVENT_WORDS, EVENT_KEYS)


def clear_settings_env() -> None:
    """Defaults for every setting, and no endpoint override that would take boto3 past moto's mock."""
    for name in [f.name.upper() for f in dataclasses.fields(Settings)] + ["ALARM_ACTIONS"]:
        os.environ.pop(name, None)
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        os.environ.pop(name)
