"""HEALTH: liveness and readiness endpoints (CONVENTIONS: Health, Readiness)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from harness.client import ContractClient
from harness.contract import MUST, expect, expect_eventually
from harness.errorshape import leaks_in
from harness.provoke import database_outage

pytestmark = pytest.mark.health

LIVENESS = ("/health", "/api/health", "/health/live", "/api/v1/health/live")
READINESS = ("/health/readyz", "/api/v1/health/readyz")


def _json_object(response: httpx.Response) -> bool:
    try:
        return isinstance(response.json(), dict)
    except ValueError:
        return False


@pytest.mark.contract("HEALTH-ENDPOINTS", level=MUST)
@pytest.mark.parametrize("path", ("/health", "/api/health"))
def test_health_endpoints_answer_200_json_without_auth(makrx_client: ContractClient, path: str) -> None:
    """`/health` and `/api/health` answer 200 with a JSON object, without any credentials.

    CONVENTIONS, Health: "Always expose /health and /api/health endpoints."
    """
    response = makrx_client.get(path)
    expect(response.status_code == 200 and _json_object(response), f"{path} must answer 200 JSON without auth",
           received=f"{response.status_code} {response.headers.get('content-type', '')}",
           expected="200 with a JSON object body", response=response)


@pytest.mark.contract("HEALTH-LIVE", level=MUST)
@pytest.mark.parametrize("path", ("/health/live", "/api/v1/health/live"))
def test_liveness_endpoints_exist(makrx_client: ContractClient, path: str) -> None:
    """`/health/live` and `/api/v1/health/live` answer 200 while the process is up.

    CONVENTIONS, Readiness: "Provide /health/live and /health/readyz (and under /api/v1)".
    """
    response = makrx_client.get(path)
    expect(response.status_code == 200, f"liveness {path} must answer 200",
           received=str(response.status_code), expected="200", response=response)


@pytest.mark.contract("HEALTH-READY", level=MUST)
@pytest.mark.parametrize("path", READINESS)
def test_readiness_is_200_when_dependencies_are_up(makrx_client: ContractClient, path: str) -> None:
    """`/health/readyz` (and under `/api/v1`) answers 200 when the database and Keycloak are up.

    CONVENTIONS, Readiness: "... with DB and Keycloak checks".
    """
    response = makrx_client.get(path)
    expect(response.status_code == 200, f"readiness {path} must answer 200 with DB and Keycloak up",
           received=str(response.status_code), expected="200", response=response)


@pytest.mark.contract("HEALTH-NO-SECRETS", level=MUST)
def test_health_bodies_leak_no_secrets(makrx_client: ContractClient, makrx_target, makrx_services) -> None:
    """No health or readiness body contains a DSN, a password, a stack trace or SQL.

    CONVENTIONS, Readiness/Security: probes are public, so they must not expose configuration.
    """
    secrets = (makrx_services.postgres.password, makrx_target.env.get("DATABASE_URL", ""))
    for path in LIVENESS + READINESS:
        response = makrx_client.get(path)
        found = leaks_in(response.text, tuple(s for s in secrets if s))
        expect(not found, f"{path} body gives away internals", received=", ".join(found),
               expected="no DSN, password, trace, path or SQL in a health body", response=response)


def _get(client: ContractClient, path: str) -> Callable[[], httpx.Response]:
    return lambda: client.get(path, timeout=5.0)


def _is(status: int) -> Callable[[httpx.Response], bool]:
    return lambda response: response.status_code == status


@pytest.mark.contract("HEALTH-READY-DB", level=MUST)
def test_readiness_follows_the_database(makrx_client: ContractClient, makrx_launcher, makrx_services) -> None:
    """With the database stopped readiness answers 503 within seconds while liveness stays 200; with
    the database back, readiness returns to 200 without restarting the backend.

    CONVENTIONS, Readiness: "with DB ... checks; treat /health as liveness".
    """
    path = READINESS[0]
    with database_outage(makrx_services.postgres):
        down = expect_eventually(_get(makrx_client, path), _is(503), timeout=8, expected="503 within 8 s",
                                 title=f"readiness {path} must answer 503 while the database is down")
        found = leaks_in(down.text, (makrx_services.postgres.password,))
        expect(not found, "a failing readiness body gives away internals", received=", ".join(found),
               expected="which check failed, without DSN/password/exception text", response=down)
        live = makrx_client.get("/health/live")
        expect(live.status_code == 200, "liveness must stay 200 while the database is down",
               received=str(live.status_code), expected="200", response=live)
    expect_eventually(_get(makrx_client, path), _is(200), timeout=15, expected="200 again, without a restart",
                      title=f"readiness {path} must recover after the database returns")


@pytest.mark.contract("HEALTH-READY-KEYCLOAK", level=MUST)
def test_readiness_follows_keycloak(makrx_client: ContractClient, makrx_launcher, makrx_issuer) -> None:
    """With the issuer unreachable readiness answers 503 while liveness stays 200; it recovers after.

    CONVENTIONS, Readiness: "with DB and Keycloak checks".
    """
    path = READINESS[0]
    makrx_issuer.go_down()
    try:
        expect_eventually(_get(makrx_client, path), _is(503), timeout=8, expected="503 within 8 s",
                          title=f"readiness {path} must answer 503 while Keycloak is unreachable")
        live = makrx_client.get("/health/live")
        expect(live.status_code == 200, "liveness must stay 200 while Keycloak is down",
               received=str(live.status_code), expected="200", response=live)
    finally:
        makrx_issuer.come_up()
    expect_eventually(_get(makrx_client, path), _is(200), timeout=15, expected="200 again, without a restart",
                      title=f"readiness {path} must recover after Keycloak returns")
