"""Where `sam build` finds the functions' runtime, python3.12 (template.yaml's Runtime).

    python3 tools/node_fleet/runtime_python.py      # prints the folder to put first on PATH, or exits 1

`sam build` runs the runtime's own pip, so python3.12 must be first on PATH. pyenv's shim runs only the
active version, so shims are skipped: the first working python3.12 on PATH, else the newest under pyenv's
versions/. Standard library only: `make build` runs it before any virtualenv of the project exists.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

RUNTIME_VERSION = "3.12"


def runtime_python_dir(version: str = RUNTIME_VERSION) -> Path | None:
    """A folder holding a python<version> that runs, or None."""
    folders = [Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p and "shims" not in p]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    folders += sorted((pyenv_root / "versions").glob(f"{version}.*/bin"), reverse=True)
    for folder in folders:
        exe = folder / f"python{version}"
        if exe.exists() and subprocess.run([str(exe), "--version"], capture_output=True).returncode == 0:
            return folder
    return None


def main() -> int:
    folder = runtime_python_dir()
    if folder is None:
        print(
            f"no working python{RUNTIME_VERSION} (the functions' runtime, which sam build needs): "
            f"install it, e.g. `pyenv install {RUNTIME_VERSION}` or `apt-get install python{RUNTIME_VERSION}`",
            file=sys.stderr,
        )
        return 1
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
