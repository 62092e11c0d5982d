"""AUTH, the JWKS lifecycle: a rotated key is accepted and a retired one refused without a restart, and the
JWKS is cached (CONVENTIONS: Auth — "Prefer JWKS for public key rotation; cache with TTL; select by kid").
Keycloak trouble is in test_auth_jwks_outage.py. Modules of their own: these contracts wait for the JWKS
TTL and refetch cooldowns, and under -n they run beside the rest instead of after it."""

from __future__ import annotations

import time

import httpx
import pytest
from makrx_contracts.harness.contract import SHOULD, expect_eventually, violation

from .bearer import bearer
from .lab import ASKING_KINDS, SETTLE_SECONDS, TTL, Lab, describe_calls, endpoint_names

# -n hands this module out early (harness/scheduler.py): its contracts wait on timers.
pytestmark = [pytest.mark.auth, pytest.mark.long(2)]

BURST = 20  # requests of the caching contract
MAX_ISSUER_CALLS = 5  # "a few" for BURST requests: a TTL expiry and a rate-limited refetch or two


@pytest.mark.contract("AUTH-KEY-ROTATION", level=SHOULD)
def test_a_rotated_key_is_accepted_without_a_restart(fresh_lab: Lab) -> None:
    """After Keycloak promotes a new signing key, tokens with its kid are accepted without restarting the
    backend, before the cached JWKS would expire: an unknown kid triggers a (rate-limited) JWKS refetch.

    CONVENTIONS, Auth: "Prefer JWKS (/protocol/openid-connect/certs) for public key rotation; cache with
    TTL; select by kid".
    """
    lab = fresh_lab
    lab.issuer.keys.promote()
    expect_eventually(
        lab.get(lab.token()),
        lab.is_accepted,
        timeout=SETTLE_SECONDS,
        title="a token signed by a newly promoted key was refused",
        expected=f"2xx within {SETTLE_SECONDS:.0f} s, without a restart (JWKS TTL {TTL} s)",
    )
    loaded = lab.last_jwks_fetch() or time.time()
    # That fetch loaded the new key. Until it is TTL old (less a margin for the request's way there),
    # only a refetch on the unknown kid lets the backend see the next key.
    lab.issuer.keys.promote()
    token, cutoff = lab.token(), loaded + TTL - 0.3
    response: httpx.Response | None = None
    while time.time() < cutoff:
        response = lab.caller.send(bearer(token), title="a token with a just-rotated kid", expected="2xx")
        if lab.is_accepted(response):
            return
        time.sleep(0.1)
    raise violation(
        "a token with a just-rotated kid was refused while the cached JWKS was fresh",
        received=f"{response.status_code if response is not None else 'nothing'} for "
        f"{cutoff - loaded:.1f} s after the JWKS was fetched (TTL {TTL} s)",
        expected="2xx before the cached JWKS expires: refetch the JWKS (rate-limited) when a token "
        "names an unknown kid",
        response=response,
        details=lab.log_tail(),
    )


@pytest.mark.contract("AUTH-KEY-RETIRED", level=SHOULD)
def test_a_retired_keys_tokens_are_refused_after_the_ttl(fresh_lab: Lab) -> None:
    """Once Keycloak retires (unpublishes) a key, tokens it signed are refused within the JWKS cache TTL
    the harness set (KEYCLOAK_PK_TTL_SECONDS), without a restart.

    CONVENTIONS, Auth: "Prefer JWKS ... for public key rotation; cache with TTL".
    """
    lab = fresh_lab
    old_token = lab.token()
    lab.issuer.keys.promote()
    lab.issuer.keys.retire()
    expect_eventually(
        lab.get(old_token),
        lambda response: response.status_code == 401,
        timeout=SETTLE_SECONDS,
        title="a token signed by a retired key was still accepted",
        expected=f"401 within {SETTLE_SECONDS:.0f} s of the key's retirement (KEYCLOAK_PK_TTL_SECONDS={TTL})",
    )


@pytest.mark.contract("AUTH-JWKS-CACHED", level=SHOULD)
@pytest.mark.parametrize("tokens", ("valid", "unknown-kids"))
def test_the_jwks_is_cached(fresh_lab: Lab, tokens: str) -> None:
    """The JWKS is cached: BURST requests with valid tokens cause at most a few requests to Keycloak, and so
    do BURST tokens with unknown kids (the refetch on an unknown kid is rate-limited, not one per request).
    Every request to the issuer counts, not only JWKS fetches: a backend that asks userinfo or introspection
    about each token makes every request wait on Keycloak just the same.

    CONVENTIONS, Auth: "Prefer JWKS ...; cache with TTL; select by kid".
    """
    lab = fresh_lab
    lab.issuer.reset_fetches()
    started = time.monotonic()
    last: httpx.Response | None = None
    for _ in range(BURST):
        token = lab.token() if tokens == "valid" else lab.unknown_kid_token()
        last = lab.caller.send(bearer(token), title=f"a burst of {tokens} tokens", expected="an answer")
    calls = lab.backend_calls()
    total = sum(calls.values())
    if total > MAX_ISSUER_CALLS:
        asked = [kind for kind in ASKING_KINDS if kind in calls]
        raise violation(
            f"{BURST} requests with {tokens} tokens called Keycloak {total} times ({endpoint_names(calls)})",
            received=f"{describe_calls(calls, BURST)} (in {time.monotonic() - started:.1f} s)",
            expected=f"at most {MAX_ISSUER_CALLS}: cache the JWKS for its TTL ({TTL} s here)"
            + ("" if tokens == "valid" else " and rate-limit refetches for unknown kids")
            + (
                f"; verify tokens against it instead of calling {endpoint_names(asked)} for each request"
                if asked
                else ""
            ),
            response=last,
            details=lab.log_tail(),
        )
