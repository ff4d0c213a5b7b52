"""How big each function's deployment bundle is: `sam build` into a temporary folder, then measure.

    .venv/bin/python bench/bundle.py [--top N] [--keep DIR]

It needs the SAM CLI from .venv-sam (`make sam`) and a python3.12 for the builder, put first on PATH for
the build (`node_fleet.runtime_python` finds it, as for `make build`). Prints, per function: unpacked size
(Lambda allows 250 MB unzipped, layers included), zipped size, file count, and the largest top-level packages.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from node_fleet.runtime_python import RUNTIME_VERSION, runtime_python_dir

ROOT = Path(__file__).resolve().parent.parent
SAM = ROOT / ".venv-sam" / "bin" / "sam"
TEMPLATE = ROOT / "template.yaml"
MB = 1024 * 1024
UNZIPPED_LIMIT_MB = 250


def tree_size(path: Path) -> tuple[int, int]:
    """Bytes and files under `path` (a file counts itself)."""
    if path.is_file():
        return path.stat().st_size, 1
    total = files = 0
    for item in path.rglob("*"):
        if item.is_file() and not item.is_symlink():
            total += item.stat().st_size
            files += 1
    return total, files


def zipped_size(folder: Path, scratch: Path) -> int:
    archive = scratch / f"{folder.name}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for item in sorted(folder.rglob("*")):
            if item.is_file():
                zf.write(item, item.relative_to(folder))
    size = archive.stat().st_size
    archive.unlink()
    return size


def packages(folder: Path) -> list[tuple[str, int]]:
    """Top-level entries grouped by distribution-ish name (foo, foo-1.2.dist-info and _foo count together)."""
    groups: dict[str, int] = {}
    for entry in folder.iterdir():
        name = entry.name.split("-")[0] if entry.name.endswith((".dist-info", ".data")) else entry.name
        name = name.removesuffix(".py").lstrip("_").lower()
        groups[name] = groups.get(name, 0) + tree_size(entry)[0]
    return sorted(groups.items(), key=lambda item: -item[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=8, help="largest packages to list per function")
    parser.add_argument("--keep", type=Path, help="build into this folder and keep it")
    args = parser.parse_args(argv)
    if not SAM.exists():
        print("bundle: the SAM CLI is missing; run `make sam` first", file=sys.stderr)
        return 1
    python_dir = runtime_python_dir()
    if python_dir is None:
        print(f"bundle: no working python{RUNTIME_VERSION} found (pyenv install {RUNTIME_VERSION})", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory(prefix="node-fleet-bundle-") as scratch_name:
        scratch = Path(scratch_name)
        build_dir = args.keep or scratch / "build"
        env = dict(os.environ, SAM_CLI_TELEMETRY="0", PATH=f"{python_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        command = [str(SAM), "build", "--template", str(TEMPLATE), "--build-dir", str(build_dir)]
        command += ["--base-dir", str(ROOT), "--no-cached", "--cache-dir", str(scratch / "cache")]
        started = time.perf_counter()
        out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if out.returncode != 0:
            print(out.stdout + out.stderr, file=sys.stderr)
            return 1
        print(f"sam build (python{RUNTIME_VERSION} from {python_dir}, no cache): {elapsed:.1f} s")
        for function in sorted(p for p in build_dir.iterdir() if p.is_dir()):
            size, files = tree_size(function)
            zipped = zipped_size(function, scratch)
            print(
                f"\n{function.name}: {size / MB:.1f} MB unpacked ({size / MB / UNZIPPED_LIMIT_MB:.0%} of Lambda's "
                f"{UNZIPPED_LIMIT_MB} MB), {zipped / MB:.1f} MB zipped, {files} files"
            )
            for name, package_size in packages(function)[: args.top]:
                print(f"  {name:<24} {package_size / MB:7.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
