"""Services the user runs (``--makrx-database-url`` / ``--makrx-redis-url``): checked, never controlled."""

from __future__ import annotations

import re
import uuid
from typing import ClassVar, NoReturn, Protocol
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import psycopg
import redis
from psycopg.conninfo import conninfo_to_dict

from ..errors import ServiceError
from .base import SERVICE_LABELS, PostgresService, RedisService, redacted

__all__ = [
    "CHECK_TIMEOUT",
    "DATABASE_URL_OPTION",
    "REDIS_URL_OPTION",
    "URL_OPTIONS",
    "ExternalPostgres",
    "ExternalRedis",
]

CHECK_TIMEOUT = 3  # seconds a given URL has to answer before the run gives up on it
DATABASE_URL_OPTION = "--makrx-database-url (env MAKRX_DATABASE_URL)"
REDIS_URL_OPTION = "--makrx-redis-url (env MAKRX_REDIS_URL)"
URL_OPTIONS = {"postgres": DATABASE_URL_OPTION, "redis": REDIS_URL_OPTION}
# A run owns one database of a shared Redis while this key, in that database, holds its id. The lease
# outlives any run (each flush renews it); a killed run's claim lapses by itself.
CLAIM_KEY = "makrx-contracts:run"
CLAIM_LEASE_SECONDS = 3600
_DEFAULT_DATABASES = 16  # Redis's default, when CONFIG GET is not allowed (managed servers)
# Atomic, so two runs starting together cannot take the same database. Only the database the user named
# may hold data already; any other must be empty, so nothing of someone else's is ever flushed.
_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[3] == '0' and redis.call('DBSIZE') > 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('FLUSHDB')
return 1
"""


class _Located(Protocol):
    """What a refusal names: the service's kind and URL."""

    kind: ClassVar[str]

    @property
    def url(self) -> str: ...


class _NotOwned:
    """A server the user runs: the harness may not stop or pause it, so each fault control refuses."""

    provider: ClassVar[str] = "external"
    owns_process: ClassVar[bool] = False

    def stop(self: _Located) -> None:
        _refuse(self, "stop")

    def start(self: _Located) -> None:
        _refuse(self, "start")

    def pause(self: _Located) -> None:
        _refuse(self, "pause")

    def unpause(self: _Located) -> None:
        _refuse(self, "unpause")


def _refuse(service: _Located, action: str) -> NoReturn:
    raise ServiceError(
        f"cannot {action} {SERVICE_LABELS[service.kind]} at {redacted(service.url)}: it is not owned by the "
        "harness (external)",
        fix="contracts that inject faults need a harness-started service: drop the URL option or use "
        "--makrx-services=embedded",
    )


def _no_answer(kind: str, url: str, exc: Exception, *, check: str = "") -> ServiceError:
    label = SERVICE_LABELS[kind]
    return ServiceError(
        f"the {label} at {redacted(url)} (from {URL_OPTIONS[kind]}) does not answer{check}",
        fix=f"start it or correct the URL, or leave the option out so the harness starts its own {label}",
        details=str(exc).strip(),
    )


class ExternalPostgres(_NotOwned, PostgresService):
    """A Postgres reached through a URL the user gave; checked to answer within ``CHECK_TIMEOUT``."""

    def __init__(self, url: str, *, timeout: float = CHECK_TIMEOUT) -> None:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        if re.sub(r"\+.*$", "", scheme) not in ("postgresql", "postgres"):
            raise ServiceError(
                f"{DATABASE_URL_OPTION} is not a Postgres URL: {redacted(url)!r}",
                fix="pass postgresql://USER:PASSWORD@HOST:PORT/DBNAME",
            )
        # SQLAlchemy spellings (postgresql+psycopg://) name a driver; libpq wants the plain scheme.
        url = "postgresql" + url[len(scheme) :]
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise ServiceError(
                f"{DATABASE_URL_OPTION} cannot be parsed: {redacted(url)!r}",
                fix="pass postgresql://USER:PASSWORD@HOST:PORT/DBNAME",
                details=str(exc),
            ) from exc
        self._given_url = url
        self.host = str(params.get("host") or "localhost")
        self.port = int(params.get("port") or 5432)
        self.user = str(params.get("user") or "")
        self.password = str(params.get("password") or "")
        self.dbname = str(params.get("dbname") or self.user or "postgres")
        self._check(timeout)

    def _check(self, timeout: float) -> None:
        try:
            with psycopg.connect(self._given_url, connect_timeout=max(2, round(timeout)), autocommit=True) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise _no_answer(self.kind, self._given_url, exc) from exc

    @property
    def url(self) -> str:
        """The URL as given (driver suffix removed), so query parameters such as sslmode survive."""
        return self._given_url

    def url_for(self, dbname: str) -> str:
        """The given URL with its database replaced by ``dbname`` (query parameters kept)."""
        return urlsplit(self._given_url)._replace(path="/" + quote(dbname, safe="")).geturl()

    def close(self) -> None:
        """Nothing to stop: the server belongs to the user."""


def _with_db(url: str, db: int) -> str:
    """``url`` pointing at database ``db``: the path for redis://, the ``db`` parameter for unix://. A
    ``db`` parameter is dropped from redis:// URLs, where redis-py would let it win over the path."""
    parts = urlsplit(url)
    query = [(name, value) for name, value in parse_qsl(parts.query) if name != "db"]
    if parts.scheme == "unix":
        return parts._replace(query=urlencode([*query, ("db", str(db))])).geturl()
    return parts._replace(path=f"/{db}", query=urlencode(query)).geturl()


class ExternalRedis(_NotOwned, RedisService):
    """A Redis reached through a URL the user gave; checked to answer PING within ``CHECK_TIMEOUT``.

    Runs sharing the server must not share rate-limit counters or flush each other's: each claims a
    database of its own (the URL's if free, else the next empty one) and ``url`` points at it.
    """

    def __init__(self, url: str, *, timeout: float = CHECK_TIMEOUT) -> None:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ServiceError(
                f"{REDIS_URL_OPTION} is not a Redis URL: {redacted(url)!r}",
                fix="pass redis://[:PASSWORD@]HOST:PORT/DB",
            )
        self.url = self.given_url = url
        try:
            pool = redis.ConnectionPool.from_url(url)
        except ValueError as exc:
            raise ServiceError(
                f"{REDIS_URL_OPTION} cannot be parsed: {redacted(url)!r}",
                fix="pass redis://[:PASSWORD@]HOST:PORT/DB",
                details=str(exc),
            ) from exc
        kwargs = pool.connection_kwargs
        pool.disconnect()
        self.host = str(kwargs.get("host") or kwargs.get("path") or "localhost")
        self.port = int(kwargs.get("port") or 6379)
        self.given_db = int(kwargs.get("db") or 0)
        self.run_id = uuid.uuid4().hex
        try:
            with self.client(socket_connect_timeout=timeout, socket_timeout=timeout) as client:
                client.ping()
                databases = self._databases(client)
        except redis.RedisError as exc:
            raise _no_answer(self.kind, url, exc, check=" PING") from exc
        self.db = self._claim(databases)
        self.url = _with_db(url, self.db)

    @staticmethod
    def _databases(client: redis.Redis) -> int:
        try:
            return int(client.config_get("databases").get("databases") or _DEFAULT_DATABASES)
        except (redis.ResponseError, ValueError):
            return _DEFAULT_DATABASES

    def _claim(self, databases: int) -> int:
        order = [self.given_db] + [db for db in range(databases) if db != self.given_db]
        try:
            for db in order:
                with redis.Redis.from_url(
                    _with_db(self.given_url, db), socket_connect_timeout=CHECK_TIMEOUT, socket_timeout=CHECK_TIMEOUT
                ) as client:
                    if client.eval(_CLAIM, 1, CLAIM_KEY, self.run_id, CLAIM_LEASE_SECONDS, int(db == self.given_db)):
                        return db
        except redis.RedisError as exc:
            raise ServiceError(
                f"could not claim a database of the Redis at {redacted(self.given_url)}",
                fix="the harness needs EVAL, SET and FLUSHDB on that server",
                details=str(exc).strip(),
            ) from exc
        raise ServiceError(
            f"no free database on the Redis at {redacted(self.given_url)}: database {self.given_db} and every "
            f"empty one of its {databases} are claimed by other makrx-contracts runs (key {CLAIM_KEY})",
            fix="wait for those runs to end, point --makrx-redis-url at another Redis, or delete the "
            f"{CLAIM_KEY} key of a run that was killed (it lapses by itself after {CLAIM_LEASE_SECONDS} s)",
        )

    def flushall(self) -> None:
        """Empty this run's database only (FLUSHDB), keeping its claim: other databases are left alone."""
        try:
            with self.client() as client, client.pipeline(transaction=True) as pipe:
                pipe.flushdb().set(CLAIM_KEY, self.run_id, ex=CLAIM_LEASE_SECONDS).execute()
        except redis.RedisError as exc:
            raise ServiceError(f"could not flush Redis at {redacted(self.url)}", details=str(exc)) from exc

    def close(self) -> None:
        """Give the claimed database back, emptied; the server belongs to the user and keeps running.
        Safe to call twice; if the server is gone by now, the claim lapses by itself."""
        try:
            with self.client() as client:
                client.eval(_RELEASE, 1, CLAIM_KEY, self.run_id)
        except redis.RedisError:
            pass
