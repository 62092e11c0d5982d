"""Hypothesis strategies that mutate a valid token and say whether the mutation leaves it valid.

Two layers, so a strategy can be built at import time while the issuer is a fixture:
``mutation_plans()`` draws a :class:`MutationPlan` (pure data: an operation and its arguments; shrinks
well), and ``plan.apply(issuer, audience)`` makes the :class:`Mutation` (the token and its verdict).
``mutated_tokens(issuer, audience)`` combines both. Operations are small functions registered per kind:
``header`` (members re-signed with the real key), ``claims`` (values and types, re-signed), ``signature``
(bytes) and ``encoding`` (base64/segments). Every token is printable ASCII, so it fits an HTTP header.

A contract: ``valid=False`` → the backend must answer 401; ``valid=True`` → never 5xx, and 2xx is allowed
(``ambiguous=True`` marks tokens either answer suits: valid ones a strict backend may still refuse, e.g. a
missing ``typ``, and oddities only the issuer could have produced — its own key, unexpired, meant for us —
such as a removed exp or an unknown crit, which a lenient backend may accept; the catalogue's SHOULD cases
judge that strictness). ``valid=False`` is kept for what lets in a token the issuer did not mean for us.
Mutations never touch roles, so a valid mutation cannot turn into a 403.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from ._jose import b64url, compact, json_segment
from .catalogue import LEEWAY
from .tokens import primary_audience

if TYPE_CHECKING:
    from .server import Issuer

__all__ = ["KINDS", "Mutation", "MutationPlan", "mutated_tokens", "mutation_plans", "sample"]

KINDS: Final = ("header", "claims", "signature", "encoding")

# (valid, ambiguous) of an oddity only the issuer could have signed: 401 or 2xx, never 5xx.
_ODD: Final = (True, True)

_json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**12), st.text(max_size=12))


@dataclass(frozen=True)
class Mutation:
    """A mutated token and what a correct backend does with it."""

    token: str
    valid: bool
    ambiguous: bool
    kind: str
    operation: str
    description: str
    plan: MutationPlan | None = field(default=None, repr=False, compare=False)

    @property
    def expected(self) -> str:
        if not self.valid:
            return "401"
        return "2xx or 401 (never 5xx)" if self.ambiguous else "2xx (401 tolerated; never 5xx)"

    def redacted(self) -> str:
        """The mutation for a failure message: header and payload decoded, the signature cut short."""
        parts = self.token.split(".")
        shown = []
        for i, part in enumerate(parts):
            if i == 2 and len(parts) == 3:
                shown.append(f"<signature {len(part)} chars: {part[:6]}…>")
                continue
            try:
                text = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                text = part
            shown.append(text if len(text) <= 240 else text[:240] + "…")
        return f"{self.kind}/{self.operation}: {self.description}\n  token: " + " . ".join(shown)


@dataclass(frozen=True)
class MutationPlan:
    """An operation and its drawn arguments; ``apply`` makes the token against a live issuer."""

    kind: str
    operation: str
    args: tuple[Any, ...]

    def apply(self, issuer: Issuer, audience: str | None = None) -> Mutation:
        op = _OPS[self.operation]
        ctx = _Ctx(issuer, audience)
        token, valid, ambiguous, description = op.fn(ctx, *self.args)
        return Mutation(token, valid, ambiguous, self.kind, self.operation, description, self)

    def __repr__(self) -> str:
        return f"MutationPlan({self.operation}{self.args!r})"


class _Ctx:
    def __init__(self, issuer: Issuer, audience: str | None) -> None:
        aud = audience if audience is not None else issuer.default_audience
        self.issuer = issuer
        self.audience = primary_audience(aud)
        self.key = issuer.keys.active
        self.now = issuer.now()
        self.claims: dict[str, Any] = issuer.claims(audience=self.audience, user=0)
        self.header: dict[str, Any] = {"alg": self.key.alg, "typ": "JWT", "kid": self.key.kid}

    def sign(
        self,
        header: dict[str, Any] | str | None = None,
        claims: dict[str, Any] | str | None = None,
        alg: str | None = None,
        key: Any = None,
    ) -> str:
        return compact(
            self.header if header is None else header,
            self.claims if claims is None else claims,
            alg or self.key.alg,
            self.key.private_key if key is None else key,
        )

    def valid_token(self) -> str:
        return self.sign()


Outcome = tuple[str, bool, bool, str]


@dataclass(frozen=True)
class _Op:
    name: str
    kind: str
    args: st.SearchStrategy[tuple[Any, ...]]
    fn: Callable[..., Outcome]


_OPS: dict[str, _Op] = {}


def _op(
    kind: str, *arg_strategies: st.SearchStrategy[Any]
) -> Callable[[Callable[..., Outcome]], Callable[..., Outcome]]:
    def register(fn: Callable[..., Outcome]) -> Callable[..., Outcome]:
        name = fn.__name__.lstrip("_")
        _OPS[name] = _Op(name, kind, st.tuples(*arg_strategies), fn)
        return fn

    return register


def _with(mapping: dict[str, Any], name: str, value: Any, *, remove: bool = False) -> dict[str, Any]:
    out = dict(mapping)
    if remove:
        out.pop(name, None)
    else:
        out[name] = value
    return out


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


@_op("header", st.sampled_from(_ALGS))
def _header_alg(ctx: _Ctx, alg: Any) -> Outcome:
    header = _with(ctx.header, "alg", alg)
    if alg == ctx.key.alg:
        return ctx.sign(), True, False, f"alg unchanged ({alg})"
    h, p = json_segment(header), json_segment(ctx.claims)
    signing_input = f"{h}.{p}".encode()
    if isinstance(alg, str) and alg.lower() == "none":
        return f"{h}.{p}.", False, False, f"alg {alg!r}, no signature"
    if isinstance(alg, str) and alg in ("HS256", "HS384", "HS512"):
        return (
            compact(header, ctx.claims, alg, ctx.key.public_pem),
            False,
            False,
            f"alg {alg} keyed with the public PEM",
        )
    if isinstance(alg, str) and alg[:2] in ("RS", "PS") and alg[2:] in ("256", "384", "512") and ctx.key.kty == "RSA":
        return compact(header, ctx.claims, alg, ctx.key.private_key), *_ODD, f"alg {alg} signed by the real key"
    signature = b64url(ctx.key.sign(signing_input))
    return f"{h}.{p}.{signature}", *_ODD, f"alg {alg!r} with the real {ctx.key.alg} signature"


@_op(
    "header",
    st.one_of(
        st.text(max_size=40),
        st.sampled_from(["", "../../etc/passwd", "' OR 1=1 --", "null"]),
        st.integers(),
        st.just(None),
    ),
)
def _header_kid(ctx: _Ctx, kid: Any) -> Outcome:
    if kid is None:
        several = len(ctx.issuer.keys.signing_keys) > 1
        token = ctx.sign(_with(ctx.header, "kid", None, remove=True))
        return token, *_ODD, "kid removed" + (" (several signing keys published)" if several else "")
    if kid == ctx.key.kid:
        return ctx.sign(), True, False, "kid unchanged"
    return ctx.sign(_with(ctx.header, "kid", kid)), *_ODD, f"kid {kid!r}"


@_op("header", st.sampled_from(["at+jwt", "JWS", "", "jwt", "JOSE+JSON", None]))
def _header_typ(ctx: _Ctx, typ: str | None) -> Outcome:
    header = _with(ctx.header, "typ", typ, remove=typ is None)
    return ctx.sign(header), True, True, "header typ removed" if typ is None else f"header typ {typ!r}"


@_op("header", st.from_regex(r"x-[a-z]{1,8}", fullmatch=True), _json_scalars)
def _header_extra(ctx: _Ctx, name: str, value: Any) -> Outcome:
    return ctx.sign(_with(ctx.header, name, value)), True, False, f"unknown header member {name}={value!r}"


@_op("header", st.sampled_from([("x-makrx",), ("b64",), ("x-makrx", "exp"), ("kid",)]))
def _header_crit(ctx: _Ctx, crit: tuple[str, ...]) -> Outcome:
    header = {**ctx.header, "crit": list(crit), **{c: True for c in crit if c.startswith("x-")}}
    return ctx.sign(header), *_ODD, f"crit {list(crit)}"


@_op("header", st.sampled_from(["jku", "x5u"]), st.booleans())
def _header_key_url(ctx: _Ctx, member: str, attacker_signed: bool) -> Outcome:
    attacker = ctx.issuer.attacker
    url = attacker.jku("mutation") if member == "jku" else attacker.x5u("mutation")
    if attacker_signed:
        header = {**ctx.header, "alg": "RS256", "kid": attacker.key.kid, member: url}
        return (
            ctx.sign(header, alg="RS256", key=attacker.key.private_key),
            False,
            False,
            f"{member} at the attacker server, signed by the attacker's key",
        )
    return ctx.sign({**ctx.header, member: url}), True, True, f"{member} at the attacker server, real signature"


@_op("header", st.sampled_from(["jwk", "x5c"]))
def _header_embedded_key(ctx: _Ctx, member: str) -> Outcome:
    attacker = ctx.issuer.attacker.key
    value: Any = (
        {k: v for k, v in attacker.jwk().items() if k in ("kty", "n", "e")}
        if member == "jwk"
        else attacker.jwk()["x5c"]
    )
    header = {**ctx.header, "alg": "RS256", member: value}
    return ctx.sign(header, alg="RS256", key=attacker.private_key), False, False, f"embedded {member}, attacker-signed"


@_op("header", st.sampled_from(["alg-none-last", "alg-none-first", "kid-twice"]))
def _header_duplicate(ctx: _Ctx, variant: str) -> Outcome:
    alg, kid = ctx.key.alg, ctx.key.kid
    raw = {
        "alg-none-last": f'{{"alg":"{alg}","typ":"JWT","kid":"{kid}","alg":"none"}}',
        "alg-none-first": f'{{"alg":"none","typ":"JWT","kid":"{kid}","alg":"{alg}"}}',
        "kid-twice": f'{{"alg":"{alg}","typ":"JWT","kid":"{kid}","kid":"other"}}',
    }[variant]
    return ctx.sign(b64url(raw.encode())), *_ODD, f"duplicate header members ({variant})"


@_op("header", st.sampled_from(['["RS256"]', '"RS256"', "42", "null", "{", ""]))
def _header_not_object(ctx: _Ctx, raw: str) -> Outcome:
    return ctx.sign(b64url(raw.encode())), False, False, f"header is {raw!r}"


# ---------------------------------------------------------------------------------------------- claims

_TIME_TYPES = ["string", "null", "bool", "list", "object"]


def _bad_type(value: int, how: str) -> Any:
    return {"string": str(value), "null": None, "bool": True, "list": [value], "object": {"t": value}}[how]


@_op(
    "claims",
    st.one_of(
        st.tuples(st.just("past"), st.integers(LEEWAY + 1, 10 * 365 * 86400)),
        st.tuples(st.just("future"), st.integers(1, 30 * 86400)),
        st.tuples(st.just("float"), st.integers(60, 3600)),
        st.tuples(st.just("missing"), st.just(0)),
        st.tuples(st.sampled_from(_TIME_TYPES), st.integers(60, 3600)),
    ),
)
def _claim_exp(ctx: _Ctx, change: tuple[str, int]) -> Outcome:
    how, delta = change
    if how == "past":
        return ctx.sign(claims={**ctx.claims, "exp": ctx.now - delta}), False, False, f"exp {delta} s ago"
    if how == "future":
        return ctx.sign(claims={**ctx.claims, "exp": ctx.now + delta}), True, False, f"exp in {delta} s"
    if how == "float":
        return ctx.sign(claims={**ctx.claims, "exp": ctx.now + delta + 0.5}), True, True, "exp as a non-integer number"
    if how == "missing":
        return ctx.sign(claims=_with(ctx.claims, "exp", None, remove=True)), *_ODD, "exp removed"
    value = _bad_type(ctx.now + delta, how)
    return ctx.sign(claims={**ctx.claims, "exp": value}), *_ODD, f"exp as {how} ({value!r})"


@_op(
    "claims",
    st.sampled_from(["nbf", "iat"]),
    st.one_of(
        st.tuples(st.just("future"), st.integers(LEEWAY + 1, 86400)),
        st.tuples(st.just("past"), st.integers(0, 3600)),
        st.tuples(st.just("missing"), st.just(0)),
        st.tuples(st.sampled_from(_TIME_TYPES[:2] + _TIME_TYPES[3:]), st.integers(0, 3600)),
    ),
)
def _claim_time(ctx: _Ctx, claim: str, change: tuple[str, int]) -> Outcome:
    how, delta = change
    if how == "future":
        claims = {**ctx.claims, claim: ctx.now + delta, "exp": ctx.now + delta + 600}
        outcome = (False, False) if claim == "nbf" else _ODD  # nbf: not valid yet; iat: the issuer's clock
        return ctx.sign(claims=claims), *outcome, f"{claim} {delta} s in the future"
    if how == "past":
        return ctx.sign(claims={**ctx.claims, claim: ctx.now - delta}), True, False, f"{claim} {delta} s ago"
    if how == "missing":
        claims = _with(ctx.claims, claim, None, remove=True)
        return ctx.sign(claims=claims), True, claim == "iat", f"{claim} absent"
    value = _bad_type(ctx.now - delta, how)
    return ctx.sign(claims={**ctx.claims, claim: value}), *_ODD, f"{claim} as {how} ({value!r})"


@_op(
    "claims",
    st.one_of(
        st.tuples(st.just("text"), st.text(max_size=30)),
        st.tuples(
            st.sampled_from(["trailing_slash", "other_scheme", "other_realm", "upper", "missing", "null", "list"]),
            st.just(""),
        ),
    ),
)
def _claim_iss(ctx: _Ctx, change: tuple[str, str]) -> Outcome:
    how, text = change
    iss = ctx.issuer.issuer_url
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
        return ctx.sign(claims=_with(ctx.claims, "iss", None, remove=True)), False, False, "iss removed"
    if value == iss:
        return ctx.sign(), True, False, "iss unchanged"
    return ctx.sign(claims={**ctx.claims, "iss": value}), False, False, f"iss {how} ({value!r})"


@_op(
    "claims",
    st.one_of(
        st.tuples(st.just("text"), st.text(max_size=20)),
        st.tuples(st.just("list_with"), st.lists(st.text(max_size=10), max_size=3)),
        st.tuples(st.just("list_without"), st.lists(st.text(max_size=10), max_size=3)),
        st.tuples(
            st.sampled_from(["missing", "empty_list", "object", "number", "null", "nested", "upper"]), st.just(None)
        ),
    ),
)
def _claim_aud(ctx: _Ctx, change: tuple[str, Any]) -> Outcome:
    how, arg = change
    ours = ctx.audience
    if how == "missing":
        return ctx.sign(claims=_with(ctx.claims, "aud", None, remove=True)), False, False, "aud removed"
    if how == "list_with":
        value: Any = [ours, *arg]
        return ctx.sign(claims={**ctx.claims, "aud": value}), True, False, f"aud {value!r}"
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
        return ctx.sign(), True, False, "aud unchanged"
    return ctx.sign(claims={**ctx.claims, "aud": value}), False, False, f"aud {how} ({value!r})"


@_op("claims", st.sampled_from(["ID", "Refresh", "Logout", "Offline", "Serialized-ID", "bearer", None]))
def _claim_typ(ctx: _Ctx, typ: str | None) -> Outcome:
    if typ is None:
        return ctx.sign(claims=_with(ctx.claims, "typ", None, remove=True)), True, True, "typ claim removed"
    if typ == "bearer":
        return ctx.sign(claims={**ctx.claims, "typ": typ}), True, True, "typ 'bearer' (lower case)"
    return ctx.sign(claims={**ctx.claims, "typ": typ}), False, False, f"typ {typ!r}"


@_op(
    "claims",
    st.sampled_from(["sub", "jti", "preferred_username", "email", "name", "azp", "scope", "sid"]),
    st.one_of(st.text(max_size=30), st.just(None)),
)
def _claim_identity(ctx: _Ctx, claim: str, value: str | None) -> Outcome:
    claims = _with(ctx.claims, claim, value, remove=value is None)
    lenient = claim in ("azp", "scope", "sub") or not value
    what = f"{claim} removed" if value is None else f"{claim} {value!r}"
    return ctx.sign(claims=claims), True, lenient, what


@_op("claims", st.from_regex(r"x_[a-z]{1,10}", fullmatch=True), _json_scalars)
def _claim_extra(ctx: _Ctx, name: str, value: Any) -> Outcome:
    return ctx.sign(claims={**ctx.claims, name: value}), True, False, f"extra claim {name}={value!r}"


# ---------------------------------------------------------------------------------------------- signature


def _parts(ctx: _Ctx) -> tuple[str, str, bytes]:
    h, p, s = ctx.valid_token().split(".")
    return h, p, base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


@_op("signature", st.integers(0, 1023), st.integers(0, 7))
def _sig_flip_bit(ctx: _Ctx, index: int, bit: int) -> Outcome:
    h, p, sig = _parts(ctx)
    raw = bytearray(sig)
    raw[index % len(raw)] ^= 1 << bit
    return f"{h}.{p}.{b64url(bytes(raw))}", False, False, f"signature byte {index % len(raw)} bit {bit} flipped"


@_op("signature", st.integers(0, 600))
def _sig_truncate(ctx: _Ctx, length: int) -> Outcome:
    h, p, sig = _parts(ctx)
    cut = min(length, len(sig) - 1)
    return f"{h}.{p}.{b64url(sig[:cut])}", False, False, f"signature cut to {cut} bytes"


@_op("signature", st.binary(min_size=1, max_size=16))
def _sig_extend(ctx: _Ctx, extra: bytes) -> Outcome:
    h, p, sig = _parts(ctx)
    return f"{h}.{p}.{b64url(sig + extra)}", False, False, f"{len(extra)} bytes appended to the signature"


@_op(
    "signature",
    st.sampled_from(["zero", "empty", "random", "other_key", "retired_key"]),
    st.binary(min_size=8, max_size=8),
)
def _sig_replace(ctx: _Ctx, how: str, noise: bytes) -> Outcome:
    h, p, sig = _parts(ctx)
    if how == "zero":
        new = bytes(len(sig))
    elif how == "empty":
        new = b""
    elif how == "random":
        new = (noise * (len(sig) // 8 + 1))[: len(sig)]
    else:
        key = ctx.issuer.attacker.key if how == "other_key" else ctx.issuer.keys.last_retired()
        new = key.sign(f"{h}.{p}".encode(), alg=ctx.key.alg if key.kty == ctx.key.kty else None)
    return f"{h}.{p}.{b64url(new)}", False, False, f"signature replaced ({how})"


# ---------------------------------------------------------------------------------------------- encoding


def _lenient_same(segment: str, original: bytes) -> bool:
    """Would a lenient decoder (Python's, pyjwt's) read the same signature bytes from ``segment``?"""
    if "." in segment:
        return False
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)) == original
    except (binascii.Error, ValueError):
        return False


def _segment_edit(ctx: _Ctx, index: int, edit: Callable[[str], str], what: str) -> Outcome:
    token = ctx.valid_token()
    parts = token.split(".")
    original = parts[index]
    changed = edit(original)
    if changed == original:
        return token, True, False, f"{what}: no change"
    parts[index] = changed
    new = ".".join(parts)
    if index < 2:
        return new, False, False, f"{what} in the {('header', 'payload')[index]} segment"
    sig = base64.urlsafe_b64decode(original + "=" * (-len(original) % 4))
    same = _lenient_same(changed, sig)
    return new, same, same, f"{what} in the signature segment" + (" (same bytes to a lenient decoder)" if same else "")


_SEGMENT = st.integers(0, 2)
_PRINTABLE = "!*@#$%^&()[]{}<>\\~=+/.,;:'\"`|?"  # no whitespace: RFC 6750 allows several spaces after "Bearer"


@_op("encoding", _SEGMENT)
def _enc_padding(ctx: _Ctx, index: int) -> Outcome:
    return _segment_edit(ctx, index, lambda s: s + ("=" * (-len(s) % 4) or "=="), "base64 padding added")


@_op("encoding", _SEGMENT)
def _enc_standard_alphabet(ctx: _Ctx, index: int) -> Outcome:
    return _segment_edit(ctx, index, lambda s: s.translate(str.maketrans("-_", "+/")), "standard base64 alphabet")


@_op("encoding", _SEGMENT, st.integers(0, 4096), st.sampled_from(list(_PRINTABLE)))
def _enc_insert_char(ctx: _Ctx, index: int, position: int, char: str) -> Outcome:
    def edit(s: str) -> str:
        at = position % (len(s) + 1)
        return s[:at] + char + s[at:]

    return _segment_edit(ctx, index, edit, f"{char!r} inserted")


@_op("encoding", _SEGMENT, st.integers(0, 4096))
def _enc_swap_case(ctx: _Ctx, index: int, position: int) -> Outcome:
    def edit(s: str) -> str:
        letters = [i for i, c in enumerate(s) if c.isalpha()]
        if not letters:
            return s
        at = letters[position % len(letters)]
        return s[:at] + s[at].swapcase() + s[at + 1 :]

    return _segment_edit(ctx, index, edit, "one letter's case swapped")


@_op("encoding", _SEGMENT, st.integers(1, 3))
def _enc_drop_tail(ctx: _Ctx, index: int, count: int) -> Outcome:
    return _segment_edit(ctx, index, lambda s: s[:-count] if len(s) > count else "", f"last {count} chars dropped")


@_op(
    "encoding",
    st.sampled_from(
        [
            "trailing_dot",
            "leading_dot",
            "double_dot",
            "swap_header_payload",
            "bearer_prefix",
            "json_token",
            "percent_encoded",
        ]
    ),
)
def _enc_structure(ctx: _Ctx, how: str) -> Outcome:
    token = ctx.valid_token()
    h, p, s = token.split(".")
    new = {
        "trailing_dot": token + ".",
        "leading_dot": "." + token,
        "double_dot": f"{h}..{p}.{s}",
        "swap_header_payload": f"{p}.{h}.{s}",
        "bearer_prefix": "Bearer " + token,
        "json_token": json.dumps({"access_token": token}).replace('"', "'"),
        "percent_encoded": token.replace("-", "%2D").replace("_", "%5F").replace(".", "%2E"),
    }[how]
    return new, new == token, False, f"structure: {how}"


# ---------------------------------------------------------------------------------------------- strategies


def mutation_plans(kinds: Sequence[str] = KINDS) -> st.SearchStrategy[MutationPlan]:
    """Plans over the given kinds (all by default); no issuer needed, so usable in ``@given`` at import time."""
    ops = [op for op in _OPS.values() if op.kind in kinds]
    if not ops:
        raise ValueError(f"no mutation operations for kinds {kinds!r}; use some of {KINDS}")
    return st.sampled_from(ops).flatmap(lambda op: op.args.map(lambda args: MutationPlan(op.kind, op.name, args)))


def mutated_tokens(
    issuer: Issuer, audience: str | None = None, kinds: Sequence[str] = KINDS
) -> st.SearchStrategy[Mutation]:
    """Mutations of a fresh valid token for ``audience`` (use inside a test via ``data.draw(...)``)."""
    return mutation_plans(kinds).map(lambda plan: plan.apply(issuer, audience))


def sample(
    issuer: Issuer, audience: str | None = None, *, n: int = 50, seed: int = 0, kinds: Sequence[str] = KINDS
) -> list[Mutation]:
    """``n`` mutations, the same ones for the same ``seed`` (for parametrised contracts outside ``@given``)."""
    plans: list[MutationPlan] = []

    @hypothesis_seed(seed)
    @settings(
        max_examples=n, database=None, phases=[Phase.generate], deadline=None, suppress_health_check=list(HealthCheck)
    )
    @given(mutation_plans(kinds))
    def collect(plan: MutationPlan) -> None:
        plans.append(plan)

    collect()
    return [plan.apply(issuer, audience) for plan in plans[:n]]
