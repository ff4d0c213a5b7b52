"""template.yaml passes the tools AWS ships: cfn-lint, `sam validate --lint` and `sam build`.

The SAM CLI and cfn-lint run from their own virtualenv, .venv-sam (`make sam` creates it; `make test`
depends on it). Without it these tests skip, except in CI, where they fail.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from node_fleet.local_invoke import function_ids, load_template
from node_fleet.runtime_python import runtime_python_dir
from template_helpers import ROOT, SAM_VENV_BIN, TEMPLATE, require_tool

HOW = "run `make sam` to create .venv-sam with the pinned aws-sam-cli and cfn-lint"
PYTHON_RUNTIME = "python3.12"


def sam_env(extra_path: str | None = None) -> dict[str, str]:
    env = dict(os.environ, SAM_CLI_TELEMETRY="0", AWS_DEFAULT_REGION=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    if extra_path:
        env["PATH"] = f"{extra_path}{os.pathsep}{env.get('PATH', '')}"
    return env


def run(args: list[str], timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env or sam_env())


def test_cfn_lint_passes():
    cfn_lint = require_tool(SAM_VENV_BIN / "cfn-lint", f"cfn-lint ({HOW})")
    out = run([cfn_lint, "--format", "parseable", str(TEMPLATE)], timeout=300)
    assert out.returncode == 0, f"cfn-lint found problems:\n{out.stdout}{out.stderr}"


def test_sam_validate_lint_passes():
    sam = require_tool(SAM_VENV_BIN / "sam", f"the SAM CLI ({HOW})")
    out = run([sam, "validate", "--lint", "--template", str(TEMPLATE)], timeout=300)
    assert out.returncode == 0, f"sam validate --lint failed:\n{out.stdout}{out.stderr}"
    assert "is a valid SAM Template" in out.stdout + out.stderr


@pytest.mark.slow
def test_sam_build_succeeds(tmp_path):
    """About 25 s here: the dependencies resolve from PyPI for arm64 (manylinux aarch64 wheels)."""
    sam = require_tool(SAM_VENV_BIN / "sam", f"the SAM CLI ({HOW})")
    python_dir = require_tool(runtime_python_dir(), f"{PYTHON_RUNTIME} for sam build (pyenv install 3.12)")
    build_dir = tmp_path / "build"
    args = [sam, "build", "--template", str(TEMPLATE), "--build-dir", str(build_dir), "--base-dir", str(ROOT)]
    args += ["--no-cached", "--cache-dir", str(tmp_path / "cache")]
    out = run(args, timeout=900, env=sam_env(python_dir))
    assert out.returncode == 0, f"sam build failed:\n{out.stdout}{out.stderr}"

    built = load_template(build_dir / "template.yaml")
    for logical_id in function_ids(built):
        code = build_dir / built["Resources"][logical_id]["Properties"]["CodeUri"]
        handler = built["Resources"][logical_id]["Properties"]["Handler"]
        module = handler.rpartition(".")[0].replace(".", "/")
        assert (code / f"{module}.py").exists(), f"{logical_id}: {module}.py is not in the bundle"
        for package in ("kubernetes", "boto3", "requests", "aws_lambda_powertools", "autoscaler", "gitops_hooks"):
            assert (code / package).is_dir(), f"{logical_id}: {package} is not in the bundle"
        assert not (code / "node_fleet").exists(), f"{logical_id}: the tooling is in the bundle"
        native = list((code / "yaml").glob("_yaml.cpython-312-*.so"))
        assert native and all("aarch64" in so.name for so in native), f"{logical_id}: not built for arm64: {native}"
