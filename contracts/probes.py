"""The health probes: the paths a backend serves them under, which of them answer, and what a failing
readiness body says about Redis."""

from __future__ import annotations

import re

import httpx
import pytest
from makrx_contracts.harness.client import ContractClient

__all__ = ["LIVENESS", "READINESS", "answering", "declares_redis"]

LIVENESS = ("/health", "/api/health", "/health/live", "/api/v1/health/live")
READINESS = ("/health/readyz", "/api/v1/health/readyz")

# Failing readiness checks a body may name to declare Redis a readiness dependency of its own.
_REDIS_CHECK = re.compile(r"redis|cache", re.I)


def answering(client: ContractClient, paths: tuple[str, ...]) -> list[str]:
    """The probes that answer 200 with everything up: an outage is judged on those the backend serves; the
    others are HEALTH-ENDPOINTS/-LIVE/-READY's business (which fail in the same run)."""
    found = [path for path in paths if client.get(path, timeout=5.0).status_code == 200]
    if not found:
        pytest.skip(
            f"precondition: none of {', '.join(paths)} answers 200 with everything up (see HEALTH-LIVE, HEALTH-READY)"
        )
    return found


def declares_redis(response: httpx.Response) -> bool:
    """True when a 503 readiness body names a failed Redis check (``{"checks": {"redis": "..."}}`` or similar)."""
    try:
        body = response.json()
    except ValueError:
        return False
    checks = body.get("checks") if isinstance(body, dict) else None
    if isinstance(checks, dict):
        return any(
            _REDIS_CHECK.search(str(name))
            for name, state in checks.items()
            if str(state).lower() not in ("ok", "up", "pass", "true", "healthy")
        )
    return bool(_REDIS_CHECK.search(response.text))
