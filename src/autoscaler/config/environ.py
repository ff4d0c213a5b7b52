"""Reading the environment: the error every setting raises, and the readers the settings share.

Every variable the two functions read is parsed under `autoscaler.config`, so an invalid one fails
the same way wherever it is read: a ConfigError whose message names the variable and what it allows.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from autoscaler.ports import PermanentError


class ConfigError(ValueError, PermanentError):
    """A setting is missing, malformed or out of range; the message names it."""


def text(environ: Mapping[str, str], name: str) -> str | None:
    """The variable's value, stripped; None when absent or blank (an optional template parameter)."""
    raw = environ.get(name)
    return raw.strip() if raw is not None and raw.strip() else None


def required(environ: Mapping[str, str], name: str) -> str:
    value = text(environ, name)
    if value is None:
        raise ConfigError(f"{name} is not set")
    return value


def boolean(raw: str) -> bool | None:
    """true/1/yes or false/0/no, any case; None for anything else (the caller names the variable)."""
    lowered = raw.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    return None


def loopback(host: str) -> bool:
    """Whether `host` is this machine: the only place a secret may travel over plain http (tests)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
