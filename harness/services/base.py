"""What every Postgres and Redis provider offers: URLs, fresh databases, and fault-injection controls."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import psycopg
import redis
from psycopg import sql

from ..errors import ServiceError

__all__ = [
    "SERVICE_KINDS",
    "SERVICE_LABELS",
    "Faults",
    "PostgresService",
    "Provider",
    "RedisService",
    "Service",
    "postgres_url",
    "redacted",
]

# Names a caller may create: unquoted-identifier shape, lower case so the URL and psql agree.
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Databases a harness never replaces, whatever the caller asks.
_PROTECTED_DBS = frozenset({"postgres", "template0", "template1"})
SERVICE_KINDS = ("postgres", "redis")
SERVICE_LABELS = {"postgres": "Postgres", "redis": "Redis"}  # how messages name each kind
_ADMIN_TIMEOUT = 5  # seconds; libpq's connect_timeout for the harness's own admin connections


def _host_in_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def postgres_url(user: str, password: str, host: str, port: int, dbname: str) -> str:
    """``postgresql://USER:PASSWORD@HOST:PORT/DBNAME`` with user and password percent-encoded."""
    auth = quote(user, safe="")
    if password:
        auth += ":" + quote(password, safe="")
    return f"postgresql://{auth}@{_host_in_url(host)}:{port}/{quote(dbname, safe='')}"


def redacted(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and logs)."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


class Faults(ABC):
    """Fault injection every service offers: stop/start, pause/unpause, and blocks built on them that
    always restore the service."""

    owns_process: ClassVar[bool]  # False: external, so the harness may not stop or pause it

    @abstractmethod
    def stop(self) -> None:
        """Stop the server; ``start()`` brings it back on the same port with the same data."""

    @abstractmethod
    def start(self) -> None:
        """Start the server again after ``stop()``; returns once it answers."""

    @abstractmethod
    def pause(self) -> None:
        """Freeze the server: requests hang instead of failing (SIGSTOP, `docker pause`)."""

    @abstractmethod
    def unpause(self) -> None:
        """Undo ``pause()``."""

    @contextmanager
    def outage(self) -> Iterator[None]:
        """Stopped for the block, started again after it, also when the block fails."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Paused for the block, resumed after it, also when the block fails."""
        self.pause()
        try:
            yield
        finally:
            self.unpause()


class Service(Faults):
    """A server the backend under test can use: which kind, who runs it (``provider``), where, and its teardown."""

    kind: ClassVar[str]  # one of SERVICE_KINDS
    provider: ClassVar[str]
    host: str
    port: int

    @abstractmethod
    def close(self) -> None:
        """Final teardown: nothing of this service keeps running; safe to call twice."""


class PostgresService(Service):
    """A Postgres server the backend under test can use; subclasses say who runs it."""

    kind: ClassVar[str] = "postgres"
    user: str
    password: str
    dbname: str

    @property
    def url(self) -> str:
        """``postgresql://USER:PASSWORD@HOST:PORT/DBNAME`` of the service's own database."""
        return self.url_for(self.dbname)

    def url_for(self, dbname: str) -> str:
        """The URL of database ``dbname`` on this server, with the service's credentials."""
        return postgres_url(self.user, self.password, self.host, self.port, dbname)

    def connect(self, dbname: str | None = None, **kwargs: Any) -> psycopg.Connection[Any]:
        """A new psycopg connection (autocommit) to ``dbname`` (default: the service's database)."""
        kwargs.setdefault("connect_timeout", _ADMIN_TIMEOUT)
        kwargs.setdefault("autocommit", True)
        return psycopg.connect(self.url_for(dbname or self.dbname), **kwargs)

    def create_database(self, name: str) -> str:
        """Create an empty database ``name`` (an existing one of that name is replaced); returns its URL."""
        self._check_db_name(name)
        self._admin(
            f"create database {name!r}",
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)),
            sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)),
        )
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, ending its open connections; no error when it does not exist."""
        self._check_db_name(name)
        self._admin(
            f"drop database {name!r}",
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)),
        )

    def _check_db_name(self, name: str) -> None:
        if not _DB_NAME.match(name) or name in _PROTECTED_DBS or name == self.dbname:
            raise ServiceError(
                f"refused database name {name!r}: it must match {_DB_NAME.pattern} and must not be "
                f"{self.dbname!r} (the service's own database) or one of {sorted(_PROTECTED_DBS)}",
                fix="pass a fresh name such as 'makrx_<target>_<random hex>'",
            )

    def _admin(self, what: str, *statements: sql.Composed) -> None:
        try:
            with self.connect() as conn:
                for statement in statements:
                    conn.execute(statement)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise ServiceError(
                f"could not {what} on {redacted(self.url)}: user {self.user!r} may not create databases",
                fix=f"grant it: ALTER ROLE {self.user} CREATEDB; or pass a URL of a user that may",
                details=str(exc),
            ) from exc
        except psycopg.Error as exc:
            raise ServiceError(f"could not {what} on {redacted(self.url)}", details=str(exc)) from exc

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {redacted(self.url)}>"


class RedisService(Service):
    """A Redis server the backend under test can use; subclasses say who runs it."""

    kind: ClassVar[str] = "redis"
    url: str

    def client(self, **kwargs: Any) -> redis.Redis:
        """A new redis-py client for ``url`` with short timeouts (close it when done)."""
        kwargs.setdefault("socket_connect_timeout", _ADMIN_TIMEOUT)
        kwargs.setdefault("socket_timeout", _ADMIN_TIMEOUT)
        return redis.Redis.from_url(self.url, **kwargs)

    def flushall(self) -> None:
        """Empty the server, so a test starts from a clean Redis."""
        try:
            with self.client() as client:
                client.flushall()
        except redis.RedisError as exc:
            raise ServiceError(f"could not flush Redis at {redacted(self.url)}", details=str(exc)) from exc

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {redacted(self.url)}>"


class Provider(ABC):
    """One way to get servers (docker, embedded, ...): says whether it can, then starts them under ``workdir``.

    The chain in ``provider.py`` asks each provider in turn; adding a provider is one entry there.
    """

    name: ClassVar[str]

    def __init__(
        self, *, workdir: Path, cache_dir: Path | None = None, images: Mapping[str, str | None] | None = None
    ) -> None:
        self.workdir = workdir
        self.cache_dir = cache_dir
        self.images = {kind: image for kind, image in (images or {}).items() if image}

    @abstractmethod
    def unavailable(self, kind: str, *, forced: bool = False) -> str | None:
        """None when this provider can supply ``kind`` ("postgres" or "redis") here, else why not (one line).

        ``forced``: the user named this provider, so it may do slow things ``auto`` must not (pull an image).
        """

    @abstractmethod
    def fix(self, kind: str) -> str:
        """What a user can do so this provider can supply ``kind``."""

    @abstractmethod
    def postgres(self) -> PostgresService:
        """Start a Postgres and return it once it accepts connections."""

    @abstractmethod
    def redis(self) -> RedisService:
        """Start a Redis and return it once it answers PING."""
