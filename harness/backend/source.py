"""The backend's own Python source, read without importing it: its files (tests, environments and caches
aside), and the sub-applications it mounts."""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["mount_prefixes", "parse", "python_files"]

_SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", "venv", "env", "build", "dist", "tests", "test"}
_MAX_FILES = 2000  # a vendored tree in the backend directory must not make every run read it all


def python_files(source: Path) -> Iterator[Path]:
    """The service's .py files under ``source`` (at most _MAX_FILES), in a stable order."""
    count = 0
    for directory, subdirs, names in os.walk(source):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d not in _SKIP_DIRS)
        for name in sorted(n for n in names if n.endswith(".py")):
            count += 1
            if count > _MAX_FILES:
                return
            yield Path(directory) / name


def parse(path: Path) -> ast.Module | None:
    """The file's syntax tree, or None when it is not readable Python."""
    try:
        return ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError):
        return None


def mount_prefixes(source: Path | None) -> tuple[str, ...]:
    """The paths of ``X.mount("/prefix", app)`` calls with a literal prefix: FastAPI sub-applications (and
    static files) whose operations the main OpenAPI document does not list."""
    found: dict[str, None] = {}
    for path in python_files(source) if source is not None else ():
        tree = parse(path)
        for node in ast.walk(tree) if tree is not None else ():
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "mount"):
                continue
            first = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "path"), None)
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value.startswith("/"):
                found.setdefault(first.value.rstrip("/"))
    return tuple(prefix for prefix in found if prefix)
