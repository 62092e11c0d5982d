"""HEALTH when a dependency hangs instead of vanishing: a paused database, a paused Redis, a Keycloak that
answers nothing in time. Probes must still answer, and say the truth, within seconds, and everyday requests
within a bound (CONVENTIONS: Readiness). The outage contracts of test_health.py cover dependencies that are
gone."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import NoReturn

import httpx
import pytest
from makrx_contracts.harness.client import ContractClient
from makrx_contracts.harness.contract import MUST, SHOULD, expect_eventually, violation
from makrx_contracts.harness.issuer import Issuer
from makrx_contracts.harness.issuer.faults import FAULTABLE

from .provoke import Provoker, RateOp, frozen, outage
from .test_health import LIVENESS, READINESS, _answering, _declares_redis

pytestmark = pytest.mark.health

PROBE_BOUND = 5.0  # seconds one probe request may take while a dependency hangs
READY_WITHIN = 10.0  # seconds until readiness says 503 after the dependency froze
RECOVER_WITHIN = 20.0  # seconds until readiness says 200 again after it resumed
ISSUER_DELAY = 60.0  # how late a hung Keycloak answers: far beyond any probe's timeout
REQUEST_BOUND = 20.0  # seconds an everyday request may take while the database hangs


@contextmanager
def hung_issuer(issuer: Issuer) -> Iterator[None]:
    """Every Keycloak endpoint the backend reads answers only after ISSUER_DELAY; cleared after the block."""
    for kind in FAULTABLE:
        issuer.faults.delay(kind, ISSUER_DELAY)
    try:
        yield
    finally:
        issuer.faults.clear()


def _probe(client: ContractClient, path: str) -> Callable[[], httpx.Response]:
    return lambda: client.get(path, timeout=PROBE_BOUND)


@dataclass(frozen=True)
class Problem:
    """A probe that answered wrong (or not in time) while a dependency was frozen or gone."""

    title: str
    received: str
    expected: str
    response: httpx.Response | None = None

    def fail(self) -> NoReturn:
        raise violation(self.title, received=self.received, expected=self.expected, response=self.response)


def _liveness_problem(client: ContractClient, paths: list[str], what: str) -> Problem | None:
    for path in paths:
        try:
            response = client.get(path, timeout=PROBE_BOUND)
        except httpx.TimeoutException:
            return Problem(
                f"liveness {path} hung while {what}",
                f"no answer within {PROBE_BOUND:.0f} s",
                "200 at once: liveness checks no dependency",
            )
        if response.status_code != 200:
            return Problem(f"liveness {path} must stay 200 while {what}", str(response.status_code), "200", response)
    return None


def _readiness_problem(client: ContractClient, path: str, what: str) -> Problem | None:
    """Probe until 503 (READY_WITHIN); every probe must answer within PROBE_BOUND: one that hangs is the
    failure an orchestrator sees, even if a retry on a fresh connection would be answered."""
    deadline = time.monotonic() + READY_WITHIN
    while True:
        try:
            response = client.get(path, timeout=PROBE_BOUND)
        except httpx.TimeoutException:
            return Problem(
                f"readiness {path} hung while {what}",
                f"no answer within {PROBE_BOUND:.0f} s",
                f"503 within {PROBE_BOUND:.0f} s: bound each dependency check",
            )
        if response.status_code == 503:
            return None
        if time.monotonic() >= deadline:
            return Problem(
                f"readiness {path} must answer 503 while {what}",
                f"{response.status_code} (still, after {READY_WITHIN:.0f} s)",
                "503",
                response,
            )
        time.sleep(0.2)


@dataclass(frozen=True)
class Dependency:
    """How to freeze a dependency, how to take it away, and the contracts that own its outage."""

    name: str
    freeze: Callable[[], AbstractContextManager[None]]
    gone: Callable[[], AbstractContextManager[None]]
    readiness_owner: str
    liveness_owner: str


def _judge_hang(
    client: ContractClient,
    dependency: Dependency,
    *,
    readiness: Callable[[ContractClient, str, str], Problem | None] = _readiness_problem,
) -> None:
    """Judge the probes with ``dependency`` frozen. A probe that is just as wrong with the dependency gone is
    the outage contract's failure (one owner per failure): this contract then skips pointing at it."""
    path, *_ = _answering(client, READINESS)
    live_paths = _answering(client, LIVENESS)
    hangs = f"{dependency.name} hangs"

    def judge_readiness(what: str) -> Problem | None:
        return readiness(client, path, what)

    def judge_liveness(what: str) -> Problem | None:
        return _liveness_problem(client, live_paths, what)

    with dependency.freeze():
        problems = [
            (judge(hangs), judge, owner)
            for judge, owner in (
                (judge_readiness, dependency.readiness_owner),
                (judge_liveness, dependency.liveness_owner),
            )
        ]
    for problem, judge, owner in problems:
        if problem is None:
            continue
        with dependency.gone():
            also = judge(f"{dependency.name} is gone")
        if also is not None:
            pytest.skip(f"precondition: {also.title} too, not only while it hangs (see {owner})")
        problem.fail()
    expect_eventually(
        _probe(client, path),
        lambda r: r.status_code == 200,
        timeout=RECOVER_WITHIN,
        expected="200 again, without a restart",
        title=f"readiness {path} must recover once the dependency resumes",
    )


@pytest.mark.contract("HEALTH-READY-DB-HANG", level=MUST)
def test_readiness_answers_while_the_database_hangs(
    makrx_client: ContractClient, makrx_launcher, makrx_services
) -> None:
    """With the database frozen (SIGSTOP; `docker pause`) — connections open but nothing answers —
    readiness answers 503 in seconds (each probe within PROBE_BOUND), liveness stays 200 at once, and
    readiness returns to 200 after it resumes, without a restart.

    CONVENTIONS, Readiness: "with DB ... checks"; a probe that hangs is a probe that fails late.
    """
    postgres = makrx_services.postgres
    _judge_hang(
        makrx_client,
        Dependency(
            "the database",
            lambda: frozen(postgres, "the database"),
            lambda: outage(postgres, "the database"),
            "HEALTH-READY-DB",
            "HEALTH-READY-DB",
        ),
    )


@pytest.mark.contract("HEALTH-READY-KEYCLOAK-HANG", level=MUST)
def test_readiness_answers_while_keycloak_hangs(
    makrx_client: ContractClient, makrx_launcher, makrx_issuer: Issuer
) -> None:
    """With Keycloak accepting connections but answering nothing in time (every realm endpoint delayed
    by a minute), readiness answers 503 in seconds, liveness stays 200 at once, and readiness recovers.

    CONVENTIONS, Readiness: "with DB and Keycloak checks".
    """
    _judge_hang(
        makrx_client,
        Dependency(
            "Keycloak",
            lambda: hung_issuer(makrx_issuer),
            makrx_issuer.outage,
            "HEALTH-READY-KEYCLOAK",
            "HEALTH-READY-KEYCLOAK",
        ),
    )


def _redis_readiness_problem(client: ContractClient, path: str, what: str) -> Problem | None:
    """Readiness with Redis frozen or gone: 200, or 503 naming a failed Redis check, within PROBE_BOUND."""
    try:
        response = client.get(path, timeout=PROBE_BOUND)
    except httpx.TimeoutException:
        return Problem(
            f"readiness {path} hung while {what}",
            f"no answer within {PROBE_BOUND:.0f} s",
            "200, or 503 naming the failed Redis check",
        )
    if response.status_code == 200 or (response.status_code == 503 and _declares_redis(response)):
        return None
    return Problem(
        f"readiness {path} failed while {what}",
        str(response.status_code),
        "200, or 503 naming the failed Redis check",
        response,
    )


@pytest.mark.contract("HEALTH-REDIS-HANG", level=SHOULD)
def test_probes_answer_while_redis_hangs(makrx_client: ContractClient, makrx_launcher, makrx_services) -> None:
    """With Redis frozen, liveness stays 200 and readiness answers (200, or 503 naming a failed Redis
    check) — each within PROBE_BOUND: a limiter or cache waiting on a frozen Redis must not take the
    probes with it.

    CONVENTIONS, Readiness and Rate Limiting ("in-memory fallback").
    """
    redis = makrx_services.redis
    _judge_hang(
        makrx_client,
        Dependency(
            "Redis",
            lambda: frozen(redis, "Redis"),
            lambda: outage(redis, "Redis"),
            "HEALTH-READY-REDIS-DOWN",
            "HEALTH-LIVE-REDIS-DOWN",
        ),
        readiness=_redis_readiness_problem,
    )


@dataclass(frozen=True)
class Answer:
    """One everyday request sent while a dependency was up, frozen or back; ``response`` None: no answer
    within the bound."""

    op: RateOp
    response: httpx.Response | None

    @property
    def status(self) -> str:
        return "no answer" if self.response is None else str(self.response.status_code)


def _ask(provoker: Provoker, ops: Sequence[RateOp], bound: float) -> list[Answer]:
    """Each of ``ops`` once, from a caller of its own, all at once: a hang costs one bound, not one per op."""
    calls = []
    for op in ops:
        client = provoker.new_client()
        client.timeout = httpx.Timeout(bound)
        calls.append((op, client, provoker.rate_limit_auth(op)))

    def one(call: tuple[RateOp, ContractClient, dict[str, str]]) -> Answer:
        op, client, headers = call
        try:
            return Answer(op, op.send(client, headers))
        except httpx.TimeoutException:
            return Answer(op, None)

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(one, calls))


@dataclass(frozen=True)
class Hang:
    """How to freeze one dependency and what the everyday requests owe their callers meanwhile."""

    what: str
    service: str
    bound: float
    same_answer: bool  # the request must be served as before (a fallback exists), not only answered
    expected: str


_HANGS = {
    "database": Hang(
        "the database",
        "postgres",
        REQUEST_BOUND,
        False,
        f"an answer within {REQUEST_BOUND:.0f} s (503 in the error shape): a deadline on requests, as "
        "no driver timeout covers a server that accepts bytes and never answers",
    ),
    "redis": Hang(
        "Redis",
        "redis",
        PROBE_BOUND,
        True,
        f"the answer it had before, within {PROBE_BOUND:.0f} s: a limiter that gets no answer from Redis "
        "in time falls back to memory (socket timeouts on its client)",
    ),
}


@pytest.mark.contract("HEALTH-REQUESTS-BOUNDED", level=MUST)
@pytest.mark.parametrize("dependency", _HANGS)
def test_everyday_requests_answer_while_a_dependency_hangs(
    provoker: Provoker, makrx_launcher, makrx_services, dependency: str
) -> None:
    """While the database or Redis is frozen, the requests an everyday client sends (a public GET under /api,
    the GET a plain token may call, one write per method) still answer: with the database frozen, within
    REQUEST_BOUND (503 is the honest answer); with Redis frozen, as they did before and within PROBE_BOUND.
    Once it resumes they answer as before, without a restart. (Keycloak answering nothing in time is
    AUTH-JWKS-UNAVAILABLE[slow]'s.)

    CONVENTIONS, Readiness (a dependency's trouble is reported, not waited on) and Rate Limiting ("in-memory
    fallback"): a request that hangs holds a worker and its caller.
    """
    hang = _HANGS[dependency]
    ops = list(provoker.ordinary_ops())
    before = {str(answer.op): answer.status for answer in _ask(provoker, ops, REQUEST_BOUND)}
    # Requests that fail with every dependency up are other contracts' failures, not this one's.
    ops = [op for op in ops if before[str(op)].isdigit() and int(before[str(op)]) < 500]
    if not ops:
        pytest.skip(
            "precondition: no everyday request answers below 500 with every dependency up (tried: "
            + ", ".join(f"{op} {status}" for op, status in before.items())
            + ")"
        )
    with frozen(getattr(makrx_services, hang.service), hang.what):
        during = _ask(provoker, ops, hang.bound)
    wrong = [
        answer
        for answer in during
        if answer.response is None or (hang.same_answer and answer.status != before[str(answer.op)])
    ]
    if wrong:
        first = wrong[0]
        received = "; ".join(f"{answer.op}: {answer.status} (before: {before[str(answer.op)]})" for answer in wrong)
        if hang.same_answer and first.response is not None:
            with outage(makrx_services.redis, "Redis"):
                gone = _ask(provoker, [first.op], hang.bound)[0]
            if gone.status != before[str(first.op)]:
                pytest.skip(
                    f"precondition: {first.op} answers {gone.status} with Redis gone too, not only while it "
                    "hangs (see RATE-REDIS-DOWN)"
                )
        failed = "were not served as before" if hang.same_answer else "did not answer in time"
        raise violation(
            f"everyday requests {failed} while {hang.what} hangs",
            received=received,
            expected=hang.expected,
            response=first.response,
        )
    for op in ops:
        send = functools.partial(op.send, provoker.new_client(), provoker.rate_limit_auth(op))
        status = before[str(op)]
        expect_eventually(
            send,
            lambda response, status=status: str(response.status_code) == status,
            timeout=RECOVER_WITHIN,
            expected=f"{status} again, without a restart",
            title=f"{op} must answer as before once {hang.what} resumes",
        )
