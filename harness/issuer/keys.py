"""The realm's key set as Keycloak manages it: published as JWKS, rotated one call per step."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from makrx_contracts.harness.errors import IssuerError

from ._jose import b64url_decode, verify_signature
from .attacker import ATTACKER_LABEL
from .key import ACTIVE, NEXT, PASSIVE, RETIRED, Key, KeySpec, KeyState, PrivateKey, generated_key

__all__ = ["Key", "KeySet", "KeyState", "contract_run_keys", "generated_key"]

_SIGNING_ALGS = {"RS256": ("RSA", None), "ES256": ("EC", 256)}
_ENC_LABEL = "enc-0"
_RETIRED_LABEL = "retired-0"
_ROTATED_KEYS = 3  # the furthest rotation contract promotes three keys after the first


def _signing_label(index: int) -> str:
    return f"sig-{index}"


def contract_run_keys(seed: int) -> list[KeySpec]:
    """The keys the issuer of a contract run (RS256, 2048 bits) makes: the active and enc keys at its start,
    the next ones of the rotation contracts, the retired stand-in and the attacker's (attacker.py)."""
    signing = [_signing_label(index) for index in range(1 + _ROTATED_KEYS)]
    return [("RSA", 2048, seed, label) for label in (*signing, _ENC_LABEL, _RETIRED_LABEL, ATTACKER_LABEL)]


class KeySet:
    """The realm's keys and Keycloak's rotation lifecycle, each step one call.

    Start: one ``active`` signing key (index 0) plus, by default, an ``RSA-OAEP`` ``enc`` key, both
    published. ``publish_next()`` adds a ``next`` key (published, not signing); ``promote()`` makes it
    ``active`` (publishing one first when there is none) and the old active key ``passive`` (still
    published); ``retire()`` unpublishes passive keys. The keys of a ``seed`` are made once per process
    (see :func:`generated_key`), so every set with the same seed holds the same keys and kids; ``seed=None``
    gives keys of this set's own. Thread-safe; ``generation`` increases on every change.
    """

    def __init__(
        self,
        algorithm: str = "RS256",
        *,
        seed: int | None = 0,
        realm: str = "makrx",
        enc_key: bool = True,
        key_size: int = 2048,
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
            if index not in self._pool:
                label = _signing_label(index)
                self._pool[index] = Key(
                    self._maker(label), alg=self.algorithm, use="sig", realm=self.realm, label=label, index=index
                )
            return self._pool[index]

    def _maker(self, label: str, *, enc: bool = False) -> Callable[[], PrivateKey]:
        """What makes this set's private key ``label``: RSA for the enc key, the signing algorithm's type else."""
        kty, size = ("RSA", max(2048, self.key_size)) if enc else _SIGNING_ALGS[self.algorithm]
        return partial(generated_key, kty, size or self.key_size, self.seed, label)

    @property
    def enc_key(self) -> Key | None:
        """The published ``RSA-OAEP`` encryption key (None when disabled); created on first use."""
        if not self._enc_enabled:
            return None
        with self._lock:
            if self._enc is None:
                self._enc = Key(
                    self._maker(_ENC_LABEL, enc=True),
                    alg="RSA-OAEP",
                    use="enc",
                    realm=self.realm,
                    label=_ENC_LABEL,
                    index=-1,
                )
                self._enc.state = ACTIVE
        return self._enc

    def prefetch(self) -> None:
        """Make, in a daemon thread, what the next calls need: the active key first, then the enc key, the
        next key and their certificates."""
        if self._prefetch_thread is not None and self._prefetch_thread.is_alive():
            return

        def work() -> None:
            try:
                self.active.jwk()
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
            raw = b64url_decode(signature)
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
        run (never published). For "signed by a retired key" tokens."""
        retired = self.retired
        if retired:
            return retired[-1]
        with self._lock:
            if self._ghost is None:
                ghost = Key(
                    self._maker(_RETIRED_LABEL),
                    alg=self.algorithm,
                    use="sig",
                    realm=self.realm,
                    label=_RETIRED_LABEL,
                    index=-2,
                )
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
