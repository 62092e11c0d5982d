"""Backends not shaped like ours: each TOML file patches the reference app into a pattern real services use."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.variants import Variant

__all__ = ["foreign_backend"]

FOREIGN_DIR = Path(__file__).resolve().parent


def foreign_backend(name: str) -> Variant:
    """``tests/foreign/<name>.toml`` as a buildable patch of the reference app (the Variant format)."""
    data = tomllib.loads((FOREIGN_DIR / f"{name}.toml").read_text())
    return Variant(name, "", data.get("description", ""), data)
