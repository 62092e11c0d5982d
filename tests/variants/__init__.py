"""Broken variants of the reference app: each TOML file patches the reference app to break one rule."""

from __future__ import annotations

import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

from makrx_contracts.harness.backend.resolve import REFERENCE_APP_DIR

__all__ = ["VARIANTS_DIR", "Variant", "load_variants"]

VARIANTS_DIR = Path(__file__).resolve().parent
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


@dataclass(frozen=True)
class Variant:
    """The reference app plus a few edits; ``violates`` is the one contract id it must be caught by.

    TOML keys: ``violates``, ``description``, ``[[patch]] file/old/new`` (``old`` must occur),
    ``[rename] "old/path" = "new/path"``, ``[[write]] file/content``, ``delete = [paths]``.
    """

    name: str
    violates: str
    description: str
    data: dict

    def build(self, root: Path) -> Path:
        """Write the variant under ``root``/<name>/reference_app and return that directory."""
        app = root / self.name / "reference_app"
        shutil.copytree(REFERENCE_APP_DIR, app, ignore=_IGNORE)
        for src, dst in self.data.get("rename", {}).items():
            (app / dst).parent.mkdir(parents=True, exist_ok=True)
            (app / src).rename(app / dst)
        for patch in self.data.get("patch", []):
            path = app / patch["file"]
            text = path.read_text()
            if patch["old"] not in text:
                raise AssertionError(f"variant {self.name}: {patch['file']} no longer contains {patch['old']!r}")
            path.write_text(text.replace(patch["old"], patch["new"], patch.get("count", -1)))
        for item in self.data.get("write", []):
            (app / item["file"]).parent.mkdir(parents=True, exist_ok=True)
            (app / item["file"]).write_text(item["content"])
        for rel in self.data.get("delete", []):
            target = app / rel
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        return app


def load_variants() -> list[Variant]:
    variants = []
    for path in sorted(VARIANTS_DIR.glob("*.toml")):
        data = tomllib.loads(path.read_text())
        variants.append(Variant(path.stem, data["violates"], data.get("description", ""), data))
    return variants
