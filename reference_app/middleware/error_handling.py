"""Structured errors: one JSON shape for every error response, and the catch-all for crashes.

Every error body is `{"error": {"code", "message", "request_id"}}`; the request id equals the
response's `X-Request-ID` header. Details of what went wrong go to the logs, never to clients.
"""

from http import HTTPStatus
from typing import Any

import structlog
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
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


def error_body(status_code: int, message: str, request_id: str, **extra: Any) -> dict[str, Any]:
    """The error object for `status_code`; `extra` adds fields such as `details`."""
    code = ERROR_CODES.get(status_code, "http_error")
    return {"error": {"code": code, "message": message, "request_id": request_id, **extra}}


def error_response(
    scope: Scope,
    status_code: int,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A JSON error response carrying this request's id."""
    body = error_body(status_code, message, get_request_id(scope), **extra)
    return JSONResponse(body, status_code=status_code, headers=headers)


async def http_exception_handler(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """HTTPException (routing 404/405, auth 401/403, ...) in the error shape, headers kept."""
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return error_response(request.scope, exc.status_code, message, headers=exc.headers)


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
