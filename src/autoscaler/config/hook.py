"""The GitOps hook's own setting (its others are Settings' and the kube options)."""

from __future__ import annotations

from collections.abc import Mapping

from autoscaler.config.environ import ConfigError

DEFAULT_WEBHOOK_MAX_AGE_S = 300


def webhook_max_age(environ: Mapping[str, str]) -> float:
    """WEBHOOK_MAX_AGE_S, 10..3600 (default 300): how old a signed Flux event may be when it arrives."""
    raw = environ.get("WEBHOOK_MAX_AGE_S", str(DEFAULT_WEBHOOK_MAX_AGE_S))
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 10 <= value <= 3600:
        raise ConfigError(f"WEBHOOK_MAX_AGE_S={raw!r} is out of range: allowed 10..3600")
    return value
