"""Keycloak's OpenID Connect endpoints: token (client_credentials, password, refresh_token), userinfo, introspection."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import threading
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from ._http import Reply, Request, json_reply
from ._jose import StrictVerifier, TokenRejected, b64url_decode
from .tokens import DEFAULT_SCOPE
from .users import User, service_account

if TYPE_CHECKING:
    from .server import Issuer

__all__ = ["OidcEndpoints"]

_ACCOUNT_ROLES = ["manage-account", "manage-account-links", "view-profile"]
_CLIENT_ERROR = "Invalid client or Invalid client credentials"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _oauth_error(status: int, error: str, description: str) -> Reply:
    return json_reply(status, {"error": error, "error_description": description}, _NO_STORE)


def _bearer(request: Request) -> str | None:
    auth = request.header("authorization")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return auth[7:].strip()
    if request.method == "POST":
        return request.form().get("access_token") or None
    return None


class OidcEndpoints:
    """The token, userinfo and introspection endpoints of one issuer, with Keycloak's answers and errors.

    Keeps the login sessions its token sets open: a refresh token is honoured only while its session is known.
    """

    def __init__(self, issuer: Issuer) -> None:
        self._issuer = issuer
        self._lock = threading.Lock()
        self._sessions: dict[str, tuple[str, User]] = {}

    # -- token endpoint ---------------------------------------------------------------------------

    def _authenticate_client(self, request: Request, form: Mapping[str, str]) -> tuple[str, str | None] | Reply:
        """``(client_id, expected secret or None)`` of an authenticated client, or the error reply."""
        client_id, secret = form.get("client_id"), form.get("client_secret")
        auth = request.header("authorization")
        if auth[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return _oauth_error(401, "invalid_client", _CLIENT_ERROR)
            raw_id, _, raw_secret = decoded.partition(":")
            client_id, secret = unquote(raw_id), unquote(raw_secret)
        if not client_id:
            return _oauth_error(401, "invalid_client", "Missing client_id parameter")
        clients = self._issuer.clients
        if clients is None:
            return client_id, secret or None
        if client_id not in clients:
            return _oauth_error(401, "invalid_client", _CLIENT_ERROR)
        expected = clients[client_id]
        if expected is not None and not hmac.compare_digest((secret or "").encode(), expected.encode()):
            return _oauth_error(401, "unauthorized_client", _CLIENT_ERROR)
        return client_id, expected

    def token(self, request: Request) -> Reply:
        """``POST .../protocol/openid-connect/token``."""
        if request.method != "POST":
            return json_reply(405, {"error": "HTTP 405 Method Not Allowed"}, {"Allow": "POST"})
        if "application/x-www-form-urlencoded" not in request.header(
            "content-type", "application/x-www-form-urlencoded"
        ):
            return _oauth_error(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
        form = request.form()
        grant = form.get("grant_type")
        if not grant:
            return _oauth_error(400, "invalid_request", "Missing form parameter: grant_type")
        authenticated = self._authenticate_client(request, form)
        if isinstance(authenticated, Reply):
            return authenticated
        client_id, expected_secret = authenticated
        scope = form.get("scope") or DEFAULT_SCOPE
        issuer = self._issuer
        if grant == "client_credentials":
            if issuer.clients is not None and expected_secret is None:
                return _oauth_error(401, "unauthorized_client", "Public client not allowed to retrieve service account")
            account = service_account(client_id, issuer.realm)
            return self._token_set(client_id, account, scope, form, request, service=True)
        if grant == "password":
            user = issuer.users.find_login(form.get("username", ""))
            if user is None or not hmac.compare_digest(user.password.encode(), form.get("password", "").encode()):
                return _oauth_error(401, "invalid_grant", "Invalid user credentials")
            return self._token_set(client_id, user, scope, form, request)
        if grant == "refresh_token":
            return self._refresh(client_id, form, request)
        return _oauth_error(400, "unsupported_grant_type", "Unsupported grant_type")

    def _token_set(
        self,
        client_id: str,
        user: User,
        scope: str,
        form: Mapping[str, str],
        request: Request,
        *,
        service: bool = False,
        session: str | None = None,
    ) -> Reply:
        issuer = self._issuer
        session = session or str(uuid.uuid4())
        requested = form.get("audience")
        default = issuer.default_audience
        base = requested.split() if requested else ([default] if isinstance(default, str) else list(default))
        audience = list(dict.fromkeys([*base, "account"]))
        roles = [f"default-roles-{issuer.realm}", "offline_access", "uma_authorization", *user.roles]
        client_roles: dict[str, Iterable[str]] = {**user.client_roles, "account": _ACCOUNT_ROLES}
        extra: dict[str, Any] = {
            "azp": client_id,
            "sid": session,
            "session_state": session,
            "scope": scope,
            "allowed-origins": ["*"],
        }
        if service:
            extra.update({"clientId": client_id, "clientHost": request.client_ip, "clientAddress": request.client_ip})
        access = issuer.mint(audience, roles, client_roles, user, overrides=extra)
        tokens = issuer.tokens
        refresh = tokens.refresh_token(client_id, user=user, session=session, scope=scope)
        id_token = tokens.id_token(client_id, user=user, access_token=access, session=session, nonce=form.get("nonce"))
        with self._lock:
            self._sessions[session] = (client_id, user)
        body = {
            "access_token": access,
            "expires_in": tokens.lifetime,
            "refresh_expires_in": tokens.refresh_lifetime,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "id_token": id_token,
            "not-before-policy": 0,
            "session_state": session,
            "scope": scope,
        }
        return json_reply(200, body, _NO_STORE)

    def _refresh(self, client_id: str, form: Mapping[str, str], request: Request) -> Reply:
        invalid = _oauth_error(400, "invalid_grant", "Invalid refresh token")
        token = form.get("refresh_token", "")
        try:
            h, p, s = token.split(".")
            expected = hmac.new(self._issuer.tokens.hmac_secret, f"{h}.{p}".encode(), "sha512").digest()
            if not hmac.compare_digest(expected, b64url_decode(s)):
                return invalid
            claims = json.loads(b64url_decode(p))
        except (ValueError, binascii.Error):
            return invalid
        if claims.get("typ") != "Refresh" or claims.get("exp", 0) <= self._issuer.now():
            return invalid
        if claims.get("azp") != client_id:
            return _oauth_error(400, "invalid_grant", "Token client and authorized client don't match")
        with self._lock:
            found = self._sessions.get(claims.get("sid", ""))
        if found is None:
            return _oauth_error(400, "invalid_grant", "Session not active")
        _, user = found
        return self._token_set(
            client_id,
            user,
            claims.get("scope", DEFAULT_SCOPE),
            form,
            request,
            service=user.preferred_username.startswith("service-account-"),
            session=claims["sid"],
        )

    # -- userinfo and introspection ---------------------------------------------------------------

    def userinfo(self, request: Request) -> Reply:
        """``GET/POST .../protocol/openid-connect/userinfo``: the profile claims of a token the realm signed."""
        if request.method not in ("GET", "POST", "HEAD"):
            return json_reply(405, {"error": "HTTP 405 Method Not Allowed"}, {"Allow": "GET, POST"})
        issuer = self._issuer
        token = _bearer(request)
        challenge = (
            f'Bearer realm="{issuer.realm}", error="invalid_token", error_description="Token verification failed"'
        )
        if token is None:
            return json_reply(
                401,
                {"error": "invalid_request", "error_description": "Token not provided"},
                {"WWW-Authenticate": f'Bearer realm="{issuer.realm}"'},
            )
        try:
            claims = issuer.verifier().verify(token, now=issuer.now())
        except TokenRejected:
            return json_reply(
                401,
                {"error": "invalid_token", "error_description": "Token verification failed"},
                {"WWW-Authenticate": challenge},
            )
        keys = ("sub", "email_verified", "name", "preferred_username", "given_name", "family_name", "email")
        return json_reply(200, {k: claims[k] for k in keys if k in claims})

    def introspect(self, request: Request) -> Reply:
        """``POST .../protocol/openid-connect/token/introspect``: RFC 7662, for authenticated clients."""
        if request.method != "POST":
            return json_reply(405, {"error": "HTTP 405 Method Not Allowed"}, {"Allow": "POST"})
        form = request.form()
        authenticated = self._authenticate_client(request, form)
        if isinstance(authenticated, Reply):
            return authenticated
        issuer = self._issuer
        if issuer.clients is not None and authenticated[1] is None:  # Keycloak lets only confidential clients ask
            return _oauth_error(403, "invalid_request", "Client not allowed.")
        verifier = StrictVerifier(
            issuer.keys.verification_keys(), issuer=issuer.issuer_url, audience=None, require_typ=None
        )
        try:
            claims = verifier.verify(form.get("token", ""), now=issuer.now())
        except TokenRejected:
            return json_reply(200, {"active": False})
        return json_reply(
            200,
            {
                **claims,
                "client_id": claims.get("azp"),
                "username": claims.get("preferred_username"),
                "token_type": claims.get("typ", "Bearer"),
                "active": True,
            },
        )
