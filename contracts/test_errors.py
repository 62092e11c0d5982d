"""ERRORS: one error shape with code, message and request id, and nothing internal in any body
(CONVENTIONS: Error Handling)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from makrx_contracts.harness.contract import MUST, expect

from .errorshape import expect_no_leaks, parse_error_body
from .provoke import LOCAL_ORIGIN, Provoker

pytestmark = pytest.mark.errors

ERROR_KINDS = ("401", "403", "404", "405", "422", "429", "5xx")
# 401 and 403 are the AUTH contracts' (AUTH-NO-TOKEN, AUTH-ROLE-FORBIDDEN), 429 is RATE-LIMIT's; their
# bodies stay here.
STATUS_KINDS = tuple(kind for kind in ERROR_KINDS if kind not in ("401", "403", "429"))


@pytest.mark.contract("ERR-STATUS", level=MUST)
@pytest.mark.parametrize("kind", STATUS_KINDS)
def test_errors_use_the_right_status(provoked: Callable[[str], httpx.Response], kind: str) -> None:
    """Each error situation answers with its own status: unknown path 404, wrong method 405, invalid
    input 422, dependency down 5xx (401 and 403: AUTH-NO-TOKEN, AUTH-ROLE-FORBIDDEN; 429: RATE-LIMIT).

    CONVENTIONS, Error Handling and Auth; RFC 9110 §15.
    """
    response = provoked(kind, check_status=True)
    ok = response.status_code >= 500 if kind == "5xx" else response.status_code == int(kind)
    expect(
        ok,
        f"the {kind} situation answered {response.status_code}",
        received=str(response.status_code),
        expected=kind,
        response=response,
    )


@pytest.mark.contract("ERR-SHAPE", level=MUST)
@pytest.mark.parametrize("kind", ERROR_KINDS)
def test_error_bodies_have_the_error_shape(provoked: Callable[[str], httpx.Response], kind: str) -> None:
    """Every error body is a JSON object with a machine-readable code, a message and the request id
    (`{"error": {"code", "message", "request_id"}}`, a flat object, or RFC 9457 problem+json).

    CONVENTIONS, Error Handling: "Use middleware/error_handling.py for structured responses, add a request id".
    """
    response = provoked(kind)
    body = parse_error_body(response)
    expect(
        not body.problems,
        f"the {response.status_code} body lacks the error shape",
        received="; ".join(body.problems),
        expected="JSON object with code, message and request_id",
        response=response,
    )


@pytest.mark.contract("ERR-NO-LEAKS", level=MUST)
@pytest.mark.parametrize("kind", ERROR_KINDS)
def test_error_bodies_leak_nothing_internal(provoked: Callable[[str], httpx.Response], kind: str, makrx_target) -> None:
    """No error body contains a stack trace, an exception class, a file path, SQL, a DSN or a password.

    CONVENTIONS, Error Handling (structured responses); full-stack-fastapi-template: details to logs only.
    """
    response = provoked(kind)
    secrets = tuple(s for s in (makrx_target.env.get("DATABASE_URL"),) if s)
    expect_no_leaks(
        response, f"the {response.status_code} body", expected="a fixed, client-facing message", secrets=secrets
    )


@pytest.mark.contract("ERR-MALFORMED-JSON", level=MUST)
def test_malformed_json_is_a_client_error(provoker: Provoker) -> None:
    """A request body that is not valid JSON is answered 4xx (not 500), in the error shape.

    CONVENTIONS, Error Handling; RFC 9110 §15.5 (client errors).
    """
    response = provoker.malformed_json()
    body = parse_error_body(response)
    expect(
        400 <= response.status_code < 500 and not body.problems,
        "malformed JSON was not a shaped 4xx",
        received=f"{response.status_code}; " + ("; ".join(body.problems) or "shape ok"),
        expected="400 or 422 with the error shape",
        response=response,
    )


@pytest.mark.contract("ERR-5XX-CORS", level=MUST)
def test_server_errors_keep_cors_headers(provoked: Callable[[str], httpx.Response], makrx_client) -> None:
    """A 5xx (database stopped) still carries the CORS headers a healthy response to the same allowed
    origin carries — otherwise browsers hide the error (and its request id) from the app. The
    outermost server-error handler must not drop them.

    CONVENTIONS, Error Handling + CORS. (X-Request-ID on the 5xx is RID-EVERY-RESPONSE.)
    """
    response = provoked("5xx")
    healthy = makrx_client.get("/api/health", headers={"Origin": LOCAL_ORIGIN})
    if healthy.headers.get("Access-Control-Allow-Origin") != LOCAL_ORIGIN:
        pytest.skip(f"precondition: {LOCAL_ORIGIN} is not allowed at all (see CORS-LOCAL-DEFAULT)")
    expect(
        response.headers.get("Access-Control-Allow-Origin") == LOCAL_ORIGIN,
        "a 5xx lost the CORS headers healthy responses carry",
        received=f"ACAO {response.headers.get('Access-Control-Allow-Origin')!r}",
        expected=f"Access-Control-Allow-Origin: {LOCAL_ORIGIN} on the 5xx too",
        response=[healthy, response],
    )
