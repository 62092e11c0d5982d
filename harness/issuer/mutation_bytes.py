"""The ``signature`` and ``encoding`` mutations: a valid token's signature bytes, or its base64 and segments, edited
after signing. Only an edit a lenient decoder reads back to the same bytes leaves the token valid.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Final

from hypothesis import strategies as st

from ._jose import b64url, b64url_decode
from .forge import Forge
from .mutation_op import Op, Outcome

__all__ = ["OPS"]

OPS: Final[list[Op]] = []
_signature = Op.collector("signature", OPS)
_encoding = Op.collector("encoding", OPS)


# ---------------------------------------------------------------------------------------------- signature


def _parts(forge: Forge) -> tuple[str, str, bytes]:
    h, p, s = forge.segments()
    return h, p, b64url_decode(s)


@_signature(st.integers(0, 1023), st.integers(0, 7))
def _sig_flip_bit(forge: Forge, index: int, bit: int) -> Outcome:
    h, p, sig = _parts(forge)
    raw = bytearray(sig)
    raw[index % len(raw)] ^= 1 << bit
    return f"{h}.{p}.{b64url(bytes(raw))}", False, False, f"signature byte {index % len(raw)} bit {bit} flipped"


@_signature(st.integers(0, 600))
def _sig_truncate(forge: Forge, length: int) -> Outcome:
    h, p, sig = _parts(forge)
    cut = min(length, len(sig) - 1)
    return f"{h}.{p}.{b64url(sig[:cut])}", False, False, f"signature cut to {cut} bytes"


@_signature(st.binary(min_size=1, max_size=16))
def _sig_extend(forge: Forge, extra: bytes) -> Outcome:
    h, p, sig = _parts(forge)
    return f"{h}.{p}.{b64url(sig + extra)}", False, False, f"{len(extra)} bytes appended to the signature"


@_signature(
    st.sampled_from(["zero", "empty", "random", "other_key", "retired_key"]),
    st.binary(min_size=8, max_size=8),
)
def _sig_replace(forge: Forge, how: str, noise: bytes) -> Outcome:
    h, p, sig = _parts(forge)
    if how == "zero":
        new = bytes(len(sig))
    elif how == "empty":
        new = b""
    elif how == "random":
        new = (noise * (len(sig) // 8 + 1))[: len(sig)]
    else:
        key = forge.issuer.attacker.key if how == "other_key" else forge.issuer.keys.last_retired()
        new = key.sign(f"{h}.{p}".encode(), alg=forge.key.alg if key.kty == forge.key.kty else None)
    return f"{h}.{p}.{b64url(new)}", False, False, f"signature replaced ({how})"


# ---------------------------------------------------------------------------------------------- encoding


def _lenient_same(segment: str, original: bytes) -> bool:
    """Would a lenient decoder (Python's, pyjwt's) read the same signature bytes from ``segment``?"""
    if "." in segment:
        return False
    try:
        return b64url_decode(segment) == original
    except ValueError:  # binascii.Error is a ValueError
        return False


def _segment_edit(forge: Forge, index: int, edit: Callable[[str], str], what: str) -> Outcome:
    parts = list(forge.segments())
    token, original = ".".join(parts), parts[index]
    changed = edit(original)
    if changed == original:
        return token, True, False, f"{what}: no change"
    parts[index] = changed
    new = ".".join(parts)
    if index < 2:
        return new, False, False, f"{what} in the {('header', 'payload')[index]} segment"
    same = _lenient_same(changed, b64url_decode(original))
    return new, same, same, f"{what} in the signature segment" + (" (same bytes to a lenient decoder)" if same else "")


_SEGMENT = st.integers(0, 2)
_PRINTABLE = "!*@#$%^&()[]{}<>\\~=+/.,;:'\"`|?"  # no whitespace: RFC 6750 allows several spaces after "Bearer"


@_encoding(_SEGMENT)
def _enc_padding(forge: Forge, index: int) -> Outcome:
    return _segment_edit(forge, index, lambda s: s + ("=" * (-len(s) % 4) or "=="), "base64 padding added")


@_encoding(_SEGMENT)
def _enc_standard_alphabet(forge: Forge, index: int) -> Outcome:
    return _segment_edit(forge, index, lambda s: s.translate(str.maketrans("-_", "+/")), "standard base64 alphabet")


@_encoding(_SEGMENT, st.integers(0, 4096), st.sampled_from(list(_PRINTABLE)))
def _enc_insert_char(forge: Forge, index: int, position: int, char: str) -> Outcome:
    def edit(s: str) -> str:
        at = position % (len(s) + 1)
        return s[:at] + char + s[at:]

    return _segment_edit(forge, index, edit, f"{char!r} inserted")


@_encoding(_SEGMENT, st.integers(0, 4096))
def _enc_swap_case(forge: Forge, index: int, position: int) -> Outcome:
    def edit(s: str) -> str:
        letters = [i for i, c in enumerate(s) if c.isalpha()]
        if not letters:
            return s
        at = letters[position % len(letters)]
        return s[:at] + s[at].swapcase() + s[at + 1 :]

    return _segment_edit(forge, index, edit, "one letter's case swapped")


@_encoding(_SEGMENT, st.integers(1, 3))
def _enc_drop_tail(forge: Forge, index: int, count: int) -> Outcome:
    return _segment_edit(forge, index, lambda s: s[:-count] if len(s) > count else "", f"last {count} chars dropped")


@_encoding(
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
def _enc_structure(forge: Forge, how: str) -> Outcome:
    h, p, s = forge.segments()
    token = f"{h}.{p}.{s}"
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
