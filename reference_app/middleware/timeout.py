"""A deadline for every request: one that outlives it answers 503 in the error shape instead of
hanging.

A frozen database (connections open, nothing answers) blocks a query on a socket no client-side
timeout covers: libpq's connect_timeout bounds connecting only, and the kernel still acknowledges
what the frozen server never reads. Only a deadline around the whole request bounds it.
"""

import asyncio

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .error_handling import error_response

log = structlog.get_logger(__name__)

REQUEST_TIMEOUT_SECONDS = 12.0  # a last resort: each dependency's own timeout answers first

_late: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks


class RequestTimeoutMiddleware:
    """Answers 503 when the app has not started its response within ``timeout`` seconds.

    The late request is left to finish on its own and whatever it sends afterwards is dropped. It is
    not cancelled: that cannot stop a sync handler's thread, it only runs the handler's dependency
    teardown (closing the DB session) while the handler still works, and the connection the handler
    takes afterwards is never returned. The garbage collector closes it later, in whatever thread it
    runs — the event loop's too, which then waits on the database like the handler did.
    """

    def __init__(self, app: ASGIApp, timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        response_started = False
        abandoned = False

        async def send_unless_abandoned(message: Message) -> None:
            nonlocal response_started
            if abandoned:
                return
            response_started |= message["type"] == "http.response.start"
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, send_unless_abandoned))
        done, _ = await asyncio.wait({task}, timeout=self.timeout)
        if done or response_started:
            await task  # finished, or streaming a response already begun: not ours to cut
            return
        abandoned = True
        _late.add(task)
        task.add_done_callback(_late.discard)
        # Retrieve its outcome when it ends, so a late failure is not reported as never retrieved.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        log.warning(
            "request_timeout", method=scope["method"], path=scope["path"], timeout=self.timeout
        )
        await error_response(scope, 503, "Request timed out")(scope, receive, send)
