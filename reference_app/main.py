"""ASGI entry point (`reference_app.main:app`): the app, its middleware stack and routers."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from .core.config import settings
from .core.logging import configure_logging
from .database import engine
from .middleware.error_handling import (
    CatchAllMiddleware,
    http_exception_handler,
    validation_exception_handler,
)
from .middleware.rate_limit import FixedWindowLimiter, RateLimitMiddleware
from .middleware.request_id import REQUEST_ID_HEADER, RequestIdMiddleware
from .middleware.timeout import RequestTimeoutMiddleware
from .routes import health, items, me
from .schemas.errors import ErrorResponse

configure_logging(settings.log_level)

METRICS_PATH = "/metrics"

rate_limiter = FixedWindowLimiter(settings.rate_limit_per_minute, redis_url=settings.redis_url)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield
    await rate_limiter.aclose()
    engine.dispose()


app = FastAPI(
    title="MakrX Reference API",
    version="1.0.0",
    lifespan=lifespan,
    # Every operation documents the error shape for the statuses it does not list itself.
    responses={"default": {"model": ErrorResponse, "description": "Error"}},
    exception_handlers={
        StarletteHTTPException: http_exception_handler,
        RequestValidationError: validation_exception_handler,
    },
    # Outermost first. The request id wraps everything, so even CORS preflights and crashes
    # carry it; CORS wraps the catch-all, so a 500 still has the CORS headers; the deadline
    # covers the limiter too, which waits on Redis.
    middleware=[
        Middleware(RequestIdMiddleware),
        Middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", REQUEST_ID_HEADER],
            expose_headers=[REQUEST_ID_HEADER],
        ),
        Middleware(CatchAllMiddleware),
        Middleware(RequestTimeoutMiddleware),
        Middleware(
            RateLimitMiddleware,
            limiter=rate_limiter,
            trust_proxy=settings.trust_proxy,
            exempt_paths=health.HEALTH_PATHS | {METRICS_PATH},
        ),
    ],
)

app.include_router(health.router)
app.include_router(items.router, prefix="/api")
app.include_router(me.router, prefix="/api")

if settings.enable_metrics:
    Instrumentator().instrument(app).expose(app, endpoint=METRICS_PATH, include_in_schema=False)


if __name__ == "__main__":
    # `python -m reference_app.main`: a local run on PORT. Proxy headers are TRUST_PROXY's job,
    # and logging is already configured (log_config=None keeps uvicorn from replacing it).
    uvicorn.run(app, host="127.0.0.1", port=settings.port, proxy_headers=False, log_config=None)
