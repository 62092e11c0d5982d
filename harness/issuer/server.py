"""The fake Keycloak: an :class:`Issuer` serves one realm over HTTP and is driven from tests; its lifecycle,
addresses, tokens and fetch counts. The endpoints live in ``dispatch`` (routing, CORS, faults), ``realm``
(documents), ``oidc`` (token, userinfo, introspection) and ``admin`` (the admin API)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from makrx_contracts.harness.errors import IssuerError

from . import realm as documents
from ._http import HttpServer, Reply, Request
from ._jose import StrictVerifier
from .attacker import AttackerServer
from .backend_env import JWKS_TTL_SECONDS, keycloak_env
from .dispatch import Dispatcher, classify
from .faults import Faults
from .fetches import FETCH_KINDS, Fetch, FetchLog
from .keys import KeySet
from .tokens import TokenFactory, primary_audience
from .users import User, UserDirectory

__all__ = ["FETCH_KINDS", "Fetch", "Issuer"]


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
        cors: bool = True,
        warm: bool = True,
    ) -> None:
        self.realm = realm
        self.seed = seed
        self.algorithm = algorithm
        self.clients = dict(clients) if clients is not None else None
        self.cors = cors
        self.warm = warm
        self._public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.keys = KeySet(algorithm, seed=seed, realm=realm, enc_key=enc_key, key_size=key_size)
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
        self._requests = FetchLog()
        self._dispatcher = Dispatcher(self)
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
                self._attacker = AttackerServer(seed=self.seed)
                self._attacker.start(self.host if self._http else "127.0.0.1")
            return self._attacker

    # -- fetch accounting -------------------------------------------------------------------------

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
        return self._requests.counts(client)

    def fetch_clients(self, kind: str = "jwks") -> dict[tuple[str, str], int]:
        """Counts for ``kind`` per ``(source IP, User-Agent)``."""
        return self._requests.clients(kind)

    def fetch_log(self, kind: str | None = None) -> list[Fetch]:
        """Every recorded request (newest last), optionally only of ``kind``: for timing assertions."""
        return self._requests.requests(kind)

    def reset_fetches(self) -> None:
        """Zero the counts and empty the request log."""
        self._requests.clear()

    # -- HTTP -------------------------------------------------------------------------------------

    def realm_document(self) -> dict[str, Any]:
        """What ``GET /realms/<realm>`` serves now (its ``public_key`` is the active key's)."""
        return documents.realm_document(self.realm, self.issuer_url, self.keys.realm_public_key())

    def discovery_document(self) -> dict[str, Any]:
        """What ``GET /realms/<realm>/.well-known/openid-configuration`` serves."""
        return documents.discovery_document(self.issuer_url)

    def admin_state(self) -> dict[str, Any]:
        """Keys, faults, clock offset and fetch counts, as ``GET /admin`` reports them."""
        return {
            "keys": self.keys.snapshot(),
            "faults": self.faults.active(),
            "clock_offset": self.clock_offset,
            "fetches": self.fetch_counts(),
        }

    def classify(self, path: str) -> str:
        """The fetch kind of a request path."""
        return classify(path, self.realm)

    def handle(self, request: Request) -> Reply | None:
        """Answer one request (transport-independent: used by the socket server and by the respx route)."""
        kind = self.classify(request.path)
        self._requests.record(
            Fetch(time.time(), kind, request.method, request.target, request.client_ip, request.header("user-agent"))
        )
        return self._dispatcher.answer(kind, request)

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
