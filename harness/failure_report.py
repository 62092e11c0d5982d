"""What a failed contract's report says: its id and level, then the violation (title, Received, Expected,
the HTTP exchange), or the request the backend did not answer; and the backend's last log lines."""

from __future__ import annotations

import httpx
import pytest

from . import stash
from .contract import ContractViolation, contract_of

__all__ = ["describe_failure"]


def describe_failure(item: pytest.Item, report: pytest.TestReport, error: BaseException) -> None:
    info = contract_of(item)
    head = f"{info.id} [{info.level.value}] " if info else ""
    transport = _transport_error(error)
    if isinstance(error, ContractViolation):
        report.longrepr = head + str(error)
        report.user_properties.append(("makrx_reason", f"{error.title} (received: {error.received})"))
    elif transport is not None:
        cause = f"{type(transport).__name__}: {transport or 'no detail'}"
        report.longrepr = (
            f"{head}the backend did not answer a request of the contract\n"
            f"  Request: {_request_line(transport)}\n  Cause: {cause}"
        )
        report.user_properties.append(("makrx_reason", f"no answer ({cause})"))
    spec = stash.spec_of(item)
    target = item.config.stash[stash.TARGETS].get(spec.display) if spec else None
    if target is not None and target.log_path is not None:
        report.sections.append(("backend log (last lines)", target.log_tail(20)))


def _transport_error(error: BaseException) -> httpx.TransportError | None:
    """The timeout, reset or refusal behind a contract's error, also inside hypothesis' FlakyFailure and
    exception groups: a backend that stops answering is the contract's failure, not a traceback."""
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, httpx.TransportError):
            return current
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
        pending += list(getattr(current, "exceptions", ()))
    return None


def _request_line(error: httpx.TransportError) -> str:
    try:
        return f"{error.request.method} {error.request.url}"
    except RuntimeError:  # raised before a request was attached
        return "(unknown)"
