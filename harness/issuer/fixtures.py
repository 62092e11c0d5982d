"""Pytest fixture factories for the mock issuer (pytest-postgresql style) and the default fixtures built from them.

In a conftest (or ``harness.plugin``)::

    from makrx_contracts.harness.issuer.fixtures import makrx_issuer, make_token, bad_token          # the defaults
    from makrx_contracts.harness.issuer.fixtures import makrx_issuer_factory, make_token_factory

    es_issuer = makrx_issuer_factory(algorithm="ES256", default_audience="makrcave-api")
    es_token = make_token_factory("es_issuer")

``makrx_issuer`` is session-scoped (one server for the run); ``makrx_issuer_clean`` is the same server,
reset after each test (faults, clock offset, keys, fetch counts). ``make_token(**kwargs)`` is
``issuer.mint`` with the fixture's audience; ``bad_token("alg_none_trailing_dot")`` builds a catalogue
case (see :mod:`harness.issuer.catalogue`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import pytest

from .catalogue import BadTokens
from .server import Issuer

__all__ = [
    "TokenMaker",
    "bad_token",
    "bad_token_factory",
    "make_token",
    "make_token_factory",
    "makrx_issuer",
    "makrx_issuer_clean",
    "makrx_issuer_clean_factory",
    "makrx_issuer_factory",
]


def makrx_issuer_factory(
    *,
    realm: str = "makrx",
    seed: int | None = 0,
    algorithm: str = "RS256",
    host: str = "127.0.0.1",
    port: int = 0,
    scope: Literal["session", "package", "module", "class", "function"] = "session",
    **issuer_kwargs: Any,
) -> Callable[..., Iterator[Issuer]]:
    """A fixture (``scope``, default session) that starts an :class:`Issuer` and stops it afterwards.

    Every keyword of :class:`Issuer` is accepted (``default_audience``, ``clients``, ``users``, ``enc_key``,
    ``token_lifetime``, ...); ``host``/``port`` are where it listens (port 0: a free one).
    """

    @pytest.fixture(scope=scope)
    def issuer_fixture() -> Iterator[Issuer]:
        issuer = Issuer(realm, seed, algorithm, **issuer_kwargs).start(host, port)
        try:
            yield issuer
        finally:
            issuer.stop()

    issuer_fixture.__doc__ = f"A started fake Keycloak (realm {realm!r}, {algorithm}, seed {seed}), scope {scope}."
    return issuer_fixture


def makrx_issuer_clean_factory(issuer_fixture_name: str = "makrx_issuer") -> Callable[..., Iterator[Issuer]]:
    """A function-scoped fixture: the named issuer, reset after each test (faults, clock, keys, fetch counts)."""

    @pytest.fixture
    def clean_fixture(request: pytest.FixtureRequest) -> Iterator[Issuer]:
        issuer: Issuer = request.getfixturevalue(issuer_fixture_name)
        issuer.reset()
        yield issuer
        issuer.reset()

    clean_fixture.__doc__ = f"{issuer_fixture_name}, reset before and after the test."
    return clean_fixture


class TokenMaker:
    """``make_token(roles=("admin",), expires_in=-10, ...)``: ``issuer.mint`` with a default audience and
    default realm roles (the issuer's own when None)."""

    def __init__(self, issuer: Issuer, audience: str | None = None, roles: Sequence[str] | None = None) -> None:
        self.issuer = issuer
        self.audience = audience
        self.roles = roles

    def __call__(self, **kwargs: Any) -> str:
        return self.issuer.mint(**{"audience": self.audience, "roles": self.roles, **kwargs})

    def claims(self, **kwargs: Any) -> dict[str, Any]:
        return self.issuer.claims(**{"audience": self.audience, "roles": self.roles, **kwargs})


def make_token_factory(
    issuer_fixture_name: str = "makrx_issuer", audience: str | None = None
) -> Callable[..., TokenMaker]:
    """A function-scoped fixture returning a :class:`TokenMaker` bound to the named issuer fixture."""

    @pytest.fixture
    def token_fixture(request: pytest.FixtureRequest) -> TokenMaker:
        return TokenMaker(request.getfixturevalue(issuer_fixture_name), audience)

    token_fixture.__doc__ = f"Mint valid tokens from {issuer_fixture_name}: make_token(roles=..., user=..., ...)."
    return token_fixture


def bad_token_factory(
    issuer_fixture_name: str = "makrx_issuer", audience: str | None = None
) -> Callable[..., BadTokens]:
    """A function-scoped fixture returning the bad-token catalogue accessor bound to the named issuer."""

    @pytest.fixture
    def bad_token_fixture(request: pytest.FixtureRequest) -> BadTokens:
        return BadTokens(request.getfixturevalue(issuer_fixture_name), audience)

    bad_token_fixture.__doc__ = f"Catalogue tokens from {issuer_fixture_name}: bad_token('expired'), bad_token.cases."
    return bad_token_fixture


makrx_issuer = makrx_issuer_factory()
makrx_issuer_clean = makrx_issuer_clean_factory()
make_token = make_token_factory()
bad_token = bad_token_factory()
