"""The core stays pure: no outside-world library may be imported by it, directly or not."""

import subprocess
import sys

import pytest

PURE = [
    "autoscaler.model",
    "autoscaler.scheduling",
    "autoscaler.config",
    "autoscaler.binpack",
    "autoscaler.placement",
    "autoscaler.room",
    "autoscaler.rules",
    "autoscaler.planner",
    "autoscaler.ports",
    "autoscaler.pricing",
    "autoscaler.gitops.flux",
    "autoscaler.gitops.gate",
]
FORBIDDEN = ("boto3", "botocore", "requests", "kubernetes", "urllib3")


@pytest.mark.parametrize("module", PURE)
def test_core_module_imports_no_outside_library(module):
    code = (
        f"import sys, {module}\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"{module} pulls in {out}"
