"""What the functions deploy (src/, their CodeUri) stands apart from the tooling (tools/node_fleet)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
TOOLING = "node_fleet"
HANDLERS = ["autoscaler.handler", "gitops_hooks.handler"]


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def _loaded_after_import(modules: list[str]) -> set[str]:
    code = f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\nprint('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return set(out.stdout.split())


def test_src_holds_only_the_two_function_packages():
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == {"autoscaler", "gitops_hooks"}


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_deployed_file_imports_the_tooling(path):
    assert TOOLING not in _imported_roots(path)


def test_the_handlers_closure_loads_no_tooling():
    loaded = _loaded_after_import([*HANDLERS, "autoscaler.wiring", "gitops_hooks.wiring"])
    assert not {m for m in loaded if m.split(".")[0] == TOOLING}


def test_the_hook_loads_none_of_the_autoscalers_service():
    loaded = _loaded_after_import(["gitops_hooks.handler", "gitops_hooks.wiring"])
    service_side = {"autoscaler.service", "autoscaler.planner", "autoscaler.actuator", "autoscaler.wiring"}
    assert not loaded & service_side
