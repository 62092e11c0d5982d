"""The ``KEYCLOAK_*`` environment a conventions-following backend reads to trust an issuer (SPEC §2): built
here only, for the launcher's instances, ``Issuer.backend_env`` and the standalone server's hints."""

from __future__ import annotations

__all__ = ["JWKS_TTL_SECONDS", "keycloak_env"]

JWKS_TTL_SECONDS = 3
"""The JWKS cache TTL every backend the harness starts gets: short, so a retired key leaves the backend's
cache within a test's patience; the key-rotation contracts wait on it."""


def keycloak_env(
    *, base_url: str, realm: str, issuer_url: str, client_id: str, jwks_ttl: float = JWKS_TTL_SECONDS
) -> dict[str, str]:
    return {
        "KEYCLOAK_URL": base_url,
        "KEYCLOAK_REALM": realm,
        "KEYCLOAK_CLIENT_ID": client_id,
        "KEYCLOAK_ISSUER": issuer_url,
        "KEYCLOAK_VERIFY_AUD": "true",
        "KEYCLOAK_USE_JWKS": "true",
        "KEYCLOAK_PK_TTL_SECONDS": f"{jwks_ttl:g}",
    }
