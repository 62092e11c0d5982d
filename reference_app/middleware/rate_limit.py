"""Fixed-window rate limit per client, counted in Redis when REDIS_URL is set, else in memory."""

import math
import time
from collections.abc import Collection
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..security.helpers import client_ip
from .error_handling import error_response

log = structlog.get_logger(__name__)

REDIS_TIMEOUT_SECONDS = 0.25  # a dead or paused Redis must not stall requests
REDIS_RETRY_AFTER_SECONDS = 1.0  # after a failure, count in memory for this long


@dataclass(frozen=True, slots=True)
class WindowState:
    """How a client stands in the current window after counting one more request."""

    limit: int
    count: int
    reset_seconds: float

    @property
    def exceeded(self) -> bool:
        return self.count > self.limit

    def headers(self, window_seconds: int) -> dict[str, str]:
        """IETF draft RateLimit headers (draft-ietf-httpapi-ratelimit-headers)."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(0, self.limit - self.count)),
            "RateLimit-Reset": str(max(1, math.ceil(self.reset_seconds))),
            "RateLimit-Policy": f"{self.limit};w={window_seconds}",
        }


class FixedWindowLimiter:
    """Counts requests per client and window; shared through Redis across workers and instances.

    Redis errors never fail a request: counting falls back to this process's memory and Redis is
    tried again after REDIS_RETRY_AFTER_SECONDS.
    """

    def __init__(self, limit: int, window_seconds: int = 60, redis_url: str | None = None) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._redis = (
            Redis.from_url(
                redis_url,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                retry=None,  # one attempt: the in-memory fallback is the retry
            )
            if redis_url
            else None
        )
        self._redis_retry_at = 0.0
        self._memory: dict[str, int] = {}
        self._memory_window = -1

    async def hit(self, client: str) -> WindowState:
        """Count one request of `client` in the current window."""
        now = time.time()  # wall clock, so instances sharing Redis agree on window edges
        window = int(now // self.window_seconds)
        key = f"ratelimit:{client}:{window}"
        count = await self._hit_redis(key)
        if count is None:
            count = self._hit_memory(key, window)
        reset = (window + 1) * self.window_seconds - now
        return WindowState(limit=self.limit, count=count, reset_seconds=reset)

    async def _hit_redis(self, key: str) -> int | None:
        if self._redis is None or time.monotonic() < self._redis_retry_at:
            return None
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, self.window_seconds)
                count, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            self._redis_retry_at = time.monotonic() + REDIS_RETRY_AFTER_SECONDS
            log.warning("rate_limit_redis_unavailable", error=repr(exc))
            return None
        return int(count)

    def _hit_memory(self, key: str, window: int) -> int:
        if window != self._memory_window:  # keys embed the window: older ones are dead
            self._memory.clear()
            self._memory_window = window
        self._memory[key] = self._memory.get(key, 0) + 1
        return self._memory[key]

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


class RateLimitMiddleware:
    """Answers 429 in the error shape once a client exceeds its window; headers on every reply."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: FixedWindowLimiter,
        trust_proxy: bool,
        exempt_paths: Collection[str] = (),
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.trust_proxy = trust_proxy
        self.exempt_paths = frozenset(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] == "OPTIONS"
            or scope["path"] in self.exempt_paths
        ):
            await self.app(scope, receive, send)
            return

        state = await self.limiter.hit(client_ip(scope, trust_proxy=self.trust_proxy))
        limit_headers = state.headers(self.limiter.window_seconds)

        if state.exceeded:
            retry_after = limit_headers["RateLimit-Reset"]
            response = error_response(
                scope,
                429,
                "Too many requests, retry later",
                headers={**limit_headers, "Retry-After": retry_after},
            )
            await response(scope, receive, send)
            return

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(limit_headers)
            await send(message)

        await self.app(scope, receive, send_with_limits)
