"""The fake Keycloak: realm JSON, discovery, JWKS, token, userinfo and health at Keycloak's paths; admin controls."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import unquote

from makrx_contracts.harness.errors import IssuerError

from . import catalogue
from ._http import HttpServer, Reply, Request, json_reply, sleep_unless
from ._jose import StrictVerifier, TokenRejected, b64url_decode
from .attacker import AttackerServer
from .backend_env import JWKS_TTL_SECONDS, keycloak_env
from .faults import FAULTABLE, GARBAGE_BODIES, Faults
from .keys import _USE_DEFAULT, KeySet
from .tokens import DEFAULT_SCOPE, TokenFactory, primary_audience
from .users import User, UserDirectory, service_account

__all__ = ["FETCH_KINDS", "Fetch", "Issuer"]

FETCH_KINDS: Final = ("jwks", "realm", "discovery", "token", "userinfo", "introspect", "health", "admin", "other")
"""What ``fetches()`` and ``fetch_counts()`` count, by endpoint."""

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
_ACCOUNT_ROLES = ["manage-account", "manage-account-links", "view-profile"]
_CLIENT_ERROR = "Invalid client or Invalid client credentials"


@dataclass(frozen=True)
class Fetch:
    """One request the issuer received. ``client`` is ``(source IP, User-Agent)``: the source port changes
    with every new connection, so it would split one backend into many clients."""

    at: float
    kind: str
    method: str
    path: str
    client_ip: str
    user_agent: str
    status: int | None = None

    @property
    def client(self) -> tuple[str, str]:
        return (self.client_ip, self.user_agent)


def _matches(fetch_client: tuple[str, str], client: str | tuple[str, str] | None) -> bool:
    if client is None:
        return True
    if isinstance(client, tuple):
        return fetch_client == tuple(client)
    return client in fetch_client


class Issuer:
    """A fake Keycloak realm over real HTTP on a loopback port, in-process (a threaded server).

    >>> with Issuer(seed=0).start() as issuer:           # doctest: +SKIP
    ...     token = issuer.mint(audience="makrcave-api", roles=("admin",))
    ...     issuer.keys.promote(); issuer.keys.retire()    # rotation, one call each
    ...     issuer.fetches("jwks")                          # how often backends fetched the JWKS

    ``clients`` maps client ids to secrets (``None`` = public client); left out, any client id and secret
    is accepted. ``users`` are extra users for the password grant; faker-made users (``user(i)``) are
    always accepted with their own ``password``. ``public_base_url`` replaces the bound address in every
    URL (e.g. for respx-only use without ``start()``).
    """

    def __init__(
        self,
        realm: str = "makrx",
        seed: int | None = 0,
        algorithm: str = "RS256",
        *,
        default_audience: str | Sequence[str] = "makrx-api",
        clients: Mapping[str, str | None] | None = None,
        users: Iterable[User] = (),
        enc_key: bool = True,
        key_size: int = 2048,
        token_lifetime: int = 300,
        public_base_url: str | None = None,
        key_cache_dir: Path | None = _USE_DEFAULT,
        cors: bool = True,
        warm: bool = True,
    ) -> None:
        self.realm = realm
        self.seed = seed
        self.algorithm = algorithm
        self.clients = dict(clients) if clients is not None else None
        self.cors = cors
        self.warm = warm
        self._key_cache_dir = key_cache_dir
        self._public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.keys = KeySet(
            algorithm, seed=seed, realm=realm, enc_key=enc_key, key_size=key_size, cache_dir=key_cache_dir
        )
        self.users = UserDirectory(seed, realm, users)
        self.tokens = TokenFactory(
            self.keys, users=self.users, default_audience=default_audience, lifetime=token_lifetime
        )
        self.faults = Faults()
        self._http: HttpServer | None = None
        self._up = self._public_base_url is not None  # a respx-only issuer is "up" without a socket
        self._stopped = False
        self._attacker: AttackerServer | None = None
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self._log: deque[Fetch] = deque(maxlen=100_000)
        self._sessions: dict[str, tuple[str, User]] = {}
        self._timers: list[threading.Timer] = []
        if self._public_base_url:
            self.tokens.issuer_url = self.issuer_url

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Issuer:
        """Listen on ``host:port`` (0: a free port) and serve from a daemon thread. Returns self."""
        if self._stopped:
            raise IssuerError("this issuer was stopped", fix="create a new Issuer instead of restarting a stopped one")
        if self._http is not None:
            raise IssuerError(f"the issuer already runs at {self.base_url}", fix="call start() once")
        self._http = HttpServer(self, host, port, name="makrx-issuer")
        self._http.open()
        self._up = True
        self.tokens.issuer_url = self.issuer_url
        if self.warm:
            threading.Thread(target=self._warm_up, name="makrx-issuer-warm", daemon=True).start()
        return self

    def _warm_up(self) -> None:
        try:
            self.keys.prefetch()
            self.users.get(0)
        except Exception:  # pragma: no cover - warming is an optimisation only
            pass

    def stop(self) -> None:
        """Close the port and every connection, stop the attacker server. Idempotent."""
        self._stopped = True
        self._up = False
        for timer in self._timers:
            timer.cancel()
        if self._http is not None:
            self._http.close()
        if self._attacker is not None:
            self._attacker.stop()

    def __enter__(self) -> Issuer:
        return self if self._http is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if (self._http or self._public_base_url) else "not started"
        return f"Issuer(realm={self.realm!r}, {where}, up={self._up})"

    def go_down(self) -> None:
        """Close the port (connection refused) and drop every open connection, as a crashed Keycloak would."""
        if self._http is None and self._public_base_url is None:
            raise IssuerError("go_down() on an issuer that was never started", fix="call start() first")
        self._up = False
        if self._http is not None:
            self._http.close()

    @contextmanager
    def outage(self) -> Iterator[None]:
        """Down for the block (``go_down``), up again after it, also when the block fails."""
        self.go_down()
        try:
            yield
        finally:
            self.come_up()

    def come_up(self) -> None:
        """Listen again on the same port; raises IssuerError if something else took it meanwhile."""
        if self._stopped or (self._http is None and self._public_base_url is None):
            raise IssuerError(
                "come_up() on an issuer that is not started or already stopped",
                fix="call start() first; a stopped issuer cannot come back",
            )
        if self._http is not None:
            self._http.open(retry_for=2.0)
        self._up = True

    @property
    def is_up(self) -> bool:
        return self._up

    def reset(self) -> None:
        """Between tests: clear faults, clock offset and fetch counts, reset keys to the initial state, come up."""
        self.faults.clear()
        self.clock_offset = 0.0
        self.keys.reset()
        self.reset_fetches()
        if not self._stopped and not self._up and (self._http is not None or self._public_base_url):
            self.come_up()
        if self._attacker is not None:
            self._attacker.reset()

    # -- addresses --------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._http.host if self._http else "127.0.0.1"

    @property
    def port(self) -> int:
        if self._http is None:
            raise IssuerError("the issuer has no port before start()", fix="call issuer.start() first")
        return self._http.port

    @property
    def base_url(self) -> str:
        """What a backend gets as ``KEYCLOAK_URL``."""
        if self._public_base_url:
            return self._public_base_url
        if self._http is None:
            raise IssuerError(
                "the issuer has no URL before start()",
                fix="call issuer.start() first, or pass public_base_url= for respx-only use",
            )
        return f"http://{self._http.host}:{self._http.port}"

    @property
    def issuer_url(self) -> str:
        """``KEYCLOAK_ISSUER`` and the ``iss`` claim: ``base_url + "/realms/<realm>"``."""
        return f"{self.base_url}/realms/{self.realm}"

    @property
    def oidc_url(self) -> str:
        return f"{self.issuer_url}/protocol/openid-connect"

    @property
    def jwks_url(self) -> str:
        return f"{self.oidc_url}/certs"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer_url}/.well-known/openid-configuration"

    @property
    def token_url(self) -> str:
        return f"{self.oidc_url}/token"

    @property
    def userinfo_url(self) -> str:
        return f"{self.oidc_url}/userinfo"

    @property
    def admin_url(self) -> str:
        return f"{self.base_url}/admin"

    def backend_env(self, client_id: str | None = None, *, jwks_ttl: float = JWKS_TTL_SECONDS) -> dict[str, str]:
        """The ``KEYCLOAK_*`` environment a conventions-following backend reads (SPEC §2) to trust this
        issuer as ``client_id`` (default: the primary audience of the tokens it mints)."""
        return keycloak_env(
            base_url=self.base_url,
            realm=self.realm,
            issuer_url=self.issuer_url,
            client_id=client_id or primary_audience(self.tokens.default_audience),
            jwks_ttl=jwks_ttl,
        )

    # -- tokens and users -------------------------------------------------------------------------

    @property
    def default_audience(self) -> str | Sequence[str]:
        return self.tokens.default_audience

    @property
    def clock_offset(self) -> float:
        """Seconds added to the issuer's clock (iat/exp of new tokens, userinfo checks): skew tests."""
        return self.tokens.clock_offset

    @clock_offset.setter
    def clock_offset(self, seconds: float) -> None:
        self.tokens.clock_offset = float(seconds)

    def now(self) -> int:
        return self.tokens.now()

    def user(self, seed_or_index: int | str = 0) -> User:
        """A faker-made user (sub, preferred_username, email, name, password), the same for the same seed."""
        return self.users.get(seed_or_index)

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
        """A valid access token signed by the active key; see :meth:`TokenFactory.claims` for the parameters."""
        if not self.tokens.issuer_url:
            self.tokens.issuer_url = self.issuer_url
        return self.tokens.mint(audience, roles, client_roles, user, expires_in, overrides=overrides, **claim_overrides)

    def claims(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The payload ``mint()`` would sign (same parameters)."""
        if not self.tokens.issuer_url:
            self.tokens.issuer_url = self.issuer_url
        return self.tokens.claims(*args, **kwargs)

    def sign(self, claims: Mapping[str, Any], **kwargs: Any) -> str:
        """Sign any payload; see :meth:`TokenFactory.sign` (key, alg, kid, headers)."""
        return self.tokens.sign(claims, **kwargs)

    def verifier(self, audience: str | None = None, *, leeway: float = 0.0) -> StrictVerifier:
        """A strict verifier over the published signing keys: the reference for what a backend must accept."""
        return StrictVerifier(self.keys.verification_keys(), issuer=self.issuer_url, audience=audience, leeway=leeway)

    @property
    def attacker(self) -> AttackerServer:
        """The jku/x5u attacker server, started on first use and stopped with the issuer."""
        with self._lock:
            if self._attacker is None:
                self._attacker = AttackerServer(seed=self.seed, cache_dir=self._key_cache_dir)
                self._attacker.start(self.host if self._http else "127.0.0.1")
            return self._attacker

    # -- fetch accounting -------------------------------------------------------------------------

    def _record(self, fetch: Fetch) -> None:
        with self._lock:
            self._counts[(fetch.kind, fetch.client_ip, fetch.user_agent)] += 1
            self._log.append(fetch)

    def fetches(self, kind: str = "jwks", client: str | tuple[str, str] | None = None) -> int:
        """Requests received for ``kind`` (see ``FETCH_KINDS``) since the last reset, faulted ones included.

        ``client``: None for everyone; a string matches the source IP or the User-Agent; a pair
        ``(ip, user_agent)`` matches one client exactly.
        """
        if kind not in FETCH_KINDS:
            raise IssuerError(f"unknown fetch kind {kind!r}", fix=f"use one of {', '.join(FETCH_KINDS)}")
        return self.fetch_counts(client)[kind]

    def fetch_counts(self, client: str | tuple[str, str] | None = None) -> dict[str, int]:
        """Requests received since the last reset per endpoint kind, every kind of ``FETCH_KINDS`` (0 included),
        in that order; ``client`` as for :meth:`fetches`."""
        counts = dict.fromkeys(FETCH_KINDS, 0)
        with self._lock:
            for (kind, ip, ua), n in self._counts.items():
                if _matches((ip, ua), client):
                    counts[kind] += n
        return counts

    def fetch_clients(self, kind: str = "jwks") -> dict[tuple[str, str], int]:
        """Counts for ``kind`` per ``(source IP, User-Agent)``."""
        with self._lock:
            return {(ip, ua): n for (k, ip, ua), n in self._counts.items() if k == kind}

    def fetch_log(self, kind: str | None = None) -> list[Fetch]:
        """Every recorded request (newest last), optionally only of ``kind``: for timing assertions."""
        with self._lock:
            return [f for f in self._log if kind is None or f.kind == kind]

    def reset_fetches(self) -> None:
        with self._lock:
            self._counts.clear()
            self._log.clear()

    # -- documents --------------------------------------------------------------------------------

    def realm_document(self) -> dict[str, Any]:
        return {
            "realm": self.realm,
            "public_key": self.keys.realm_public_key(),
            "token-service": self.oidc_url,
            "account-service": f"{self.issuer_url}/account",
            "tokens-not-before": 0,
        }

    def discovery_document(self) -> dict[str, Any]:
        oidc = self.oidc_url
        return {
            "issuer": self.issuer_url,
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
            "registration_endpoint": f"{self.issuer_url}/clients-registrations/openid-connect",
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

    # -- HTTP -------------------------------------------------------------------------------------

    def classify(self, path: str) -> str:
        """The fetch kind of a request path."""
        prefix = f"/realms/{self.realm}"
        if path == prefix or path == prefix + "/":
            return "realm"
        if path.startswith(prefix + "/"):
            rest = path[len(prefix) :]
            return {
                "/.well-known/openid-configuration": "discovery",
                "/protocol/openid-connect/certs": "jwks",
                "/protocol/openid-connect/token": "token",
                "/protocol/openid-connect/token/introspect": "introspect",
                "/protocol/openid-connect/userinfo": "userinfo",
            }.get(rest, "other")
        if path in ("/health", "/health/ready", "/health/live", "/health/started"):
            return "health"
        if path == "/admin" or path.startswith("/admin/"):
            return "admin"
        return "other"

    def handle(self, request: Request) -> Reply | None:
        """Answer one request (transport-independent: used by the socket server and by the respx route)."""
        kind = self.classify(request.path)
        self._record(
            Fetch(time.time(), kind, request.method, request.target, request.client_ip, request.header("user-agent"))
        )
        origin = request.header("origin")
        if request.method == "OPTIONS" and origin and self.cors:
            return self._with_cors(Reply(204, b"", {}), request, preflight=True)
        if kind in FAULTABLE:
            reply = self._apply_fault(kind)
            if reply is not None:
                return self._with_cors(reply, request) if reply.status else None
        reply = self._route(kind, request)
        return self._with_cors(reply, request)

    def _apply_fault(self, kind: str) -> Reply | None:
        """A faulted reply, ``Reply(0)`` meaning "drop the connection" (went down while delaying), or None."""
        fault = self.faults.get(kind)
        if fault is None:
            return None
        if fault.delay:
            generation = self.faults.generation
            sleep_unless(fault.delay, lambda: self.faults.generation != generation or not self._up)
            if not self._up:
                return Reply(0)
            fault = self.faults.get(kind)
            if fault is None:
                return None
        if fault.status is not None:
            return json_reply(
                fault.status,
                {"error": "injected_fault", "error_description": f"makrx issuer: {kind} fault {fault.status}"},
                {"Cache-Control": "no-cache"},
            )
        if fault.garbage is not None:
            if isinstance(fault.garbage, bytes):
                return Reply(200, fault.garbage, {"Content-Type": "application/json"})
            content_type, body = GARBAGE_BODIES[fault.garbage]
            return Reply(200, body, {"Content-Type": content_type})
        return None

    def _with_cors(self, reply: Reply, request: Request, *, preflight: bool = False) -> Reply:
        origin = request.header("origin")
        if self.cors and origin:
            reply.headers.update(
                {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}
            )
            if preflight:
                reply.headers.update(
                    {
                        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                        "Access-Control-Allow-Headers": request.header("access-control-request-headers")
                        or "Authorization, Content-Type",
                        "Access-Control-Max-Age": "3600",
                    }
                )
        return reply

    def _route(self, kind: str, request: Request) -> Reply:
        method = request.method
        if kind in ("realm", "discovery", "jwks", "health") and method not in ("GET", "HEAD"):
            return json_reply(405, {"error": "HTTP 405 Method Not Allowed"}, {"Allow": "GET, HEAD"})
        if kind == "realm":
            return json_reply(200, self.realm_document())
        if kind == "discovery":
            return json_reply(200, self.discovery_document())
        if kind == "jwks":
            return Reply(200, self.keys.jwks_json(), {"Content-Type": "application/json", "Cache-Control": "no-cache"})
        if kind == "health":
            return json_reply(200, {"status": "UP", "checks": []})
        if kind == "token":
            if method != "POST":
                return json_reply(405, {"error": "HTTP 405 Method Not Allowed"}, {"Allow": "POST"})
            return self._token_endpoint(request)
        if kind == "userinfo":
            return self._userinfo(request)
        if kind == "introspect":
            return self._introspect(request)
        if kind == "admin":
            return self._admin(request)
        if request.path.startswith("/realms/"):
            realm = request.path.split("/")[2]
            if realm != self.realm:
                return json_reply(404, {"error": "Realm does not exist", "error_description": "Realm does not exist"})
        if request.path == "/":
            return json_reply(
                200, {"issuer": self.issuer_url, "discovery": self.discovery_url, "admin": self.admin_url}
            )
        return json_reply(404, {"error": "Unable to find matching target resource method"})

    # -- token endpoint ---------------------------------------------------------------------------

    @staticmethod
    def _oauth_error(status: int, error: str, description: str) -> Reply:
        return json_reply(
            status,
            {"error": error, "error_description": description},
            {"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    def _authenticate_client(self, request: Request, form: Mapping[str, str]) -> tuple[str, str | None] | Reply:
        """``(client_id, expected secret or None)`` of an authenticated client, or the error reply."""
        client_id, secret = form.get("client_id"), form.get("client_secret")
        auth = request.header("authorization")
        if auth[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return self._oauth_error(401, "invalid_client", _CLIENT_ERROR)
            raw_id, _, raw_secret = decoded.partition(":")
            client_id, secret = unquote(raw_id), unquote(raw_secret)
        if not client_id:
            return self._oauth_error(401, "invalid_client", "Missing client_id parameter")
        if self.clients is None:
            return client_id, secret or None
        if client_id not in self.clients:
            return self._oauth_error(401, "invalid_client", _CLIENT_ERROR)
        expected = self.clients[client_id]
        if expected is not None and not hmac.compare_digest((secret or "").encode(), expected.encode()):
            return self._oauth_error(401, "unauthorized_client", _CLIENT_ERROR)
        return client_id, expected

    def _token_endpoint(self, request: Request) -> Reply:
        if "application/x-www-form-urlencoded" not in request.header(
            "content-type", "application/x-www-form-urlencoded"
        ):
            return self._oauth_error(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
        form = request.form()
        grant = form.get("grant_type")
        if not grant:
            return self._oauth_error(400, "invalid_request", "Missing form parameter: grant_type")
        authenticated = self._authenticate_client(request, form)
        if isinstance(authenticated, Reply):
            return authenticated
        client_id, expected_secret = authenticated
        scope = form.get("scope") or DEFAULT_SCOPE
        if grant == "client_credentials":
            if self.clients is not None and expected_secret is None:
                return self._oauth_error(
                    401, "unauthorized_client", "Public client not allowed to retrieve service account"
                )
            account = service_account(client_id, self.realm)
            return self._token_set(client_id, account, scope, form, request, service=True)
        if grant == "password":
            user = self.users.find_login(form.get("username", ""))
            if user is None or not hmac.compare_digest(user.password.encode(), form.get("password", "").encode()):
                return self._oauth_error(401, "invalid_grant", "Invalid user credentials")
            return self._token_set(client_id, user, scope, form, request)
        if grant == "refresh_token":
            return self._refresh(client_id, form, request)
        return self._oauth_error(400, "unsupported_grant_type", "Unsupported grant_type")

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
        session = session or str(uuid.uuid4())
        requested = form.get("audience")
        base = (
            requested.split()
            if requested
            else ([self.default_audience] if isinstance(self.default_audience, str) else list(self.default_audience))
        )
        audience = list(dict.fromkeys([*base, "account"]))
        roles = [f"default-roles-{self.realm}", "offline_access", "uma_authorization", *user.roles]
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
        access = self.mint(audience, roles, client_roles, user, overrides=extra)
        refresh = self.tokens.refresh_token(client_id, user=user, session=session, scope=scope)
        id_token = self.tokens.id_token(
            client_id, user=user, access_token=access, session=session, nonce=form.get("nonce")
        )
        with self._lock:
            self._sessions[session] = (client_id, user)
        body = {
            "access_token": access,
            "expires_in": self.tokens.lifetime,
            "refresh_expires_in": self.tokens.refresh_lifetime,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "id_token": id_token,
            "not-before-policy": 0,
            "session_state": session,
            "scope": scope,
        }
        return json_reply(200, body, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _refresh(self, client_id: str, form: Mapping[str, str], request: Request) -> Reply:
        invalid = self._oauth_error(400, "invalid_grant", "Invalid refresh token")
        token = form.get("refresh_token", "")
        try:
            h, p, s = token.split(".")
            expected = hmac.new(self.tokens.hmac_secret, f"{h}.{p}".encode(), "sha512").digest()
            if not hmac.compare_digest(expected, b64url_decode(s)):
                return invalid
            claims = json.loads(b64url_decode(p))
        except (ValueError, binascii.Error):
            return invalid
        if claims.get("typ") != "Refresh" or claims.get("exp", 0) <= self.now():
            return invalid
        if claims.get("azp") != client_id:
            return self._oauth_error(400, "invalid_grant", "Token client and authorized client don't match")
        with self._lock:
            found = self._sessions.get(claims.get("sid", ""))
        if found is None:
            return self._oauth_error(400, "invalid_grant", "Session not active")
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

    def _bearer(self, request: Request) -> str | None:
        auth = request.header("authorization")
        if auth[:7].lower() == "bearer " and auth[7:].strip():
            return auth[7:].strip()
        if request.method == "POST":
            return request.form().get("access_token") or None
        return None

    def _userinfo(self, request: Request) -> Reply:
        if request.method not in ("GET", "POST", "HEAD"):
            return json_reply(405, {"error": "HTTP 405 Method Not Allowed"}, {"Allow": "GET, POST"})
        token = self._bearer(request)
        challenge = f'Bearer realm="{self.realm}", error="invalid_token", error_description="Token verification failed"'
        if token is None:
            return json_reply(
                401,
                {"error": "invalid_request", "error_description": "Token not provided"},
                {"WWW-Authenticate": f'Bearer realm="{self.realm}"'},
            )
        try:
            claims = self.verifier().verify(token, now=self.now())
        except TokenRejected:
            return json_reply(
                401,
                {"error": "invalid_token", "error_description": "Token verification failed"},
                {"WWW-Authenticate": challenge},
            )
        keys = ("sub", "email_verified", "name", "preferred_username", "given_name", "family_name", "email")
        return json_reply(200, {k: claims[k] for k in keys if k in claims})

    def _introspect(self, request: Request) -> Reply:
        if request.method != "POST":
            return json_reply(405, {"error": "HTTP 405 Method Not Allowed"}, {"Allow": "POST"})
        form = request.form()
        authenticated = self._authenticate_client(request, form)
        if isinstance(authenticated, Reply):
            return authenticated
        if self.clients is not None and authenticated[1] is None:  # Keycloak lets only confidential clients ask
            return self._oauth_error(403, "invalid_request", "Client not allowed.")
        verifier = StrictVerifier(
            self.keys.verification_keys(), issuer=self.issuer_url, audience=None, require_typ=None
        )
        try:
            claims = verifier.verify(form.get("token", ""), now=self.now())
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

    # -- admin ------------------------------------------------------------------------------------

    def admin_state(self) -> dict[str, Any]:
        return {
            "keys": self.keys.snapshot(),
            "faults": self.faults.active(),
            "clock_offset": self.clock_offset,
            "fetches": self.fetch_counts(),
        }

    def _admin(self, request: Request) -> Reply:
        """``GET /admin`` (state and help), ``POST /admin/tokens``, ``POST /admin/keys/next|promote|retire|reset``,
        ``POST/DELETE /admin/faults``, ``POST /admin/clock``, ``POST /admin/fetches/reset``, ``POST /admin/down``,
        ``POST /admin/reset``."""
        path, method = request.path.rstrip("/"), request.method
        try:
            body = request.json() if method == "POST" else {}
        except ValueError:
            return json_reply(400, {"error": "body is not JSON"})
        if not isinstance(body, dict):
            return json_reply(400, {"error": "body must be a JSON object"})
        try:
            if path in ("/admin", "/admin/state") and method == "GET":
                return json_reply(200, {**self.admin_state(), "endpoints": _ADMIN_HELP})
            if path == "/admin/tokens" and method == "POST":
                return self._admin_token(body)
            if path == "/admin/keys" and method == "GET":
                return json_reply(200, {"keys": self.keys.snapshot()})
            if path == "/admin/keys/next" and method == "POST":
                key = self.keys.publish_next()
                return json_reply(200, {"kid": key.kid, "keys": self.keys.snapshot()})
            if path == "/admin/keys/promote" and method == "POST":
                key = self.keys.promote()
                return json_reply(200, {"kid": key.kid, "keys": self.keys.snapshot()})
            if path == "/admin/keys/retire" and method == "POST":
                retired = self.keys.retire(body.get("kid"))
                return json_reply(200, {"retired": [k.kid for k in retired], "keys": self.keys.snapshot()})
            if path == "/admin/keys/reset" and method == "POST":
                self.keys.reset()
                return json_reply(200, {"keys": self.keys.snapshot()})
            if path == "/admin/faults" and method == "GET":
                return json_reply(200, {"faults": self.faults.active()})
            if path == "/admin/faults" and method == "POST":
                kind = body.get("kind", "jwks")
                if "status" in body:
                    self.faults.status(kind, int(body["status"]))
                if "delay" in body:
                    self.faults.delay(kind, float(body["delay"]))
                if "garbage" in body:
                    garbage = body["garbage"]
                    self.faults.garbage(kind, "truncated" if garbage is True else str(garbage))
                return json_reply(200, {"faults": self.faults.active()})
            if (path == "/admin/faults" and method == "DELETE") or (path == "/admin/faults/clear" and method == "POST"):
                self.faults.clear(body.get("kind") or next(iter(request.query.get("kind", [])), None))
                return json_reply(200, {"faults": self.faults.active()})
            if path == "/admin/clock" and method == "POST":
                self.clock_offset = float(body.get("offset", 0))
                return json_reply(200, {"clock_offset": self.clock_offset})
            if path == "/admin/fetches" and method == "GET":
                kind = next(iter(request.query.get("kind", [])), None)
                if kind is not None and kind not in FETCH_KINDS:
                    return json_reply(400, {"error": f"unknown fetch kind {kind!r}", "fix": f"one of {FETCH_KINDS}"})
                return json_reply(
                    200,
                    {
                        "fetches": self.fetch_counts(),
                        "now": time.time(),  # "at" minus "now" is an age that needs no synchronised clocks
                        "clients": [
                            {"kind": f.kind, "ip": f.client_ip, "user_agent": f.user_agent, "at": f.at}
                            for f in self.fetch_log(kind)[-200:]
                        ],
                    },
                )
            if path == "/admin/fetches/reset" and method == "POST":
                self.reset_fetches()
                return json_reply(200, {"fetches": {}})
            if path == "/admin/down" and method == "POST":
                seconds = float(body.get("seconds", 5))
                self._down_for(seconds)
                return json_reply(202, {"down_for": seconds}, {"Connection": "close"})
            if path == "/admin/reset" and method == "POST":
                self.reset()
                return json_reply(200, self.admin_state())
        except IssuerError as exc:
            return json_reply(409, {"error": exc.message, "fix": exc.fix})
        except (TypeError, ValueError) as exc:
            return json_reply(400, {"error": str(exc)})
        return json_reply(404, {"error": f"no admin endpoint {method} {path}", "endpoints": _ADMIN_HELP})

    def _admin_token(self, body: Mapping[str, Any]) -> Reply:
        """``POST /admin/tokens {"case": NAME, "audience": AUD}``: the case's token, prepared and signed here, so
        another process gets tokens of this issuer's keys; without a case, a valid token. ``keys_changed`` says
        the case changed the key state (``POST /admin/keys/reset`` restores it; the token needs that state)."""
        name, audience = body.get("case"), body.get("audience")
        if not isinstance(name, str | None) or not isinstance(audience, str | None):
            return json_reply(400, {"error": "case and audience must be strings"})
        default = self.default_audience
        aud = audience or primary_audience(default)
        issued: dict[str, Any] = {"issuer": self.issuer_url, "audience": aud}
        if not name:
            return json_reply(200, {**issued, "case": None, "token": self.mint(audience=aud)})
        try:
            case = catalogue.get(name)
        except IssuerError as exc:
            return json_reply(404, {"error": exc.message, "fix": exc.fix})
        if not case.applies(self):
            return json_reply(409, {"error": f"case {name!r} does not apply to a {self.algorithm} issuer"})
        before = self.keys.snapshot()
        case.prepare(self)
        token = case.build(self, aud)
        return json_reply(
            200,
            {
                **issued,
                "case": case.name,
                "token": token,
                "description": case.description,
                "level": case.level,
                "verdict": case.verdict.name,
                "statuses": sorted(case.verdict.statuses),
                "expected": str(case.verdict),
                "hint": case.hint,
                "keys_changed": self.keys.snapshot() != before,
            },
        )

    def _down_for(self, seconds: float) -> None:
        """Go down shortly (after the admin reply is written), come back up after ``seconds``."""
        down = threading.Timer(0.1, self.go_down)
        up = threading.Timer(0.1 + seconds, self._come_up_quietly)
        for timer in (down, up):
            timer.daemon = True
            self._timers.append(timer)
            timer.start()

    def _come_up_quietly(self) -> None:
        if not self._stopped:
            try:
                self.come_up()
            except IssuerError:  # pragma: no cover - port taken meanwhile
                pass


_ADMIN_HELP = {
    "GET /admin": "state: keys, faults, clock offset, fetch counts",
    "POST /admin/tokens": 'body {"case": NAME, "audience": AUD}: that bad-token case\'s token, its keys prepared '
    'here (see "keys_changed"), with level, verdict and hint; without a case, a valid token',
    "POST /admin/keys/next": "publish the next key (not yet signing)",
    "POST /admin/keys/promote": "next key becomes active, the old one passive (still published)",
    "POST /admin/keys/retire": 'unpublish passive keys (body {"kid": ...} for one)',
    "POST /admin/keys/reset": "keys back to the initial state (one active key): undoes a case's or a rotation's keys",
    "POST /admin/faults": 'body {"kind": "jwks", "status": 500 | "delay": 5 | "garbage": "truncated"}',
    "DELETE /admin/faults": "clear all faults (?kind=jwks for one)",
    "POST /admin/clock": 'body {"offset": seconds}',
    "GET /admin/fetches": "fetch counts per endpoint kind, the last 200 requests with their time (?kind=jwks)",
    "POST /admin/fetches/reset": "zero the fetch counts",
    "POST /admin/down": 'body {"seconds": 5}: close the port, reopen after that long',
    "POST /admin/reset": "clear faults, clock, counts; keys back to the initial state",
}
