"""The interpreter a path target's processes run with: its own venv's when one is set, else the suite's."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import TargetError
from .resolve import TargetSpec

__all__ = ["backend_python"]


def backend_python(spec: TargetSpec, python: str | None) -> str:
    """``spec``'s `python` setting, else ``python`` (--makrx-python), else the suite's interpreter; a relative
    path is looked up in the backend's directory first. Its own venv must have uvicorn unless the target
    sets its own `command`."""
    chosen = spec.settings.python or python
    if chosen is None:
        return sys.executable
    path = Path(chosen)
    if not path.is_absolute() and spec.path is not None and (spec.path / path).exists():
        path = spec.path / path
    resolved = shutil.which(str(path))
    if resolved is None:
        raise TargetError(
            f"python {chosen!r} for {spec.name} was not found",
            fix='set python = "path/to/venv/bin/python" (or --makrx-python) to an interpreter '
            "that can import the backend",
        )
    if spec.settings.command is None:
        done = subprocess.run([resolved, "-c", "import uvicorn"], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise TargetError(
                f"uvicorn is not installed in {resolved}, the interpreter of {spec.name}",
                fix=f"{resolved} -m pip install uvicorn (or set 'command' to how it starts)",
            )
    return resolved
