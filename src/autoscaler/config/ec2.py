"""The EC2 fleet's options: where and how workers are launched (read by `autoscaler.adapters.ec2`)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autoscaler.config.environ import ConfigError, text

_VPC_RE = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_SUBNET_RE = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_TEMPLATE_RE = re.compile(r"^lt-[0-9a-f]{8,17}$")
_TYPE_RE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")


@dataclass(frozen=True)
class Ec2Options:
    """Where and how workers are launched. Each field comes from the variable named in its comment."""

    subnet_ids: tuple[str, ...]
    """SUBNET_IDS: comma-separated; the fleet's zones are these subnets' zones, in this order."""
    vpc_id: str
    """VPC_ID: the cluster's VPC; only its instances are workers."""
    launch_template_id: str | None = None
    """LAUNCH_TEMPLATE_ID: required to launch (listing and terminating work without it)."""
    launch_template_version: str = "$Latest"
    """LAUNCH_TEMPLATE_VERSION: `$Latest`, `$Default` or a version number."""
    instance_types: tuple[str, ...] = ("t3.large",)
    """INSTANCE_TYPES: comma-separated, most preferred first."""
    spot_share: float = 0.0
    """SPOT_SHARE: 0..1, the share of each launch asked as spot (rounded half up)."""

    def __post_init__(self) -> None:
        if not self.subnet_ids:
            raise ConfigError("SUBNET_IDS is required: a comma-separated list of subnet ids (subnet-...)")
        for subnet in self.subnet_ids:
            if not _SUBNET_RE.match(subnet):
                raise ConfigError(f"SUBNET_IDS: {subnet!r} is not a subnet id (subnet-<8 to 17 hex digits>)")
        _no_duplicates("SUBNET_IDS", self.subnet_ids)
        if not self.vpc_id:
            raise ConfigError("VPC_ID is required: the id of the cluster's VPC (vpc-...)")
        if not _VPC_RE.match(self.vpc_id):
            raise ConfigError(f"VPC_ID={self.vpc_id!r} is not a VPC id (vpc-<8 to 17 hex digits>)")
        if self.launch_template_id is not None and not _TEMPLATE_RE.match(self.launch_template_id):
            raise ConfigError(
                f"LAUNCH_TEMPLATE_ID={self.launch_template_id!r} is not a launch template id (lt-<8 to 17 hex digits>)"
            )
        version = self.launch_template_version
        if version not in ("$Latest", "$Default") and not (version.isdigit() and int(version) >= 1):
            raise ConfigError(
                f"LAUNCH_TEMPLATE_VERSION={version!r} is not valid: allowed $Latest, $Default or a version number >= 1"
            )
        if not self.instance_types:
            raise ConfigError("INSTANCE_TYPES must name at least one instance type (e.g. t3.large)")
        for instance_type in self.instance_types:
            if not _TYPE_RE.match(instance_type):
                raise ConfigError(f"INSTANCE_TYPES: {instance_type!r} is not an instance type (e.g. t3.large)")
        _no_duplicates("INSTANCE_TYPES", self.instance_types)
        if isinstance(self.spot_share, bool) or not (math.isfinite(self.spot_share) and 0.0 <= self.spot_share <= 1.0):
            raise ConfigError(f"SPOT_SHARE={self.spot_share!r} is out of range: allowed 0..1")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Ec2Options:
        """Read the options from `environ`; a blank value counts as absent (optional template parameters)."""

        values: dict[str, Any] = {
            "subnet_ids": _split(text(environ, "SUBNET_IDS")),
            "vpc_id": text(environ, "VPC_ID") or "",
        }
        if (template := text(environ, "LAUNCH_TEMPLATE_ID")) is not None:
            values["launch_template_id"] = template
        if (version := text(environ, "LAUNCH_TEMPLATE_VERSION")) is not None:
            values["launch_template_version"] = version
        if (types := text(environ, "INSTANCE_TYPES")) is not None:
            values["instance_types"] = _split(types)
        if (share := text(environ, "SPOT_SHARE")) is not None:
            try:
                values["spot_share"] = float(share)
            except ValueError:
                raise ConfigError(f"SPOT_SHARE={share!r} is not a number: allowed 0..1") from None
        return cls(**values)

    def spot_count(self, count: int) -> int:
        """How many of `count` instances are asked as spot."""
        return spot_count(count, self.spot_share)


def spot_count(count: int, share: float) -> int:
    """How many of `count` instances a spot share asks as spot (rounded half up); the simulator's too."""
    return min(count, math.floor(count * share + 0.5))


def _split(raw: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip()) if raw else ()


def _no_duplicates(variable: str, values: Sequence[str]) -> None:
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ConfigError(f"{variable} lists {', '.join(repeated)} more than once")
