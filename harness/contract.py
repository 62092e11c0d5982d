"""What a contract is (id, level, area) and how its failure reads: title, received/expected, exchange."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import httpx
import pytest

from .exchange import render_exchanges

__all__ = [
    "AREAS",
    "MUST",
    "SHOULD",
    "ContractInfo",
    "ContractViolation",
    "Level",
    "contract_of",
    "expect",
    "expect_eventually",
    "expect_status",
    "violation",
]


class Level(str, Enum):
    """MUST fails the gate; SHOULD warns unless --makrx-strict."""

    MUST = "MUST"
    SHOULD = "SHOULD"


MUST = Level.MUST
SHOULD = Level.SHOULD

# Area marker name -> heading in reports; one pytest marker per area.
AREAS: dict[str, str] = {
    "health": "HEALTH",
    "auth": "AUTH",
    "ratelimit": "RATE LIMIT",
    "cors": "CORS",
    "request_id": "REQUEST ID",
    "logs": "LOGS",
    "errors": "ERRORS",
    "prefix": "PREFIX",
    "structure": "STRUCTURE",
    "runtime": "RUNTIME",
    "fuzz": "FUZZ",
}


@dataclass(frozen=True)
class ContractInfo:
    """The data a contract test carries on its ``contract`` marker."""

    id: str
    level: Level
    area: str


def contract_of(item: pytest.Item) -> ContractInfo | None:
    """The contract an item checks, from ``@pytest.mark.contract(id, level=...)`` and its area marker."""
    marker = item.get_closest_marker("contract")
    if marker is None:
        return None
    cid = marker.args[0] if marker.args else marker.kwargs["id"]
    level = Level(marker.kwargs.get("level", marker.args[1] if len(marker.args) > 1 else "MUST"))
    area = next((AREAS[m.name] for m in item.iter_markers() if m.name in AREAS), cid.split("-", 1)[0])
    return ContractInfo(id=cid, level=level, area=area)


class ContractViolation(AssertionError):
    """A backend broke a rule; the message is the whole story, so pytest's traceback is hidden."""

    def __init__(
        self, title: str, received: str, expected: str, exchanges: list[httpx.Response], details: str | None = None
    ) -> None:
        self.title = title
        self.received = received
        self.expected = expected
        self.exchanges = exchanges
        message = f"{title}\n  Received: {received}\n  Expected: {expected}"
        if exchanges:
            message += "\n\nHTTP exchange:\n" + render_exchanges(exchanges)
        if details:
            message += "\n\n" + details
        super().__init__(message)


def violation(
    title: str,
    *,
    received: str,
    expected: str,
    response: httpx.Response | list[httpx.Response] | None = None,
    details: str | None = None,
) -> ContractViolation:
    """Build the failure of one rule (``details``: extra evidence, e.g. a raw exchange); raise it."""
    exchanges = [] if response is None else response if isinstance(response, list) else [response]
    return ContractViolation(title, received, expected, exchanges, details)


def expect(
    condition: object,
    title: str,
    *,
    received: str,
    expected: str,
    response: httpx.Response | list[httpx.Response] | None = None,
    details: str | None = None,
) -> None:
    """Raise a ContractViolation unless ``condition`` holds."""
    __tracebackhide__ = True
    if not condition:
        raise violation(title, received=received, expected=expected, response=response, details=details)


def expect_status(response: httpx.Response, status: int, title: str) -> None:
    """Raise a ContractViolation unless ``response`` answered ``status``."""
    __tracebackhide__ = True
    expect(
        response.status_code == status,
        title,
        received=str(response.status_code),
        expected=str(status),
        response=response,
    )


def expect_eventually(
    fetch: Callable[[], httpx.Response],
    ok: Callable[[httpx.Response], bool],
    *,
    title: str,
    expected: str,
    timeout: float,
    interval: float = 0.2,
) -> httpx.Response:
    """Repeat ``fetch`` until ``ok(response)``; after ``timeout`` seconds fail with the last exchange."""
    deadline = time.monotonic() + timeout
    last: httpx.Response | None = None
    error: str | None = None
    while True:
        try:
            last = fetch()
            error = None
            if ok(last):
                return last
        except httpx.TransportError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            received = error or (f"{last.status_code} (still, after {timeout:.0f} s)" if last is not None else "?")
            raise violation(title, received=received, expected=expected, response=last)
        time.sleep(interval)
