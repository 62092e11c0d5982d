"""Run-time faults of the issuer's endpoints: an error status, a delay, or a garbage body."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any, Final

from makrx_contracts.harness.errors import IssuerError

__all__ = ["FAULTABLE", "GARBAGE_BODIES", "Fault", "Faults"]

FAULTABLE: Final = ("jwks", "realm", "discovery", "token", "userinfo", "introspect", "health")
"""Endpoint kinds a fault can target (admin endpoints never fail)."""

GARBAGE_BODIES: Final[dict[str, tuple[str, bytes]]] = {
    "truncated": ("application/json", b'{"keys":[{"kid":"'),
    "html": ("text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    "not-a-jwks": ("application/json", b'{"keys":"none"}'),
    "empty": ("application/json", b'{"keys":[]}'),
    "binary": ("application/json", bytes(range(256)) * 4),
    "null": ("application/json", b"null"),
}
"""Named garbage payloads: content type and body."""


@dataclass(frozen=True)
class Fault:
    """What one endpoint does wrong: wait ``delay`` seconds, then answer ``status`` and/or a garbage body."""

    status: int | None = None
    delay: float = 0.0
    garbage: str | bytes | None = None

    def describe(self) -> dict[str, Any]:
        garbage = (
            self.garbage if isinstance(self.garbage, str) or self.garbage is None else f"<{len(self.garbage)} bytes>"
        )
        return {"status": self.status, "delay": self.delay, "garbage": garbage}


class Faults:
    """Switch faults on and off at run time; each call takes effect for the next request.

    ``jwks_status(500)``, ``jwks_delay(5)`` (the answer comes, late: beyond a sane client timeout),
    ``jwks_garbage()`` (200 with a body that is not a JWKS; see ``GARBAGE_BODIES``), and the same for
    any endpoint kind with ``status(kind, ...)``, ``delay(kind, ...)``, ``garbage(kind, ...)``.
    ``clear()`` ends them all (a request sleeping in a delay wakes up and is answered normally).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, Fault] = {}
        self.generation = 0

    def _set(self, kind: str, **changes: Any) -> None:
        if kind not in FAULTABLE:
            raise IssuerError(f"no endpoint kind {kind!r} to fault", fix=f"use one of {', '.join(FAULTABLE)}")
        with self._lock:
            self._faults[kind] = replace(self._faults.get(kind, Fault()), **changes)
            self.generation += 1

    def status(self, kind: str, code: int = 500) -> None:
        """``kind`` answers ``code`` with a JSON error body."""
        if not 100 <= code <= 599:
            raise IssuerError(f"{code} is not an HTTP status", fix="pass a status between 100 and 599")
        self._set(kind, status=code)

    def delay(self, kind: str, seconds: float) -> None:
        """``kind`` answers only after ``seconds``; other endpoints stay fast."""
        if seconds < 0:
            raise IssuerError(f"negative delay {seconds}", fix="pass seconds >= 0")
        self._set(kind, delay=float(seconds))

    def garbage(self, kind: str, body: str | bytes = "truncated") -> None:
        """``kind`` answers 200 with garbage: a name from ``GARBAGE_BODIES`` or raw bytes."""
        if isinstance(body, str) and body not in GARBAGE_BODIES:
            raise IssuerError(f"unknown garbage {body!r}", fix=f"use one of {', '.join(GARBAGE_BODIES)} or bytes")
        self._set(kind, garbage=body)

    def jwks_status(self, code: int = 500) -> None:
        self.status("jwks", code)

    def jwks_delay(self, seconds: float) -> None:
        self.delay("jwks", seconds)

    def jwks_garbage(self, body: str | bytes = "truncated") -> None:
        self.garbage("jwks", body)

    def clear(self, kind: str | None = None) -> None:
        """End the faults of ``kind`` (default: all)."""
        with self._lock:
            if kind is None:
                self._faults.clear()
            else:
                self._faults.pop(kind, None)
            self.generation += 1

    def get(self, kind: str) -> Fault | None:
        return self._faults.get(kind)

    def active(self) -> dict[str, dict[str, Any]]:
        """The faults now in force, by endpoint kind."""
        with self._lock:
            return {kind: fault.describe() for kind, fault in self._faults.items()}

    def __bool__(self) -> bool:
        return bool(self._faults)
