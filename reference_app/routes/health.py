"""Liveness and readiness probes (no auth, never rate limited)."""

from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.routing import APIRoute

from ..middleware.request_id import get_request_id
from ..schemas.errors import ErrorDetail
from ..schemas.health import CheckState, Liveness, Readiness
from ..services.readiness import check_readiness

# Mounted at the root: probes live at fixed paths, both bare and under /api.
router = APIRouter(tags=["health"])


@router.get("/health")
@router.get("/api/health")
async def health() -> Liveness:
    """Liveness: answers while the process serves; touches no dependency."""
    return Liveness()


@router.get("/health/live")
@router.get("/api/v1/health/live")
async def live() -> Liveness:
    """Liveness for orchestrators (same as /health)."""
    return Liveness()


_NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": Readiness, "description": "A dependency is unavailable"}
}


@router.get("/health/readyz", responses=_NOT_READY, response_model_exclude_none=True)
@router.get("/api/v1/health/readyz", responses=_NOT_READY, response_model_exclude_none=True)
async def ready(request: Request, response: Response) -> Readiness:
    """Readiness: 200 when the database and Keycloak answer, else 503 naming what failed."""
    results = await check_readiness()
    checks: dict[str, CheckState] = {
        name: "ok" if ok else "unavailable" for name, ok in results.items()
    }
    if all(results.values()):
        return Readiness(status="ready", checks=checks)
    failed = ", ".join(name for name, ok in results.items() if not ok)
    response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(
        status="unavailable",
        checks=checks,
        error=ErrorDetail(
            code="service_unavailable",
            message=f"Not ready: {failed} unavailable",
            request_id=get_request_id(request.scope),
        ),
    )


HEALTH_PATHS = frozenset(route.path for route in router.routes if isinstance(route, APIRoute))
