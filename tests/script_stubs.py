"""Stand-ins for the tools gitops/scripts call (flux, kubectl, openssl) that log their arguments, and the
environment the scripts run in: no cluster is touched, and this machine's other tools are hidden."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# Each drains a piped stdin as the real tool would (else the writer gets SIGPIPE, and pipefail fails).
DRAIN = "[ -p /dev/stdin ] && cat >/dev/null"
STUBS = {
    "flux": f'{DRAIN}; printf "%s\\n" "flux $*" >> "$LOG"',
    # `get` answers "not found", so the scripts take their create paths.
    "kubectl": f'{DRAIN}; printf "%s\\n" "kubectl $*" >> "$LOG"; case " $* " in *" get "*) exit 1;; esac',
    "openssl": f'{DRAIN}; printf "%s\\n" "openssl $*" >> "$LOG"; echo stub',
}
SECRET_VARS = (
    "GITHUB_TOKEN",
    "GITHUB_OWNER",
    "GITHUB_REPOSITORY",
    "GITHUB_BRANCH",
    "GITHUB_PERSONAL",
    "NODE_FLEET_HOOK_URL",
    "NODE_FLEET_HOOK_HMAC_KEY",
    "SLACK_WEBHOOK_URL",
    "PROMETHEUS_LAMBDA_USER",
    "PROMETHEUS_LAMBDA_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
)


SYSTEM_TOOLS = ("bash", "cat", "cp", "date", "dirname", "grep", "mkdir", "mktemp", "mv", "rm", "sed", "tail")


def stub_env(tmp_path: Path, tools: tuple[str, ...] = tuple(STUBS)) -> tuple[dict[str, str], Path]:
    """flux, kubectl and openssl stand-ins that log their arguments: no cluster is touched."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    log.touch()
    for name in tools:
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{STUBS[name]}\n")
        path.chmod(0o755)
    # Only the stubs and the few system tools the scripts use: whatever else this machine has is hidden.
    sys_dir = tmp_path / "sysbin"
    sys_dir.mkdir()
    for name in SYSTEM_TOOLS:
        found = shutil.which(name, path="/usr/bin:/bin")
        assert found, f"{name} not found in /usr/bin or /bin"
        (sys_dir / name).symlink_to(found)
    env = {k: v for k, v in os.environ.items() if k not in SECRET_VARS}
    env |= {"PATH": f"{bin_dir}:{sys_dir}", "LOG": str(log)}
    return env, log
