"""A contract that loses its backend mid-request fails with the request and one line of cause, not a
traceback: a timeout, a reset, and one inside hypothesis' FlakyFailure-style exception groups."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.suite_runner import run_suite
from tests.variants import Variant

CONTRACT = """
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
"""


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


HANGS_ON_POST = Variant(
    "hangs-on-post",
    "",
    "creating an item never answers",
    {
        "patch": [
            {
                "file": "routes/items.py",
                "old": "def create_item(db: DbSession, user: CurrentUser, body: ItemCreate) -> Item:",
                "new": "async def create_item(db: DbSession, user: CurrentUser, body: ItemCreate) -> Item:\n"
                "    await asyncio.sleep(3600)",
            },
            {
                "file": "routes/items.py",
                "old": "from collections.abc import Sequence\n",
                "new": "import asyncio\nfrom collections.abc import Sequence\n",
            },
        ]
    },
)


def test_a_route_that_hangs_on_post_is_one_fuzz_finding_not_a_traceback(tmp_path: Path) -> None:
    """A real backend whose create operation never answers: fuzzing records the timeout once (it does not
    wait out every generated case), FUZZ-NO-5XX fails naming it, and nothing prints a traceback."""
    result = run_suite(HANGS_ON_POST.build(tmp_path), tmp_path, "-m", "fuzz", "--makrx-fuzz-examples=6")
    assert result.failed == {"FUZZ-NO-5XX"}, result.output
    failures = [node.text or "" for node in ET.parse(tmp_path / "junit.xml").getroot().iter("failure")]
    assert len(failures) == 1, failures
    assert "Received: 1 of " in failures[0], failures[0]
    assert "POST /api/v1/items (positive): ReadTimeout: timed out" in failures[0], failures[0]
    assert "Traceback" not in failures[0] and "INTERNALERROR" not in result.output, result.output


STOPS_ANSWERING = Variant(
    "stops-answering",
    "",
    "every items operation hangs",
    {
        "patch": [
            *HANGS_ON_POST.data["patch"],
            {"file": "routes/items.py", "old": "def list_items(\n", "new": "async def list_items(\n"},
            {
                "file": "routes/items.py",
                "old": '    """Items in creation order, one page at a time."""\n',
                "new": '    """Items in creation order, one page at a time."""\n    await asyncio.sleep(3600)\n',
            },
            {
                "file": "routes/items.py",
                "old": "def get_item(db: DbSession, item_id: ItemId) -> Item:",
                "new": "async def get_item(db: DbSession, item_id: ItemId) -> Item:\n    await asyncio.sleep(3600)",
            },
        ]
    },
)


def test_fuzzing_stops_when_the_backend_stops_answering(tmp_path: Path) -> None:
    """After MAX_HUNG_OPERATIONS operations each left a request unanswered, fuzzing stops (each further one
    would wait out a client timeout) and the failure says so."""
    result = run_suite(STOPS_ANSWERING.build(tmp_path), tmp_path, "-m", "fuzz", "--makrx-fuzz-examples=4")
    assert result.failed == {"FUZZ-NO-5XX"}, result.output
    (failure,) = [node.text or "" for node in ET.parse(tmp_path / "junit.xml").getroot().iter("failure")]
    assert "(fuzzing stopped after 3 operations left a request unanswered: " in failure, failure
    assert failure.count("ReadTimeout") == 3, failure
