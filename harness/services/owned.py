"""What the services the harness runs itself share, embedded or in docker: the one server each owns and
its readiness probe, the fault controls acting on it, and the Postgres role and settings both create."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import redis

from ..errors import ServiceError
from .base import Service

__all__ = [
    "PG_DB",
    "PG_DURABILITY_OFF",
    "PG_USER",
    "PORT_ATTEMPTS",
    "STOP_TIMEOUT",
    "OwnedServer",
    "OwnedService",
    "redis_answers",
]

PG_USER = "makrx"
PG_DB = "makrx"
# Throwaway test data: durability off.
PG_DURABILITY_OFF: dict[str, str] = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
STOP_TIMEOUT = 10  # seconds a server has to shut down cleanly before SIGKILL
PORT_ATTEMPTS = 3  # fresh ports to try when another process takes the chosen one before the server binds it


class OwnedServer(ABC):
    """The one server (a process, a container) a harness-run service owns: ``stop()``/``start()`` keep its
    port, ``pause()`` freezes it, ``close()`` ends it for good. Subclasses say how; the paused/closed
    bookkeeping every kind needs is here.

    A (re)started server is ready once ``probe(port)`` returns, errors of the ``transient`` types meaning
    "not yet", within ``start_timeout`` seconds.
    """

    def __init__(
        self,
        label: str,
        *,
        probe: Callable[[int], object],
        transient: tuple[type[BaseException], ...],
        start_timeout: float,
    ) -> None:
        self.label = label  # what messages call the server
        self.probe = probe
        self.transient = transient
        self.start_timeout = start_timeout
        self.port = 0
        self.paused = False
        self.closed = False

    def stop(self) -> None:
        if self._exists():
            self.unpause()  # a frozen server could not shut down
            self._stop()

    def start(self) -> None:
        if self.closed:
            raise ServiceError(f"cannot start {self.label}: the service was closed")
        self._start()

    def pause(self) -> None:
        self._pause()
        self.paused = True

    def unpause(self) -> None:
        if self.paused:
            self._unpause()
        self.paused = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._close()

    @abstractmethod
    def _exists(self) -> bool:
        """True when ``stop()`` has something to shut down."""

    @abstractmethod
    def _stop(self) -> None:
        """Shut the (unfrozen) server down, keeping what ``_start()`` needs."""

    @abstractmethod
    def _start(self) -> None:
        """Bring the server back on ``port``; returns once it answers."""

    @abstractmethod
    def _pause(self) -> None:
        """Freeze the server: requests hang instead of failing."""

    @abstractmethod
    def _unpause(self) -> None:
        """Undo ``_pause()``."""

    @abstractmethod
    def _close(self) -> None:
        """End the server for good, whatever state it is in."""


class OwnedService(Service):
    """A service whose one server the harness runs: the fault controls, the port and the teardown all act
    on its ``_server``."""

    owns_process: ClassVar[bool] = True
    version: str  # of the server the harness runs
    _server: OwnedServer

    @property
    def port(self) -> int:  # type: ignore[override]  # read-only: the server owns it
        """The server's port; ``stop()``/``start()`` keep it."""
        return self._server.port

    def stop(self) -> None:
        """Shut the server down; ``start()`` brings it back on the same port."""
        self._server.stop()

    def start(self) -> None:
        """Start the server again after ``stop()``; returns once it answers."""
        self._server.start()

    def pause(self) -> None:
        """Freeze the server: requests hang until ``unpause()``."""
        self._server.pause()

    def unpause(self) -> None:
        """Undo ``pause()``."""
        self._server.unpause()

    def close(self) -> None:
        """End the server for good (idempotent)."""
        self._server.close()


def redis_answers(host: str, port: int) -> bool:
    """The readiness probe of a Redis the harness starts: PING, with short timeouts."""
    client = redis.Redis(host=host, port=port, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    finally:
        client.close()
