"""A fuzz pass: schemathesis generates requests from the live OpenAPI document (valid and invalid ones, and
a protected operation's once more without a token), the harness sends them and records each answer with
schemathesis' findings; a finding is shown as the requests that reproduce it."""

from __future__ import annotations

import functools
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import hypothesis
from hypothesis import HealthCheck, Phase
from hypothesis.errors import Unsatisfiable
from makrx_contracts.harness.client import ContractClient
from makrx_contracts.harness.contract import violation
from makrx_contracts.harness.exchange import redact
from makrx_contracts.harness.ports import SourceAddresses

from .openapi import OpenAPIDoc
from .ratelimit_headers import remaining, retry_after

if TYPE_CHECKING:
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.core.failures import Failure

# schemathesis is imported when a pass runs, not with this module: under -n every worker collects every
# contract module (test_fuzz.py imports this one), most never fuzz, and the import costs each ~0.4 s of CPU.

__all__ = ["Exchange", "Finding", "FuzzRun", "fail_on", "fuzz", "schemathesis_findings"]

RETRY_AFTER_CAP = 2.0  # seconds a 429 is waited out at most before its one retry (from a fresh address)
MAX_HUNG_OPERATIONS = 3  # operations that time out before fuzzing stops: the backend has stopped answering


@dataclass
class Exchange:
    """One generated request and its answer (None: the connection failed), with schemathesis' findings."""

    label: str
    mode: str  # positive | negative | no-auth
    request: httpx.Request
    response: httpx.Response | None
    error: str | None = None
    failures: list[Failure] = field(default_factory=list)

    @property
    def server_error(self) -> bool:
        """Answered 5xx, or not at all."""
        return self.response is None or self.response.status_code >= 500


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
    """A problem with one exchange; ``detail``: schemathesis' explanation, shown under the reproduction."""

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
                left = remaining(response)
                if left is not None and left <= 1:
                    self._new_address()
                return request, response, None
            if attempt == 0:
                time.sleep(_wait(response))
                self._new_address()
        self.throttled += 1
        return None

    def close(self) -> None:
        self.client.close()


def _wait(response: httpx.Response) -> float:
    """How long to wait out a 429 before its one retry: its Retry-After (1 s without one), capped."""
    delay = retry_after(response) if "Retry-After" in response.headers else 1.0
    return RETRY_AFTER_CAP if delay is None else min(max(delay, 0.0), RETRY_AFTER_CAP)


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


def fuzz(
    doc: OpenAPIDoc,
    target_url: str,
    addresses: SourceAddresses,
    *,
    token: str | None,
    secured: set[tuple[str, str]],
    examples: int,
    seed: int,
) -> FuzzRun:
    """One pass over every operation of ``doc``, served under ``target_url``: ``examples`` generated requests
    per operation (half valid, half invalid), the ``secured`` ones (method, path) with ``token``; then each
    secured operation's first valid case once more without a token."""
    import schemathesis
    from schemathesis.config import SchemathesisConfig

    schema = schemathesis.openapi.from_dict(doc.data, config=SchemathesisConfig())
    schema.config.generation.update(with_security_parameters=False)  # the harness sends the credentials
    run = FuzzRun([], [], sorted(f"{m} {p}" for m, p in secured), 0)
    sender = _Sender(target_url.rstrip("/") + doc.server_prefix, addresses)
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
                examples=examples,
                seed=seed,
            )
    finally:
        sender.close()
    run.throttled = sender.throttled
    return run


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


def fail_on(run: FuzzRun, findings: list[Finding], *, title: str, expected: str) -> None:
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


def schemathesis_findings(run: FuzzRun, select: Callable[[Failure], bool]) -> list[Finding]:
    """Schemathesis' findings picked by ``select``; a 5xx is FUZZ-NO-5XX's alone."""
    return [
        Finding(e, f"{f.code} {f.title}", f.message)
        for e in run.exchanges
        if not e.server_error
        for f in e.failures
        if select(f)
    ]
