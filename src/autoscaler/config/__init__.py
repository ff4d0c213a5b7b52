"""Configuration from the environment, parsed in this package only: `Settings` (the scaling core's
tunables), each adapter's options (`prometheus`, `kube`, `ec2`) and the hook's (`hook`)."""

from autoscaler.config.environ import ConfigError
from autoscaler.config.settings import Settings

__all__ = ["ConfigError", "Settings"]
