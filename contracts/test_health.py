"""HEALTH: liveness and readiness endpoints (CONVENTIONS: Health, Readiness)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from makrx_contracts.harness.client import ContractClient
from makrx_contracts.harness.contract import MUST, SHOULD, expect, expect_eventually, expect_status

from .errorshape import expect_no_leaks
from .probes import LIVENESS, READINESS, answering, declares_redis
from .provoke import outage

pytestmark = pytest.mark.health


@pytest.mark.contract("HEALTH-ENDPOINTS", level=MUST)
@pytest.mark.parametrize("path", ("/health", "/api/health"))
def test_health_endpoints_answer_200_json_without_auth(makrx_client: ContractClient, path: str) -> None:
    """`/health` and `/api/health` answer 200 with a JSON object, without any credentials.

    CONVENTIONS, Health: "Always expose /health and /api/health endpoints."
    """
    response = makrx_client.get(path)
    expect(
        response.status_code == 200 and _json_object(response),
        f"{path} must answer 200 JSON without auth",
        received=f"{response.status_code} {response.headers.get('content-type', '')}",
        expected="200 with a JSON object body",
        response=response,
    )


@pytest.mark.contract("HEALTH-LIVE", level=MUST)
@pytest.mark.parametrize("path", ("/health/live", "/api/v1/health/live"))
def test_liveness_endpoints_exist(makrx_client: ContractClient, path: str) -> None:
    """`/health/live` and `/api/v1/health/live` answer 200 while the process is up.

    CONVENTIONS, Readiness: "Provide /health/live and /health/readyz (and under /api/v1)".
    """
    response = makrx_client.get(path)
    expect_status(response, 200, f"liveness {path} must answer 200")


@pytest.mark.contract("HEALTH-READY", level=MUST)
@pytest.mark.parametrize("path", READINESS)
def test_readiness_is_200_when_dependencies_are_up(makrx_client: ContractClient, path: str) -> None:
    """`/health/readyz` (and under `/api/v1`) answers 200 when the database and Keycloak are up.

    CONVENTIONS, Readiness: "... with DB and Keycloak checks".
    """
    response = makrx_client.get(path)
    expect_status(response, 200, f"readiness {path} must answer 200 with DB and Keycloak up")


@pytest.mark.contract("HEALTH-NO-SECRETS", level=MUST)
def test_health_bodies_leak_no_secrets(makrx_client: ContractClient, makrx_target, makrx_services) -> None:
    """No health or readiness body contains a DSN, a password, a stack trace or SQL.

    CONVENTIONS, Readiness/Security: probes are public, so they must not expose configuration.
    """
    secrets = (makrx_services.postgres.password, makrx_target.env.get("DATABASE_URL", ""))
    for path in LIVENESS + READINESS:
        response = makrx_client.get(path)
        expect_no_leaks(
            response,
            f"{path} body",
            expected="no DSN, password, trace, path or SQL in a health body",
            secrets=tuple(s for s in secrets if s),
        )


def _get(client: ContractClient, path: str) -> Callable[[], httpx.Response]:
    return lambda: client.get(path, timeout=5.0)


def _is(status: int) -> Callable[[httpx.Response], bool]:
    return lambda response: response.status_code == status


def _live_during(client: ContractClient, paths: list[str], outage: str) -> None:
    """Every liveness path that answered 200 before the outage still does."""
    for path in paths:
        expect_status(client.get(path, timeout=5.0), 200, f"liveness {path} must stay 200 while {outage}")


@pytest.mark.contract("HEALTH-READY-DB", level=MUST)
def test_readiness_follows_the_database(makrx_client: ContractClient, makrx_launcher, makrx_services) -> None:
    """With the database stopped readiness answers 503 within seconds while liveness stays 200; with
    the database back, readiness returns to 200 without restarting the backend. Judged on the readiness
    and liveness paths the backend serves.

    CONVENTIONS, Readiness: "with DB ... checks; treat /health as liveness".
    """
    path, *_ = answering(makrx_client, READINESS)
    live_paths = answering(makrx_client, LIVENESS)
    with outage(makrx_services.postgres, "the database"):
        down = expect_eventually(
            _get(makrx_client, path),
            _is(503),
            timeout=8,
            expected="503 within 8 s",
            title=f"readiness {path} must answer 503 while the database is down",
        )
        expect_no_leaks(
            down,
            "a failing readiness body",
            expected="which check failed, without DSN/password/exception text",
            secrets=(makrx_services.postgres.password,),
        )
        _live_during(makrx_client, live_paths, "the database is down")
    expect_eventually(
        _get(makrx_client, path),
        _is(200),
        timeout=15,
        expected="200 again, without a restart",
        title=f"readiness {path} must recover after the database returns",
    )


@pytest.mark.contract("HEALTH-READY-KEYCLOAK", level=MUST)
def test_readiness_follows_keycloak(makrx_client: ContractClient, makrx_launcher, makrx_issuer) -> None:
    """With the issuer unreachable readiness answers 503 while liveness stays 200; it recovers after.

    CONVENTIONS, Readiness: "with DB and Keycloak checks".
    """
    path, *_ = answering(makrx_client, READINESS)
    live_paths = answering(makrx_client, LIVENESS)
    makrx_issuer.go_down()
    try:
        expect_eventually(
            _get(makrx_client, path),
            _is(503),
            timeout=8,
            expected="503 within 8 s",
            title=f"readiness {path} must answer 503 while Keycloak is unreachable",
        )
        _live_during(makrx_client, live_paths, "Keycloak is down")
    finally:
        makrx_issuer.come_up()
    expect_eventually(
        _get(makrx_client, path),
        _is(200),
        timeout=15,
        expected="200 again, without a restart",
        title=f"readiness {path} must recover after Keycloak returns",
    )


@pytest.mark.contract("HEALTH-LIVE-REDIS-DOWN", level=MUST)
def test_liveness_survives_a_redis_outage(makrx_client: ContractClient, makrx_launcher, makrx_services) -> None:
    """With Redis stopped every liveness endpoint still answers 200: Redis is optional (rate limits fall
    back to memory), and a liveness failure would get healthy processes restarted.

    CONVENTIONS, Readiness ("treat /health as liveness") and Rate Limiting ("in-memory fallback").
    """
    paths = answering(makrx_client, LIVENESS)
    with outage(makrx_services.redis, "Redis"):
        _live_during(makrx_client, paths, "Redis is down (it is not a liveness dependency)")


@pytest.mark.contract("HEALTH-READY-REDIS-DOWN", level=SHOULD)
def test_readiness_survives_a_redis_outage(makrx_client: ContractClient, makrx_launcher, makrx_services) -> None:
    """With Redis stopped readiness stays 200 — the conventions' readiness checks are the database and
    Keycloak, and the limiter falls back to memory — unless the backend declares Redis a readiness
    dependency: a 503 whose body names the failed Redis check is accepted. Never a 5xx other than 503.

    CONVENTIONS, Readiness ("with DB and Keycloak checks") and Rate Limiting ("in-memory fallback").
    """
    paths = answering(makrx_client, READINESS)
    with outage(makrx_services.redis, "Redis"):
        for path in paths:
            response = makrx_client.get(path, timeout=5.0)
            declared = response.status_code == 503 and declares_redis(response)
            expect(
                response.status_code == 200 or declared,
                f"readiness {path} failed while Redis was down",
                received=f"{response.status_code}"
                + ("" if response.status_code != 503 else " without naming a Redis check"),
                expected="200, or 503 naming the failed Redis check (a declared readiness dependency)",
                response=response,
            )


def _json_object(response: httpx.Response) -> bool:
    try:
        return isinstance(response.json(), dict)
    except ValueError:
        return False
