"""HEALTH when a dependency hangs instead of vanishing: a paused database, a paused Redis, a Keycloak that
answers nothing in time. Probes must still answer, and say the truth, within seconds, and everyday requests
within a bound (CONVENTIONS: Readiness). The outage contracts of test_health.py cover dependencies that are
gone."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
from makrx_contracts.harness.client import ContractClient
from makrx_contracts.harness.contract import MUST, SHOULD, expect_eventually, violation
from makrx_contracts.harness.issuer import Issuer

from .burst import RateOp
from .hangs import PROBE_BOUND, RECOVER_WITHIN, Dependency, hung_issuer, judge_hang, redis_readiness_problem
from .provoke import Provoker, frozen, outage

pytestmark = [pytest.mark.health, pytest.mark.long(5)]  # the longest: one freeze waits out a request bound

REQUEST_BOUND = 20.0  # seconds an everyday request may take while the database hangs


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
    judge_hang(
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
    judge_hang(
        makrx_client,
        Dependency(
            "Keycloak",
            lambda: hung_issuer(makrx_issuer),
            makrx_issuer.outage,
            "HEALTH-READY-KEYCLOAK",
            "HEALTH-READY-KEYCLOAK",
        ),
    )


@pytest.mark.contract("HEALTH-REDIS-HANG", level=SHOULD)
def test_probes_answer_while_redis_hangs(makrx_client: ContractClient, makrx_launcher, makrx_services) -> None:
    """With Redis frozen, liveness stays 200 and readiness answers (200, or 503 naming a failed Redis
    check) — each within PROBE_BOUND: a limiter or cache waiting on a frozen Redis must not take the
    probes with it.

    CONVENTIONS, Readiness and Rate Limiting ("in-memory fallback").
    """
    redis = makrx_services.redis
    judge_hang(
        makrx_client,
        Dependency(
            "Redis",
            lambda: frozen(redis, "Redis"),
            lambda: outage(redis, "Redis"),
            "HEALTH-READY-REDIS-DOWN",
            "HEALTH-LIVE-REDIS-DOWN",
        ),
        readiness=redis_readiness_problem,
    )


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
