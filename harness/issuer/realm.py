"""Keycloak's realm documents: the realm JSON (``/realms/<realm>``) and the OpenID discovery document."""

from __future__ import annotations

from typing import Any

__all__ = ["discovery_document", "realm_document"]

# Keycloak's own list, HS256 included: a backend must pin RS256 itself rather than trust discovery.
_SIGNING_ALGS_ADVERTISED = [
    "PS384",
    "RS384",
    "EdDSA",
    "ES384",
    "HS256",
    "HS512",
    "ES256",
    "RS256",
    "HS384",
    "ES512",
    "PS256",
    "PS512",
    "RS512",
]


def realm_document(realm: str, issuer_url: str, public_key: str) -> dict[str, Any]:
    """``GET /realms/<realm>``: the realm's name, its active key (base64 DER SPKI) and its service URLs."""
    return {
        "realm": realm,
        "public_key": public_key,
        "token-service": f"{issuer_url}/protocol/openid-connect",
        "account-service": f"{issuer_url}/account",
        "tokens-not-before": 0,
    }


def discovery_document(issuer_url: str) -> dict[str, Any]:
    """``GET /realms/<realm>/.well-known/openid-configuration``, with the fields and values Keycloak serves."""
    oidc = f"{issuer_url}/protocol/openid-connect"
    return {
        "issuer": issuer_url,
        "authorization_endpoint": f"{oidc}/auth",
        "token_endpoint": f"{oidc}/token",
        "introspection_endpoint": f"{oidc}/token/introspect",
        "userinfo_endpoint": f"{oidc}/userinfo",
        "end_session_endpoint": f"{oidc}/logout",
        "frontchannel_logout_session_supported": True,
        "frontchannel_logout_supported": True,
        "jwks_uri": f"{oidc}/certs",
        "check_session_iframe": f"{oidc}/login-status-iframe.html",
        "grant_types_supported": ["password", "client_credentials", "refresh_token"],
        "acr_values_supported": ["0", "1"],
        "response_types_supported": [
            "code",
            "none",
            "id_token",
            "token",
            "id_token token",
            "code id_token",
            "code token",
            "code id_token token",
        ],
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": list(_SIGNING_ALGS_ADVERTISED),
        "id_token_encryption_alg_values_supported": ["RSA-OAEP", "RSA-OAEP-256", "RSA1_5"],
        "id_token_encryption_enc_values_supported": ["A256GCM", "A192GCM", "A128GCM", "A128CBC-HS256"],
        "userinfo_signing_alg_values_supported": [*_SIGNING_ALGS_ADVERTISED, "none"],
        "request_object_signing_alg_values_supported": [*_SIGNING_ALGS_ADVERTISED, "none"],
        "response_modes_supported": [
            "query",
            "fragment",
            "form_post",
            "query.jwt",
            "fragment.jwt",
            "form_post.jwt",
            "jwt",
        ],
        "registration_endpoint": f"{issuer_url}/clients-registrations/openid-connect",
        "token_endpoint_auth_methods_supported": [
            "private_key_jwt",
            "client_secret_basic",
            "client_secret_post",
            "tls_client_auth",
            "client_secret_jwt",
        ],
        "token_endpoint_auth_signing_alg_values_supported": list(_SIGNING_ALGS_ADVERTISED),
        "introspection_endpoint_auth_methods_supported": [
            "private_key_jwt",
            "client_secret_basic",
            "client_secret_post",
            "tls_client_auth",
            "client_secret_jwt",
        ],
        "claims_supported": [
            "aud",
            "sub",
            "iss",
            "auth_time",
            "name",
            "given_name",
            "family_name",
            "preferred_username",
            "email",
            "acr",
        ],
        "claim_types_supported": ["normal"],
        "claims_parameter_supported": True,
        "scopes_supported": [
            "openid",
            "profile",
            "email",
            "roles",
            "web-origins",
            "acr",
            "basic",
            "offline_access",
            "address",
            "phone",
            "microprofile-jwt",
            "organization",
        ],
        "request_parameter_supported": True,
        "request_uri_parameter_supported": True,
        "require_request_uri_registration": True,
        "code_challenge_methods_supported": ["plain", "S256"],
        "tls_client_certificate_bound_access_tokens": True,
        "revocation_endpoint": f"{oidc}/revoke",
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "authorization_response_iss_parameter_supported": True,
    }
