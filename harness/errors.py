"""One exception tree for the harness: every message says what failed, what was checked, and the fix."""

from __future__ import annotations

__all__ = ["ConfigError", "HarnessError", "IssuerError", "ServiceError", "TargetError"]


class HarnessError(Exception):
    """Base of every error the harness raises on purpose; ``str()`` is the whole user-facing message."""

    prefix = "makrx"

    def __init__(self, message: str, *, fix: str | None = None, details: str | None = None) -> None:
        self.message = message
        self.fix = fix
        self.details = details
        super().__init__(self.render())

    def render(self) -> str:
        text = f"[{self.prefix}] {self.message}"
        if self.fix:
            text += f"\n  fix: {self.fix}"
        if self.details:
            text += "\n" + "\n".join("  | " + line for line in self.details.rstrip().splitlines())
        return text


class ConfigError(HarnessError):
    """Bad option, bad per-target settings file, or a target that cannot be resolved."""

    prefix = "makrx config"


class TargetError(HarnessError):
    """The backend under test failed to import, start, answer, or stop."""

    prefix = "makrx target"


class ServiceError(HarnessError):
    """Redis or Postgres could not be provided or controlled."""

    prefix = "makrx services"


class IssuerError(HarnessError):
    """The mock identity provider could not start or was misused."""

    prefix = "makrx issuer"
