"""Realm keys as Keycloak manages them: seed-derived, cached, published as JWKS, rotated one call per step."""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import math
import os
import tempfile
import threading
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from makrx_contracts.harness.errors import IssuerError

from ._jose import b64url, sign_bytes, verify_signature

__all__ = ["Key", "KeySet", "KeyState", "default_cache_dir", "derived_private_key"]

KeyState = Literal["next", "active", "passive", "retired"]
"""``next``: published, not yet signing. ``active``: signs new tokens. ``passive``: the previous
active key, still published so its tokens verify (Keycloak's "passive" key). ``retired``: no longer
published; tokens it signed must be refused once a backend's JWKS cache expires."""

NEXT: Final = "next"
ACTIVE: Final = "active"
PASSIVE: Final = "passive"
RETIRED: Final = "retired"

CACHE_ENV = "MAKRX_ISSUER_KEY_CACHE"
_DERIVATION_VERSION = "v1"
_SIGNING_ALGS = {"RS256": ("RSA", None), "ES256": ("EC", 256)}
_CERT_NOT_BEFORE = _dt.datetime(2020, 1, 1, tzinfo=_dt.UTC)
_CERT_NOT_AFTER = _dt.datetime(2070, 1, 1, tzinfo=_dt.UTC)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


# --------------------------------------------------------------------------------------------------
# Deterministic derivation
# --------------------------------------------------------------------------------------------------


class _Drbg:
    """SHA-256 in counter mode: a byte stream fixed by its seed material, stable across Python versions."""

    def __init__(self, material: bytes) -> None:
        self._material = material
        self._counter = 0
        self._buffer = b""

    def take(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._buffer += hashlib.sha256(self._material + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def randbits(self, k: int) -> int:
        nbytes = (k + 7) // 8
        return int.from_bytes(self.take(nbytes), "big") >> (nbytes * 8 - k)

    def below(self, upper: int) -> int:
        """Uniform in [0, upper)."""
        k = upper.bit_length() + 64
        return self.randbits(k) % upper


_small_primes_product: int | None = None


def _small_product() -> int:
    global _small_primes_product
    if _small_primes_product is None:
        limit = 1 << 16
        sieve = bytearray([1]) * limit
        sieve[0:2] = b"\x00\x00"
        for i in range(2, int(limit**0.5) + 1):
            if sieve[i]:
                sieve[i * i :: i] = bytearray(len(sieve[i * i :: i]))
        _small_primes_product = math.prod(i for i in range(3, limit) if sieve[i])
    return _small_primes_product


def _miller_rabin(n: int, drbg: _Drbg, rounds: int) -> bool:
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for i in range(rounds):
        a = 2 if i == 0 else 2 + drbg.below(n - 3)
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _derive_prime(drbg: _Drbg, bits: int, e: int) -> int:
    product = _small_product()
    while True:
        base = drbg.randbits(bits) | (3 << (bits - 2)) | 1
        for offset in range(0, 8192, 2):
            candidate = base + offset
            if candidate.bit_length() != bits:
                break
            if math.gcd(candidate, product) != 1 or (candidate - 1) % e == 0:
                continue
            if _miller_rabin(candidate, drbg, rounds=6):
                return candidate


def _rsa_from_primes(p: int, q: int, e: int = 65537) -> rsa.RSAPrivateKey:
    d = pow(e, -1, math.lcm(p - 1, q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p),
        dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(e, p * q),
    )
    return numbers.private_key(unsafe_skip_rsa_key_validation=True)


def _derive_rsa_primes(material: bytes, bits: int, e: int = 65537) -> tuple[int, int]:
    drbg = _Drbg(material)
    while True:
        p = _derive_prime(drbg, bits // 2, e)
        q = _derive_prime(drbg, bits // 2, e)
        if p != q and (p * q).bit_length() == bits:
            return max(p, q), min(p, q)


def _material(kty: str, size: int, seed: int, label: str) -> bytes:
    return f"makrx-issuer-key/{_DERIVATION_VERSION}/{kty}{size}/{seed}/{label}".encode()


def _derive(kty: str, size: int, seed: int, label: str) -> PrivateKey:
    if kty == "RSA":
        p, q = _derive_rsa_primes(_material(kty, size, seed, label), size)
        return _rsa_from_primes(p, q)
    curve = {256: ec.SECP256R1(), 384: ec.SECP384R1()}[size]
    order = {
        256: 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
        384: int(
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16
        ),
    }[size]
    scalar = 1 + _Drbg(_material(kty, size, seed, label)).below(order - 1)
    return ec.derive_private_key(scalar, curve)


# --------------------------------------------------------------------------------------------------
# Cache: process memo -> shipped seed-0 keys -> disk -> derive
# --------------------------------------------------------------------------------------------------


def default_cache_dir() -> Path | None:
    """Where derived keys are kept between runs: ``$MAKRX_ISSUER_KEY_CACHE`` ("off" disables),
    else ``$XDG_CACHE_HOME/makrx-contracts/issuer-keys`` (``~/.cache/...``)."""
    configured = os.environ.get(CACHE_ENV)
    if configured is not None:
        return None if configured.strip().lower() in {"", "0", "off", "no", "none"} else Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "makrx-contracts" / "issuer-keys"


_USE_DEFAULT: Any = object()
_memo: dict[tuple[str, int, int, str], PrivateKey] = {}
_memo_locks: dict[tuple[str, int, int, str], threading.Lock] = {}
_memo_guard = threading.Lock()


def _load_disk(path: Path) -> PrivateKey | None:
    try:
        data = path.read_bytes()
        key = serialization.load_der_private_key(data, None, unsafe_skip_rsa_key_validation=True)
    except (OSError, ValueError, TypeError):
        return None
    return key if isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)) else None


def _store_disk(path: Path, key: PrivateKey) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        der = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".der")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(der)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass  # a read-only home only costs speed, never correctness


def derived_private_key(
    kty: str, size: int, seed: int | None, label: str, cache_dir: Path | None = _USE_DEFAULT
) -> PrivateKey:
    """The private key for ``(kty, size, seed, label)``: the same key for the same inputs on every machine.

    ``seed=None`` gives a fresh random key (OpenSSL, ~30 ms) and caches nothing. Otherwise the key is
    derived deterministically (pure Python, ~0.1-0.6 s for RSA-2048) once, then served from a
    process-wide memo, the keys shipped for seed 0, or the on-disk cache (``default_cache_dir()``).
    """
    if seed is None:
        if kty == "RSA":
            return rsa.generate_private_key(public_exponent=65537, key_size=size)
        return ec.generate_private_key({256: ec.SECP256R1(), 384: ec.SECP384R1()}[size])
    spec = (kty, size, seed, label)
    found = _memo.get(spec)
    if found is not None:
        return found
    with _memo_guard:
        lock = _memo_locks.setdefault(spec, threading.Lock())
    with lock:
        found = _memo.get(spec)
        if found is not None:
            return found
        key: PrivateKey | None = None
        if kty == "RSA" and seed == 0:
            from ._seed0 import PRIMES

            primes = PRIMES.get((size, label))
            if primes is not None:
                key = _rsa_from_primes(*primes)
        directory = default_cache_dir() if cache_dir is _USE_DEFAULT else cache_dir
        if kty != "RSA":
            directory = None  # EC keys derive in microseconds: nothing worth caching
        path = directory / _DERIVATION_VERSION / f"{kty}{size}-seed{seed}-{label}.der" if directory else None
        if key is None and path is not None:
            key = _load_disk(path)
        if key is None:
            key = _derive(kty, size, seed, label)
            if path is not None:
                _store_disk(path, key)
        _memo[spec] = key
        return key


# --------------------------------------------------------------------------------------------------
# Key and KeySet
# --------------------------------------------------------------------------------------------------


def _uint_b64(value: int, length: int | None = None) -> str:
    return b64url(value.to_bytes(length or max(1, (value.bit_length() + 7) // 8), "big"))


class Key:
    """One realm key: the private material, its Keycloak-style JWK (n/e or x/y, plus x5c) and its state."""

    def __init__(self, private_key: PrivateKey, *, alg: str, use: str, realm: str, label: str, index: int) -> None:
        self.private_key = private_key
        self.public_key = private_key.public_key()
        self.alg = alg
        self.use = use
        self.realm = realm
        self.label = label
        self.index = index
        self.state: KeyState = NEXT
        self.spki_der = self.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        # Keycloak's KeyUtils.createKeyId: base64url(SHA-256(encoded public key)).
        self.kid = b64url(hashlib.sha256(self.spki_der).digest())

    def __repr__(self) -> str:
        return f"Key(kid={self.kid[:10]}..., alg={self.alg}, use={self.use}, state={self.state})"

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


class KeySet:
    """The realm's keys and Keycloak's rotation lifecycle, each step one call.

    Start: one ``active`` signing key (index 0) plus, by default, an ``RSA-OAEP`` ``enc`` key, both
    published. ``publish_next()`` adds a ``next`` key (published, not signing); ``promote()`` makes it
    ``active`` (publishing one first when there is none) and the old active key ``passive`` (still
    published); ``retire()`` unpublishes passive keys. Keys are derived from ``seed`` and the key's
    index, so the same seed always yields the same kids; ``seed=None`` gives random keys.
    Thread-safe; ``generation`` increases on every change.
    """

    def __init__(
        self,
        algorithm: str = "RS256",
        *,
        seed: int | None = 0,
        realm: str = "makrx",
        enc_key: bool = True,
        key_size: int = 2048,
        cache_dir: Path | None = _USE_DEFAULT,
    ) -> None:
        if algorithm not in _SIGNING_ALGS:
            raise IssuerError(
                f"unsupported signing algorithm {algorithm!r}", fix=f"use one of {', '.join(_SIGNING_ALGS)}"
            )
        if key_size < 2048 and algorithm == "RS256":
            raise IssuerError(f"RSA key size {key_size} is below 2048 bits", fix="use key_size=2048 or more")
        self.algorithm = algorithm
        self.seed = seed
        self.realm = realm
        self.key_size = key_size
        self._enc_enabled = enc_key
        self._cache_dir = cache_dir
        self._lock = threading.RLock()
        self._pool: dict[int, Key] = {}
        self._enc: Key | None = None
        self._ghost: Key | None = None
        self._order: list[Key] = []
        self._jwks_cache: tuple[int, bytes] | None = None
        self.generation = 0
        self._prefetch_thread: threading.Thread | None = None
        first = self._signing_key(0)
        first.state = ACTIVE
        self._order.append(first)
        self._active = first

    # -- material ---------------------------------------------------------------------------------

    def _signing_key(self, index: int) -> Key:
        with self._lock:
            key = self._pool.get(index)
        if key is not None:
            return key
        kty, size = _SIGNING_ALGS[self.algorithm]
        private = derived_private_key(kty, size or self.key_size, self.seed, f"sig-{index}", self._cache_dir)
        key = Key(private, alg=self.algorithm, use="sig", realm=self.realm, label=f"sig-{index}", index=index)
        with self._lock:
            return self._pool.setdefault(index, key)

    @property
    def enc_key(self) -> Key | None:
        """The published ``RSA-OAEP`` encryption key (None when disabled); created on first use."""
        if not self._enc_enabled:
            return None
        if self._enc is None:
            private = derived_private_key("RSA", max(2048, self.key_size), self.seed, "enc-0", self._cache_dir)
            key = Key(private, alg="RSA-OAEP", use="enc", realm=self.realm, label="enc-0", index=-1)
            key.state = ACTIVE
            with self._lock:
                if self._enc is None:
                    self._enc = key
        return self._enc

    def prefetch(self) -> None:
        """Prepare, in a daemon thread, what the next calls need: the next key, the enc key, certificates."""
        if self._prefetch_thread is not None and self._prefetch_thread.is_alive():
            return

        def work() -> None:
            try:
                _ = self.enc_key
                for key in self.published:
                    key.jwk()
                self._signing_key(self._next_index()).jwk()
            except Exception:  # pragma: no cover - a warm-up must never kill anything
                pass

        self._prefetch_thread = threading.Thread(target=work, name="makrx-issuer-keys", daemon=True)
        self._prefetch_thread.start()

    def _next_index(self) -> int:
        with self._lock:
            return max(k.index for k in self._order) + 1

    # -- views ------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Key]:
        with self._lock:
            return iter(list(self._order))

    @property
    def active(self) -> Key:
        """The key that signs new tokens."""
        return self._active

    @property
    def next(self) -> Key | None:
        """The published, not yet signing key, if any."""
        with self._lock:
            return next((k for k in self._order if k.state == NEXT), None)

    @property
    def passive(self) -> list[Key]:
        with self._lock:
            return [k for k in self._order if k.state == PASSIVE]

    @property
    def retired(self) -> list[Key]:
        with self._lock:
            return [k for k in self._order if k.state == RETIRED]

    @property
    def signing_keys(self) -> list[Key]:
        """Published signing keys, oldest first."""
        with self._lock:
            return [k for k in self._order if k.published]

    @property
    def published(self) -> list[Key]:
        """Every key in the JWKS, in its order: the enc key first (as Keycloak often lists it), then signing keys."""
        enc = self.enc_key
        return ([enc] if enc is not None else []) + self.signing_keys

    def signed(self, token: str) -> bool:
        """Whether any key this set has held (published or retired, the enc key aside) made ``token``'s
        signature, under any algorithm its type allows: a credential of this realm, whatever its claims."""
        head, _, rest = token.partition(".")
        payload, _, signature = rest.partition(".")
        try:
            raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        except ValueError:
            return False
        signing_input = f"{head}.{payload}".encode()
        algs = {"RSA": ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"), "EC": ("ES256", "ES384", "ES512")}
        return any(
            verify_signature(alg, key.public_key, signing_input, raw)
            for key in self
            if key.use == "sig"
            for alg in algs[key.kty]
        )

    def get(self, kid: str) -> Key | None:
        """Any key this set has known (published or retired) by kid."""
        with self._lock:
            for key in self._order:
                if key.kid == kid:
                    return key
            if self._enc is not None and self._enc.kid == kid:
                return self._enc
            if self._ghost is not None and self._ghost.kid == kid:
                return self._ghost
        return None

    def state(self, kid: str) -> KeyState | None:
        key = self.get(kid)
        return key.state if key is not None else None

    def verification_keys(self) -> list[tuple[str, str, Any]]:
        """``(kid, alg, public key)`` of every published signing key: what a verifier may use."""
        return [(k.kid, k.alg, k.public_key) for k in self.signing_keys]

    def snapshot(self) -> list[dict[str, Any]]:
        """Kid, alg, use, state and index of every key, for reports and the admin endpoint."""
        keys = list(self) + ([self._enc] if self._enc else [])
        return [{"kid": k.kid, "alg": k.alg, "use": k.use, "state": k.state, "index": k.index} for k in keys]

    # -- lifecycle --------------------------------------------------------------------------------

    def _changed(self) -> None:
        self.generation += 1
        self._jwks_cache = None

    def publish_next(self) -> Key:
        """Publish the next signing key (in the JWKS, not yet signing). One call; returns it."""
        with self._lock:
            if self.next is not None:
                raise IssuerError(
                    f"a next key is already published (kid {self.next.kid})",
                    fix="call keys.promote() to make it active before publishing another",
                )
            key = self._signing_key(self._next_index())
            key.state = NEXT
            self._order.append(key)
            self._changed()
        self.prefetch()
        return key

    def promote(self) -> Key:
        """Make the next key active (publishing one first if there is none); the old active key turns
        passive and stays published. One call; returns the new active key."""
        with self._lock:
            candidate = self.next or self.publish_next()
            old = self._active
            old.state = PASSIVE
            candidate.state = ACTIVE
            self._active = candidate
            self._changed()
        self.prefetch()
        return candidate

    def retire(self, kid: str | None = None) -> list[Key]:
        """Unpublish the passive key ``kid`` (default: every passive key). One call; returns what was retired."""
        with self._lock:
            if kid is None:
                victims = self.passive
            else:
                key = self.get(kid)
                if key is None or key not in self._order:
                    raise IssuerError(f"no key with kid {kid!r}", fix="pass a kid from issuer.keys.snapshot()")
                if key.state == ACTIVE:
                    raise IssuerError(
                        f"key {kid} is the active key and cannot be retired",
                        fix="call keys.promote() first, then retire the old key",
                    )
                victims = [key] if key.state != RETIRED else []
            for key in victims:
                key.state = RETIRED
            if victims:
                self._changed()
        return victims

    def last_retired(self) -> Key:
        """The most recently retired key; when none was retired yet, a key that was retired before this
        run (derived from the seed, never published). For "signed by a retired key" tokens."""
        retired = self.retired
        if retired:
            return retired[-1]
        with self._lock:
            if self._ghost is None:
                kty, size = _SIGNING_ALGS[self.algorithm]
                private = derived_private_key(kty, size or self.key_size, self.seed, "retired-0", self._cache_dir)
                ghost = Key(private, alg=self.algorithm, use="sig", realm=self.realm, label="retired-0", index=-2)
                ghost.state = RETIRED
                self._ghost = ghost
            return self._ghost

    def reset(self) -> None:
        """Back to the initial state: key 0 active, nothing else published or retired."""
        with self._lock:
            for key in self._pool.values():
                key.state = NEXT
            first = self._signing_key(0)
            first.state = ACTIVE
            self._order = [first]
            self._active = first
            self._changed()

    # -- publication ------------------------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        """The JWKS document (``{"keys": [...]}``) as the certs endpoint serves it now."""
        document: dict[str, Any] = json.loads(self.jwks_json())
        return document

    def jwks_json(self) -> bytes:
        cached = self._jwks_cache
        generation = self.generation
        if cached is not None and cached[0] == generation:
            return cached[1]
        body = json.dumps({"keys": [k.jwk() for k in self.published]}, separators=(",", ":")).encode()
        self._jwks_cache = (generation, body)
        return body

    def realm_public_key(self) -> str:
        """The realm JSON's ``public_key``: base64 DER SPKI of the active signing key."""
        return self.active.public_key_b64
