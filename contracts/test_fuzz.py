"""FUZZ: schemathesis over the target's live OpenAPI document, with the MakrX checks on every answer
(SPEC §5 FUZZ; CONVENTIONS: Error Handling, Observability, Auth)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from makrx_contracts.harness.backend.launcher import RunningTarget
from makrx_contracts.harness.config import MakrxConfig
from makrx_contracts.harness.contract import MUST, SHOULD
from makrx_contracts.harness.ports import SourceAddresses

from .errorshape import leaks_in, parse_error_body
from .fuzzing import Exchange, Finding, FuzzRun, fail_on, fuzz, schemathesis_findings
from .openapi import OpenAPIDoc, Operation

pytestmark = pytest.mark.fuzz

HEADER = "X-Request-ID"
SERVER_ERROR = "ST101"  # not_a_server_error
INPUT_CODES = ("ST201", "ST202")  # negative data accepted, schema-valid data rejected


@pytest.mark.contract("FUZZ-NO-5XX", level=MUST)
def test_generated_requests_get_no_server_error(
    fuzz_run: FuzzRun, makrx_target: RunningTarget, request: pytest.FixtureRequest
) -> None:
    """No request generated from the OpenAPI document, valid or invalid, is answered 5xx or left
    unanswered: invalid input is the client's error (4xx), never a crash.

    Schemathesis `not_a_server_error` (ST101); CONVENTIONS, Error Handling; RFC 9110 §15.6. (Answers without
    a token are FUZZ-AUTH-REQUIRED's; a 5xx for a body that is not JSON is ERR-MALFORMED-JSON's when that
    contract sees it too.)
    """
    if makrx_target.migration is not None and not makrx_target.migration.ok:
        pytest.skip(
            "precondition: `alembic upgrade head` failed, so the database has no schema (see STRUCT-MIGRATIONS-APPLY)"
        )
    findings = [
        Finding(e, e.error or f"{e.response.status_code} {e.response.reason_phrase}")
        for e in fuzz_run.exchanges
        if e.server_error
    ]
    not_ready = [f.exchange.label for f in findings if "ready" in f.exchange.label]
    if not_ready:  # a dependency was down during the pass: 5xx is then the right answer (ERR-STATUS)
        pytest.skip(f"precondition: {not_ready[0]} said the backend was not ready during fuzzing (see HEALTH-READY)")
    malformed = [f for f in findings if _body_is_malformed_json(f.exchange.request)]
    if malformed and request.getfixturevalue("provoker").malformed_json().status_code >= 500:
        findings = [f for f in findings if f not in malformed]  # ERR-MALFORMED-JSON fails on the same crash
    fail_on(
        fuzz_run,
        findings,
        title="generated requests got a server error",
        expected="a 2xx or 4xx answer to every generated request",
    )


@pytest.mark.contract("FUZZ-ERROR-SHAPE", level=MUST)
def test_every_fuzzed_error_has_the_error_shape(
    fuzz_run: FuzzRun, makrx_target: RunningTarget, provoked: Callable[..., httpx.Response]
) -> None:
    """Every 4xx/5xx answer to a generated request is a JSON object with a code, a message and the request
    id — equal to the response's X-Request-ID header — and gives nothing internal away (trace, exception
    class, file path, SQL, DSN). Judges the error paths only fuzzing reaches: a problem that the classic
    probes (404, 405, 422, 401) show as well is ERR-SHAPE's, RID-IN-ERROR-BODY's or ERR-NO-LEAKS'.

    CONVENTIONS, Error Handling: "Use middleware/error_handling.py for structured responses, add a request id".
    """
    secrets = tuple(s for s in (makrx_target.env.get("DATABASE_URL"),) if s)

    def unshaped(response: httpx.Response) -> list[str]:
        return list(parse_error_body(response).problems)

    def other_id(response: httpx.Response) -> list[str]:
        found, header = parse_error_body(response).request_id, response.headers.get(HEADER)
        return (
            [f"body request id {found!r} differs from the {HEADER} header {header!r}"]
            if found is not None and found != header
            else []
        )

    def leaking(response: httpx.Response) -> list[str]:
        return [f"leaks {leak}" for leak in leaks_in(response.text, secrets)]

    owners = _Owners(provoked)
    findings = []
    for exchange in fuzz_run.answered():
        response = exchange.response
        if response.status_code < 400:
            continue
        problems = [
            problem
            for rule in (unshaped, other_id, leaking)
            for problem in rule(response)
            if not owners.show(lambda r, rule=rule: bool(rule(r)), errors_only=True)
        ]
        if problems:
            findings.append(Finding(exchange, f"{response.status_code}: " + "; ".join(problems)))
    fail_on(
        fuzz_run,
        findings,
        title="error answers to generated requests lack the error shape",
        expected="JSON object with code, message and the request id of the X-Request-ID header; no internals",
    )


@pytest.mark.contract("FUZZ-REQUEST-ID", level=MUST)
def test_every_fuzzed_answer_carries_a_request_id(fuzz_run: FuzzRun, provoked: Callable[..., httpx.Response]) -> None:
    """Every answer to a generated request, whatever its status (201, 204, 400, 409, ...), carries a
    non-empty X-Request-ID. (When the classic probes lack it too, RID-EVERY-RESPONSE owns the failure.)

    CONVENTIONS, Observability: "Include X-Request-ID on all responses".
    """

    def missing(response: httpx.Response) -> bool:
        return not response.headers.get(HEADER, "").strip()

    findings = [
        Finding(e, f"{e.response.status_code} without {HEADER}") for e in fuzz_run.answered() if missing(e.response)
    ]
    if findings and _Owners(provoked).show(missing):
        pytest.skip(f"precondition: the classic probes lack {HEADER} too (see RID-EVERY-RESPONSE)")
    fail_on(
        fuzz_run,
        findings,
        title=f"answers to generated requests lack {HEADER}",
        expected=f"an {HEADER} header on every response",
    )


@pytest.mark.contract("FUZZ-AUTH-REQUIRED", level=MUST)
def test_protected_operations_refuse_a_request_without_a_token(
    fuzz_run: FuzzRun, protected_operation: Operation
) -> None:
    """Every operation with a security requirement in the document answers 401 to a valid request sent
    without credentials — not 2xx (auth not enforced), 403, 422 or 5xx. The operation AUTH-NO-TOKEN
    checks is that contract's: a wrong status it shows too is its finding.

    CONVENTIONS, Auth (Keycloak JWT validation); RFC 9110 §15.5.2; OpenAPI 3.1, Security Requirement Object.
    """
    if not fuzz_run.unauthenticated:
        pytest.skip("precondition: no valid request could be generated for any protected operation")

    def status(exchange: Exchange) -> str:
        return "no answer" if exchange.response is None else str(exchange.response.status_code)

    findings = [Finding(e, status(e)) for e in fuzz_run.unauthenticated if status(e) != "401"]
    representative = f"{protected_operation.method} {protected_operation.path}"
    owned = {f.reason for f in findings if f.exchange.label == representative}
    findings = [f for f in findings if f.reason not in owned]  # the same wrong answer: AUTH-NO-TOKEN fails
    fail_on(
        fuzz_run,
        findings,
        title="a protected operation did not refuse a request without a token",
        expected="401 from every operation with a security requirement when no token is sent",
    )


@pytest.mark.contract("FUZZ-SCHEMA", level=SHOULD)
def test_fuzzed_answers_match_the_document(fuzz_run: FuzzRun) -> None:
    """Every answer matches what the document declares for it: a documented status code and content type,
    and a body valid against the response schema (so clients generated from the document work).

    Schemathesis `status_code_conformance` (ST103), `content_type_conformance` (ST104-ST106),
    `response_schema_conformance` (ST108-ST110); OpenAPI 3.1, Responses and Media Type Objects.
    """
    findings = schemathesis_findings(fuzz_run, lambda f: f.code not in (SERVER_ERROR, *INPUT_CODES))
    fail_on(
        fuzz_run,
        findings,
        title="answers to generated requests do not match the OpenAPI document",
        expected="documented status, documented content type and a body valid against its schema",
    )


@pytest.mark.contract("FUZZ-INPUT-VALIDATION", level=SHOULD)
def test_input_validation_matches_the_document(fuzz_run: FuzzRun) -> None:
    """The backend validates input exactly as the document says: a request that violates the schema is
    refused (4xx), and one that satisfies it is not refused as invalid. Schema-quality findings — on a
    plain FastAPI app ST202 appears where validators are stricter than the schema — hence SHOULD.

    Schemathesis `negative_data_rejection` (ST201), `positive_data_acceptance` (ST202); CONVENTIONS,
    Security (security/input_validation.py).
    """
    findings = schemathesis_findings(fuzz_run, lambda f: f.code in INPUT_CODES)
    fail_on(
        fuzz_run,
        findings,
        title="input validation differs from the OpenAPI document",
        expected="schema-violating requests refused with 4xx, schema-valid ones accepted",
    )


# ------------------------------------------------------------------------------------------ fixture, helpers


@pytest.fixture(scope="session")
def fuzz_run(
    openapi: OpenAPIDoc | None,
    makrx_target: RunningTarget,
    makrx_source_addresses: SourceAddresses,
    makrx_config: MakrxConfig,
    request: pytest.FixtureRequest,
) -> FuzzRun:
    """One pass over every operation of the live document: ``--makrx-fuzz-examples`` generated requests per
    operation (half valid, half invalid), protected ones with a valid token holding every configured role;
    then each protected operation's first valid case once more without a token."""
    if openapi is None:
        pytest.skip("precondition: the target serves no OpenAPI document to fuzz (see PREFIX-OPENAPI)")
    if makrx_config.fuzz_examples <= 0:
        pytest.skip("--makrx-fuzz-examples=0 switches fuzzing off")
    token = None
    if makrx_target.restartable:  # only a launched backend trusts the harness's issuer
        settings = makrx_target.spec.settings
        roles = {*settings.token_roles, *(role for rule in settings.roles for role in rule.roles)}
        token = request.getfixturevalue("make_token")(user="makrx-fuzz", roles=tuple(sorted(roles)))
    # Also where the document is silent but a token is needed (a header read by hand): `protection`.
    secured = {(op.method, op.path) for op in request.getfixturevalue("protection").operations(openapi) if op.secured}
    return fuzz(
        openapi,
        makrx_target.base_url,
        makrx_source_addresses,
        token=token,
        secured=secured,
        examples=makrx_config.fuzz_examples,
        seed=makrx_config.seed if makrx_config.seed is not None else 0,
    )


# The classic contracts' evidence: cheap to provoke, cached for the session (403, 429 and 5xx need roles, a
# flood or an outage). A problem these responses show too is those contracts' finding, not fuzzing's.
_PROVOKED_KINDS = ("200", "401", "404", "405", "422")


class _Owners:
    """Whether a problem found by fuzzing also shows on the responses the classic contracts judge."""

    def __init__(self, provoked: Callable[..., httpx.Response]) -> None:
        self._provoked = provoked
        self._responses: list[httpx.Response] | None = None

    def responses(self) -> list[httpx.Response]:
        if self._responses is None:
            self._responses = []
            for kind in _PROVOKED_KINDS:
                try:
                    self._responses.append(self._provoked(kind, check_status=True))
                except pytest.skip.Exception:
                    continue  # this backend cannot show that kind
        return self._responses

    def show(self, problem: Callable[[httpx.Response], bool], *, errors_only: bool = False) -> bool:
        return any(problem(response) for response in self.responses() if response.status_code >= 400 or not errors_only)


def _body_is_malformed_json(request: httpx.Request) -> bool:
    if "json" not in request.headers.get("content-type", "") or not request.content:
        return False
    try:
        json.loads(request.content)
    except ValueError:
        return True
    return False
