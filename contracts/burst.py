"""Bursts: one request sent again and again over kept-alive connections until the limiter answers 429, and
what the burst saw on the way (how many passed, the limit headers, server errors, failed connections)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from makrx_contracts.harness.backend.launcher import RunningTarget
from makrx_contracts.harness.client import ContractClient

from .openapi import Operation
from .ratelimit_headers import remaining

__all__ = ["Burst", "Limit", "RateOp", "burst", "shared", "shared_within"]

# Never valid JSON: FastAPI answers 422 before the handler runs, while a limiting middleware still counts it.
_MALFORMED = b'{"makrx-contract": '


@dataclass(frozen=True)
class RateOp:
    """The request a rate-limit burst repeats: a GET, or a write sent with a malformed JSON body, so a
    burst of writes changes no data."""

    operation: Operation

    @property
    def method(self) -> str:
        return self.operation.method

    @property
    def path(self) -> str:
        return self.operation.url()

    def send(self, client: ContractClient, headers: Mapping[str, str] | None = None) -> httpx.Response:
        if self.method == "GET":
            return client.get(self.path, headers=dict(headers or {}))
        return client.request(
            self.method, self.path, content=_MALFORMED, headers={"Content-Type": "application/json", **(headers or {})}
        )

    def __str__(self) -> str:
        return f"{self.method} {self.operation.path}"


@dataclass
class Burst:
    """What a burst saw: how many requests passed before the first 429, and anything alarming."""

    sent: int = 0
    allowed: int = 0
    limited: httpx.Response | None = None
    last: httpx.Response | None = None
    server_errors: list[httpx.Response] = field(default_factory=list)
    transport_errors: list[httpx.TransportError] = field(default_factory=list)
    rolled_over: bool = False  # a limit header's remaining count went up: the window reset mid-burst

    @property
    def evidence(self) -> list[httpx.Response]:
        shown = [*self.server_errors[:2]]
        for response in (self.limited, self.last):
            if response is not None and response not in shown:
                shown.append(response)
        return shown


def burst(
    clients: Sequence[ContractClient],
    op: RateOp,
    budget: int,
    *,
    headers: Callable[[int], Mapping[str, str]] | None = None,
) -> Burst:
    """Send ``op`` round-robin over ``clients`` until the first 429 or ``budget`` requests; a third failed
    connection ends it too (e.g. resets from a path that fails under load).

    Only the last exchanges of each client are kept: hundreds of identical ones would bury a failure.
    """
    result = Burst()
    last_remaining: dict[int, int] = {}
    for n in range(budget):
        index = n % len(clients)
        try:
            response = op.send(clients[index], headers(n) if headers else None)
        except httpx.TransportError as exc:
            result.transport_errors.append(exc)
            result.sent += 1
            if len(result.transport_errors) >= 3:
                break
            continue
        result.sent += 1
        result.last = response
        if response.status_code >= 500:
            result.server_errors.append(response)
        left = remaining(response)
        if left is not None:
            if left > last_remaining.get(index, left):
                result.rolled_over = True
            last_remaining[index] = left
        if response.status_code == 429:
            result.limited = response
            break
        result.allowed += 1
    for client in clients:
        del client.exchanges[:-2]
    return result


@dataclass(frozen=True)
class Limit:
    """The limit found on the main instance: ``allowed`` requests pass, the next one is 429."""

    allowed: int
    op: RateOp
    budget: int

    @property
    def shared_ceiling(self) -> int:
        """Most requests two instances sharing one count may let through (slack for refills and races)."""
        return self.allowed + max(3, self.allowed // 4)


def shared(seen: Burst, limit: Limit) -> bool:
    """Whether a burst across two instances was limited as one instance limits: they share the count."""
    return seen.limited is not None and seen.allowed <= limit.shared_ceiling


def _shared_burst(
    fresh: Callable[..., list[ContractClient]], a: RunningTarget, b: RunningTarget, limit: Limit
) -> Burst:
    """From one new address (``fresh``), alternate between ``a`` and ``b`` until 429; stop past the shared
    ceiling. Once more if the window reset mid-burst."""
    for _ in range(2):
        seen = burst(fresh(a, b), limit.op, limit.shared_ceiling + 1)
        if not seen.rolled_over:
            break
    return seen


def shared_within(
    timeout: float,
    redis: Any,
    fresh: Callable[..., list[ContractClient]],
    a: RunningTarget,
    b: RunningTarget,
    limit: Limit,
) -> Burst:
    """Flush Redis and burst across ``a`` and ``b`` until they share the count or ``timeout`` passes; the
    last burst. A backend that just lived through a Redis outage (this test's or an earlier one's) may
    count in memory for a moment before it uses Redis again: that is allowed, for a bounded time."""
    deadline = time.monotonic() + timeout
    while True:
        redis.flushall()
        seen = _shared_burst(fresh, a, b, limit)
        if shared(seen, limit) or time.monotonic() >= deadline:
            return seen
        time.sleep(0.5)
