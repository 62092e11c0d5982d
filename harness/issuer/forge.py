"""Hand-made tokens for one issuer and audience: every bad-token case and every mutation is forged here.

The header shape and the claims come from their owners in :mod:`.tokens` and the compact serialization from
:mod:`._jose`, so a forged token differs from a minted one only where its case says.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._jose import b64url, compact
from .tokens import jws_header, primary_audience

if TYPE_CHECKING:
    from .keys import Key
    from .server import Issuer

__all__ = ["Forge", "members_segment"]

_dumps = json.JSONEncoder(separators=(",", ":")).encode

Segment = Mapping[str, Any] | str
"""A JSON object, or a raw base64url segment used verbatim (for malformed headers and payloads)."""


def members_segment(members: Iterable[tuple[str, Any]]) -> str:
    """A JSON object segment with ``members`` in order, repeated names kept (which a dict cannot hold):
    the bytes json_segment would give for the same members without repeats."""
    body = ",".join(f"{_dumps(name)}:{_dumps(value)}" for name, value in members)
    return b64url(f"{{{body}}}".encode())


class Forge:
    """Tokens for ``issuer``, ``audience`` (its primary one) and ``roles`` (the realm roles of a plain token,
    the issuer's default when None) with any header, claims, alg or key.

    ``header(**members)`` starts from the active key's Keycloak header and ``claims(**overrides)`` from a
    fresh access-token payload; an override of ``None`` removes a member (merge a dict to set JSON null).
    ``sign()`` with no arguments is a valid access token.
    """

    def __init__(
        self, issuer: Issuer, audience: str | Sequence[str] | None = None, roles: Sequence[str] | None = None
    ) -> None:
        self.issuer = issuer
        self.audience = primary_audience(issuer.default_audience if audience is None else audience)
        self.roles = roles
        self.key: Key = issuer.keys.active
        self.now = issuer.now()

    def header(self, **members: Any) -> dict[str, Any]:
        return jws_header(self.key.alg, self.key.kid, **members)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        return self.issuer.claims(**{"audience": self.audience, "roles": self.roles, **overrides})

    def sign(
        self, *, header: Segment | None = None, claims: Segment | None = None, alg: str | None = None, key: Any = None
    ) -> str:
        """``header.payload.signature``; ``alg`` defaults to the header's (else the active key's), ``key`` to
        the active key (any private key, or secret bytes for HS*)."""
        header = self.header() if header is None else header
        alg = alg or (header.get("alg") if isinstance(header, Mapping) else None) or self.key.alg
        return compact(
            header,
            self.claims() if claims is None else claims,
            alg,
            self.key.private_key if key is None else key,
        )

    def unsigned(self, *, header: Segment | None = None, claims: Segment | None = None) -> str:
        """``header.payload`` with no signature part."""
        return self.sign(header=header, claims=claims, alg="none")[:-1]  # alg none signs nothing: "h.p."

    def segments(self, *, claims: Segment | None = None) -> tuple[str, str, str]:
        """The three segments of a token signed by the active key (a valid one unless ``claims`` say otherwise)."""
        h, p, s = self.sign(claims=claims).split(".")
        return h, p, s
