"""One realm key: its material, made once per process by OpenSSL, and how Keycloak publishes it (JWK, x5c)."""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Any, Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ._jose import b64url, sign_bytes

__all__ = [
    "ACTIVE",
    "NEXT",
    "PASSIVE",
    "RETIRED",
    "Key",
    "KeySpec",
    "KeyState",
    "PrivateKey",
    "adopt_keys",
    "export_keys",
    "generated_key",
]

KeyState = Literal["next", "active", "passive", "retired"]
"""``next``: published, not yet signing. ``active``: signs new tokens. ``passive``: the previous
active key, still published so its tokens verify (Keycloak's "passive" key). ``retired``: no longer
published; tokens it signed must be refused once a backend's JWKS cache expires."""

NEXT: Final = "next"
ACTIVE: Final = "active"
PASSIVE: Final = "passive"
RETIRED: Final = "retired"

_CURVES = {256: ec.SECP256R1(), 384: ec.SECP384R1()}
_CERT_NOT_BEFORE = _dt.datetime(2020, 1, 1, tzinfo=_dt.UTC)
_CERT_NOT_AFTER = _dt.datetime(2070, 1, 1, tzinfo=_dt.UTC)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


# --------------------------------------------------------------------------------------------------
# Key material: OpenSSL's generator, each key once per process
# --------------------------------------------------------------------------------------------------

KeySpec = tuple[str, int, int, str]  # (kty, size, seed, label), as generated_key takes them

_made: dict[KeySpec, PrivateKey] = {}
_making: dict[KeySpec, threading.Lock] = {}
_making_guard = threading.Lock()


def _generate(kty: str, size: int) -> PrivateKey:
    if kty == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=size)
    return ec.generate_private_key(_CURVES[size])


def generated_key(kty: str, size: int, seed: int | None, label: str) -> PrivateKey:
    """The private key ``label`` (``"sig-0"``, ``"enc-0"``, ...) of ``seed``: made by OpenSSL on the first call
    in this process (RSA-2048: ~10-100 ms, the GIL released), the same key for the same arguments after.
    ``seed=None``: a fresh key on every call.

    The key differs between processes: nothing may depend on its value. What a seed fixes across runs is
    the users and claims (``users``, ``tokens``), never the key material.
    """
    if seed is None:
        return _generate(kty, size)
    spec: KeySpec = (kty, size, seed, label)
    with _making_guard:
        lock = _making.setdefault(spec, threading.Lock())
    with lock:  # one key per spec, also when two issuers' warm-up threads ask at once
        made = _made.get(spec)
        if made is None:
            made = _made[spec] = _generate(kty, size)
        return made


def export_keys(specs: Iterable[KeySpec]) -> dict[str, str]:
    """The PEMs of these keys, made here two at a time: what the xdist controller hands its workers, so a
    run makes each key once, not once per worker while every worker also boots its backend."""
    wanted = list(specs)
    with ThreadPoolExecutor(2) as pool:  # OpenSSL releases the GIL while it searches primes
        made = list(pool.map(lambda spec: generated_key(*spec), wanted))
    return {
        ":".join(map(str, spec)): key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        for spec, key in zip(wanted, made, strict=True)
    }


def adopt_keys(pems: Mapping[str, str]) -> None:
    """Take keys :func:`export_keys` made in another process as this process's own. OpenSSL's check of an
    RSA key (~40 ms each, more under load) is skipped: these come from the controller's own generator, and
    every worker would otherwise pay it in its start-up, on the gate's critical path."""
    for name, pem in pems.items():
        kty, size, seed, label = name.split(":")
        key = serialization.load_pem_private_key(pem.encode(), password=None, unsafe_skip_rsa_key_validation=True)
        assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
        _made.setdefault((kty, int(size), int(seed), label), key)


def _uint_b64(value: int, length: int | None = None) -> str:
    return b64url(value.to_bytes(length or max(1, (value.bit_length() + 7) // 8), "big"))


class Key:
    """One realm key: the private material, its Keycloak-style JWK (n/e or x/y, plus x5c) and its state.

    ``private_key`` is the material or a function that makes it: then it is made on first use, so an issuer
    starts without waiting for RSA generation (its warm-up thread makes the keys meanwhile).
    """

    def __init__(
        self,
        private_key: PrivateKey | Callable[[], PrivateKey],
        *,
        alg: str,
        use: str,
        realm: str,
        label: str,
        index: int,
    ) -> None:
        self._make = private_key if callable(private_key) else None
        self._private = None if callable(private_key) else private_key
        self._lock = threading.Lock()
        self.alg = alg
        self.use = use
        self.realm = realm
        self.label = label
        self.index = index
        self.state: KeyState = NEXT

    def __repr__(self) -> str:
        return f"Key(kid={self.kid[:10]}..., alg={self.alg}, use={self.use}, state={self.state})"

    @property
    def private_key(self) -> PrivateKey:
        private = self._private
        if private is None:
            with self._lock:
                if self._private is None:
                    assert self._make is not None
                    self._private = self._make()
                private = self._private
        return private

    @cached_property
    def public_key(self) -> PublicKey:
        return self.private_key.public_key()

    @cached_property
    def spki_der(self) -> bytes:
        return self.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    @cached_property
    def kid(self) -> str:
        """Keycloak's KeyUtils.createKeyId: base64url(SHA-256(encoded public key))."""
        return b64url(hashlib.sha256(self.spki_der).digest())

    @property
    def kty(self) -> str:
        return "RSA" if isinstance(self.private_key, rsa.RSAPrivateKey) else "EC"

    @property
    def published(self) -> bool:
        return self.state in (NEXT, ACTIVE, PASSIVE)

    @cached_property
    def public_pem(self) -> bytes:
        """SubjectPublicKeyInfo PEM, with its trailing newline (what key-confusion attacks use as secret)."""
        return self.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def public_key_b64(self) -> str:
        """Base64 DER SubjectPublicKeyInfo: the realm JSON's ``public_key``."""
        return base64.b64encode(self.spki_der).decode("ascii")

    @cached_property
    def certificate(self) -> x509.Certificate:
        """A self-signed certificate for the key, as Keycloak generates (CN=<realm>), fixed validity."""
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.realm)])
        serial = int.from_bytes(hashlib.sha256(self.spki_der).digest()[:16], "big") >> 1 | 1
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.public_key)
            .serial_number(serial)
            .not_valid_before(_CERT_NOT_BEFORE)
            .not_valid_after(_CERT_NOT_AFTER)
        )
        if self.kty == "EC":
            return builder.sign(self.private_key, hashes.SHA256(), ecdsa_deterministic=True)
        return builder.sign(self.private_key, hashes.SHA256())

    @cached_property
    def certificate_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @cached_property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @cached_property
    def _jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = {"kid": self.kid, "kty": self.kty, "alg": self.alg, "use": self.use}
        if isinstance(self.public_key, rsa.RSAPublicKey):
            numbers = self.public_key.public_numbers()
            jwk["n"] = _uint_b64(numbers.n)
            jwk["e"] = _uint_b64(numbers.e)
        else:
            pn = self.public_key.public_numbers()
            size = (self.public_key.curve.key_size + 7) // 8
            jwk["crv"] = {"secp256r1": "P-256", "secp384r1": "P-384"}[self.public_key.curve.name]
            jwk["x"] = _uint_b64(pn.x, size)
            jwk["y"] = _uint_b64(pn.y, size)
        der = self.certificate_der
        jwk["x5c"] = [base64.b64encode(der).decode("ascii")]
        jwk["x5t"] = b64url(hashlib.sha1(der).digest())
        jwk["x5t#S256"] = b64url(hashlib.sha256(der).digest())
        return jwk

    def jwk(self) -> dict[str, Any]:
        """The public JWK exactly as published (a fresh copy)."""
        return dict(self._jwk)

    def sign(self, signing_input: bytes, alg: str | None = None) -> bytes:
        """Raw JWS signature with this key (``alg`` defaults to the key's own)."""
        return sign_bytes(alg or self.alg, self.private_key, signing_input)
