"""Request-id middleware: an `X-Request-ID` on every response and one JSON access log line."""

import time
import uuid

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..security.input_validation import safe_request_id

REQUEST_ID_HEADER = "X-Request-ID"

access_log = structlog.get_logger("reference_app.access")


def get_request_id(scope: Scope) -> str:
    """The id assigned to this request by `RequestIdMiddleware`."""
    return str(scope.get("state", {}).get("request_id", ""))


class RequestIdMiddleware:
    """Outermost layer, so every response, including CORS preflights and crashes, gets the id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        # Echo a well-formed inbound id (correlation across services); replace anything else.
        inbound = Headers(scope=scope).get(REQUEST_ID_HEADER)
        request_id = safe_request_id(inbound) or str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)

        status = 500  # if the app dies before answering, the server sends a 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            # Path only: query strings can carry tokens.
            access_log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()
