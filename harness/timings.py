"""Wall time of the harness's phases (services, issuer, backend boots), for the scorecard and bench/.

A backend's boot and migrations are the backend's own time; services, issuer and pytest are the
harness's. ``bench/bench_gate.py`` subtracts the former and the contracts' own time (test calls) from
the gate's wall time to get the harness overhead. Boots inside a test call are recorded apart, since
the call's duration already holds them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["in_test_call", "phase", "snapshot"]

_totals: dict[str, list[float]] = defaultdict(list)
_in_call = False


@contextmanager
def in_test_call() -> Iterator[None]:
    """Mark the body of a test call (the plugin wraps `pytest_runtest_call` in it)."""
    global _in_call
    _in_call = True
    try:
        yield
    finally:
        _in_call = False


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Add the block's wall time to ``name`` (``name (in test)`` when inside a test call)."""
    key = f"{name} (in test)" if _in_call else name
    started = time.perf_counter()
    try:
        yield
    finally:
        _totals[key].append(time.perf_counter() - started)


def snapshot() -> dict[str, dict[str, float]]:
    """Each phase's count and total seconds so far."""
    return {name: {"count": len(spans), "total_s": round(sum(spans), 3)} for name, spans in sorted(_totals.items())}
