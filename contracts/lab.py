"""The AUTH lab: a second issuer (same realm, own port and fetch log) and a backend instance that trusts
it, for the contracts that rotate keys or break Keycloak without disturbing the session backend."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

import httpx
import pytest
from makrx_contracts.harness.backend.running import RunningTarget
from makrx_contracts.harness.issuer import Issuer
from makrx_contracts.harness.issuer.backend_env import JWKS_TTL_SECONDS
from makrx_contracts.harness.issuer.fixtures import TokenMaker

from .bearer import Caller, accepted, bearer

__all__ = ["ASKING_KINDS", "SETTLE_SECONDS", "TTL", "VALIDATION_KINDS", "Lab", "describe_calls", "endpoint_names"]

TTL = JWKS_TTL_SECONDS  # KEYCLOAK_PK_TTL_SECONDS the harness gives every instance
SETTLE_SECONDS = TTL + 3.0  # a cached JWKS expires, a refetch cooldown passes

ASKING_KINDS: Final = ("userinfo", "introspect")
"""Issuer endpoints a backend asks about each token instead of checking its signature itself."""
VALIDATION_KINDS: Final = ("jwks", *ASKING_KINDS)
"""Issuer endpoints a backend validates tokens with."""

_ENDPOINT_NAMES: Final = {
    "jwks": "the JWKS",
    "userinfo": "userinfo",
    "introspect": "token introspection",
    "discovery": "the discovery document",
    "realm": "the realm document",
    "token": "the token endpoint",
    "health": "health",
    "other": "other paths",
}


def endpoint_names(kinds: Iterable[str]) -> str:
    """``the JWKS``, ``userinfo and token introspection``: what a verdict says the backend called."""
    return " and ".join(_ENDPOINT_NAMES[kind] for kind in kinds)


def describe_calls(counts: Mapping[str, int], requests: int) -> str:
    """``userinfo: 20 calls for 20 requests; the JWKS: 1 call for 20 requests``."""
    return "; ".join(
        f"{_ENDPOINT_NAMES[kind]}: {n} call{'s' * (n != 1)} for {requests} requests" for kind, n in counts.items()
    )


@dataclass
class Lab:
    """A separate issuer and backend instance for the contracts that rotate keys or break Keycloak."""

    issuer: Issuer
    target: RunningTarget
    caller: Caller
    tokens: TokenMaker
    last_load: float | None = None  # a JWKS fetch seen before the fetch log was last cleared
    validated_with: set[str] = field(default_factory=set)  # VALIDATION_KINDS seen before the log was cleared

    def token(self) -> str:
        return self.tokens()

    def unknown_kid_token(self) -> str:
        """Signed by a key the realm never published, under a fresh kid: the backend must look it up, and no
        key it holds verifies it (so a backend that falls back to the realm's key for unknown kids is not
        let off by a token its fallback happens to verify)."""
        return self.issuer.sign(
            self.tokens.claims(), key=self.issuer.attacker.key, kid=f"makrx-contract-unknown-{uuid.uuid4().hex[:12]}"
        )

    def last_jwks_fetch(self) -> float | None:
        log = self.issuer.fetch_log("jwks")
        return log[-1].at if log else self.last_load

    def backend_calls(self) -> dict[str, int]:
        """The backend's requests to the issuer since the fetch log was cleared, per endpoint kind (none
        left out: validating through userinfo is as much a call per request as refetching the JWKS)."""
        return {kind: n for kind, n in self.issuer.fetch_counts().items() if n and kind != "admin"}

    def validation_endpoints(self) -> tuple[str, ...]:
        """The endpoints this backend has been seen validating tokens with; the JWKS before any was seen."""
        called = self.validated_with.union(self.backend_calls())
        return tuple(kind for kind in VALIDATION_KINDS if kind in called) or ("jwks",)

    def validated_since(self, moment: float, kinds: Iterable[str]) -> bool:
        """Whether the backend called one of ``kinds`` at or after ``moment``."""
        wanted = set(kinds)
        return any(fetch.at >= moment and fetch.kind in wanted for fetch in self.issuer.fetch_log())

    def get(self, token: str) -> Callable[[], httpx.Response]:
        return lambda: self.caller.raw(bearer(token))

    def is_accepted(self, response: httpx.Response) -> bool:
        return accepted(self.caller.op, response)

    def log_tail(self) -> str:
        return f"Backend log ({self.target.base_url}, last lines):\n{self.target.log_tail(15)}"

    def reset(self) -> None:
        """Faults off, issuer up, one active key, fetch log cleared (remembering the last JWKS fetch and which
        endpoints the backend validates with)."""
        self.last_load = self.last_jwks_fetch()
        self.validated_with.update(kind for kind in self.backend_calls() if kind in VALIDATION_KINDS)
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
                pytest.skip(
                    f"precondition: the second instance does not accept a valid token within "
                    f"{SETTLE_SECONDS:.0f} s (see AUTH-VALID-TOKEN)"
                )
            time.sleep(0.2)
