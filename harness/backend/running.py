"""A backend instance that answers HTTP: one the launcher started, or a URL target as it runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..process import OwnedProcess, tail
from .migrations import MigrationResult
from .resolve import TargetSpec

__all__ = ["RunningTarget"]


@dataclass
class RunningTarget:
    """A backend that answers HTTP at ``base_url``; ``process`` is None for URL targets."""

    spec: TargetSpec
    base_url: str
    env: dict[str, str] = field(default_factory=dict)
    process: OwnedProcess | None = None
    log_path: Path | None = None
    migration: MigrationResult | None = None

    @property
    def restartable(self) -> bool:
        return self.process is not None

    def log_text(self) -> str:
        """Everything the backend printed so far (stdout and stderr)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text("utf-8", "replace")

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.log_path, lines) if self.log_path else ""

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
