"""Settings every test shares, applied before any handler module is imported."""

import os

import pytest

# The template's Globals set these for the deployed functions; tests set the same values.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "node-fleet")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "NodeFleet")


@pytest.fixture(autouse=True)
def _fresh_metrics():
    """Powertools keeps metrics and the cold-start flag at class level: start each test clean."""
    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.metrics.provider import cold_start

    Metrics().clear_metrics()
    cold_start.is_cold_start = True
    yield
    Metrics().clear_metrics()
