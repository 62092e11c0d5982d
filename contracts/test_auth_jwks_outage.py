"""AUTH, Keycloak trouble: while the endpoint the backend validates tokens with (the JWKS; userinfo or
introspection for a backend that asks Keycloak) fails, requests answer 401 or 503, never 500 or a hang, and
valid tokens are accepted again once it recovers (CONVENTIONS: Auth, JWKS; Error Handling). A module of its
own because it waits out the backend's JWKS timeout and refetch cooldown: under -n it runs beside
test_auth_keys.py and the rest."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from makrx_contracts.harness.contract import MUST, expect_eventually, violation
from makrx_contracts.harness.issuer import Issuer

from .bearer import HANG_SECONDS, bearer
from .lab import SETTLE_SECONDS, TTL, Lab, endpoint_names

# -n hands this module out early (harness/scheduler.py): its contracts wait on timers.
pytestmark = [pytest.mark.auth, pytest.mark.long(3)]


# Each fault takes the issuer and one endpoint kind it breaks (issuer-down breaks them all).
_FAULTS: dict[str, tuple[str, Callable[[Issuer, str], None]]] = {
    "status-500": ("answers 500", lambda issuer, kind: issuer.faults.status(kind, 500)),
    "slow": (
        f"answers after {HANG_SECONDS + 5:.0f} s",
        lambda issuer, kind: issuer.faults.delay(kind, HANG_SECONDS + 5),
    ),
    "garbage": ("answers 200 with a truncated body", lambda issuer, kind: issuer.faults.garbage(kind, "truncated")),
    "issuer-down": ("is unreachable (port closed)", lambda issuer, kind: issuer.go_down()),
}


@pytest.mark.contract("AUTH-JWKS-UNAVAILABLE", level=MUST)
@pytest.mark.parametrize("fault", _FAULTS)
def test_keycloak_trouble_is_401_or_503(fresh_lab: Lab, fault: str) -> None:
    """While the JWKS endpoint fails — 500, slower than any sane timeout, garbage, or Keycloak's port
    closed — requests the backend must verify (a fresh unknown kid, a valid token once the cached JWKS
    expires) answer 401 or 503 (a valid token may still pass on cached keys): never 500, never a hang.
    Once Keycloak is back, valid tokens are accepted again without a restart. A backend seen validating
    through userinfo or introspection has those endpoints fail too, and the verdict names them.

    CONVENTIONS, Auth (JWKS) and Error Handling (structured responses); RFC 9110 §15.6.4 (503).
    """
    lab = fresh_lab
    what, apply = _FAULTS[fault]
    kinds = lab.validation_endpoints()
    failing = endpoint_names(kinds) + (" each" if len(kinds) > 1 else "")
    valid = lab.token()
    loaded = lab.last_jwks_fetch() or time.time()
    started = time.time()
    # The backend tries the JWKS at once for an unknown kid (after its refetch cooldown), at the latest
    # when its cached copy expires; watch until it did (a fetch seen, or a 503), then one more round.
    deadline = max(started + 1.5, loaded + TTL + 0.5)
    for endpoint in kinds:
        apply(lab.issuer, endpoint)
    try:
        tried = False
        while True:
            tried_now = False
            for token, kind in ((lab.unknown_kid_token(), "an unknown kid"), (valid, "a valid token")):
                response = lab.caller.send(
                    bearer(token),
                    title=f"while {failing} {what}, a request with {kind}",
                    expected="401 or 503",
                    details=lab.log_tail(),
                )
                status = response.status_code
                ok = status in (401, 503) or (kind == "a valid token" and lab.is_accepted(response))
                if not ok:
                    raise violation(
                        f"while {failing} {what}, a request with {kind} answered {status}",
                        received=str(status),
                        expected="401 or 503" + (" (or 2xx on cached keys)" if kind == "a valid token" else ""),
                        response=response,
                        details=lab.log_tail(),
                    )
                tried_now = tried_now or status == 503
            if tried or time.time() >= deadline:
                break
            tried = tried_now or lab.validated_since(started, kinds)
            time.sleep(0.1)
    finally:
        lab.issuer.faults.clear()
        if not lab.issuer.is_up:
            lab.issuer.come_up()
    expect_eventually(
        lab.get(lab.token()),
        lab.is_accepted,
        timeout=SETTLE_SECONDS,
        title=f"after {failing} {what} and recovered, valid tokens were still refused",
        expected=f"2xx again within {SETTLE_SECONDS:.0f} s, without a restart",
    )
