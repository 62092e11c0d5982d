"""REQUEST ID: X-Request-ID on every response, echoed, generated, sanitised, logged (CONVENTIONS: Observability)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from makrx_contracts.harness.backend.launcher import RunningTarget
from makrx_contracts.harness.client import ContractClient
from makrx_contracts.harness.contract import MUST, expect, violation

from .errorshape import parse_error_body
from .provoke import KINDS
from .rawhttp import raw_request

pytestmark = pytest.mark.request_id

HEADER = "X-Request-ID"


@pytest.mark.contract("RID-EVERY-RESPONSE", level=MUST)
@pytest.mark.parametrize("kind", KINDS)
def test_every_response_carries_a_request_id(provoked: Callable[[str], httpx.Response], kind: str) -> None:
    """Every response — 2xx, 401, 403, 404, 405, 422, 429, 5xx and CORS preflight — has X-Request-ID.

    CONVENTIONS, Observability: "Include X-Request-ID on all responses".
    """
    response = provoked(kind)
    expect(
        response.headers.get(HEADER),
        f"the {kind} response has no {HEADER} header",
        received=f"{response.status_code} without {HEADER}",
        expected=f"an {HEADER} header",
        response=response,
    )


@pytest.mark.contract("RID-ECHO", level=MUST)
def test_a_valid_inbound_request_id_is_echoed(makrx_client: ContractClient) -> None:
    """A valid inbound X-Request-ID (a UUID4) comes back unchanged, so callers can correlate.

    CONVENTIONS, Error Handling: "add a request id"; Observability: "for correlation".
    """
    sent = str(uuid.uuid4())
    response = makrx_client.get("/health", headers={HEADER: sent})
    expect(
        response.headers.get(HEADER) == sent,
        "a valid inbound request id must be echoed",
        received=repr(response.headers.get(HEADER)),
        expected=repr(sent),
        response=response,
    )


@pytest.mark.contract("RID-GENERATED", level=MUST)
def test_a_missing_request_id_is_generated_and_unique(makrx_client: ContractClient) -> None:
    """Without an inbound id the backend generates one, different for every request.

    CONVENTIONS, Error Handling: "add a request id".
    """
    responses = [makrx_client.get("/health") for _ in range(5)]
    ids = [r.headers.get(HEADER) for r in responses]
    expect(
        all(ids) and len(set(ids)) == len(ids),
        "generated request ids must exist and be unique",
        received=repr(ids),
        expected="5 distinct non-empty ids",
        response=responses,
    )


HOSTILE = {
    "crlf": b"X-Request-ID: abc\rX-Injected: 1",
    "control-chars": b"X-Request-ID: abc\x01\x1b[31mred\x7f",
    "huge": b"X-Request-ID: " + b"A" * 8000,
    "spaces-and-markup": b"X-Request-ID: <script>alert(1)</script> ../../etc/passwd",
}


@pytest.mark.contract("RID-HOSTILE", level=MUST)
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_request_id_is_not_echoed(makrx_target: RunningTarget, makrx_source_addresses, case: str) -> None:
    """A hostile inbound id (CR/LF, control characters, 8 KB, markup) is not echoed verbatim and
    causes no 5xx; the backend replaces it (or refuses the request with a 4xx).

    CONVENTIONS, Security: sanitise inputs (security/input_validation.py); RFC 9110 §5.5 field values.
    """
    line = HOSTILE[case]
    sent_value = line.split(b": ", 1)[1].decode("latin-1")
    response = raw_request(makrx_target.base_url, "/health", [line], source_address=makrx_source_addresses.next())
    echoed = response.header(HEADER)
    if response.status >= 500 or response.status == 0 or echoed == sent_value or response.header("X-Injected"):
        raise violation(
            f"a hostile request id ({case}) was mishandled",
            received=f"status {response.status or 'none'}, {HEADER} {echoed!r:.80}",
            expected="a 2xx/4xx answer whose X-Request-ID is not the hostile value",
            details="Raw exchange:\n" + response.render(),
        )


@pytest.mark.contract("RID-IN-ERROR-BODY", level=MUST)
@pytest.mark.parametrize("kind", ("401", "404", "422"))
def test_error_body_request_id_matches_the_header(provoked: Callable[[str], httpx.Response], kind: str) -> None:
    """The request id inside an error body equals the X-Request-ID header of the same response.

    CONVENTIONS, Error Handling: "structured responses, add a request id".
    """
    response = provoked(kind)
    body = parse_error_body(response)
    header = response.headers.get(HEADER)
    expect(
        body.request_id is not None and body.request_id == header,
        f"the {kind} body's request id differs from its {HEADER} header",
        received=f"body {body.request_id!r}, header {header!r}",
        expected="the same id in both",
        response=response,
    )


@pytest.mark.contract("RID-IN-LOGS", level=MUST)
def test_the_request_id_is_in_a_structured_log_line(
    makrx_client: ContractClient, makrx_launcher, makrx_target: RunningTarget
) -> None:
    """The request id appears in a JSON log line of the backend (stdout/stderr), for correlation: the id the
    response carries, or, when it carries none, the id the request sent (judged when a log line has it).

    CONVENTIONS, Observability: "Structured logs ...; log this ID in structured logs for correlation."
    """
    sent = str(uuid.uuid4())
    response = makrx_client.get("/api/v1/makrx-contract-log-probe", headers={HEADER: sent})
    # The id it answered with; without one, the id it was sent (a backend may adopt it and only fail to echo it).
    assigned = response.headers.get(HEADER) or sent
    deadline = time.monotonic() + 3.0
    while True:
        if any(assigned in line and _is_json(line) for line in makrx_target.log_text().splitlines()):
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    plain = [line for line in makrx_target.log_text().splitlines() if assigned in line]
    if not plain and HEADER not in response.headers:
        pytest.skip(
            f"precondition: the response has no {HEADER} and no log line has the id it was sent, so the id "
            "it used is unknown (see RID-EVERY-RESPONSE)"
        )
    raise violation(
        "the request id is not in any structured (JSON) log line",
        received=f"{len(plain)} plain-text line(s) with it" if plain else "no log line with it",
        expected=f"a JSON log line containing {assigned}",
        response=response,
    )


def _is_json(line: str) -> bool:
    start = line.find("{")
    if start < 0:
        return False
    try:
        return isinstance(json.loads(line[start:]), dict)
    except ValueError:
        return False
