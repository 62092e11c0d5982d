"""The bad-token catalogue: each token a backend must refuse (and one control it must accept) as a named case.

Every :class:`Case` states its verdict (what a correct server answers), a hint (what a backend must do
to get it right), and whether plain ``pyjwt.decode(token, key_by_kid, algorithms=[alg], audience=...,
issuer=...)`` already refuses it. ``case.build(issuer, audience)`` makes the token against a running
:class:`~harness.issuer.Issuer`; cases that need a particular key state do it in ``case.prepare(issuer)``
(the ``bad_token`` fixture calls both). The jku/x5u cases point at ``issuer.attacker``, a server that
records every request: ``issuer.attacker.was_fetched()`` must stay False.

Levels follow harm. A case is MUST (contract AUTH-BAD-TOKEN) when accepting it lets in a token the issuer
did not mean for this API: forged or confused algorithms, expired or not yet valid, wrong iss/aud/typ, a
retired key, key-URL and embedded-key headers, malformed or oversized tokens. It is SHOULD
(``issuer_only``, contract AUTH-STRICT-TOKEN) when only the trusted issuer could have produced the oddity:
signed by the realm's own active key, unexpired and meant for us, with a claim or header a strict parser
refuses (a numeric-string or missing exp, a future iat, an unknown crit, a kid the realm never published)
— what python-jose and hand-rolled verifiers let through without opening the API to anyone else.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from makrx_contracts.harness.errors import IssuerError

from ._jose import b64url, b64url_decode, json_segment
from .attacker import AttackerServer
from .forge import Forge, members_segment

if TYPE_CHECKING:
    from .keys import Key
    from .server import Issuer

__all__ = [
    "ACCEPT",
    "CATALOGUE",
    "LEEWAY",
    "REJECT",
    "REJECT_OVERSIZED",
    "AttackerServer",
    "BadTokens",
    "Case",
    "Verdict",
    "get",
    "names",
]

LEEWAY: Final = 60
"""The most clock-skew leeway a backend may allow (seconds); "beyond leeway" cases sit just past it."""


@dataclass(frozen=True)
class Verdict:
    """What a correct server answers: a name, the acceptable statuses, and the sentence a report prints."""

    name: str
    statuses: frozenset[int]
    text: str

    def allows(self, status: int) -> bool:
        return status in self.statuses

    def __str__(self) -> str:
        return self.text


REJECT: Final = Verdict("reject", frozenset({401}), "401 Unauthorized (never 2xx, never 403, never 5xx)")
ACCEPT: Final = Verdict("accept", frozenset(range(200, 300)), "2xx: the token is valid")
REJECT_OVERSIZED: Final = Verdict(
    "reject-oversized",
    frozenset({400, 401, 413, 431}),
    "401, or 400/413/431 from the server's header size limit (never 2xx, never 5xx, no hang)",
)

_ALL_ALGS: Final = frozenset({"RS256", "ES256"})


@dataclass(frozen=True)
class Case:
    """One catalogue entry. ``build(issuer, audience)`` returns the token; ``verdict`` is the correct answer."""

    name: str
    description: str
    verdict: Verdict
    hint: str
    pyjwt_rejects: bool
    tags: frozenset[str] = frozenset()
    algorithms: frozenset[str] = _ALL_ALGS
    issuer_only: bool = False
    builder: Callable[..., str] = field(repr=False, compare=False, default=lambda forge: "")
    preparer: Callable[[Issuer], None] | None = field(repr=False, compare=False, default=None)

    @property
    def level(self) -> str:
        """MUST when accepting lets in a token the issuer did not mean for this API; SHOULD when only the
        trusted issuer could have produced the oddity (signed by its own key, not expired, meant for us)."""
        return "SHOULD" if self.issuer_only else "MUST"

    def applies(self, issuer: Issuer) -> bool:
        """False when the case makes no sense for the issuer's algorithm (e.g. PS256 with an EC key)."""
        return issuer.algorithm in self.algorithms

    def prepare(self, issuer: Issuer) -> None:
        """Bring the issuer into the key state the case needs (e.g. two published signing keys)."""
        if self.preparer is not None:
            self.preparer(issuer)

    def build(
        self, issuer: Issuer, audience: str | None = None, roles: Sequence[str] | None = None, **options: Any
    ) -> str:
        """The token for this case, against ``issuer``, the backend's ``audience`` (its client id) and the
        realm ``roles`` of its plain tokens; ``options`` go to the case's builder (``oversized_16kb`` takes
        ``size``)."""
        if not self.applies(issuer):
            raise IssuerError(
                f"bad-token case {self.name!r} does not apply to a {issuer.algorithm} issuer",
                fix="filter with case.applies(issuer) or BadTokens.cases",
            )
        return self.builder(Forge(issuer, audience, roles), **options)


_REGISTRY: dict[str, Case] = {}


def _case(
    name: str,
    description: str,
    *,
    hint: str,
    pyjwt_rejects: bool = True,
    verdict: Verdict = REJECT,
    tags: tuple[str, ...] = (),
    algorithms: frozenset[str] = _ALL_ALGS,
    prepare: Callable[[Issuer], None] | None = None,
    issuer_only: bool = False,
) -> Callable[[Callable[..., str]], Callable[..., str]]:
    def register(builder: Callable[..., str]) -> Callable[..., str]:
        if name in _REGISTRY:
            raise ValueError(f"duplicate catalogue case {name}")
        _REGISTRY[name] = Case(
            name, description, verdict, hint, pyjwt_rejects, frozenset(tags), algorithms, issuer_only, builder, prepare
        )
        return builder

    return register


def _two_signing_keys(issuer: Issuer) -> None:
    if len(issuer.keys.signing_keys) < 2:
        issuer.keys.publish_next()


def _flip(signature_segment: str) -> str:
    raw = bytearray(b64url_decode(signature_segment))
    raw[len(raw) // 2] ^= 0x01
    return b64url(bytes(raw))


# ---------------------------------------------------------------------------------------------- time


@_case("expired", "exp one hour in the past.", hint="verify exp", tags=("time",))
def _expired(forge: Forge) -> str:
    return forge.sign(claims=forge.claims(iat=forge.now - 3900, exp=forge.now - 3600))


@_case(
    "exp_beyond_leeway",
    f"exp {LEEWAY + 5} s in the past: just beyond the largest sane leeway ({LEEWAY} s).",
    hint=f"keep the exp leeway at or below {LEEWAY} s",
    tags=("time",),
)
def _exp_beyond_leeway(forge: Forge) -> str:
    return forge.sign(claims=forge.claims(iat=forge.now - 600, exp=forge.now - LEEWAY - 5))


@_case(
    "exp_missing",
    "No exp claim at all: a token that never expires.",
    issuer_only=True,
    hint="require exp (pyjwt: options={'require': ['exp', 'iat', 'iss', 'aud']})",
    pyjwt_rejects=False,
    tags=("time", "claims"),
)
def _exp_missing(forge: Forge) -> str:
    return forge.sign(claims=forge.claims(exp=None))


@_case(
    "exp_string",
    'exp as a JSON string ("<far future>") instead of a number.',
    issuer_only=True,
    hint="check claim types: NumericDate is a JSON number (pyjwt int()-converts numeric strings)",
    pyjwt_rejects=False,
    tags=("time", "types"),
)
def _exp_string(forge: Forge) -> str:
    return forge.sign(claims=forge.claims(exp=str(forge.now + 3600)))


@_case("exp_null", "exp is JSON null.", issuer_only=True, hint="check claim types", tags=("time", "types"))
def _exp_null(forge: Forge) -> str:
    return forge.sign(claims={**forge.claims(), "exp": None})


@_case("nbf_future", "nbf one hour in the future: not valid yet.", hint="verify nbf", tags=("time",))
def _nbf_future(forge: Forge) -> str:
    return forge.sign(claims=forge.claims(nbf=forge.now + 3600, exp=forge.now + 7200))


@_case(
    "nbf_beyond_leeway",
    f"nbf {LEEWAY + 5} s in the future: not valid yet, just beyond the largest sane leeway ({LEEWAY} s).",
    hint=f"keep the nbf leeway at or below {LEEWAY} s",
    tags=("time",),
)
def _nbf_beyond_leeway(forge: Forge) -> str:
    return forge.sign(claims=forge.claims(nbf=forge.now + LEEWAY + 5, exp=forge.now + 3600))


@_case(
    "iat_future",
    "iat one hour in the future: issued by a clock far ahead, or forged.",
    issuer_only=True,
    hint="verify iat is not in the future (pyjwt does)",
    tags=("time",),
)
def _iat_future(forge: Forge) -> str:
    return forge.sign(claims=forge.claims(iat=forge.now + 3600, exp=forge.now + 7200))


@_case(
    "iat_beyond_leeway",
    f"iat {LEEWAY + 5} s in the future: issued by a clock just beyond the largest sane leeway ({LEEWAY} s).",
    issuer_only=True,
    hint=f"keep the iat leeway at or below {LEEWAY} s",
    tags=("time",),
)
def _iat_beyond_leeway(forge: Forge) -> str:
    return forge.sign(claims=forge.claims(iat=forge.now + LEEWAY + 5, exp=forge.now + 3600))


# ---------------------------------------------------------------------------------------------- iss / aud


def _other_scheme(url: str) -> str:
    return "https://" + url[len("http://") :] if url.startswith("http://") else "http://" + url.split("://", 1)[1]


@_case(
    "iss_other_realm",
    "iss is another realm on the same Keycloak (/realms/other).",
    hint="compare iss exactly with KEYCLOAK_ISSUER",
    tags=("iss",),
)
def _iss_other_realm(forge: Forge) -> str:
    return forge.sign(claims=forge.claims(iss=f"{forge.issuer.base_url}/realms/other"))


@_case("iss_trailing_slash", "iss with a trailing slash.", hint="compare iss exactly, no normalisation", tags=("iss",))
def _iss_trailing_slash(forge: Forge) -> str:
    return forge.sign(claims=forge.claims(iss=forge.issuer.issuer_url + "/"))


@_case(
    "iss_other_scheme", "iss with https instead of http (or the reverse).", hint="compare iss exactly", tags=("iss",)
)
def _iss_other_scheme(forge: Forge) -> str:
    return forge.sign(claims=forge.claims(iss=_other_scheme(forge.issuer.issuer_url)))


@_case("iss_foreign_host", "iss of the same realm name on another host.", hint="compare iss exactly", tags=("iss",))
def _iss_foreign_host(forge: Forge) -> str:
    return forge.sign(claims=forge.claims(iss=f"https://keycloak.attacker.example/realms/{forge.issuer.realm}"))


@_case("iss_missing", "No iss claim.", hint="require iss", tags=("iss",))
def _iss_missing(forge: Forge) -> str:
    return forge.sign(claims=forge.claims(iss=None))


@_case("aud_missing", "No aud claim.", hint="verify aud (KEYCLOAK_VERIFY_AUD=true) and require it", tags=("aud",))
def _aud_missing(forge: Forge) -> str:
    return forge.sign(claims=forge.claims(aud=None, azp=forge.audience))


@_case(
    "aud_wrong", 'aud is another service ("other-api").', hint="verify aud against KEYCLOAK_CLIENT_ID", tags=("aud",)
)
def _aud_wrong(forge: Forge) -> str:
    return forge.sign(claims=forge.claims(aud="other-api", azp="other-api"))


@_case(
    "aud_account_only",
    'aud is only "account", as in a token Keycloak issued for the account console.',
    hint="verify aud against KEYCLOAK_CLIENT_ID",
    tags=("aud",),
)
def _aud_account_only(forge: Forge) -> str:
    return forge.sign(claims=forge.claims(aud="account", azp="makrx-frontend"))


@_case(
    "aud_array_without_ours",
    'aud is ["account", "other-api"]: a list, ours not in it.',
    hint="aud may be a list; ours must be in it",
    tags=("aud",),
)
def _aud_array_without_ours(forge: Forge) -> str:
    return forge.sign(claims=forge.claims(aud=["account", "other-api"], azp="makrx-frontend"))


@_case(
    "aud_array_with_ours",
    'Control: aud is ["<ours>", "account"] as Keycloak issues with an audience mapper. '
    "Valid: a backend must accept it.",
    verdict=ACCEPT,
    pyjwt_rejects=False,
    hint="accept aud as a list that contains KEYCLOAK_CLIENT_ID",
    tags=("aud", "control"),
)
def _aud_array_with_ours(forge: Forge) -> str:
    return forge.sign(claims=forge.claims(aud=[forge.audience, "account"], azp="makrx-frontend"))


@_case(
    "aud_object",
    'aud is a JSON object {"aud": "<ours>"}.',
    hint="check claim types: aud is a string or a list",
    tags=("aud", "types"),
)
def _aud_object(forge: Forge) -> str:
    return forge.sign(claims=forge.claims(aud={"aud": forge.audience}))


# ---------------------------------------------------------------------------------------------- token type / size


@_case(
    "id_token_as_access",
    'An ID token (typ "ID", aud = our client id, signed by the real key) sent as an access token.',
    hint='check typ == "Bearer" (RFC 8725 §3.11)',
    pyjwt_rejects=False,
    tags=("typ",),
)
def _id_token_as_access(forge: Forge) -> str:
    claims = forge.claims(
        typ="ID", azp=forge.audience, auth_time=forge.now, at_hash=b64url(b"\x00" * 16), nonce="n-0S6"
    )
    return forge.sign(claims=claims)


@_case(
    "refresh_token_as_access",
    'A refresh token (typ "Refresh") sent as an access token; signed by the real key '
    "with our aud, so only typ tells (Keycloak's own refresh tokens are HS512 and fail earlier).",
    hint='check typ == "Bearer"',
    pyjwt_rejects=False,
    tags=("typ",),
)
def _refresh_token_as_access(forge: Forge) -> str:
    return forge.sign(claims=forge.claims(typ="Refresh", exp=forge.now + 1800))


@_case(
    "oversized_16kb",
    "A validly signed 16 KB token (a 16 KB Authorization header).",
    hint="cap the accepted token size (e.g. 8 KB); never 5xx on big headers",
    pyjwt_rejects=False,
    verdict=REJECT_OVERSIZED,
    tags=("size",),
)
def _oversized(forge: Forge, size: int = 16 * 1024) -> str:
    target = int(size)
    base = forge.claims()
    filler = 0
    token = ""
    for _ in range(4):
        token = forge.sign(claims={**base, "padding": "A" * filler})
        filler = max(0, filler + (target - len(token)) * 3 // 4)
    while len(token) < target:
        filler += 1
        token = forge.sign(claims={**base, "padding": "A" * filler})
    return token


# ---------------------------------------------------------------------------------------------- signature


@_case("signature_tampered", "One bit of the signature flipped.", hint="verify the signature", tags=("signature",))
def _signature_tampered(forge: Forge) -> str:
    h, p, s = forge.segments()
    return f"{h}.{p}.{_flip(s)}"


@_case(
    "payload_tampered",
    "The payload changed after signing (roles escalated to admin).",
    hint="verify the signature over the exact received segments",
    tags=("signature",),
)
def _payload_tampered(forge: Forge) -> str:
    h, _, s = forge.segments()
    return f"{h}.{json_segment(forge.claims(roles=('user', 'admin')))}.{s}"


@_case(
    "signature_stripped",
    'alg stays RS256, the signature segment is empty ("header.payload.").',
    hint="verify the signature; never treat an empty one as absent-but-fine",
    tags=("signature",),
)
def _signature_stripped(forge: Forge) -> str:
    h, p, _ = forge.segments()
    return f"{h}.{p}."


@_case(
    "signature_zeroed",
    "alg stays RS256, the signature is all zero bytes of the right length.",
    hint="verify the signature",
    tags=("signature",),
)
def _signature_zeroed(forge: Forge) -> str:
    h, p, s = forge.segments()
    return f"{h}.{p}.{b64url(bytes(len(b64url_decode(s))))}"


def _alg_none_builder(spelling: str, trailing_dot: bool, keep_signature: bool = False) -> Callable[[Forge], str]:
    def build(forge: Forge) -> str:
        unsigned = forge.unsigned(header=forge.header(alg=spelling))
        if keep_signature:
            return f"{unsigned}.{forge.segments()[2]}"
        return f"{unsigned}." if trailing_dot else unsigned

    return build


for _spelling in ("none", "None", "NONE", "nOnE"):
    for _dot in (True, False):
        _name = f"alg_{_spelling}_{'trailing_dot' if _dot else 'no_dot'}"
        _case(
            _name,
            f'alg "{_spelling}", no signature, {"with" if _dot else "without"} the trailing dot.',
            hint="pin the algorithm to the key's (RS256); never accept none",
            tags=("alg", "none"),
        )(_alg_none_builder(_spelling, _dot))

_case(
    "alg_none_with_signature",
    'alg "none" but the real RS256 signature still attached.',
    hint="pin the algorithm",
    tags=("alg", "none"),
)(_alg_none_builder("none", True, keep_signature=True))


def _confusion_secrets(key: Key) -> dict[str, bytes]:
    secrets = {
        "pem": key.public_pem,
        "pem_no_newline": key.public_pem.rstrip(b"\n"),
        "der": key.spki_der,
        "realm_public_key": key.public_key_b64.encode(),
        "keycloak_pem": f"-----BEGIN PUBLIC KEY-----\n{key.public_key_b64}\n-----END PUBLIC KEY-----".encode(),
    }
    if isinstance(key.public_key, rsa.RSAPublicKey):
        secrets["pkcs1_pem"] = key.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    return secrets


def _confusion_builder(variant: str) -> Callable[[Forge], str]:
    def build(forge: Forge) -> str:
        # pyjwt refuses PEM keys as HMAC secrets, which is why this signs by hand.
        return forge.sign(header=forge.header(alg="HS256"), key=_confusion_secrets(forge.key)[variant])

    return build


for _variant, _what in {
    "pem": "the SPKI PEM with its trailing newline",
    "pem_no_newline": "the SPKI PEM without the trailing newline",
    "der": "the DER SPKI bytes",
    "realm_public_key": "the realm JSON's public_key (base64 text)",
    "keycloak_pem": "the one-line PEM backends build from the realm JSON's public_key",
}.items():
    _case(
        f"hs256_key_confusion_{_variant}",
        f"HS256, HMAC keyed with the realm's public key as {_what} "
        "(kid of the real key): the RS256/HS256 key-confusion attack.",
        hint="pin the algorithm to RS256; never let the token's alg pick the verification method",
        tags=("alg", "confusion"),
    )(_confusion_builder(_variant))

_case(
    "hs256_key_confusion_pkcs1_pem",
    "HS256 keyed with the public key as PKCS#1 PEM (BEGIN RSA PUBLIC KEY).",
    hint="pin the algorithm to RS256",
    tags=("alg", "confusion"),
    algorithms=frozenset({"RS256"}),
)(_confusion_builder("pkcs1_pem"))


@_case("hs256_empty_secret", "HS256 with an empty HMAC secret.", hint="pin the algorithm", tags=("alg",))
def _hs256_empty(forge: Forge) -> str:
    return forge.sign(header=forge.header(alg="HS256"), key=b"")


@_case(
    "ps256_real_key",
    "PS256, validly signed by the realm's real RSA key: an algorithm the JWK does not name.",
    issuer_only=True,
    hint="pin the algorithm to the JWK's alg (RS256)",
    tags=("alg",),
    algorithms=frozenset({"RS256"}),
)
def _ps256(forge: Forge) -> str:
    return forge.sign(header=forge.header(alg="PS256"))


@_case(
    "rs512_real_key",
    "RS512, validly signed by the realm's real RSA key.",
    issuer_only=True,
    hint="pin the algorithm to RS256",
    tags=("alg",),
    algorithms=frozenset({"RS256"}),
)
def _rs512(forge: Forge) -> str:
    return forge.sign(header=forge.header(alg="RS512"))


@_case(
    "es256_psychic_signature",
    'alg ES256 with r = s = 0 (the "psychic signature", CVE-2022-21449), kid of the real key.',
    hint="use a verifier that refuses r or s = 0; pin the algorithm",
    tags=("alg",),
)
def _psychic(forge: Forge) -> str:
    return f"{forge.unsigned(header=forge.header(alg='ES256'))}.{b64url(bytes(64))}"


# ---------------------------------------------------------------------------------------------- structure / encoding


@_case("segments_1", "A single segment: not a JWT at all.", hint="parse defensively; 401, not 500", tags=("malformed",))
def _segments_1(forge: Forge) -> str:
    return json_segment(forge.claims())


@_case(
    "segments_2",
    "Two segments (header.payload), no signature part.",
    hint="require exactly three segments",
    tags=("malformed",),
)
def _segments_2(forge: Forge) -> str:
    h, p, _ = forge.segments()
    return f"{h}.{p}"


@_case(
    "segments_4",
    "A valid token with a fourth segment appended.",
    hint="require exactly three segments",
    tags=("malformed",),
)
def _segments_4(forge: Forge) -> str:
    return forge.sign() + "." + json_segment({})


@_case(
    "segments_5",
    "Five segments, shaped like a JWE (RSA-OAEP header) around a valid token's parts.",
    hint="refuse JWE where a JWS is expected",
    tags=("malformed",),
)
def _segments_5(forge: Forge) -> str:
    h, p, s = forge.segments()
    return ".".join(
        [json_segment({"alg": "RSA-OAEP", "enc": "A256GCM", "kid": forge.key.kid}), h, p, s, b64url(b"tag")]
    )


@_case("segments_empty", 'Three empty segments ("..").', hint="parse defensively", tags=("malformed",))
def _segments_empty(forge: Forge) -> str:
    return ".."


@_case(
    "base64_padded",
    'Header and payload segments with "=" padding; the signature covers the unpadded (canonical) segments.',
    hint="verify the signature over the exact received bytes; base64url has no padding",
    tags=("malformed", "encoding"),
)
def _base64_padded(forge: Forge) -> str:
    filler = ""
    while True:
        h, p, s = forge.segments(claims=forge.claims(x=filler or None))
        if len(p) % 4 or len(h) % 4:
            break
        filler += "x"

    def pad(segment: str) -> str:
        return segment + "=" * (-len(segment) % 4)

    return f"{pad(h)}.{pad(p)}.{pad(s)}"


@_case(
    "base64_standard_alphabet",
    'Segments in the standard base64 alphabet ("+" and "/") instead of base64url; '
    "the signature covers the url-safe segments.",
    hint="verify the signature over the exact received bytes",
    tags=("malformed", "encoding"),
)
def _base64_standard(forge: Forge) -> str:
    filler = ""
    while True:
        h, p, s = forge.segments(claims=forge.claims(x=filler or None))
        if "-" in p or "_" in p:
            break
        filler += "?>~"
    swap = str.maketrans("-_", "+/")
    return f"{h.translate(swap)}.{p.translate(swap)}.{s.translate(swap)}"


@_case(
    "base64_invalid_characters",
    'Characters outside base64 ("!", "*") inside the payload segment.',
    hint="refuse malformed base64; 401, not 500",
    tags=("malformed", "encoding"),
)
def _base64_invalid(forge: Forge) -> str:
    h, p, s = forge.segments()
    return f"{h}.{p[:10]}!*{p[10:]}.{s}"


@_case(
    "header_bad_json",
    "The header segment decodes to text that is not JSON (signed anyway).",
    hint="parse defensively; 401, not 500",
    tags=("malformed",),
)
def _header_bad_json(forge: Forge) -> str:
    return forge.sign(header=b64url(b'{"alg":"RS256","kid":'))


@_case(
    "header_not_object",
    'The header is valid JSON but not an object (["RS256"]).',
    hint="parse defensively",
    tags=("malformed",),
)
def _header_not_object(forge: Forge) -> str:
    return forge.sign(header=json_segment([forge.key.alg, forge.key.kid]))


@_case(
    "payload_bad_json",
    "The payload decodes to text that is not JSON, validly signed by the real key.",
    hint="parse after verifying, defensively; 401, not 500",
    tags=("malformed",),
)
def _payload_bad_json(forge: Forge) -> str:
    return forge.sign(claims=b64url(b'{"sub":"x","exp":'))


@_case(
    "payload_not_object",
    'The payload is valid JSON but a string ("admin"), validly signed by the real key.',
    hint="require a JSON object payload",
    tags=("malformed",),
)
def _payload_not_object(forge: Forge) -> str:
    return forge.sign(claims=json_segment("admin"))


@_case(
    "header_duplicate_alg",
    'The header names alg twice: "RS256" first, "none" last, with a valid RS256 signature. '
    "A first-wins parser sees a valid token; RFC 7515 §5.2 requires rejecting or last-wins.",
    issuer_only=True,
    hint="use a JSON parser that rejects duplicates or keeps the last (Python's json keeps the last)",
    tags=("malformed", "alg"),
)
def _header_duplicate_alg(forge: Forge) -> str:
    return forge.sign(header=members_segment([*forge.header().items(), ("alg", "none")]))


@_case(
    "payload_duplicate_exp",
    "The payload names exp twice: far future first, one hour ago last (validly signed).",
    issuer_only=True,
    hint="reject duplicates or keep the last member",
    tags=("malformed", "time"),
)
def _payload_duplicate_exp(forge: Forge) -> str:
    claims = forge.claims(exp=forge.now - 3600)
    return forge.sign(claims=members_segment([("exp", forge.now + 86400), *claims.items()]))


# ---------------------------------------------------------------------------------------------- header members


@_case(
    "crit_unknown",
    'Header "crit": ["x-makrx-critical"] naming an extension no backend understands (validly signed).',
    issuer_only=True,
    hint="reject tokens whose crit names an unsupported extension (RFC 7515 §4.1.11)",
    tags=("header",),
)
def _crit_unknown(forge: Forge) -> str:
    return forge.sign(header=forge.header(crit=["x-makrx-critical"], **{"x-makrx-critical": True}))


@_case(
    "jwk_embedded",
    'Header "jwk" carries the attacker\'s public key and the token is signed with it (kid of the real key).',
    hint="take keys only from the realm's JWKS, never from the token",
    tags=("header", "key-injection"),
)
def _jwk_embedded(forge: Forge) -> str:
    attacker = forge.issuer.attacker.key
    jwk = {k: v for k, v in attacker.jwk().items() if k in ("kty", "n", "e", "alg", "use", "kid")}
    return forge.sign(header=forge.header(alg="RS256", jwk=jwk), key=attacker.private_key)


@_case(
    "x5c_embedded",
    'Header "x5c" carries the attacker\'s self-signed certificate; signed with its key (kid of the real key).',
    hint="take keys only from the realm's JWKS",
    tags=("header", "key-injection"),
)
def _x5c_embedded(forge: Forge) -> str:
    attacker = forge.issuer.attacker.key
    return forge.sign(header=forge.header(alg="RS256", x5c=attacker.jwk()["x5c"]), key=attacker.private_key)


@_case(
    "jku_attacker",
    'Header "jku" points at the attacker server (which serves a JWKS with its key); signed by the '
    "attacker's key with its kid. The backend must not fetch it: issuer.attacker.was_fetched('jku_attacker').",
    hint="ignore jku; fetch keys only from KEYCLOAK_ISSUER's JWKS",
    tags=("header", "key-injection", "canary"),
)
def _jku(forge: Forge) -> str:
    attacker = forge.issuer.attacker
    return forge.sign(
        header=forge.header(alg="RS256", kid=attacker.key.kid, jku=attacker.jku("jku_attacker")),
        key=attacker.key.private_key,
    )


@_case(
    "x5u_attacker",
    "Header \"x5u\" points at the attacker server's certificate; signed by the attacker's key. "
    "The backend must not fetch it: issuer.attacker.was_fetched('x5u_attacker').",
    hint="ignore x5u",
    tags=("header", "key-injection", "canary"),
)
def _x5u(forge: Forge) -> str:
    attacker = forge.issuer.attacker
    return forge.sign(
        header=forge.header(alg="RS256", kid=attacker.key.kid, x5u=attacker.x5u("x5u_attacker")),
        key=attacker.key.private_key,
    )


# ---------------------------------------------------------------------------------------------- kid


@_case(
    "kid_unknown",
    "A kid the realm never published, signed by the real active key.",
    issuer_only=True,
    hint="select the key by kid only; refetch the JWKS once (rate-limited), then 401",
    tags=("kid",),
)
def _kid_unknown(forge: Forge) -> str:
    return forge.sign(header=forge.header(kid=b64url(b"makrx-unknown-kid-" + bytes(14))))


@_case(
    "kid_path_traversal",
    'kid "../../../../../../../../dev/null" with HS256 and an empty secret (the contents of /dev/null).',
    hint="never use kid as a path; look it up in the JWKS only",
    tags=("kid", "injection"),
)
def _kid_path(forge: Forge) -> str:
    return forge.sign(header=forge.header(alg="HS256", kid="../../../../../../../../dev/null"), key=b"")


@_case(
    "kid_sql_injection",
    'kid "x\' UNION SELECT \'makrx\' -- " with HS256 keyed with "makrx".',
    hint="never put kid into SQL; look it up in the JWKS only",
    tags=("kid", "injection"),
)
def _kid_sql(forge: Forge) -> str:
    return forge.sign(header=forge.header(alg="HS256", kid="x' UNION SELECT 'makrx' -- "), key=b"makrx")


@_case(
    "kid_command_injection",
    'kid "key|true;$(true)`true`" (harmless shell commands), signed by the real key.',
    issuer_only=True,
    hint="never pass kid to a shell; look it up in the JWKS only",
    tags=("kid", "injection"),
)
def _kid_command(forge: Forge) -> str:
    return forge.sign(header=forge.header(kid="key|true;$(true)`true`"))


@_case(
    "kid_not_string",
    "kid is a number (12345), signed by the real key.",
    issuer_only=True,
    hint="check header types",
    tags=("kid", "types"),
)
def _kid_not_string(forge: Forge) -> str:
    return forge.sign(header=forge.header(kid=12345))


@_case(
    "kid_other_key",
    "kid names another published signing key (B) while the signature is by the active key (A).",
    issuer_only=True,
    hint="verify with the key the kid names, and only with it",
    tags=("kid",),
    prepare=_two_signing_keys,
)
def _kid_other_key(forge: Forge) -> str:
    others = [k for k in forge.issuer.keys.signing_keys if k.kid != forge.key.kid]
    if not others:
        raise IssuerError("kid_other_key needs a second published signing key", fix="call case.prepare(issuer) first")
    return forge.sign(header=forge.header(kid=others[-1].kid))


@_case(
    "kid_missing_several_keys",
    "No kid while several signing keys are published (prepare() publishes a next key); signed by the active key.",
    issuer_only=True,
    hint="require kid; select the key by kid (Keycloak always sends one)",
    tags=("kid",),
    prepare=_two_signing_keys,
)
def _kid_missing(forge: Forge) -> str:
    return forge.sign(header=forge.header(kid=None))


@_case(
    "retired_key",
    "Signed by a key that was retired (unpublished): the last one retired, or one retired before this run.",
    hint="cache the JWKS with a TTL; a kid missing after refetch is 401",
    tags=("kid", "rotation"),
)
def _retired_key(forge: Forge) -> str:
    key = forge.issuer.keys.last_retired()
    return forge.issuer.sign(forge.claims(), key=key)


CATALOGUE: Final[tuple[Case, ...]] = tuple(_REGISTRY.values())
"""Every case, in catalogue order."""


def get(name: str) -> Case:
    """The case called ``name``; IssuerError naming close matches (or every name) when there is none."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=5, cutoff=0.5)
        fix = (
            f"did you mean {', '.join(close)}? (`python -m makrx_contracts.harness.issuer token --list` lists all)"
            if close
            else "use one of: " + ", ".join(_REGISTRY)
        )
        raise IssuerError(f"no bad-token case {name!r}", fix=fix) from None


def names(verdict: Verdict | None = None, tag: str | None = None) -> list[str]:
    return [c.name for c in CATALOGUE if (verdict is None or c.verdict == verdict) and (tag is None or tag in c.tags)]


class BadTokens:
    """The ``bad_token`` fixture: ``bad_token("alg_none_trailing_dot")`` returns that case's token for the issuer.

    Iterating yields the cases that apply to the issuer's algorithm; ``case(name)`` gives the documented
    object (verdict, hint). Calling prepares the issuer's key state when the case needs it.
    """

    def __init__(self, issuer: Issuer, audience: str | None = None, roles: Sequence[str] | None = None) -> None:
        self.issuer = issuer
        self.audience = audience
        self.roles = roles

    def __call__(self, name: str, audience: str | None = None, **options: Any) -> str:
        case = get(name)
        case.prepare(self.issuer)
        return case.build(self.issuer, audience if audience is not None else self.audience, self.roles, **options)

    def case(self, name: str) -> Case:
        return get(name)

    @property
    def cases(self) -> tuple[Case, ...]:
        return tuple(c for c in CATALOGUE if c.applies(self.issuer))

    def names(self, verdict: Verdict | None = None, tag: str | None = None) -> list[str]:
        return [
            c.name for c in self.cases if (verdict is None or c.verdict == verdict) and (tag is None or tag in c.tags)
        ]

    def __iter__(self) -> Iterator[Case]:
        return iter(self.cases)

    def __len__(self) -> int:
        return len(self.cases)


del _spelling, _dot, _name, _variant, _what
