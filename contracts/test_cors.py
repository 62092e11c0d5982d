"""CORS: local app origins by default, CORS_ORIGINS overrides, never `*` with credentials (CONVENTIONS: CORS)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from makrx_contracts.harness.client import ContractClient
from makrx_contracts.harness.contract import MUST, SHOULD, expect
from makrx_contracts.harness.provoke import LOCAL_ORIGIN
from makrx_contracts.harness.target.launcher import RunningTarget, TargetLauncher

pytestmark = pytest.mark.cors

UNKNOWN_ORIGIN = "https://evil.makrx-contract.test"
OVERRIDE_ORIGINS = ("https://app.makrx-contract.test", "https://admin.makrx-contract.test")
PATH = "/api/health"


def preflight(client: ContractClient, origin: str, path: str = PATH) -> httpx.Response:
    return client.options(path, headers={"Origin": origin, "Access-Control-Request-Method": "GET",
                                         "Access-Control-Request-Headers": "authorization,content-type"})


def acao(response: httpx.Response) -> str | None:
    return response.headers.get("Access-Control-Allow-Origin")


@pytest.fixture(scope="module")
def override_target(makrx_launcher: TargetLauncher) -> Iterator[RunningTarget]:
    """A second instance started with CORS_ORIGINS set."""
    with makrx_launcher.instance({"CORS_ORIGINS": ",".join(OVERRIDE_ORIGINS)}, name="cors-override") as target:
        yield target


@pytest.mark.contract("CORS-LOCAL-DEFAULT", level=MUST)
def test_a_local_app_origin_is_allowed_by_default(makrx_client: ContractClient) -> None:
    """Without CORS_ORIGINS, a preflight from a local app port (http://localhost:3000) is allowed.

    CONVENTIONS, CORS: "Default to local app ports".
    """
    response = preflight(makrx_client, LOCAL_ORIGIN)
    expect(response.status_code < 300 and acao(response) == LOCAL_ORIGIN,
           "a local app origin is not allowed by default", received=f"{response.status_code}, ACAO {acao(response)!r}",
           expected=f"2xx with Access-Control-Allow-Origin: {LOCAL_ORIGIN}", response=response)


@pytest.mark.contract("CORS-UNKNOWN-ORIGIN", level=MUST)
@pytest.mark.parametrize("method", ("preflight", "GET"))
def test_an_unknown_origin_is_not_allowed(makrx_client: ContractClient, method: str) -> None:
    """An origin that is not configured is not granted access: its Origin is not echoed back in
    Access-Control-Allow-Origin (preflight or simple request). A wildcard is CORS-NO-WILDCARD's case.

    CONVENTIONS, CORS: only the local app ports, or CORS_ORIGINS.
    """
    response = preflight(makrx_client, UNKNOWN_ORIGIN) if method == "preflight" else \
        makrx_client.get(PATH, headers={"Origin": UNKNOWN_ORIGIN})
    expect(acao(response) != UNKNOWN_ORIGIN, "an unknown origin was allowed", received=f"ACAO {acao(response)!r}",
           expected="no Access-Control-Allow-Origin for it", response=response)


@pytest.mark.contract("CORS-ENV-OVERRIDE", level=MUST)
def test_cors_origins_replaces_the_defaults(makrx_client_factory, override_target: RunningTarget) -> None:
    """With CORS_ORIGINS set, exactly those origins are allowed and the local defaults no longer are.

    CONVENTIONS, CORS: "allow env override CORS_ORIGINS (comma-separated) per backend".
    """
    client = makrx_client_factory(override_target)
    for origin in OVERRIDE_ORIGINS:
        response = preflight(client, origin)
        expect(acao(response) == origin, "an origin from CORS_ORIGINS is not allowed",
               received=f"ACAO {acao(response)!r}", expected=origin, response=response)
    response = preflight(client, LOCAL_ORIGIN)
    expect(acao(response) != LOCAL_ORIGIN, "CORS_ORIGINS did not replace the default origins",
           received=f"ACAO {acao(response)!r} for {LOCAL_ORIGIN}", expected="the default origin no longer allowed",
           response=response)


@pytest.mark.contract("CORS-NO-WILDCARD", level=MUST)
@pytest.mark.parametrize("origin", (LOCAL_ORIGIN, UNKNOWN_ORIGIN, "null"))
def test_never_a_wildcard_origin(makrx_client: ContractClient, origin: str) -> None:
    """No response says `Access-Control-Allow-Origin: *`: origins are listed, and a wildcard with
    `Access-Control-Allow-Credentials: true` is refused by browsers anyway.

    CONVENTIONS, CORS ("Default to local app ports"); Fetch standard §3.2.5 (credentials and `*`).
    """
    for response in (preflight(makrx_client, origin), makrx_client.get(PATH, headers={"Origin": origin})):
        credentials = response.headers.get("Access-Control-Allow-Credentials", "")
        expect(acao(response) != "*", "a wildcard Access-Control-Allow-Origin",
               received=f"ACAO '*' (Allow-Credentials {credentials!r})", expected="a listed origin or none",
               response=response)


@pytest.mark.contract("CORS-VARY-ORIGIN", level=MUST)
def test_vary_origin_when_the_origin_is_echoed(makrx_client: ContractClient) -> None:
    """A response that echoes the request's Origin says `Vary: Origin`, so shared caches don't mix origins.

    CONVENTIONS, CORS; Fetch standard §3.2 (CORS and HTTP caches).
    """
    response = makrx_client.get(PATH, headers={"Origin": LOCAL_ORIGIN})
    if acao(response) != LOCAL_ORIGIN:
        pytest.skip(f"precondition: {LOCAL_ORIGIN} is not echoed at all (see CORS-LOCAL-DEFAULT)")
    vary = {v.strip().lower() for v in response.headers.get("Vary", "").split(",")}
    expect("origin" in vary, "the echoed origin is not in Vary",
           received=f"Vary {response.headers.get('Vary')!r}", expected="Vary: Origin", response=response)


@pytest.mark.contract("CORS-EXPOSE-REQUEST-ID", level=SHOULD)
def test_the_request_id_is_exposed_to_browsers(makrx_client: ContractClient) -> None:
    """`Access-Control-Expose-Headers` lists X-Request-ID, so browser apps can report it.

    CONVENTIONS, Observability (X-Request-ID for correlation) + CORS.
    """
    response = makrx_client.get(PATH, headers={"Origin": LOCAL_ORIGIN})
    if acao(response) != LOCAL_ORIGIN:
        pytest.skip(f"precondition: {LOCAL_ORIGIN} is not allowed at all (see CORS-LOCAL-DEFAULT)")
    exposed = {v.strip().lower() for v in response.headers.get("Access-Control-Expose-Headers", "").split(",")}
    expect("x-request-id" in exposed, "X-Request-ID is not exposed to browsers",
           received=repr(response.headers.get("Access-Control-Expose-Headers")),
           expected="Access-Control-Expose-Headers including X-Request-ID", response=response)
