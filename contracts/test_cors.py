"""CORS: local app origins by default, CORS_ORIGINS overrides, never `*` with credentials (CONVENTIONS: CORS)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from makrx_contracts.harness.backend.launcher import RunningTarget, TargetLauncher
from makrx_contracts.harness.client import ContractClient
from makrx_contracts.harness.contract import MUST, SHOULD, expect

from .cors import PATH, acao, api_path, listed, preflight
from .provoke import LOCAL_ORIGIN, Provoker

pytestmark = pytest.mark.cors

UNKNOWN_ORIGIN = "https://evil.makrx-contract.test"
OVERRIDE_ORIGINS = ("https://app.makrx-contract.test", "https://admin.makrx-contract.test")


@pytest.mark.contract("CORS-LOCAL-DEFAULT", level=MUST)
def test_a_local_app_origin_is_allowed_by_default(makrx_client: ContractClient) -> None:
    """Without CORS_ORIGINS, a preflight from a local app port (http://localhost:3000) is allowed.

    CONVENTIONS, CORS: "Default to local app ports".
    """
    response = preflight(makrx_client, LOCAL_ORIGIN)
    expect(
        response.status_code < 300 and acao(response) == LOCAL_ORIGIN,
        "a local app origin is not allowed by default",
        received=f"{response.status_code}, ACAO {acao(response)!r}",
        expected=f"2xx with Access-Control-Allow-Origin: {LOCAL_ORIGIN}",
        response=response,
    )


@pytest.mark.contract("CORS-UNKNOWN-ORIGIN", level=MUST)
@pytest.mark.parametrize("method", ("preflight", "GET"))
def test_an_unknown_origin_is_not_allowed(makrx_client: ContractClient, method: str) -> None:
    """An origin that is not configured is not granted access: its Origin is not echoed back in
    Access-Control-Allow-Origin (preflight or simple request). A wildcard is CORS-NO-WILDCARD's case.

    CONVENTIONS, CORS: only the local app ports, or CORS_ORIGINS.
    """
    response = (
        preflight(makrx_client, UNKNOWN_ORIGIN)
        if method == "preflight"
        else makrx_client.get(PATH, headers={"Origin": UNKNOWN_ORIGIN})
    )
    expect(
        acao(response) != UNKNOWN_ORIGIN,
        "an unknown origin was allowed",
        received=f"ACAO {acao(response)!r}",
        expected="no Access-Control-Allow-Origin for it",
        response=response,
    )


# Lookalikes of an allowed origin that naive matching lets through (prefix/suffix/regex checks, scheme-,
# port- or case-blind comparison): the classes PortSwigger's CORS-misconfiguration research lists.
ALLOWED = OVERRIDE_ORIGINS[0]  # https://app.makrx-contract.test, allowed through CORS_ORIGINS
LOOKALIKES = {
    "null": "null",
    "suffix": f"{ALLOWED}.evil.test",
    "prefix": ALLOWED.replace("://", "://evil"),
    "subdomain": ALLOWED.replace("://", "://x."),
    "other-scheme": ALLOWED.replace("https://", "http://"),
    "other-port": f"{ALLOWED}:8443",
    "upper-case": ALLOWED.replace("app.", "APP."),
    "trailing-dot": f"{ALLOWED}.",
}


@pytest.mark.contract("CORS-UNKNOWN-ORIGIN", level=MUST)
@pytest.mark.parametrize("kind", tuple(LOOKALIKES))
def test_a_lookalike_of_an_allowed_origin_is_not_allowed(
    makrx_client_factory, override_target: RunningTarget, kind: str
) -> None:
    """With CORS_ORIGINS allowing https://app.makrx-contract.test, none of its lookalikes — `null`, the
    origin with a suffix, a prefix or a subdomain, the other scheme, another port, upper case, a trailing
    dot — is echoed in Access-Control-Allow-Origin: not on a preflight, not on a simple request, with or
    without a cookie.

    CONVENTIONS, CORS: exactly the CORS_ORIGINS entries; Fetch standard §3.2 (origins compare exactly).
    """
    client = makrx_client_factory(override_target)
    origin = LOOKALIKES[kind]
    for response in (
        preflight(client, origin),
        client.get(PATH, headers={"Origin": origin}),
        client.get(PATH, headers={"Origin": origin, "Cookie": "session=makrx-contract"}),
    ):
        expect(
            acao(response) != origin,
            f"a lookalike of an allowed origin ({kind}) was allowed",
            received=f"ACAO {acao(response)!r} (allowed: {ALLOWED})",
            expected="no Access-Control-Allow-Origin for it: origins match exactly",
            response=response,
        )


@pytest.mark.contract("CORS-ENV-OVERRIDE", level=MUST)
def test_cors_origins_replaces_the_defaults(makrx_client_factory, override_target: RunningTarget) -> None:
    """With CORS_ORIGINS set, exactly those origins are allowed and the local defaults no longer are.

    CONVENTIONS, CORS: "allow env override CORS_ORIGINS (comma-separated) per backend".
    """
    client = makrx_client_factory(override_target)
    for origin in OVERRIDE_ORIGINS:
        response = preflight(client, origin)
        expect(
            acao(response) == origin,
            "an origin from CORS_ORIGINS is not allowed",
            received=f"ACAO {acao(response)!r}",
            expected=origin,
            response=response,
        )
    response = preflight(client, LOCAL_ORIGIN)
    expect(
        acao(response) != LOCAL_ORIGIN,
        "CORS_ORIGINS did not replace the default origins",
        received=f"ACAO {acao(response)!r} for {LOCAL_ORIGIN}",
        expected="the default origin no longer allowed",
        response=response,
    )


@pytest.mark.contract("CORS-NO-WILDCARD", level=MUST)
@pytest.mark.parametrize("origin", (LOCAL_ORIGIN, UNKNOWN_ORIGIN, "null"))
def test_never_a_wildcard_origin(makrx_client: ContractClient, origin: str) -> None:
    """No response says `Access-Control-Allow-Origin: *`: origins are listed, and a wildcard with
    `Access-Control-Allow-Credentials: true` is refused by browsers anyway.

    CONVENTIONS, CORS ("Default to local app ports"); Fetch standard §3.2.5 (credentials and `*`).
    """
    for response in (preflight(makrx_client, origin), makrx_client.get(PATH, headers={"Origin": origin})):
        credentials = response.headers.get("Access-Control-Allow-Credentials", "")
        expect(
            acao(response) != "*",
            "a wildcard Access-Control-Allow-Origin",
            received=f"ACAO '*' (Allow-Credentials {credentials!r})",
            expected="a listed origin or none",
            response=response,
        )


@pytest.mark.contract("CORS-VARY-ORIGIN", level=MUST)
def test_vary_origin_when_the_origin_is_echoed(makrx_client: ContractClient) -> None:
    """A response that echoes the request's Origin says `Vary: Origin`, so shared caches don't mix origins.

    CONVENTIONS, CORS; Fetch standard §3.2 (CORS and HTTP caches).
    """
    response = _allowed_get(makrx_client, "echoed")
    vary = listed(response, "Vary")
    expect(
        "origin" in vary,
        "the echoed origin is not in Vary",
        received=f"Vary {response.headers.get('Vary')!r}",
        expected="Vary: Origin",
        response=response,
    )


@pytest.mark.contract("CORS-EXPOSE-REQUEST-ID", level=SHOULD)
def test_the_request_id_is_exposed_to_browsers(makrx_client: ContractClient) -> None:
    """`Access-Control-Expose-Headers` lists X-Request-ID, so browser apps can report it.

    CONVENTIONS, Observability (X-Request-ID for correlation) + CORS.
    """
    response = _allowed_get(makrx_client, "allowed")
    exposed = listed(response, "Access-Control-Expose-Headers")
    expect(
        "x-request-id" in exposed,
        "X-Request-ID is not exposed to browsers",
        received=repr(response.headers.get("Access-Control-Expose-Headers")),
        expected="Access-Control-Expose-Headers including X-Request-ID",
        response=response,
    )


SPA_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
SPA_HEADERS = ("authorization", "content-type", "x-request-id")


@pytest.mark.contract("CORS-SPA-PREFLIGHT", level=MUST)
@pytest.mark.parametrize("method", SPA_METHODS)
def test_a_browser_app_may_send_what_it_needs(
    makrx_client: ContractClient, request: pytest.FixtureRequest, method: str
) -> None:
    """From a default local origin, the preflight of a request a MakrX SPA sends — GET, POST, PUT, PATCH or
    DELETE to an API operation, with Authorization, Content-Type and X-Request-ID — is allowed without
    credentials (preflights never carry them): 2xx, the origin echoed, the method and each header listed.

    CONVENTIONS, CORS ("Default to local app ports") and Auth (bearer tokens); Fetch standard §3.2.2-3.2.3.
    """
    path = api_path(request)
    response = preflight(makrx_client, LOCAL_ORIGIN, path, method=method, headers=SPA_HEADERS)
    if acao(response) != LOCAL_ORIGIN:
        pytest.skip(f"precondition: {LOCAL_ORIGIN} is not allowed on {path} (see CORS-LOCAL-DEFAULT)")
    methods = listed(response, "Access-Control-Allow-Methods")
    headers = listed(response, "Access-Control-Allow-Headers")
    missing = [h for h in SPA_HEADERS if h not in headers]  # `*` never covers Authorization (Fetch §3.2.6)
    credentials = response.headers.get("Access-Control-Allow-Credentials", "").lower() == "true"
    method_ok = method.lower() in methods or ("*" in methods and not credentials)
    expect(
        response.status_code < 300 and acao(response) == LOCAL_ORIGIN and method_ok and not missing,
        f"a browser app cannot send {method} {path}",
        received=f"{response.status_code}, ACAO {acao(response)!r}, methods {sorted(methods)}, headers "
        f"{sorted(headers)}" + (f" (missing {', '.join(missing)})" if missing else ""),
        expected=f"2xx, ACAO {LOCAL_ORIGIN}, {method} in Access-Control-Allow-Methods and "
        f"{', '.join(SPA_HEADERS)} in Access-Control-Allow-Headers",
        response=response,
    )


@pytest.mark.contract("CORS-PREFLIGHT-NOT-LIMITED", level=SHOULD)
def test_a_preflight_is_answered_when_the_client_is_limited(provoker: Provoker) -> None:
    """A client over its rate limit still gets its preflights answered (not 429): a browser shows a
    failed preflight as a CORS error, hiding the 429 and its Retry-After from the app.

    CONVENTIONS, CORS and Rate Limiting; Fetch standard §3.2.3 (a preflight's status must be ok).
    """
    client = provoker.new_client()
    limited = provoker.rate_limited(client)
    if limited.status_code != 429:
        pytest.skip(f"precondition: no 429 for a burst of {provoker.rate_op} (see RATE-LIMIT)")
    op = provoker.rate_op
    response = preflight(client, LOCAL_ORIGIN, op.path, method=op.method, headers=SPA_HEADERS)
    expect(
        response.status_code != 429,
        "a preflight was rate limited",
        received=f"429 for the preflight of {provoker.rate_op} right after the client was limited",
        expected="the preflight answered (2xx): limits count requests, not preflights",
        response=[limited, response],
    )


def _allowed_get(client: ContractClient, not_what: str) -> httpx.Response:
    """A simple GET from the local app origin; a skip pointing at CORS-LOCAL-DEFAULT when its origin is not
    echoed (``not_what`` words the skip)."""
    response = client.get(PATH, headers={"Origin": LOCAL_ORIGIN})
    if acao(response) != LOCAL_ORIGIN:
        pytest.skip(f"precondition: {LOCAL_ORIGIN} is not {not_what} at all (see CORS-LOCAL-DEFAULT)")
    return response


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def override_target(makrx_launcher: TargetLauncher) -> Iterator[RunningTarget]:
    """A second instance started with CORS_ORIGINS set."""
    with makrx_launcher.instance({"CORS_ORIGINS": ",".join(OVERRIDE_ORIGINS)}, name="cors-override") as target:
        yield target
