"""FUZZ: schemathesis over the target's live OpenAPI document, with the MakrX checks on every answer
(SPEC §5 FUZZ; CONVENTIONS: Error Handling, Observability, Auth)."""

from __future__ import annotations

import functools
import json
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import hypothesis
import pytest
from hypothesis import HealthCheck, Phase
from hypothesis.errors import Unsatisfiable
from makrx_contracts.harness.backend.launcher import RunningTarget
from makrx_contracts.harness.client import ContractClient
from makrx_contracts.harness.config import MakrxConfig
from makrx_contracts.harness.contract import MUST, SHOULD, violation
from makrx_contracts.harness.exchange import redact
from makrx_contracts.harness.ports import SourceAddresses

from .errorshape import leaks_in, parse_error_body
from .openapi import OpenAPIDoc, Operation

if TYPE_CHECKING:
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.core.failures import Failure

# schemathesis is imported when the fuzz pass runs, not when this module is collected: under -n every
# worker collects every module, most never fuzz, and the import costs each ~0.4 s of CPU.

pytestmark = pytest.mark.fuzz

HEADER = "X-Request-ID"
RETRY_AFTER_CAP = 2.0  # seconds a 429 is waited out at most before its one retry (from a fresh address)
MAX_HUNG_OPERATIONS = 3  # operations that time out before fuzzing stops: the backend has stopped answering
SERVER_ERROR = "ST101"  # not_a_server_error
INPUT_CODES = ("ST201", "ST202")  # negative data accepted, schema-valid data rejected


@dataclass
class Exchange:
    """One generated request and its answer (None: the connection failed), with schemathesis' findings."""

    label: str
    mode: str  # positive | negative | no-auth
    request: httpx.Request
    response: httpx.Response | None
    error: str | None = None
    failures: list[Failure] = field(default_factory=list)


@dataclass
class FuzzRun:
    """One pass over the document. A request still throttled after its retry is counted, never judged."""

    exchanges: list[Exchange]
    unauthenticated: list[Exchange]  # protected operations' cases sent again without a token
    secured: list[str]
    throttled: int
    hung: list[str] = field(default_factory=list)  # operations that left a request unanswered

    def answered(self) -> list[Exchange]:
        return [e for e in self.exchanges + self.unauthenticated if e.response is not None]


@dataclass(frozen=True)
class Finding:
    exchange: Exchange
    reason: str
    detail: str = ""


class _Sender:
    """Sends schemathesis cases over httpx from a loopback address of the fuzz pass's own.

    The address changes when the limiter says the bucket is nearly empty (RateLimit-Remaining) and on a
    429, which is waited out (Retry-After, capped) and retried once: throttling is never judged. A
    connection error is retried once too; a second one is the answer (FUZZ-NO-5XX).
    """

    def __init__(self, base_url: str, addresses: SourceAddresses) -> None:
        self.base_url = base_url
        self.addresses = addresses
        self.client = ContractClient(base_url, source_address=addresses.next())
        self.throttled = 0

    def _new_address(self) -> None:
        self.client.close()
        self.client = ContractClient(self.base_url, source_address=self.addresses.next())

    def send(
        self, case: schemathesis.Case, authorization: str | None
    ) -> tuple[httpx.Request, httpx.Response | None, str | None] | None:
        """(request, response or None, transport error); None when the case cannot be sent (a generated
        header httpx refuses) or stayed throttled."""
        kwargs = case.as_transport_kwargs(base_url=self.base_url)
        headers = {k: v for k, v in (kwargs.get("headers") or {}).items() if k.lower() != "authorization"}
        if authorization is not None:
            headers["Authorization"] = authorization
        body: dict[str, Any] = {}
        if "json" in kwargs:
            body["json"] = kwargs["json"]
        elif kwargs.get("data") is not None:
            body["content" if isinstance(kwargs["data"], (bytes, str)) else "data"] = kwargs["data"]
        try:
            request = self.client.build_request(
                kwargs["method"],
                kwargs["url"],
                params=kwargs.get("params"),
                headers=headers,
                cookies=kwargs.get("cookies") or None,
                **body,
            )
        except (httpx.InvalidURL, UnicodeEncodeError, TypeError, ValueError):
            return None
        for attempt in range(2):
            try:
                response = self.client.send(request)
            except httpx.LocalProtocolError:
                return None
            except httpx.TimeoutException as exc:  # a hang: sending it again would only wait again
                self._new_address()
                return request, None, f"{type(exc).__name__}: {exc}"
            except httpx.TransportError as exc:
                if attempt == 0:  # perhaps a kept-alive connection the server had just closed: once more
                    self._new_address()
                    continue
                return request, None, f"{type(exc).__name__}: {exc}"
            if response.status_code != 429:
                if _remaining(response) <= 1:
                    self._new_address()
                return request, response, None
            if attempt == 0:
                time.sleep(_retry_after(response))
                self._new_address()
        self.throttled += 1
        return None

    def close(self) -> None:
        self.client.close()


def _remaining(response: httpx.Response) -> float:
    """What the limiter says is left in this client's bucket (IETF RateLimit-Remaining or X-RateLimit-Remaining)."""
    for name in ("RateLimit-Remaining", "X-RateLimit-Remaining"):
        try:
            return float(response.headers[name])
        except (KeyError, ValueError):
            continue
    return float("inf")


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(max(float(response.headers.get("Retry-After", "1")), 0.0), RETRY_AFTER_CAP)
    except ValueError:
        return RETRY_AFTER_CAP


@functools.cache
def _all_checks() -> tuple[Callable[..., Any], ...]:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        negative_data_rejection,
        positive_data_acceptance,
        response_schema_conformance,
        status_code_conformance,
    )

    return (
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        negative_data_rejection,
        positive_data_acceptance,
    )


def _findings(
    case: schemathesis.Case, response: httpx.Response, checks: Sequence[Callable[..., Any]] | None = None
) -> list[Failure]:
    from schemathesis.core.failures import Failure, FailureGroup

    try:
        case.validate_response(response, checks=list(checks or _all_checks()))
    except FailureGroup as group:
        return list(group.exceptions)
    except Failure as failure:
        return [failure]
    return []


def _fuzz(operation: Any, mode: GenerationMode, examples: int, seed: int, run: Callable[[Any], None]) -> None:
    """Call ``run`` on up to ``examples`` cases of ``mode``; nothing raised inside, so nothing is shrunk."""
    if examples <= 0:
        return

    @hypothesis.seed(seed)
    @hypothesis.settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=(Phase.generate,),
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @hypothesis.given(case=operation.as_strategy(mode))
    def exercise(case: schemathesis.Case) -> None:
        run(case)

    try:
        exercise()
    except Unsatisfiable:
        pass  # nothing to generate in this mode (e.g. no parameter to make invalid)


def _exercise(
    operation: Any,
    sender: _Sender,
    run: FuzzRun,
    *,
    authorization: str | None,
    probe_without_token: bool,
    examples: int,
    seed: int,
) -> None:
    """Send ``examples`` generated cases of one operation (half valid, half invalid) and record the answers;
    then, for a protected operation, its first valid case once more without a token."""
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error

    first_valid: list[schemathesis.Case] = []
    hung: list[str] = []  # this operation's timeout, if any

    def record(case: schemathesis.Case, mode: str) -> None:
        if hung:
            return  # one timeout shows the hang; each further case would cost another client timeout
        sent = sender.send(case, authorization)
        if sent is None:
            return
        request, response, error = sent
        failures = _findings(case, response) if response is not None else []
        run.exchanges.append(Exchange(operation.label, mode, request, response, error, failures))
        if error is not None and "Timeout" in error.partition(":")[0]:
            hung.append(error)
            run.hung.append(operation.label)
        if mode == "positive" and not first_valid:
            first_valid.append(case)

    positive = (examples + 1) // 2
    _fuzz(operation, GenerationMode.POSITIVE, positive, seed, lambda case: record(case, "positive"))
    _fuzz(operation, GenerationMode.NEGATIVE, examples - positive, seed, lambda case: record(case, "negative"))
    for case in first_valid if probe_without_token and not hung else ():
        sent = sender.send(case, None)
        if sent is not None:
            request, response, error = sent
            failures = _findings(case, response, (not_a_server_error,)) if response is not None else []
            run.unauthenticated.append(Exchange(operation.label, "no-auth", request, response, error, failures))


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
    import schemathesis
    from schemathesis.config import SchemathesisConfig

    schema = schemathesis.openapi.from_dict(openapi.data, config=SchemathesisConfig())
    schema.config.generation.update(with_security_parameters=False)  # the harness sends the credentials
    token = None
    if makrx_target.restartable:  # only a launched backend trusts the harness's issuer
        roles = {"user", *(role for rule in makrx_target.spec.settings.roles for role in rule.roles)}
        token = request.getfixturevalue("make_token")(user="makrx-fuzz", roles=tuple(sorted(roles)))
    # Also where the document is silent but a token is needed (a header read by hand): `protection`.
    secured = {(op.method, op.path) for op in request.getfixturevalue("protection").operations(openapi) if op.secured}
    base_url = makrx_target.base_url.rstrip("/") + openapi.server_prefix
    seed = makrx_config.seed if makrx_config.seed is not None else 0
    run = FuzzRun([], [], sorted(f"{m} {p}" for m, p in secured), 0)
    sender = _Sender(base_url, makrx_source_addresses)
    try:
        for result in schema.get_all_operations():
            if not hasattr(result, "ok"):
                continue  # an operation schemathesis cannot read is the document's problem, not a request to send
            if len(run.hung) >= MAX_HUNG_OPERATIONS:
                break  # a backend that stops answering: more operations would each wait out a timeout
            operation = result.ok()
            is_secured = (operation.method.upper(), operation.path) in secured
            _exercise(
                operation,
                sender,
                run,
                authorization=f"Bearer {token}" if is_secured and token else None,
                probe_without_token=is_secured,
                examples=makrx_config.fuzz_examples,
                seed=seed,
            )
    finally:
        sender.close()
    run.throttled = sender.throttled
    return run


# ------------------------------------------------------------------------------------------ reporting


def _curl(request: httpx.Request) -> str:
    """The request as a curl command; the token is left to the reader ($TOKEN)."""
    parts = ["curl", "-X", request.method, shlex.quote(str(request.url))]
    for key, value in request.headers.items():
        if key.lower() in (
            "host",
            "content-length",
            "accept-encoding",
            "connection",
            "user-agent",
            "accept",
            "x-schemathesis-testcaseid",
        ):
            continue
        if key.lower() == "authorization":
            parts += ["-H", '"Authorization: Bearer $TOKEN"']
            continue
        parts += ["-H", shlex.quote(f"{key}: {value}")]
    if request.content:
        parts += ["--data-binary", shlex.quote(request.content[:2000].decode("utf-8", "replace"))]
    return redact(" ".join(parts))


def _fail_on(run: FuzzRun, findings: list[Finding], *, title: str, expected: str) -> None:
    """Fail with the first finding of each operation (three at most), each as a reproducible request."""
    if not findings:
        return
    shown: dict[str, Finding] = {}
    for finding in findings:
        shown.setdefault(finding.exchange.label, finding)
    firsts = list(shown.values())[:3]
    received = f"{len(findings)} of {len(run.exchanges) + len(run.unauthenticated)} generated requests; " + "; ".join(
        f"{f.exchange.label} ({f.exchange.mode}): {f.reason}" for f in firsts
    )
    details = ["Reproduce:"] + [f"  {_curl(f.exchange.request)}" for f in firsts]
    details += [f"\n{f.exchange.label}: {redact(f.detail)[:1500]}" for f in firsts if f.detail]
    if run.throttled:
        details.append(f"\n({run.throttled} request(s) stayed rate limited after a retry and were not judged)")
    if len(run.hung) >= MAX_HUNG_OPERATIONS:
        details.append(
            f"\n(fuzzing stopped after {len(run.hung)} operations left a request unanswered: {', '.join(run.hung)})"
        )
    raise violation(
        title,
        received=received,
        expected=expected,
        response=[f.exchange.response for f in firsts if f.exchange.response is not None],
        details="\n".join(details),
    )


def _is_server_error(exchange: Exchange) -> bool:
    return exchange.response is None or exchange.response.status_code >= 500


def _schemathesis_findings(run: FuzzRun, select: Callable[[Failure], bool]) -> list[Finding]:
    """Schemathesis' findings picked by ``select``; a 5xx is FUZZ-NO-5XX's alone."""
    return [
        Finding(e, f"{f.code} {f.title}", f.message)
        for e in run.exchanges
        if not _is_server_error(e)
        for f in e.failures
        if select(f)
    ]


# ------------------------------------------------------------------------------------------ contracts


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
        if _is_server_error(e)
    ]
    not_ready = [f.exchange.label for f in findings if "ready" in f.exchange.label]
    if not_ready:  # a dependency was down during the pass: 5xx is then the right answer (ERR-STATUS)
        pytest.skip(f"precondition: {not_ready[0]} said the backend was not ready during fuzzing (see HEALTH-READY)")
    malformed = [f for f in findings if _body_is_malformed_json(f.exchange.request)]
    if malformed and request.getfixturevalue("provoker").malformed_json().status_code >= 500:
        findings = [f for f in findings if f not in malformed]  # ERR-MALFORMED-JSON fails on the same crash
    _fail_on(
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
    _fail_on(
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
    _fail_on(
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
    _fail_on(
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
    findings = _schemathesis_findings(fuzz_run, lambda f: f.code not in (SERVER_ERROR, *INPUT_CODES))
    _fail_on(
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
    findings = _schemathesis_findings(fuzz_run, lambda f: f.code in INPUT_CODES)
    _fail_on(
        fuzz_run,
        findings,
        title="input validation differs from the OpenAPI document",
        expected="schema-violating requests refused with 4xx, schema-valid ones accepted",
    )
