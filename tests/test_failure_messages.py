"""A contract that loses its backend mid-request fails with the request and one line of cause, not a
traceback: a timeout, a reset, and one inside hypothesis' FlakyFailure-style exception groups."""

from __future__ import annotations

import pytest

CONTRACT = '''
import httpx
import pytest

REQUEST = httpx.Request("POST", "http://127.0.0.1:9/api/v1/items")


@pytest.mark.contract("ERR-MALFORMED-JSON")
def test_timeout():
    raise httpx.ReadTimeout("timed out", request=REQUEST)


@pytest.mark.contract("ERR-SHAPE")
def test_reset_behind_another_error():
    try:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=REQUEST)
    except httpx.RemoteProtocolError as exc:
        raise KeyError("status") from exc


@pytest.mark.contract("FUZZ-NO-5XX")
def test_in_an_exception_group():
    raise ExceptionGroup("Hypothesis found 2 distinct failures", [
        ValueError("first"), httpx.ConnectError("All connection attempts failed", request=REQUEST)])
'''


def test_transport_errors_are_contract_failures_with_one_line_of_cause(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_contracts=CONTRACT)
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=3)
    out = result.stdout.str()
    assert "ERR-MALFORMED-JSON [MUST] the backend did not answer a request of the contract" in out
    assert "Request: POST http://127.0.0.1:9/api/v1/items" in out
    assert "Cause: ReadTimeout: timed out" in out
    assert "Cause: RemoteProtocolError: Server disconnected without sending a response." in out
    assert "Cause: ConnectError: All connection attempts failed" in out
    assert "Traceback" not in out and "raise httpx" not in out
