"""Settings: defaults, parsing from the environment, and errors that name the variable."""

import pytest

from autoscaler.config import ConfigError, Settings


def test_defaults_follow_the_brief_and_cluster_autoscaler():
    s = Settings()
    assert (s.min_nodes, s.max_nodes) == (2, 10)
    assert (s.cpu_high, s.cpu_low) == (0.70, 0.30)
    # Cluster Autoscaler's is 0.5: node-fleet packs part-filled nodes further (bench/heldout.py)
    assert s.scale_down_utilization_threshold == 0.65
    assert s.scale_down_unneeded_time_s == s.scale_down_delay_after_add_s == 600
    assert s.scale_down_delay_after_failure_s == 180
    assert s.max_node_provision_time_s == 900
    assert s.drain_timeout_s == 300
    assert s.max_drains_in_parallel == 1
    assert s.dry_run is False


def test_from_env_reads_upper_case_names_and_keeps_defaults():
    s = Settings.from_env({"MIN_NODES": "3", "CPU_HIGH": "0.8", "DRY_RUN": "true", "UNRELATED": "x"})
    assert (s.min_nodes, s.cpu_high, s.dry_run, s.max_nodes) == (3, 0.8, True, 10)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param({"MAX_NODES": "0"}, "MAX_NODES=0 is out of range: allowed 1..1000", id="below range"),
        pytest.param({"CPU_HIGH": "1.5"}, "CPU_HIGH=1.5 is out of range", id="above range"),
        pytest.param({"MIN_NODES": "two"}, "MIN_NODES='two' is not a valid int", id="not a number"),
        pytest.param({"CPU_LOW": "nan"}, "CPU_LOW='nan' is not a valid float", id="NaN"),
        pytest.param({"DRY_RUN": "maybe"}, "DRY_RUN='maybe' is not a valid bool", id="not a bool"),
        pytest.param({"MIN_NODES": "5", "MAX_NODES": "4"}, "MIN_NODES=5 must be <= MAX_NODES=4", id="min above max"),
        pytest.param(
            {"CPU_LOW": "0.8", "CPU_HIGH": "0.7"}, "CPU_LOW=0.8 must be below CPU_HIGH=0.7", id="low above high"
        ),
        pytest.param(
            {"DRAIN_TIMEOUT_S": "5"}, "DRAIN_TIMEOUT_S=5 is out of range: allowed 30..3600", id="drain too short"
        ),
        pytest.param({"CLUSTER_NAME": ""}, "CLUSTER_NAME must be 1..63 characters", id="empty cluster name"),
    ],
)
def test_invalid_settings_name_the_variable_and_range(env, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        Settings.from_env(env)


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        Settings().min_nodes = 5  # type: ignore[misc]
