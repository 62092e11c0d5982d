"""Keycloak access-token verification against the realm's JWKS, cached and rotation-aware."""

import asyncio
import json
import time
from typing import Any

import httpx
import jwt
from jwt.utils import base64url_decode

ALLOWED_ALGORITHMS = frozenset({"RS256", "ES256"})
LEEWAY_SECONDS = 10  # clock skew tolerated on exp/nbf/iat
JWKS_TIMEOUT_SECONDS = 2.0
REFETCH_COOLDOWN_SECONDS = 1.0  # unknown kids and failures refetch at most this often
MAX_TOKEN_LENGTH = 8192
TIME_CLAIMS = ("exp", "iat", "nbf")


class InvalidTokenError(Exception):
    """The token is not an acceptable access token; the message is for logs only."""


class KeycloakUnavailableError(Exception):
    """The signing keys could not be fetched or were unusable."""


class TokenVerifier:
    """Validates Keycloak access tokens (signature, alg, exp/nbf/iat, iss, aud, typ).

    Keys come only from the realm's JWKS URL: `jku`, `x5u` and embedded `jwk` headers are never
    followed. The key set is cached for `jwks_ttl` seconds; a token with an unknown `kid` triggers
    one early refetch (Keycloak key rotation), at most once per REFETCH_COOLDOWN_SECONDS.
    """

    def __init__(self, *, issuer: str, audience: str, verify_audience: bool, jwks_ttl: int) -> None:
        self.issuer = issuer
        self.audience = audience
        self.verify_audience = verify_audience
        self.jwks_url = f"{issuer}/protocol/openid-connect/certs"
        self.jwks_ttl = jwks_ttl
        self._keys: list[jwt.PyJWK] = []
        self._expires_at = 0.0
        self._refetch_after = 0.0
        self._lock = asyncio.Lock()

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or InvalidTokenError / KeycloakUnavailableError."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidTokenError("token too long")
        try:
            header = jwt.get_unverified_header(token)
            # Parsers disagree on which of two "alg" members counts: refuse both (RFC 7515 §5.2).
            json.loads(base64url_decode(token.partition(".")[0]), object_pairs_hook=_unique_members)
        except (jwt.PyJWTError, ValueError) as exc:
            raise InvalidTokenError(f"malformed token: {exc}") from None
        alg, kid = header.get("alg"), header.get("kid")
        # Rejects none, HS* (key confusion) and the rest; a non-string alg is unhashable in a set.
        if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
            raise InvalidTokenError(f"algorithm not allowed: {alg!r}")
        if "crit" in header:  # no extensions are understood, so any critical one is fatal
            raise InvalidTokenError("unsupported critical header")
        if not isinstance(kid, str) or not kid:
            # Keycloak always names the key; guessing one would depend on what the cache holds.
            raise InvalidTokenError("kid missing or not a string")

        key = await self._signing_key(kid)
        if key is None:
            raise InvalidTokenError("no matching signing key")
        if key.algorithm_name != alg:
            raise InvalidTokenError(f"algorithm {alg} does not match the key")

        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.audience if self.verify_audience else None,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={
                    "require": ["exp", "iat", "iss", "sub"],
                    "verify_aud": self.verify_audience,
                },
            )
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(str(exc)) from None
        if claims.get("typ") != "Bearer":  # Keycloak ID and refresh tokens are signed the same way
            raise InvalidTokenError(f"not an access token: typ={claims.get('typ')!r}")
        for name in TIME_CLAIMS:
            # pyjwt int()-converts "1700000000" and true, so a forged type would pass: RFC 7519 §2
            # NumericDate is a JSON number.
            if name in claims and not _is_numeric_date(claims[name]):
                raise InvalidTokenError(f"{name} is not a number")
        return claims

    async def _signing_key(self, kid: str) -> jwt.PyJWK | None:
        async with self._lock:  # one fetch at a time; waiters reuse its result
            now = time.monotonic()
            if now >= self._expires_at:
                if now < self._refetch_after:  # the last fetch failed moments ago
                    raise KeycloakUnavailableError("JWKS fetch failed less than a cooldown ago")
                await self._refresh()
                return _select_key(self._keys, kid)
            key = _select_key(self._keys, kid)
            if key is None and now >= self._refetch_after:  # maybe a key Keycloak just rotated in
                await self._refresh()
                self._refetch_after = time.monotonic() + REFETCH_COOLDOWN_SECONDS
                key = _select_key(self._keys, kid)
            return key

    async def _refresh(self) -> None:
        try:
            self._keys = await self._fetch()
        except KeycloakUnavailableError:
            self._refetch_after = time.monotonic() + REFETCH_COOLDOWN_SECONDS
            raise
        self._expires_at = time.monotonic() + self.jwks_ttl

    async def _fetch(self) -> list[jwt.PyJWK]:
        try:
            async with httpx.AsyncClient(timeout=JWKS_TIMEOUT_SECONDS) as client:
                response = await client.get(self.jwks_url)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise KeycloakUnavailableError(f"JWKS fetch failed: {exc!r}") from None

        raw_keys = document.get("keys") if isinstance(document, dict) else None
        keys = []
        for jwk in raw_keys if isinstance(raw_keys, list) else []:
            if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
                continue  # Keycloak also publishes an encryption key
            try:
                key = jwt.PyJWK(jwk)
            except (jwt.PyJWTError, ValueError):
                continue
            if key.algorithm_name in ALLOWED_ALGORITHMS:
                keys.append(key)
        if not keys:
            raise KeycloakUnavailableError("JWKS holds no usable signing key")
        return keys


def _select_key(keys: list[jwt.PyJWK], kid: str) -> jwt.PyJWK | None:
    return next((key for key in keys if key.key_id == kid), None)


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError("duplicate member name")
    return dict(pairs)


def _is_numeric_date(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def roles_from_claims(claims: dict[str, Any], client_id: str) -> frozenset[str]:
    """Realm roles plus this client's roles, as Keycloak puts them in access tokens."""
    realm_access = claims.get("realm_access")
    resource_access = claims.get("resource_access")
    client_access = resource_access.get(client_id) if isinstance(resource_access, dict) else None
    roles: set[str] = set()
    for access in (realm_access, client_access):
        granted = access.get("roles") if isinstance(access, dict) else None
        if isinstance(granted, list):
            roles.update(role for role in granted if isinstance(role, str))
    return frozenset(roles)
