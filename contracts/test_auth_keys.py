"""AUTH, the JWKS lifecycle: a rotated key is accepted and a retired one refused without a restart, the
JWKS is cached, and Keycloak trouble answers 401/503, never 500 or a hang (CONVENTIONS: Auth — "Prefer
JWKS for public key rotation; cache with TTL; select by kid"). Its own module: these contracts wait for
the JWKS TTL and refetch cooldowns, and under -n they run beside the rest instead of after it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from harness.contract import MUST, SHOULD, expect_eventually, violation
from harness.issuer import Issuer
from harness.issuer.fixtures import TokenMaker
from harness.openapi import Operation
from harness.ports import SourceAddresses
from harness.target.launcher import JWKS_TTL_SECONDS, RunningTarget, TargetLauncher
from harness.target.resolve import TargetSpec

from .bearer import HANG_SECONDS, Caller, ValidTokenCheck, accepted, bearer

pytestmark = pytest.mark.auth

TTL = JWKS_TTL_SECONDS  # KEYCLOAK_PK_TTL_SECONDS the harness gives every instance
SETTLE_SECONDS = TTL + 3.0  # a cached JWKS expires, a refetch cooldown passes
BURST = 20  # requests of the caching contract
MAX_JWKS_FETCHES = 5  # "a few" for BURST requests: a TTL expiry and a rate-limited refetch or two


@dataclass
class Lab:
    """A separate issuer and backend instance for the contracts that rotate keys or break Keycloak."""

    issuer: Issuer
    target: RunningTarget
    caller: Caller
    tokens: TokenMaker
    last_load: float | None = None  # a JWKS fetch seen before the fetch log was last cleared

    def token(self) -> str:
        return self.tokens()

    def unknown_kid_token(self) -> str:
        """Signed by the active key under a kid never published: the backend must look it up."""
        return self.issuer.sign(self.tokens.claims(), kid=f"makrx-contract-unknown-{uuid.uuid4().hex[:12]}")

    def last_jwks_fetch(self) -> float | None:
        log = self.issuer.fetch_log("jwks")
        return log[-1].at if log else self.last_load

    def jwks_fetched_since(self, moment: float) -> bool:
        return any(fetch.at >= moment for fetch in self.issuer.fetch_log("jwks"))

    def get(self, token: str) -> Callable[[], httpx.Response]:
        return lambda: self.caller.raw(bearer(token))

    def is_accepted(self, response: httpx.Response) -> bool:
        return accepted(self.caller.op, response)

    def log_tail(self) -> str:
        return f"Backend log ({self.target.base_url}, last lines):\n{self.target.log_tail(15)}"

    def reset(self) -> None:
        """Faults off, issuer up, one active key, fetch log cleared (remembering the last JWKS fetch)."""
        self.last_load = self.last_jwks_fetch()
        self.issuer.reset()

    def settle(self) -> None:
        """Wait until a valid token is accepted again (a cached JWKS may lack the key the reset restored)."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            try:
                if self.is_accepted(self.caller.raw(bearer(self.token()))):
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() >= deadline:
                pytest.skip(f"precondition: the second instance does not accept a valid token within "
                            f"{SETTLE_SECONDS:.0f} s (see AUTH-VALID-TOKEN)")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def lab(makrx_launcher: TargetLauncher, makrx_target_spec: TargetSpec, makrx_config,
        makrx_source_addresses: SourceAddresses, request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A second issuer (same realm, own port and fetch log) and a backend instance that trusts it."""
    client_id = makrx_target_spec.client_id
    issuer = Issuer(realm="makrx", seed=0 if makrx_config.seed is None else makrx_config.seed,
                    default_audience=client_id).start()
    try:
        env = {"KEYCLOAK_URL": issuer.base_url, "KEYCLOAK_ISSUER": issuer.issuer_url}
        target = makrx_launcher.spawn(env, name=f"{makrx_target_spec.name}-auth-lab")
        try:
            # Found in the session backend's OpenAPI document: when this module comes first (it does
            # under -n), that backend boots now, beside this instance rather than before it.
            operation: Operation = request.getfixturevalue("protected_operation")
            makrx_launcher.ready(target)
            found = Lab(issuer, target, Caller(target.base_url, operation, makrx_source_addresses),
                        TokenMaker(issuer, client_id))
            try:
                yield found
            finally:
                found.caller.close()
        finally:
            makrx_launcher.stop(target)
    finally:
        issuer.stop()


@pytest.fixture
def fresh_lab(trusted: None, valid_token: ValidTokenCheck, lab: Lab) -> Iterator[Lab]:
    """The lab reset and accepting valid tokens before the test; faults off and issuer up after it."""
    valid_token.require()
    lab.reset()
    lab.settle()
    try:
        yield lab
    finally:
        lab.issuer.faults.clear()
        if not lab.issuer.is_up:
            lab.issuer.come_up()


@pytest.mark.contract("AUTH-KEY-ROTATION", level=SHOULD)
def test_a_rotated_key_is_accepted_without_a_restart(fresh_lab: Lab) -> None:
    """After Keycloak promotes a new signing key, tokens with its kid are accepted without restarting the
    backend, before the cached JWKS would expire: an unknown kid triggers a (rate-limited) JWKS refetch.

    CONVENTIONS, Auth: "Prefer JWKS (/protocol/openid-connect/certs) for public key rotation; cache with
    TTL; select by kid".
    """
    lab = fresh_lab
    lab.issuer.keys.promote()
    expect_eventually(lab.get(lab.token()), lab.is_accepted, timeout=SETTLE_SECONDS,
                      title="a token signed by a newly promoted key was refused",
                      expected=f"2xx within {SETTLE_SECONDS:.0f} s, without a restart (JWKS TTL {TTL} s)")
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
    raise violation("a token with a just-rotated kid was refused while the cached JWKS was fresh",
                    received=f"{response.status_code if response is not None else 'nothing'} for "
                             f"{cutoff - loaded:.1f} s after the JWKS was fetched (TTL {TTL} s)",
                    expected="2xx before the cached JWKS expires: refetch the JWKS (rate-limited) when a token "
                             "names an unknown kid", response=response, details=lab.log_tail())


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
    expect_eventually(lab.get(old_token), lambda response: response.status_code == 401, timeout=SETTLE_SECONDS,
                      title="a token signed by a retired key was still accepted",
                      expected=f"401 within {SETTLE_SECONDS:.0f} s of the key's retirement "
                               f"(KEYCLOAK_PK_TTL_SECONDS={TTL})")


@pytest.mark.contract("AUTH-JWKS-CACHED", level=SHOULD)
@pytest.mark.parametrize("tokens", ("valid", "unknown-kids"))
def test_the_jwks_is_cached(fresh_lab: Lab, tokens: str) -> None:
    """The JWKS is cached: BURST requests with valid tokens cause at most a few JWKS fetches, and so do
    BURST tokens with unknown kids (the refetch on an unknown kid is rate-limited, not one per request).

    CONVENTIONS, Auth: "Prefer JWKS ...; cache with TTL; select by kid".
    """
    lab = fresh_lab
    lab.issuer.reset_fetches()
    started = time.monotonic()
    last: httpx.Response | None = None
    for _ in range(BURST):
        token = lab.token() if tokens == "valid" else lab.unknown_kid_token()
        last = lab.caller.send(bearer(token), title=f"a burst of {tokens} tokens", expected="an answer")
    fetched = lab.issuer.fetches("jwks")
    if fetched > MAX_JWKS_FETCHES:
        raise violation(f"{BURST} requests with {tokens} tokens fetched the JWKS {fetched} times",
                        received=f"{fetched} JWKS fetches in {time.monotonic() - started:.1f} s",
                        expected=f"at most {MAX_JWKS_FETCHES}: cache the JWKS for its TTL ({TTL} s here)"
                                 + ("" if tokens == "valid" else " and rate-limit refetches for unknown kids"),
                        response=last, details=lab.log_tail())


_FAULTS: dict[str, tuple[str, Callable[[Issuer], None]]] = {
    "status-500": ("answers 500", lambda issuer: issuer.faults.jwks_status(500)),
    "slow": (f"answers after {HANG_SECONDS + 5:.0f} s", lambda issuer: issuer.faults.jwks_delay(HANG_SECONDS + 5)),
    "garbage": ("answers 200 with a truncated body", lambda issuer: issuer.faults.jwks_garbage("truncated")),
    "issuer-down": ("is unreachable (port closed)", lambda issuer: issuer.go_down()),
}


@pytest.mark.contract("AUTH-JWKS-UNAVAILABLE", level=MUST)
@pytest.mark.parametrize("fault", _FAULTS)
def test_keycloak_trouble_is_401_or_503(fresh_lab: Lab, fault: str) -> None:
    """While the JWKS endpoint fails — 500, slower than any sane timeout, garbage, or Keycloak's port
    closed — requests the backend must verify (a fresh unknown kid, a valid token once the cached JWKS
    expires) answer 401 or 503 (a valid token may still pass on cached keys): never 500, never a hang.
    Once Keycloak is back, valid tokens are accepted again without a restart.

    CONVENTIONS, Auth (JWKS) and Error Handling (structured responses); RFC 9110 §15.6.4 (503).
    """
    lab = fresh_lab
    what, apply = _FAULTS[fault]
    valid = lab.token()
    loaded = lab.last_jwks_fetch() or time.time()
    started = time.time()
    # The backend tries the JWKS at once for an unknown kid (after its refetch cooldown), at the latest
    # when its cached copy expires; watch until it did (a fetch seen, or a 503), then one more round.
    deadline = max(started + 1.5, loaded + TTL + 0.5)
    apply(lab.issuer)
    try:
        tried = False
        while True:
            tried_now = False
            for token, kind in ((lab.unknown_kid_token(), "an unknown kid"), (valid, "a valid token")):
                response = lab.caller.send(bearer(token), title=f"while the JWKS {what}, a request with {kind}",
                                           expected="401 or 503", details=lab.log_tail())
                status = response.status_code
                ok = status in (401, 503) or (kind == "a valid token" and lab.is_accepted(response))
                if not ok:
                    raise violation(f"while the JWKS {what}, a request with {kind} answered {status}",
                                    received=str(status),
                                    expected="401 or 503" + (" (or 2xx on cached keys)" if kind == "a valid token"
                                                             else ""),
                                    response=response, details=lab.log_tail())
                tried_now = tried_now or status == 503
            if tried or time.time() >= deadline:
                break
            tried = tried_now or lab.jwks_fetched_since(started)
            time.sleep(0.1)
    finally:
        lab.issuer.faults.clear()
        if not lab.issuer.is_up:
            lab.issuer.come_up()
    expect_eventually(lab.get(lab.token()), lab.is_accepted, timeout=SETTLE_SECONDS,
                      title=f"after the JWKS {what} and recovered, valid tokens were still refused",
                      expected=f"2xx again within {SETTLE_SECONDS:.0f} s, without a restart")
