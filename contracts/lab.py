"""The AUTH lab: a second issuer (same realm, own port and fetch log) and a backend instance that trusts
it, for the contracts that rotate keys or break Keycloak without disturbing the session backend."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from makrx_contracts.harness.issuer import Issuer
from makrx_contracts.harness.issuer.fixtures import TokenMaker
from makrx_contracts.harness.target.launcher import JWKS_TTL_SECONDS, RunningTarget

from .bearer import Caller, accepted, bearer

__all__ = ["Lab", "TTL", "SETTLE_SECONDS"]

TTL = JWKS_TTL_SECONDS  # KEYCLOAK_PK_TTL_SECONDS the harness gives every instance
SETTLE_SECONDS = TTL + 3.0  # a cached JWKS expires, a refetch cooldown passes


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
        """Signed by a key the realm never published, under a fresh kid: the backend must look it up, and no
        key it holds verifies it (so a backend that falls back to the realm's key for unknown kids is not
        let off by a token its fallback happens to verify)."""
        return self.issuer.sign(self.tokens.claims(), key=self.issuer.attacker.key,
                                kid=f"makrx-contract-unknown-{uuid.uuid4().hex[:12]}")

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
