"""Who fetched what from the issuer: every request, counted per endpoint kind and client."""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Final

__all__ = ["FETCH_KINDS", "Fetch", "FetchLog"]

FETCH_KINDS: Final = ("jwks", "realm", "discovery", "token", "userinfo", "introspect", "health", "admin", "other")
"""What ``fetches()`` and ``fetch_counts()`` count, by endpoint."""


@dataclass(frozen=True)
class Fetch:
    """One request the issuer received. ``client`` is ``(source IP, User-Agent)``: the source port changes
    with every new connection, so it would split one backend into many clients."""

    at: float
    kind: str
    method: str
    path: str
    client_ip: str
    user_agent: str
    status: int | None = None

    @property
    def client(self) -> tuple[str, str]:
        return (self.client_ip, self.user_agent)


def _matches(fetch_client: tuple[str, str], client: str | tuple[str, str] | None) -> bool:
    if client is None:
        return True
    if isinstance(client, tuple):
        return fetch_client == tuple(client)
    return client in fetch_client


class FetchLog:
    """Counts per ``(kind, source IP, User-Agent)`` and the last 100 000 requests; thread-safe.

    ``client`` filters: None for everyone; a string matches the source IP or the User-Agent; a pair
    ``(ip, user_agent)`` matches one client exactly.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self._log: deque[Fetch] = deque(maxlen=100_000)

    def record(self, fetch: Fetch) -> None:
        with self._lock:
            self._counts[(fetch.kind, fetch.client_ip, fetch.user_agent)] += 1
            self._log.append(fetch)

    def counts(self, client: str | tuple[str, str] | None = None) -> dict[str, int]:
        """Requests per endpoint kind, every kind of ``FETCH_KINDS`` (0 included), in that order."""
        counts = dict.fromkeys(FETCH_KINDS, 0)
        with self._lock:
            for (kind, ip, ua), n in self._counts.items():
                if _matches((ip, ua), client):
                    counts[kind] += n
        return counts

    def clients(self, kind: str) -> dict[tuple[str, str], int]:
        """Counts for ``kind`` per ``(source IP, User-Agent)``."""
        with self._lock:
            return {(ip, ua): n for (k, ip, ua), n in self._counts.items() if k == kind}

    def requests(self, kind: str | None = None) -> list[Fetch]:
        """Every recorded request (newest last), optionally only of ``kind``."""
        with self._lock:
            return [f for f in self._log if kind is None or f.kind == kind]

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()
            self._log.clear()
