"""CORS as a browser enforces it: pages served from chosen origins in headless Chromium call the backend
with `fetch()` (credentials included, a bearer token, X-Request-ID). The ground truth the header checks of
test_cors.py are measured against (CONVENTIONS: CORS; Fetch standard §3.2).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from makrx_contracts.harness.backend.launcher import RunningTarget, TargetLauncher
from makrx_contracts.harness.contract import MUST, SHOULD, expect
from makrx_contracts.harness.issuer.fixtures import TokenMaker

from .browser import browse, headless_chromium
from .cors import api_path
from .provoke import LOCAL_ORIGIN

pytestmark = [pytest.mark.cors, pytest.mark.browser]

UNKNOWN = "http://evil.localhost:3000"
UNKNOWN_HTTPS = "https://evil.example"  # caught by an origin rule that trusts any https origin
ALLOWED = "http://app.localhost:3443"  # the CORS_ORIGINS of the override instance
LOOKALIKE = "http://app.localhost:34430"  # starts with ALLOWED: a prefix match lets it through

# case -> (page origin, instance, method, signed in?, allowed?)
CASES = {
    "local-origin-get": (LOCAL_ORIGIN, "default", "GET", True, True),
    "local-origin-patch": (LOCAL_ORIGIN, "default", "PATCH", True, True),
    "unknown-origin": (UNKNOWN, "default", "GET", True, False),
    "unknown-origin-anonymous": (UNKNOWN, "default", "GET", False, False),
    "unknown-https-origin": (UNKNOWN_HTTPS, "default", "GET", True, False),
    "cors-origins-allowed": (ALLOWED, "override", "GET", True, True),
    "cors-origins-replace-defaults": (LOCAL_ORIGIN, "override", "GET", True, False),
    "lookalike-origin": (LOOKALIKE, "override", "GET", True, False),
}


@pytest.mark.contract("CORS-BROWSER", level=MUST)
@pytest.mark.parametrize("case", tuple(CASES))
def test_a_browser_lets_the_right_pages_call_the_api(
    chromium: Any, makrx_target: RunningTarget, make_token: TokenMaker, request: pytest.FixtureRequest, case: str
) -> None:
    """In headless Chromium, a page from a default local origin (and, with CORS_ORIGINS set, from exactly
    those origins) can `fetch()` an API operation with credentials included and a bearer token — reads
    and writes (PATCH: its preflight) — while a page from an unknown origin (http or https), a lookalike
    of an allowed one, or a default origin that CORS_ORIGINS replaced is blocked by the browser — signed
    in or not (an anonymous GET needs no preflight: only the response's headers can stop it).

    CONVENTIONS, CORS ("Default to local app ports"; "allow env override CORS_ORIGINS"); Fetch §3.2.
    """
    origin, instance, method, signed_in, allowed = CASES[case]
    target = request.getfixturevalue("browser_override") if instance == "override" else makrx_target
    path = api_path(request) if signed_in else "/api/health"
    seen = browse(chromium, origin, target.base_url.rstrip("/") + path, method, make_token() if signed_in else None)
    where = f"{method} {path} from a page at {origin}" + (
        f" (CORS_ORIGINS={ALLOWED})" if instance == "override" else ""
    )
    if allowed:
        expect(
            not seen.blocked,
            f"the browser blocked {where}",
            received=str(seen),
            expected="the response readable by the page (any status)",
        )
    else:
        expect(
            seen.blocked,
            f"the browser let {where} read the response",
            received=str(seen),
            expected="blocked: the backend must not allow this origin",
        )


@pytest.mark.contract("CORS-BROWSER-REQUEST-ID", level=SHOULD)
def test_a_browser_app_can_read_the_request_id(
    chromium: Any, makrx_target: RunningTarget, make_token: TokenMaker, request: pytest.FixtureRequest
) -> None:
    """A page from a default local origin reads X-Request-ID from the API's response (exposed to scripts),
    so an SPA can show it in its error reports.

    CONVENTIONS, Observability (X-Request-ID) + CORS (Access-Control-Expose-Headers).
    """
    path = api_path(request)
    seen = browse(chromium, LOCAL_ORIGIN, makrx_target.base_url.rstrip("/") + path, "GET", make_token())
    if seen.blocked:
        pytest.skip(f"precondition: the browser blocked the page at {LOCAL_ORIGIN} (see CORS-BROWSER)")
    expect(
        bool(seen.request_id),
        "the page cannot read X-Request-ID",
        received=str(seen),
        expected="X-Request-ID readable by the page (Access-Control-Expose-Headers)",
    )


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Headless Chromium (see browser.py), its https pages at UNKNOWN_HTTPS's host; or a loud skip."""
    with headless_chromium(UNKNOWN_HTTPS.removeprefix("https://")) as browser:
        yield browser


@pytest.fixture(scope="module")
def browser_override(makrx_launcher: TargetLauncher) -> Iterator[RunningTarget]:
    """An instance whose CORS_ORIGINS names one loopback origin the browser can use."""
    with makrx_launcher.instance({"CORS_ORIGINS": ALLOWED}, name="cors-browser") as target:
        yield target
