"""Health probes judged while a dependency hangs (frozen: connections open, nothing answers) rather than
vanishes: every probe answers within PROBE_BOUND and says the truth, and readiness recovers once the
dependency resumes. A probe just as wrong with the dependency gone is the outage contract's failure."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import NoReturn

import httpx
import pytest
from makrx_contracts.harness.client import ContractClient
from makrx_contracts.harness.contract import expect_eventually, violation
from makrx_contracts.harness.issuer import Issuer
from makrx_contracts.harness.issuer.faults import FAULTABLE

from .probes import LIVENESS, READINESS, answering, declares_redis

__all__ = [
    "PROBE_BOUND",
    "RECOVER_WITHIN",
    "Dependency",
    "hung_issuer",
    "judge_hang",
    "redis_readiness_problem",
]

PROBE_BOUND = 5.0  # seconds one probe request may take while a dependency hangs
READY_WITHIN = 10.0  # seconds until readiness says 503 after the dependency froze
RECOVER_WITHIN = 20.0  # seconds until readiness says 200 again after it resumed
ISSUER_DELAY = 60.0  # how late a hung Keycloak answers: far beyond any probe's timeout


@contextmanager
def hung_issuer(issuer: Issuer) -> Iterator[None]:
    """Every Keycloak endpoint the backend reads answers only after ISSUER_DELAY; cleared after the block."""
    for kind in FAULTABLE:
        issuer.faults.delay(kind, ISSUER_DELAY)
    try:
        yield
    finally:
        issuer.faults.clear()


@dataclass(frozen=True)
class Problem:
    """A probe that answered wrong (or not in time) while a dependency was frozen or gone."""

    title: str
    received: str
    expected: str
    response: httpx.Response | None = None

    def fail(self) -> NoReturn:
        raise violation(self.title, received=self.received, expected=self.expected, response=self.response)


def _ask(client: ContractClient, probe: str, path: str, what: str, expected: str) -> httpx.Response | Problem:
    """The answer of the ``probe`` (liveness, readiness) at ``path``, or the problem of none within PROBE_BOUND."""
    try:
        return client.get(path, timeout=PROBE_BOUND)
    except httpx.TimeoutException:
        return Problem(f"{probe} {path} hung while {what}", f"no answer within {PROBE_BOUND:.0f} s", expected)


def _liveness_problem(client: ContractClient, paths: list[str], what: str) -> Problem | None:
    for path in paths:
        response = _ask(client, "liveness", path, what, "200 at once: liveness checks no dependency")
        if isinstance(response, Problem):
            return response
        if response.status_code != 200:
            return Problem(f"liveness {path} must stay 200 while {what}", str(response.status_code), "200", response)
    return None


def _readiness_problem(client: ContractClient, path: str, what: str) -> Problem | None:
    """Probe until 503 (READY_WITHIN); every probe must answer within PROBE_BOUND: one that hangs is the
    failure an orchestrator sees, even if a retry on a fresh connection would be answered."""
    deadline = time.monotonic() + READY_WITHIN
    while True:
        response = _ask(client, "readiness", path, what, f"503 within {PROBE_BOUND:.0f} s: bound each dependency check")
        if isinstance(response, Problem):
            return response
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


def redis_readiness_problem(client: ContractClient, path: str, what: str) -> Problem | None:
    """Readiness with Redis frozen or gone: 200, or 503 naming a failed Redis check, within PROBE_BOUND."""
    expected = "200, or 503 naming the failed Redis check"
    response = _ask(client, "readiness", path, what, expected)
    if isinstance(response, Problem):
        return response
    if response.status_code == 200 or (response.status_code == 503 and declares_redis(response)):
        return None
    return Problem(f"readiness {path} failed while {what}", str(response.status_code), expected, response)


@dataclass(frozen=True)
class Dependency:
    """How to freeze a dependency, how to take it away, and the contracts that own its outage."""

    name: str
    freeze: Callable[[], AbstractContextManager[None]]
    gone: Callable[[], AbstractContextManager[None]]
    readiness_owner: str
    liveness_owner: str


def judge_hang(
    client: ContractClient,
    dependency: Dependency,
    *,
    readiness: Callable[[ContractClient, str, str], Problem | None] = _readiness_problem,
) -> None:
    """Judge the probes with ``dependency`` frozen. A probe that is just as wrong with the dependency gone is
    the outage contract's failure (one owner per failure): this contract then skips pointing at it."""
    path, *_ = answering(client, READINESS)
    live_paths = answering(client, LIVENESS)
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
        lambda: client.get(path, timeout=PROBE_BOUND),
        lambda r: r.status_code == 200,
        timeout=RECOVER_WITHIN,
        expected="200 again, without a restart",
        title=f"readiness {path} must recover once the dependency resumes",
    )
