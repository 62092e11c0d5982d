"""Structured errors: one JSON shape for every error response, and the catch-all for crashes.

Every error body is `{"error": {"code", "message", "request_id"}}`; the request id equals the
response's `X-Request-ID` header. Details of what went wrong go to the logs, never to clients.
"""

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .request_id import get_request_id

log = structlog.get_logger(__name__)

ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def error_response(
    scope: Scope,
    status_code: int,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    """A JSON error response (schemas/errors.py) carrying this request's id."""
    error: dict[str, Any] = {
        "code": ERROR_CODES.get(status_code, "http_error"),
        "message": message,
        "request_id": get_request_id(scope),
    }
    if details is not None:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=status_code, headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method served at this path; Starlette's 405 names only the first matching route's."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    )


async def http_exception_handler(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """HTTPException (routing 404/405, auth 401/403, ...) in the error shape, headers kept."""
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = exc.headers
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    return error_response(request.scope, exc.status_code, message, headers=headers)


async def validation_exception_handler(
    request: Request, exc: RequestValidationError
) -> JSONResponse:
    """422 with where and why, but not the offending values: they may be secrets."""
    details = [
        {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
        for error in exc.errors()
    ]
    return error_response(request.scope, 422, "Request validation failed", details=details)


class CatchAllMiddleware:
    """Turns any unhandled exception into the 500 error shape.

    Starlette's own ServerErrorMiddleware sits outside all user middleware, so its 500 would lose
    the CORS and X-Request-ID headers; this one runs inside them.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        response_started = False

        async def send_tracking(message: Message) -> None:
            nonlocal response_started
            response_started |= message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            log.exception("unhandled_error", method=scope["method"], path=scope["path"])
            if response_started:
                raise  # too late for a clean error response: let the server close the connection
            response = error_response(scope, 500, "Internal server error")
            await response(scope, receive, send)
