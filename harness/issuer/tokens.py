"""Keycloak-shaped access, ID and refresh tokens, signed by the realm's active key at raw-pyjwt speed."""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from makrx_contracts.harness.errors import IssuerError

from ._jose import b64url, compact, json_segment
from .keys import Key, KeySet
from .users import User, UserDirectory

__all__ = ["DEFAULT_SCOPE", "TokenFactory", "jws_header", "primary_audience"]

DEFAULT_SCOPE = "openid profile email"
_KEEP: Any = object()
_dumps = json.JSONEncoder(separators=(",", ":")).encode


def primary_audience(audience: str | Sequence[str]) -> str:
    """The audience a token is first meant for: the one given, or the first of several (the client id)."""
    return audience if isinstance(audience, str) else next(iter(audience))


def _override(members: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``members`` with ``overrides`` added or replaced in place; an override of ``None`` removes a member."""
    for name, value in overrides.items():
        if value is None:
            members.pop(name, None)
        else:
            members[name] = value
    return members


def jws_header(alg: str, kid: str, /, **members: Any) -> dict[str, Any]:
    """Keycloak's JWS header, ``{"alg", "typ": "JWT", "kid"}``; ``members`` add or replace (``None`` removes)."""
    return _override({"alg": alg, "typ": "JWT", "kid": kid}, members)


class TokenFactory:
    """Mints tokens with Keycloak's claim shapes for one realm.

    ``claims()`` builds the payload, ``sign()`` turns any payload into a compact JWS with the active key
    (or a chosen key, alg, kid or extra header members), ``mint()`` does both. Every claim can be
    overridden per call; an override of ``None`` removes the claim. ``clock_offset`` (seconds) shifts
    the issuer's clock for skew tests.
    """

    def __init__(
        self,
        keys: KeySet,
        issuer_url: str = "",
        *,
        users: UserDirectory | None = None,
        default_audience: str | Sequence[str] = "makrx-api",
        lifetime: int = 300,
        refresh_lifetime: int = 1800,
        scope: str = DEFAULT_SCOPE,
        clock_offset: float = 0.0,
    ) -> None:
        self.keys = keys
        self.issuer_url = issuer_url
        self.users = users if users is not None else UserDirectory(keys.seed, keys.realm)
        self.default_audience = default_audience
        self.default_roles: tuple[str, ...] = ("user",)  # realm roles when a caller names none
        self.lifetime = lifetime
        self.refresh_lifetime = refresh_lifetime
        self.scope = scope
        self.clock_offset = clock_offset
        seed_material = os.urandom(32) if keys.seed is None else f"makrx-hmac/{keys.seed}/{keys.realm}".encode()
        self.hmac_secret = hashlib.sha512(seed_material).digest()
        self.hmac_kid = str(uuid.UUID(bytes=hashlib.sha256(self.hmac_secret).digest()[:16], version=4))
        self._headers: dict[tuple[str, str], str] = {}
        self._identities: dict[str, tuple[str, dict[str, Any]]] = {}

    def _identity(self, who: User) -> tuple[str, dict[str, Any]]:
        """A user's login session id and profile claims (without sub), made once per user: one session per
        user, as with a real login, and no per-token cost."""
        found = self._identities.get(who.sub)
        if found is None or found[1].get("preferred_username") != who.preferred_username:
            identity = who.identity_claims()
            del identity["sub"]
            found = (str(uuid.uuid4()), identity)
            self._identities[who.sub] = found
        return found

    # -- time and identity ------------------------------------------------------------------------

    def now(self) -> int:
        """The issuer's clock (wall clock + ``clock_offset``), in whole seconds."""
        return int(time.time() + self.clock_offset)

    def user(self, user: User | int | str | None) -> User:
        if isinstance(user, User):
            return user
        return self.users.get(0 if user is None else user)

    @staticmethod
    def _audiences(audience: str | Sequence[str]) -> str | list[str]:
        return audience if isinstance(audience, str) else list(audience)

    # -- payloads ---------------------------------------------------------------------------------

    def claims(
        self,
        audience: str | Sequence[str] | None = None,
        roles: Iterable[str] | None = None,
        client_roles: Mapping[str, Iterable[str]] | None = None,
        user: User | int | str | None = None,
        expires_in: int | None = None,
        *,
        overrides: Mapping[str, Any] | None = None,
        **claim_overrides: Any,
    ) -> dict[str, Any]:
        """An access-token payload as Keycloak issues it.

        ``audience`` is the ``aud`` claim as given (a string, or a list such as ``["x-api", "account"]``);
        ``azp`` defaults to the first audience. ``roles`` go to ``realm_access.roles`` and
        ``client_roles`` to ``resource_access.<client>.roles``, exactly as given (``roles`` defaults to
        ``default_roles``, ["user"]; the contract fixtures pass a target's token_roles). ``expires_in`` may be
        negative (an expired token). ``overrides`` (for names that are not identifiers, such as
        ``allowed-origins``) and keyword overrides replace claims; ``None`` removes one.
        """
        aud = self._audiences(self.default_audience if audience is None else audience)
        who = self.user(user)
        now = self.now()
        session, identity = self._identity(who)
        claims: dict[str, Any] = {
            "exp": now + (self.lifetime if expires_in is None else expires_in),
            "iat": now,
            "jti": str(uuid.uuid4()),
            "iss": self.issuer_url,
            "aud": aud,
            "sub": who.sub,
            "typ": "Bearer",
            "azp": primary_audience(aud) if aud else "account",
            "sid": session,
            "session_state": session,
            "acr": "1",
            "realm_access": {"roles": list(self.default_roles if roles is None else roles)},
            "resource_access": {client: {"roles": list(r)} for client, r in (client_roles or {}).items()},
            "scope": self.scope,
        }
        claims.update(identity)
        return _override(_override(claims, overrides or {}), claim_overrides)

    # -- signing ----------------------------------------------------------------------------------

    def sign(
        self,
        claims: Mapping[str, Any],
        *,
        key: Key | None = None,
        alg: str | None = None,
        kid: str | None = _KEEP,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """A compact JWS of ``claims``: header ``{"alg", "typ": "JWT", "kid"}`` like Keycloak's.

        ``key`` defaults to the active key, ``alg`` to the key's, ``kid`` to the key's (``None`` drops
        it); ``headers`` adds or replaces header members (a value of ``None`` removes one).
        """
        key = key or self.keys.active
        alg = alg or key.alg
        if headers is None and kid is _KEEP:
            # Keycloak's plain header, encoded once per key: minting stays at raw-pyjwt speed.
            header_segment = self._headers.get((alg, key.kid))
            if header_segment is None:
                header_segment = self._headers[(alg, key.kid)] = json_segment(jws_header(alg, key.kid))
        else:
            members = {} if kid is _KEEP else {"kid": kid}
            header_segment = json_segment(jws_header(alg, key.kid, **{**members, **(headers or {})}))
        return compact(header_segment, b64url(_dumps(claims).encode("utf-8")), alg, key.private_key)

    def mint(
        self,
        audience: str | Sequence[str] | None = None,
        roles: Iterable[str] | None = None,
        client_roles: Mapping[str, Iterable[str]] | None = None,
        user: User | int | str | None = None,
        expires_in: int | None = None,
        *,
        overrides: Mapping[str, Any] | None = None,
        **claim_overrides: Any,
    ) -> str:
        """A signed access token: ``sign(claims(...))``."""
        if not self.issuer_url:
            raise IssuerError(
                "the token factory has no issuer URL", fix="start the Issuer (or set tokens.issuer_url) first"
            )
        return self.sign(
            self.claims(audience, roles, client_roles, user, expires_in, overrides=overrides, **claim_overrides)
        )

    def id_token(
        self,
        client_id: str,
        *,
        user: User | int | str | None = None,
        access_token: str | None = None,
        nonce: str | None = None,
        session: str | None = None,
        **overrides: Any,
    ) -> str:
        """An OIDC ID token for ``client_id`` (``typ: ID``, ``aud`` = ``azp`` = the client)."""
        who = self.user(user)
        now = self.now()
        claims: dict[str, Any] = {
            "exp": now + self.lifetime,
            "iat": now,
            "auth_time": now,
            "jti": str(uuid.uuid4()),
            "iss": self.issuer_url,
            "aud": client_id,
            "sub": who.sub,
            "typ": "ID",
            "azp": client_id,
        }
        if nonce:
            claims["nonce"] = nonce
        claims["sid"] = session or str(uuid.uuid4())
        if access_token:
            digest = hashlib.sha256(access_token.encode("ascii")).digest()
            claims["at_hash"] = b64url(digest[: len(digest) // 2])
        claims["acr"] = "1"
        claims.update(who.identity_claims())
        return self.sign(_override(claims, overrides))

    def refresh_token(
        self,
        client_id: str,
        *,
        user: User | int | str | None = None,
        session: str | None = None,
        scope: str | None = None,
        **overrides: Any,
    ) -> str:
        """A refresh token as Keycloak issues it: ``typ: Refresh``, ``aud`` = the issuer, HS512 with the
        realm's HMAC secret (so no backend can verify it with the JWKS)."""
        who = self.user(user)
        now = self.now()
        claims: dict[str, Any] = {
            "exp": now + self.refresh_lifetime,
            "iat": now,
            "jti": str(uuid.uuid4()),
            "iss": self.issuer_url,
            "aud": self.issuer_url,
            "sub": who.sub,
            "typ": "Refresh",
            "azp": client_id,
            "sid": session or str(uuid.uuid4()),
            "scope": scope or self.scope,
        }
        claims.update(overrides)
        return compact(jws_header("HS512", self.hmac_kid), claims, "HS512", self.hmac_secret)
