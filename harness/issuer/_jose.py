"""Compact-JWS building blocks: base64url, JSON segments, signing per algorithm, and a strict verifier."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

__all__ = [
    "StrictVerifier",
    "TokenRejected",
    "b64url",
    "b64url_decode",
    "compact",
    "json_segment",
    "sign_bytes",
    "split_unverified",
    "verify_signature",
]

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_HMAC_DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_PKCS1 = padding.PKCS1v15()
_HASH_OBJ = {bits: cls() for bits, cls in _HASHES.items()}
_PSS = {
    bits: padding.PSS(mgf=padding.MGF1(cls()), salt_length=cls.digest_size)  # type: ignore[arg-type]
    for bits, cls in _HASHES.items()
}
_ECDSA = {bits: ec.ECDSA(h) for bits, h in _HASH_OBJ.items()}
_EC_SIZES = {"ES256": 32, "ES384": 48, "ES512": 66}
_B64URL_RE = re.compile(rb"^[A-Za-z0-9_-]*$")


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str | bytes, *, strict: bool = False) -> bytes:
    """Decode base64url; ``strict`` refuses padding and characters outside the url-safe alphabet."""
    raw = segment.encode("ascii") if isinstance(segment, str) else segment
    if strict and not _B64URL_RE.match(raw):
        raise ValueError("segment is not unpadded base64url")
    if strict and len(raw) % 4 == 1:
        raise ValueError("segment has an impossible base64 length")
    decoded = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    if strict and base64.urlsafe_b64encode(decoded).rstrip(b"=") != raw:
        raise ValueError("segment is not canonical base64url (stray bits in the last character)")
    return decoded


def json_segment(obj: Any) -> str:
    """An object as a compact JSON base64url segment (the separators pyjwt and Keycloak use)."""
    return b64url(json.dumps(obj, separators=(",", ":")).encode("utf-8"))


def sign_bytes(alg: str, key: Any, signing_input: bytes) -> bytes:
    """The raw JWS signature of ``signing_input`` for ``alg`` (RS*, PS*, ES*, HS*, none).

    For HS* ``key`` is the secret bytes; for the others a cryptography private key.
    ES* signatures are returned in JOSE form (r || s, fixed width), not DER.
    """
    family, bits = alg[:2], alg[2:]
    if alg.lower() == "none":
        return b""
    if family == "RS":
        return bytes(key.sign(signing_input, _PKCS1, _HASH_OBJ[bits]))
    if family == "PS":
        return bytes(key.sign(signing_input, _PSS[bits], _HASH_OBJ[bits]))
    if family == "ES":
        r, s = decode_dss_signature(key.sign(signing_input, _ECDSA[bits]))
        size = _EC_SIZES[alg]
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if family == "HS":
        return hmac.new(key, signing_input, _HMAC_DIGESTS[alg]).digest()
    raise ValueError(f"unsupported JWS alg {alg!r}")


def compact(header: Mapping[str, Any] | str, payload: Mapping[str, Any] | str, alg: str, key: Any) -> str:
    """Build ``header.payload.signature``; a str header/payload is used as the raw segment verbatim."""
    h = header if isinstance(header, str) else json_segment(header)
    p = payload if isinstance(payload, str) else json_segment(payload)
    signing_input = f"{h}.{p}".encode("ascii")
    return f"{h}.{p}.{b64url(sign_bytes(alg, key, signing_input))}"


def split_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """Header, payload and signature of a well-formed token, without any check (for tests and tools)."""
    h, p, s = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p)), b64url_decode(s)


class TokenRejected(Exception):
    """The strict verifier refused a token; ``reason`` names the check that failed."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for name, value in pairs:
        if name in seen:
            raise TokenRejected(f"duplicate JSON member {name!r}")
        seen[name] = value
    return seen


def _strict_json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except TokenRejected:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise TokenRejected(f"{what} is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise TokenRejected(f"{what} is not a JSON object")
    return obj


def _numeric_date(payload: Mapping[str, Any], claim: str) -> float | None:
    if claim not in payload:
        return None
    value = payload[claim]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TokenRejected(f"claim {claim!r} is not a NumericDate (got {type(value).__name__})")
    return float(value)


def verify_signature(alg: str, public_key: Any, signing_input: bytes, signature: bytes) -> bool:
    family, bits = alg[:2], alg[2:]
    try:
        if family == "RS" and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, signing_input, _PKCS1, _HASH_OBJ[bits])
        elif family == "PS" and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, signing_input, _PSS[bits], _HASH_OBJ[bits])
        elif family == "ES" and isinstance(public_key, ec.EllipticCurvePublicKey):
            size = _EC_SIZES[alg]
            if len(signature) != 2 * size:
                return False
            r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
            if r == 0 or s == 0:
                return False
            public_key.verify(encode_dss_signature(r, s), signing_input, _ECDSA[bits])
        else:
            return False
    except (InvalidSignature, ValueError, KeyError):
        return False
    return True


@dataclass(frozen=True)
class _VerifyKey:
    kid: str
    alg: str
    public_key: Any


class StrictVerifier:
    """What a conformant MakrX backend does with an access token, written out check by check.

    Keys come from ``keys`` (kid → (alg, public key)); a key is chosen by ``kid`` only and its
    algorithm is pinned. Rejects: not exactly three unpadded base64url segments, duplicate JSON
    members, unknown ``crit``, missing/unknown kid, alg other than the key's, bad signature, exp
    missing or not a number or past (beyond ``leeway``), nbf/iat in the future, wrong iss, aud not
    containing ``audience``, ``typ`` other than ``Bearer``, tokens over ``max_token_bytes``. Used by
    userinfo and by the tests as the reference for every catalogue verdict.
    """

    def __init__(
        self,
        keys: Iterable[tuple[str, str, Any]],
        *,
        issuer: str,
        audience: str | None,
        leeway: float = 0.0,
        require_typ: str | None = "Bearer",
        max_token_bytes: int = 8192,
    ) -> None:
        self._keys = {kid: _VerifyKey(kid, alg, pub) for kid, alg, pub in keys}
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.require_typ = require_typ
        self.max_token_bytes = max_token_bytes

    def verify(self, token: str | bytes, *, now: float) -> dict[str, Any]:
        """The payload of a token that passes every check; raises :class:`TokenRejected` otherwise."""
        if isinstance(token, bytes):
            try:
                token = token.decode("ascii")
            except UnicodeDecodeError:
                raise TokenRejected("token is not ASCII") from None
        if len(token) > self.max_token_bytes:
            raise TokenRejected(f"token is {len(token)} bytes, over the {self.max_token_bytes}-byte cap")
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenRejected(f"token has {len(parts)} segments, not 3")
        h_seg, p_seg, s_seg = parts
        try:
            header_raw = b64url_decode(h_seg, strict=True)
            payload_raw = b64url_decode(p_seg, strict=True)
            signature = b64url_decode(s_seg, strict=True)
        except (ValueError, binascii.Error) as exc:
            raise TokenRejected(f"bad base64url: {exc}") from None
        header = _strict_json_object(header_raw, "header")
        if "crit" in header:
            raise TokenRejected("header has a crit member naming extensions this verifier does not understand")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise TokenRejected("header has no string kid")
        key = self._keys.get(kid)
        if key is None:
            raise TokenRejected(f"kid {kid!r} is not a published signing key")
        if header.get("alg") != key.alg:
            raise TokenRejected(f"alg {header.get('alg')!r} is not the key's alg {key.alg!r}")
        if not signature or not verify_signature(key.alg, key.public_key, f"{h_seg}.{p_seg}".encode(), signature):
            raise TokenRejected("signature does not verify")
        payload = _strict_json_object(payload_raw, "payload")
        exp = _numeric_date(payload, "exp")
        if exp is None:
            raise TokenRejected("exp is missing")
        if exp <= now - self.leeway:
            raise TokenRejected("token has expired")
        nbf = _numeric_date(payload, "nbf")
        if nbf is not None and nbf > now + self.leeway:
            raise TokenRejected("nbf is in the future")
        iat = _numeric_date(payload, "iat")
        if iat is not None and iat > now + self.leeway:
            raise TokenRejected("iat is in the future")
        if payload.get("iss") != self.issuer or not isinstance(payload.get("iss"), str):
            raise TokenRejected(f"iss {payload.get('iss')!r} is not {self.issuer!r}")
        if self.audience is not None:
            aud = payload.get("aud")
            if isinstance(aud, str):
                ok = aud == self.audience
            elif isinstance(aud, list) and all(isinstance(a, str) for a in aud):
                ok = self.audience in aud
            else:
                ok = False
            if not ok:
                raise TokenRejected(f"aud {aud!r} does not contain {self.audience!r}")
        if self.require_typ is not None and payload.get("typ") != self.require_typ:
            raise TokenRejected(f"typ {payload.get('typ')!r} is not {self.require_typ!r}")
        return payload
