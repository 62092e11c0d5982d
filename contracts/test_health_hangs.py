"""HEALTH when a dependency hangs instead of vanishing: a paused database, a paused Redis, a Keycloak that
answers nothing in time. Probes must still answer, and say the truth, within seconds (CONVENTIONS:
Readiness). The outage contracts of test_health.py cover dependencies that are gone."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from makrx_contracts.harness.client import ContractClient
from makrx_contracts.harness.contract import MUST, SHOULD, expect, expect_eventually, violation
from makrx_contracts.harness.issuer import Issuer
from makrx_contracts.harness.issuer.faults import FAULTABLE

from .test_health import LIVENESS, READINESS, _answering, _declares_redis

pytestmark = pytest.mark.health

PROBE_BOUND = 5.0  # seconds one probe request may take while a dependency hangs
READY_WITHIN = 10.0  # seconds until readiness says 503 after the dependency froze
RECOVER_WITHIN = 20.0  # seconds until readiness says 200 again after it resumed
ISSUER_DELAY = 60.0  # how late a hung Keycloak answers: far beyond any probe's timeout


@contextmanager
def paused(service: Any, what: str) -> Iterator[None]:
    """Freeze ``service`` (SIGSTOP, `docker pause`) for the block; always resume it."""
    if not getattr(service, "owns_process", False):
        pytest.skip(f"{what} is external (not started by the harness), so it cannot be paused")
    service.pause()
    try:
        yield
    finally:
        service.unpause()


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


def _liveness_answers(client: ContractClient, paths: list[str], what: str) -> None:
    for path in paths:
        try:
            response = client.get(path, timeout=PROBE_BOUND)
        except httpx.TimeoutException:
            raise violation(f"liveness {path} hung while {what}", received=f"no answer within {PROBE_BOUND:.0f} s",
                            expected="200 at once: liveness checks no dependency") from None
        expect(response.status_code == 200, f"liveness {path} must stay 200 while {what}",
               received=str(response.status_code), expected="200", response=response)


def _not_ready_in_time(client: ContractClient, path: str, what: str) -> None:
    """Probe until 503 (READY_WITHIN); every probe must answer within PROBE_BOUND: one that hangs is the
    failure an orchestrator sees, even if a retry on a fresh connection would be answered."""
    deadline = time.monotonic() + READY_WITHIN
    while True:
        try:
            response = client.get(path, timeout=PROBE_BOUND)
        except httpx.TimeoutException:
            raise violation(f"readiness {path} hung while {what}", received=f"no answer within {PROBE_BOUND:.0f} s",
                            expected=f"503 within {PROBE_BOUND:.0f} s: bound each dependency check") from None
        if response.status_code == 503:
            return
        if time.monotonic() >= deadline:
            raise violation(f"readiness {path} must answer 503 while {what}",
                            received=f"{response.status_code} (still, after {READY_WITHIN:.0f} s)",
                            expected="503", response=response)
        time.sleep(0.2)


def _judge_hang(client: ContractClient, freeze: Callable[[], Any], what: str) -> None:
    path, *_ = _answering(client, READINESS)
    live_paths = _answering(client, LIVENESS)
    with freeze():
        _not_ready_in_time(client, path, what)
        _liveness_answers(client, live_paths, what)
    expect_eventually(_probe(client, path), lambda r: r.status_code == 200, timeout=RECOVER_WITHIN,
                      expected="200 again, without a restart",
                      title=f"readiness {path} must recover once the dependency resumes")


@pytest.mark.contract("HEALTH-READY-DB-HANG", level=MUST)
def test_readiness_answers_while_the_database_hangs(makrx_client: ContractClient, makrx_launcher,
                                                    makrx_services) -> None:
    """With the database frozen (SIGSTOP; `docker pause`) — connections open but nothing answers —
    readiness answers 503 in seconds (each probe within PROBE_BOUND), liveness stays 200 at once, and
    readiness returns to 200 after it resumes, without a restart.

    CONVENTIONS, Readiness: "with DB ... checks"; a probe that hangs is a probe that fails late.
    """
    _judge_hang(makrx_client, lambda: paused(makrx_services.postgres, "the database"), "the database hangs")


@pytest.mark.contract("HEALTH-READY-KEYCLOAK-HANG", level=MUST)
def test_readiness_answers_while_keycloak_hangs(makrx_client: ContractClient, makrx_launcher,
                                                makrx_issuer: Issuer) -> None:
    """With Keycloak accepting connections but answering nothing in time (every realm endpoint delayed
    by a minute), readiness answers 503 in seconds, liveness stays 200 at once, and readiness recovers.

    CONVENTIONS, Readiness: "with DB and Keycloak checks".
    """
    _judge_hang(makrx_client, lambda: hung_issuer(makrx_issuer), "Keycloak hangs")


@pytest.mark.contract("HEALTH-REDIS-HANG", level=SHOULD)
def test_probes_answer_while_redis_hangs(makrx_client: ContractClient, makrx_launcher, makrx_services) -> None:
    """With Redis frozen, liveness stays 200 and readiness answers (200, or 503 naming a failed Redis
    check) — each within PROBE_BOUND: a limiter or cache waiting on a frozen Redis must not take the
    probes with it.

    CONVENTIONS, Readiness and Rate Limiting ("in-memory fallback").
    """
    ready_paths = _answering(makrx_client, READINESS)
    live_paths = _answering(makrx_client, LIVENESS)
    with paused(makrx_services.redis, "Redis"):
        _liveness_answers(makrx_client, live_paths, "Redis hangs")
        for path in ready_paths:
            try:
                response = makrx_client.get(path, timeout=PROBE_BOUND)
            except httpx.TimeoutException:
                raise violation(f"readiness {path} hung while Redis hangs",
                                received=f"no answer within {PROBE_BOUND:.0f} s",
                                expected="200, or 503 naming the failed Redis check") from None
            expect(response.status_code == 200 or (response.status_code == 503 and _declares_redis(response)),
                   f"readiness {path} failed while Redis hangs", received=str(response.status_code),
                   expected="200, or 503 naming the failed Redis check", response=response)
