"""The ``header`` and ``claims`` mutations: a valid token's header members or claim values and types changed,
then signed again, by the real key unless the operation is about another key (none, HS* keyed with the public
PEM, the attacker's). Roles are never touched.
"""

from __future__ import annotations

from typing import Any, Final

from hypothesis import strategies as st

from ._jose import b64url
from .catalogue import LEEWAY
from .forge import Forge, members_segment
from .mutation_op import Op, Outcome

__all__ = ["OPS"]

OPS: Final[list[Op]] = []
_header = Op.collector("header", OPS)
_claims = Op.collector("claims", OPS)

# (valid, ambiguous) of an oddity only the issuer could have signed: 401 or 2xx, never 5xx.
_ODD: Final = (True, True)

_json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**12), st.text(max_size=12))


# ---------------------------------------------------------------------------------------------- header

_ALGS = [
    "none",
    "None",
    "NONE",
    "HS256",
    "HS384",
    "HS512",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "ES256",
    "ES384",
    "EdDSA",
    "",
    "rs256",
    "RS256 ",
    None,
    256,
    ["RS256"],
]


@_header(st.sampled_from(_ALGS))
def _header_alg(forge: Forge, alg: Any) -> Outcome:
    if alg == forge.key.alg:
        return forge.sign(), True, False, f"alg unchanged ({alg})"
    header = {**forge.header(), "alg": alg}
    if isinstance(alg, str) and alg.lower() == "none":
        return forge.sign(header=header), False, False, f"alg {alg!r}, no signature"
    if alg in ("HS256", "HS384", "HS512"):
        return forge.sign(header=header, key=forge.key.public_pem), False, False, f"alg {alg} keyed with the public PEM"
    if isinstance(alg, str) and alg[:2] in ("RS", "PS") and alg[2:] in ("256", "384", "512") and forge.key.kty == "RSA":
        return forge.sign(header=header), *_ODD, f"alg {alg} signed by the real key"
    token = forge.sign(header=header, alg=forge.key.alg)
    return token, *_ODD, f"alg {alg!r} with the real {forge.key.alg} signature"


@_header(
    st.one_of(
        st.text(max_size=40),
        st.sampled_from(["", "../../etc/passwd", "' OR 1=1 --", "null"]),
        st.integers(),
        st.just(None),
    ),
)
def _header_kid(forge: Forge, kid: Any) -> Outcome:
    if kid is None:
        several = len(forge.issuer.keys.signing_keys) > 1
        token = forge.sign(header=forge.header(kid=None))
        return token, *_ODD, "kid removed" + (" (several signing keys published)" if several else "")
    if kid == forge.key.kid:
        return forge.sign(), True, False, "kid unchanged"
    return forge.sign(header=forge.header(kid=kid)), *_ODD, f"kid {kid!r}"


@_header(st.sampled_from(["at+jwt", "JWS", "", "jwt", "JOSE+JSON", None]))
def _header_typ(forge: Forge, typ: str | None) -> Outcome:
    token = forge.sign(header=forge.header(typ=typ))
    return token, True, True, "header typ removed" if typ is None else f"header typ {typ!r}"


@_header(st.from_regex(r"x-[a-z]{1,8}", fullmatch=True), _json_scalars)
def _header_extra(forge: Forge, name: str, value: Any) -> Outcome:
    token = forge.sign(header={**forge.header(), name: value})
    return token, True, False, f"unknown header member {name}={value!r}"


@_header(st.sampled_from([("x-makrx",), ("b64",), ("x-makrx", "exp"), ("kid",)]))
def _header_crit(forge: Forge, crit: tuple[str, ...]) -> Outcome:
    header = forge.header(crit=list(crit), **{c: True for c in crit if c.startswith("x-")})
    return forge.sign(header=header), *_ODD, f"crit {list(crit)}"


@_header(st.sampled_from(["jku", "x5u"]), st.booleans())
def _header_key_url(forge: Forge, member: str, attacker_signed: bool) -> Outcome:
    attacker = forge.issuer.attacker
    url = attacker.jku("mutation") if member == "jku" else attacker.x5u("mutation")
    if attacker_signed:
        header = forge.header(alg="RS256", kid=attacker.key.kid, **{member: url})
        return (
            forge.sign(header=header, key=attacker.key.private_key),
            False,
            False,
            f"{member} at the attacker server, signed by the attacker's key",
        )
    token = forge.sign(header=forge.header(**{member: url}))
    return token, True, True, f"{member} at the attacker server, real signature"


@_header(st.sampled_from(["jwk", "x5c"]))
def _header_embedded_key(forge: Forge, member: str) -> Outcome:
    attacker = forge.issuer.attacker.key
    value: Any = (
        {k: v for k, v in attacker.jwk().items() if k in ("kty", "n", "e")}
        if member == "jwk"
        else attacker.jwk()["x5c"]
    )
    header = forge.header(alg="RS256", **{member: value})
    return forge.sign(header=header, key=attacker.private_key), False, False, f"embedded {member}, attacker-signed"


@_header(st.sampled_from(["alg-none-last", "alg-none-first", "kid-twice"]))
def _header_duplicate(forge: Forge, variant: str) -> Outcome:
    first, (name, last) = {
        "alg-none-last": (forge.header(), ("alg", "none")),
        "alg-none-first": (forge.header(alg="none"), ("alg", forge.key.alg)),
        "kid-twice": (forge.header(), ("kid", "other")),
    }[variant]
    header = members_segment([*first.items(), (name, last)])
    return forge.sign(header=header), *_ODD, f"duplicate header members ({variant})"


@_header(st.sampled_from(['["RS256"]', '"RS256"', "42", "null", "{", ""]))
def _header_not_object(forge: Forge, raw: str) -> Outcome:
    return forge.sign(header=b64url(raw.encode())), False, False, f"header is {raw!r}"


# ---------------------------------------------------------------------------------------------- claims

_TIME_TYPES = ["string", "null", "bool", "list", "object"]


def _bad_type(value: int, how: str) -> Any:
    return {"string": str(value), "null": None, "bool": True, "list": [value], "object": {"t": value}}[how]


def _set(forge: Forge, claim: str, value: Any) -> str:
    """A token with ``claim`` set to exactly ``value`` (``None`` is JSON null here, not a removal)."""
    return forge.sign(claims={**forge.claims(), claim: value})


@_claims(
    st.one_of(
        st.tuples(st.just("past"), st.integers(LEEWAY + 1, 10 * 365 * 86400)),
        st.tuples(st.just("future"), st.integers(1, 30 * 86400)),
        st.tuples(st.just("float"), st.integers(60, 3600)),
        st.tuples(st.just("missing"), st.just(0)),
        st.tuples(st.sampled_from(_TIME_TYPES), st.integers(60, 3600)),
    ),
)
def _claim_exp(forge: Forge, change: tuple[str, int]) -> Outcome:
    how, delta = change
    if how == "past":
        return _set(forge, "exp", forge.now - delta), False, False, f"exp {delta} s ago"
    if how == "future":
        return _set(forge, "exp", forge.now + delta), True, False, f"exp in {delta} s"
    if how == "float":
        return _set(forge, "exp", forge.now + delta + 0.5), True, True, "exp as a non-integer number"
    if how == "missing":
        return forge.sign(claims=forge.claims(exp=None)), *_ODD, "exp removed"
    value = _bad_type(forge.now + delta, how)
    return _set(forge, "exp", value), *_ODD, f"exp as {how} ({value!r})"


@_claims(
    st.sampled_from(["nbf", "iat"]),
    st.one_of(
        st.tuples(st.just("future"), st.integers(LEEWAY + 1, 86400)),
        st.tuples(st.just("past"), st.integers(0, 3600)),
        st.tuples(st.just("missing"), st.just(0)),
        st.tuples(st.sampled_from(_TIME_TYPES[:2] + _TIME_TYPES[3:]), st.integers(0, 3600)),
    ),
)
def _claim_time(forge: Forge, claim: str, change: tuple[str, int]) -> Outcome:
    how, delta = change
    if how == "future":
        claims = forge.claims(**{claim: forge.now + delta, "exp": forge.now + delta + 600})
        outcome = (False, False) if claim == "nbf" else _ODD  # nbf: not valid yet; iat: the issuer's clock
        return forge.sign(claims=claims), *outcome, f"{claim} {delta} s in the future"
    if how == "past":
        return _set(forge, claim, forge.now - delta), True, False, f"{claim} {delta} s ago"
    if how == "missing":
        return forge.sign(claims=forge.claims(**{claim: None})), True, claim == "iat", f"{claim} absent"
    value = _bad_type(forge.now - delta, how)
    return _set(forge, claim, value), *_ODD, f"{claim} as {how} ({value!r})"


@_claims(
    st.one_of(
        st.tuples(st.just("text"), st.text(max_size=30)),
        st.tuples(
            st.sampled_from(["trailing_slash", "other_scheme", "other_realm", "upper", "missing", "null", "list"]),
            st.just(""),
        ),
    ),
)
def _claim_iss(forge: Forge, change: tuple[str, str]) -> Outcome:
    how, text = change
    iss = forge.issuer.issuer_url
    value: Any = {
        "text": text,
        "trailing_slash": iss + "/",
        "other_scheme": iss.replace("http://", "https://", 1)
        if iss.startswith("http://")
        else iss.replace("https://", "http://", 1),
        "other_realm": iss.rsplit("/", 1)[0] + "/other",
        "upper": iss.upper(),
        "null": None,
        "list": [iss],
    }.get(how)
    if how == "missing":
        return forge.sign(claims=forge.claims(iss=None)), False, False, "iss removed"
    if value == iss:
        return forge.sign(), True, False, "iss unchanged"
    return _set(forge, "iss", value), False, False, f"iss {how} ({value!r})"


@_claims(
    st.one_of(
        st.tuples(st.just("text"), st.text(max_size=20)),
        st.tuples(st.just("list_with"), st.lists(st.text(max_size=10), max_size=3)),
        st.tuples(st.just("list_without"), st.lists(st.text(max_size=10), max_size=3)),
        st.tuples(
            st.sampled_from(["missing", "empty_list", "object", "number", "null", "nested", "upper"]), st.just(None)
        ),
    ),
)
def _claim_aud(forge: Forge, change: tuple[str, Any]) -> Outcome:
    how, arg = change
    ours = forge.audience
    if how == "missing":
        return forge.sign(claims=forge.claims(aud=None)), False, False, "aud removed"
    if how == "list_with":
        value: Any = [ours, *arg]
        return _set(forge, "aud", value), True, False, f"aud {value!r}"
    if how == "list_without":
        value = [a for a in arg if a != ours]
    else:
        value = {
            "text": arg,
            "empty_list": [],
            "object": {"aud": ours},
            "number": 1,
            "null": None,
            "nested": [[ours]],
            "upper": ours.upper() if ours.upper() != ours else ours + "X",
        }[how]
    if value == ours:
        return forge.sign(), True, False, "aud unchanged"
    return _set(forge, "aud", value), False, False, f"aud {how} ({value!r})"


@_claims(st.sampled_from(["ID", "Refresh", "Logout", "Offline", "Serialized-ID", "bearer", None]))
def _claim_typ(forge: Forge, typ: str | None) -> Outcome:
    token = forge.sign(claims=forge.claims(typ=typ))
    if typ is None:
        return token, True, True, "typ claim removed"
    if typ == "bearer":
        return token, True, True, "typ 'bearer' (lower case)"
    return token, False, False, f"typ {typ!r}"


@_claims(
    st.sampled_from(["sub", "jti", "preferred_username", "email", "name", "azp", "scope", "sid"]),
    st.one_of(st.text(max_size=30), st.just(None)),
)
def _claim_identity(forge: Forge, claim: str, value: str | None) -> Outcome:
    lenient = claim in ("azp", "scope", "sub") or not value
    what = f"{claim} removed" if value is None else f"{claim} {value!r}"
    return forge.sign(claims=forge.claims(**{claim: value})), True, lenient, what


@_claims(st.from_regex(r"x_[a-z]{1,10}", fullmatch=True), _json_scalars)
def _claim_extra(forge: Forge, name: str, value: Any) -> Outcome:
    return _set(forge, name, value), True, False, f"extra claim {name}={value!r}"
