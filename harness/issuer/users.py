"""Realistic users from faker, deterministic by seed, plus configured users the token endpoint accepts."""

from __future__ import annotations

import hashlib
import threading
import unicodedata
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["User", "UserDirectory", "service_account"]


@dataclass(frozen=True)
class User:
    """A realm user: the identity claims a Keycloak access token carries, plus login data for the token endpoint."""

    sub: str
    preferred_username: str
    email: str
    given_name: str
    family_name: str
    password: str = field(repr=False, default="")
    roles: tuple[str, ...] = ("user",)
    client_roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    email_verified: bool = True

    @property
    def name(self) -> str:
        return f"{self.given_name} {self.family_name}".strip()

    def identity_claims(self) -> dict[str, Any]:
        """The profile/email claims Keycloak puts in access, ID and userinfo responses."""
        claims: dict[str, Any] = {"sub": self.sub, "email_verified": self.email_verified}
        if self.name:
            claims["name"] = self.name
        claims["preferred_username"] = self.preferred_username
        if self.given_name:
            claims["given_name"] = self.given_name
        if self.family_name:
            claims["family_name"] = self.family_name
        if self.email:
            claims["email"] = self.email
        return claims


def _ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def service_account(client_id: str, realm: str = "makrx") -> User:
    """The service-account user Keycloak issues client_credentials tokens for."""
    sub = str(uuid.UUID(bytes=hashlib.sha256(f"{realm}/service-account/{client_id}".encode()).digest()[:16], version=4))
    return User(
        sub=sub,
        preferred_username=f"service-account-{client_id}",
        email="",
        given_name="",
        family_name="",
        roles=(),
        email_verified=False,
    )


_faker_lock = threading.Lock()
_faker: Any = None


def _get_faker() -> Any:
    """One process-wide ``Faker("en_US")``; importing faker costs ~0.2 s, so only on first use."""
    global _faker
    if _faker is None:
        from faker import Faker

        _faker = Faker("en_US")
    return _faker


class UserDirectory:
    """Users by index or name: ``get(3)`` and ``get("alice-test")`` are faker-made and the same for the same
    seed; ``add()`` registers a configured user. ``find_login()`` is what the password grant uses.
    """

    #: How many faker users the password grant accepts without them having been asked for first.
    PRELISTED = 10

    def __init__(self, seed: int | None = 0, realm: str = "makrx", users: Iterable[User] = ()) -> None:
        self.seed = 0 if seed is None else seed
        self.realm = realm
        self._lock = threading.Lock()
        self._made: dict[int | str, User] = {}
        self._configured: dict[str, User] = {}
        for user in users:
            self.add(user)

    def get(self, key: int | str = 0) -> User:
        """The faker-made user for ``key`` (an index or any string), deterministic by seed."""
        with self._lock:
            found = self._made.get(key)
        if found is not None:
            return found
        with _faker_lock:
            fake = _get_faker()
            fake.seed_instance(f"makrx-user/{self.seed}/{type(key).__name__}/{key}")
            given, family = fake.first_name(), fake.last_name()
            suffix = str(key) if isinstance(key, int) else str(fake.random.randrange(100, 1_000_000))
            username = f"{_ascii_slug(given)}.{_ascii_slug(family)}{suffix}"
            email = f"{username}@{fake.safe_domain_name()}"
            password = fake.password(length=14, special_chars=False)
            sub = str(uuid.UUID(int=fake.random.getrandbits(128), version=4))
        user = User(
            sub=sub, preferred_username=username, email=email, given_name=given, family_name=family, password=password
        )
        with self._lock:
            return self._made.setdefault(key, user)

    def add(self, user: User) -> User:
        with self._lock:
            self._configured[user.preferred_username] = user
        return user

    def add_login(
        self,
        username: str,
        password: str,
        *,
        roles: Iterable[str] = ("user",),
        client_roles: Mapping[str, Iterable[str]] | None = None,
    ) -> User:
        """Register a user for the password grant; the profile is faker-made from the username."""
        base = self.get(f"login:{username}")
        user = User(
            sub=base.sub,
            preferred_username=username,
            email=username if "@" in username else f"{username}@{base.email.split('@')[1]}",
            given_name=base.given_name,
            family_name=base.family_name,
            password=password,
            roles=tuple(roles),
            client_roles={k: tuple(v) for k, v in (client_roles or {}).items()},
        )
        return self.add(user)

    @property
    def configured(self) -> list[User]:
        with self._lock:
            return list(self._configured.values())

    def find_login(self, username: str) -> User | None:
        """The user a password grant names (by username or email, case-insensitive): configured users,
        every faker user made so far, and the first ``PRELISTED`` faker users."""
        wanted = username.strip().lower()
        for i in range(self.PRELISTED):
            self.get(i)
        with self._lock:
            candidates = list(self._configured.values()) + list(self._made.values())
        for user in candidates:
            if wanted in (user.preferred_username.lower(), user.email.lower()):
                return user
        return None
