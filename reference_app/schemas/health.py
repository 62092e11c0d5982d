"""Response bodies of the health and readiness probes."""

from typing import Literal

from pydantic import BaseModel

from .errors import ErrorDetail

CheckState = Literal["ok", "unavailable"]


class Liveness(BaseModel):
    """The process is up and serving."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Per-dependency state; a 503 names the failing checks and carries the usual `error`."""

    status: Literal["ready", "unavailable"]
    checks: dict[str, CheckState]
    error: ErrorDetail | None = None
