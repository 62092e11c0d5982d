"""Bounded waits: retry only transient errors, and time out with a message naming what was awaited."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["wait_for"]

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout: float,
    interval: float = 0.02,
    transient: tuple[type[BaseException], ...] = (OSError,),
    abort: Callable[[], str | None] | None = None,
) -> T:
    """Call ``probe`` until it returns a truthy value; raise ``TimeoutError`` naming ``what``.

    ``abort`` is polled between tries; a non-None return ends the wait at once with that reason
    (e.g. the awaited process exited), so a dead process never costs the whole timeout.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    delay = interval
    while True:
        try:
            result = probe()
            if result:
                return result
        except transient as exc:
            last_error = exc
        if abort is not None:
            reason = abort()
            if reason is not None:
                raise TimeoutError(f"gave up waiting for {what}: {reason}")
        if time.monotonic() >= deadline:
            suffix = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}{suffix}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)
