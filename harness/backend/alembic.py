"""Where a backend's migrations are and where `alembic upgrade head` must run for alembic to find them.

Alembic reads a relative `script_location` against the working directory, not against alembic.ini. Real
backends write `script_location = migrations` and run alembic from the backend's directory; others
write the path from the repository root, or use `%(here)s`. The harness runs alembic from the first
directory where the location exists, and STRUCT-ALEMBIC judges the same place.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

from .resolve import TargetSpec

__all__ = ["AlembicLayout", "alembic_layout"]


@dataclass(frozen=True)
class AlembicLayout:
    """`script_dir` as alembic will resolve it from `cwd`; None when the ini names none."""

    ini: Path
    script_location: str | None
    script_dir: Path | None
    cwd: Path


def _script_location(ini: Path) -> str | None:
    parser = configparser.ConfigParser(defaults={"here": str(ini.parent)})
    try:
        parser.read(ini)
        return parser.get("alembic", "script_location")
    except (configparser.Error, KeyError, UnicodeDecodeError):
        return None


def alembic_layout(ini: Path, spec: TargetSpec) -> AlembicLayout:
    """The backend's directory first, then the import root and the configured `cwd`: the first from which
    a relative location exists is where alembic runs."""
    candidates = [ini.parent, *(place for place in (spec.import_root, spec.cwd) if place is not None)]
    location = _script_location(ini)
    if location is None or ":" in location:
        return AlembicLayout(ini, location, None, candidates[0])  # none, or a `package:path` resource
    path = Path(location)
    if path.is_absolute():
        return AlembicLayout(ini, location, path, candidates[0])
    cwd = next((place for place in candidates if (place / path).is_dir()), candidates[0])
    return AlembicLayout(ini, location, cwd / path, cwd)
