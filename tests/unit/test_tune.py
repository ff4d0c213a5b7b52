"""`node-fleet tune` on a shipped sample trace with a small grid: the front, the current settings' point, the
recommendation and its KEY=value lines (read back by the real Settings loader), --json, --plot; and the
front and the rule on hand-made points."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from autoscaler.config import Settings
from node_fleet import exits, tune
from node_fleet.cli import main

SAMPLE = Path(__file__).resolve().parents[2] / "samples/traces/azure-functions-2019-top30-invocations.csv"
# Three hours of the Azure excerpt, its busiest rise included, and 4 points: about 2 s a run on 2 cores.
SMALL = [
    "tune",
    "--trace",
    str(SAMPLE),
    "--format",
    "azure",
    "--duration-s",
    "10800",
    "--grid",
    "SCALE_DOWN_UNNEEDED_TIME_S=300,600",
    "--grid",
    "WARM_POOL_SIZE=0,10",
    "--grid",
    "SCALE_DOWN_UTILIZATION_THRESHOLD=0.65",
    "--grid",
    "WARM_POOL_UNNEEDED_TIME_S=120",
    "--grid",
    "TICK_S=15",
    "--grid",
    "FORECAST_MAX_PREWARM=0",
    "--grid",
    "RAMP_WINDOW_S=1800",
]
DEFAULTS = {
    "SCALE_DOWN_UNNEEDED_TIME_S": "600",
    "SCALE_DOWN_UTILIZATION_THRESHOLD": "0.65",
    "WARM_POOL_SIZE": "10",
    "WARM_POOL_UNNEEDED_TIME_S": "120",
    "TICK_S": "15",
    "FORECAST_MAX_PREWARM": "0",
    "RAMP_WINDOW_S": "1800",
}


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def as_json(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, str]:
    png = tmp_path_factory.mktemp("tune") / "front.png"
    code, out, err = _run([*SMALL, "--json", "--plot", str(png)])
    assert code == exits.OK, err
    return json.loads(out), png, err


@pytest.fixture(scope="module")
def as_text() -> str:
    code, out, err = _run([*SMALL, "--jobs", "1"])
    assert code == exits.OK, err
    return out


def _outcome(p: dict) -> tuple[float, float]:
    return p["dollars"], p["pending_pod_seconds"]


def test_json_holds_every_point_of_the_grid_and_says_what_ran(as_json):
    answer, _, _ = as_json
    assert answer["policy"] == "node-fleet" and answer["workload"] == "azure"
    assert answer["grid"] == {
        "SCALE_DOWN_UNNEEDED_TIME_S": ["300", "600"],
        "WARM_POOL_SIZE": ["0", "10"],
        "SCALE_DOWN_UTILIZATION_THRESHOLD": ["0.65"],
        "WARM_POOL_UNNEEDED_TIME_S": ["120"],
        "TICK_S": ["15"],
        "FORECAST_MAX_PREWARM": ["0"],
        "RAMP_WINDOW_S": ["1800"],
    }
    assert answer["replays"] == len(answer["points"]) == 4
    assert answer["processes"] == 2 and answer["seconds"] > 0
    assert answer["rule"] == tune.RULE
    combos = {(p["settings"]["SCALE_DOWN_UNNEEDED_TIME_S"], p["settings"]["WARM_POOL_SIZE"]) for p in answer["points"]}
    assert combos == {("300", "0"), ("300", "10"), ("600", "0"), ("600", "10")}
    for p in answer["points"]:
        assert set(p) == {"settings", "dollars", "pending_pod_seconds", "p95_pending_s", "scale_actions", "flaps"}
        assert p["dollars"] > 0 and p["pending_pod_seconds"] >= 0


def test_the_front_is_non_dominated_and_covers_every_point(as_json):
    answer, _, _ = as_json
    points, front = answer["points"], answer["front"]
    assert front and all(p in points for p in front)
    for p in front:
        for q in points:
            better_or_equal = q["dollars"] <= p["dollars"] and q["pending_pod_seconds"] <= p["pending_pod_seconds"]
            assert not (better_or_equal and _outcome(q) != _outcome(p)), f"{q} dominates front point {p}"
    for q in points:  # every point off the front is beaten, or matched, by one on it
        assert any(p["dollars"] <= q["dollars"] and p["pending_pod_seconds"] <= q["pending_pod_seconds"] for p in front)
    assert [p["dollars"] for p in front] == sorted(p["dollars"] for p in front)


def test_the_current_settings_point_is_the_defaults_and_was_replayed(as_json):
    answer, _, _ = as_json
    current = answer["current"]
    assert current["settings"] == DEFAULTS
    replayed = next(p for p in answer["points"] if p["settings"] == DEFAULTS)
    assert _outcome(replayed) == _outcome(current)
    assert current["on_front"] == any(_outcome(p) == _outcome(current) for p in answer["front"])


def test_the_recommendation_follows_the_stated_rule(as_json):
    answer, _, _ = as_json
    rec, current = answer["recommended"], answer["current"]
    assert rec in answer["front"]
    assert rec["pending_pod_seconds"] <= current["pending_pod_seconds"]
    assert rec["dollars"] <= current["dollars"]
    eligible = [p for p in answer["front"] if p["pending_pod_seconds"] <= current["pending_pod_seconds"]]
    assert rec["dollars"] == min(p["dollars"] for p in eligible)
    assert answer["env"] == rec["settings"]


def test_plot_writes_a_png_and_stdout_keeps_only_the_json(as_json):
    _, png, err = as_json
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert f"plot written to {png}" in err


def test_text_marks_the_points_and_ends_with_env_lines_the_settings_loader_reads(as_text, as_json):
    answer, _, _ = as_json
    lines = as_text.rstrip("\n").splitlines()
    assert "node-fleet replayed 4 times" in lines[1] and " s" in lines[1]
    assert tune.RULE in as_text
    table = [line for line in lines if line.lstrip().startswith(("*", "="))]
    assert any(line.lstrip().startswith("*") for line in table)
    assert any("=" in line.split()[0] for line in table)  # the current settings' row
    env = dict(line.split("=", 1) for line in lines[-len(DEFAULTS) :])
    assert set(env) == set(DEFAULTS)
    settings = Settings.from_env(env)  # the real loader: names and ranges checked
    rec = answer["recommended"]["settings"]  # --jobs 1 and 2 replay the same
    assert settings.scale_down_unneeded_time_s == int(rec["SCALE_DOWN_UNNEEDED_TIME_S"])
    assert settings.warm_pool_size == int(rec["WARM_POOL_SIZE"])
    assert settings.tick_s == 15 and settings.scale_down_utilization_threshold == 0.65


def test_a_grid_value_out_of_range_fails_before_any_replay_naming_the_variable():
    code, out, err = _run([*SMALL, "--grid", "TICK_S=5,60"])
    assert code == exits.FAILED and out == ""
    assert "TICK_S=5" in err and "10..60" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("option", "says"),
    [
        ("NO_SUCH_SETTING=1", "is not a setting"),
        ("WARM_POOL_SIZE", "expected KEY=value"),
        ("MAX_NODES=5", "--max-nodes"),
    ],
)
def test_a_malformed_grid_option_is_one_line(option, says):
    code, _, err = _run([*SMALL, "--grid", option])
    assert code == exits.FAILED and says in err


def test_prometheus_options_do_not_mix_with_a_trace():
    code, _, err = _run([*SMALL, "--days", "3"])
    assert code == exits.FAILED and "--days and --step-s read --prometheus" in err
    code, _, err = _run(["tune", "--prometheus", "http://127.0.0.1:9", "--duration-s", "60"])
    assert code == exits.FAILED and "with --prometheus, use --days" in err


@pytest.mark.parametrize(("option", "says"), [("--days=0", "--days must be in (0, 90]"), ("--step-s=5", "10..3600")])
def test_a_prometheus_window_out_of_range_fails_before_asking(option, says):
    code, _, err = _run(["tune", "--prometheus", "http://127.0.0.1:9", option])  # port 9: nothing asked
    assert code == exits.FAILED and says in err and "cannot connect" not in err


# -- the front and the rule on hand-made points ---------------------------------------------------


def _point(a: int, b: int, dollars: float, pending: float) -> tune.Point:
    return tune.Point({"A": str(a), "B": str(b)}, (a, b), dollars, pending, 0.0, 0, 0)


def test_front_drops_dominated_points_and_keeps_one_of_equal_outcomes():
    current = _point(1, 1, 10.0, 100.0)
    same_as_current = _point(2, 2, 10.0, 100.0)
    cheaper_slower = _point(2, 1, 8.0, 150.0)
    dominated = _point(1, 2, 11.0, 120.0)
    front = tune.pareto_front([same_as_current, cheaper_slower, dominated, current], current)
    assert front == [cheaper_slower, current]  # cheapest first; the unchanged settings stand for their outcome
    assert tune.recommend(front, current) is current  # nothing cheaper without more waiting: keep


def test_recommend_takes_the_cheapest_not_slower_point_then_the_fewest_changes():
    current = _point(1, 1, 10.0, 100.0)
    two_changes = _point(2, 2, 9.0, 90.0)
    one_change = _point(2, 1, 9.0, 90.0)
    cheapest_but_slower = _point(1, 2, 7.0, 101.0)
    front = tune.pareto_front([current, two_changes, one_change, cheapest_but_slower], current)
    assert current not in front
    assert tune.recommend(front, current) is one_change
