"""Services the user runs (``--makrx-database-url`` / ``--makrx-redis-url``): checked, never controlled."""

from __future__ import annotations

import re
from typing import ClassVar, NoReturn
from urllib.parse import quote, urlsplit

import psycopg
import redis
from psycopg.conninfo import conninfo_to_dict

from ..errors import ServiceError
from .base import PostgresService, RedisService, redacted

__all__ = ["ExternalPostgres", "ExternalRedis", "CHECK_TIMEOUT", "DATABASE_URL_OPTION", "REDIS_URL_OPTION"]

CHECK_TIMEOUT = 3  # seconds a given URL has to answer before the run gives up on it
DATABASE_URL_OPTION = "--makrx-database-url (env MAKRX_DATABASE_URL)"
REDIS_URL_OPTION = "--makrx-redis-url (env MAKRX_REDIS_URL)"


def _not_owned(service: str, url: str, action: str) -> NoReturn:
    raise ServiceError(
        f"cannot {action} {service} at {redacted(url)}: it is not owned by the harness (external)",
        fix="contracts that inject faults need a harness-started service: drop the URL option or use "
        "--makrx-services=embedded",
    )


class ExternalPostgres(PostgresService):
    """A Postgres reached through a URL the user gave; checked to answer within ``CHECK_TIMEOUT``."""

    provider: ClassVar[str] = "external"
    owns_process: ClassVar[bool] = False

    def __init__(self, url: str, *, timeout: float = CHECK_TIMEOUT) -> None:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        if re.sub(r"\+.*$", "", scheme) not in ("postgresql", "postgres"):
            raise ServiceError(
                f"{DATABASE_URL_OPTION} is not a Postgres URL: {redacted(url)!r}",
                fix="pass postgresql://USER:PASSWORD@HOST:PORT/DBNAME",
            )
        # SQLAlchemy spellings (postgresql+psycopg://) name a driver; libpq wants the plain scheme.
        url = "postgresql" + url[len(scheme):]
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise ServiceError(
                f"{DATABASE_URL_OPTION} cannot be parsed: {redacted(url)!r}",
                fix="pass postgresql://USER:PASSWORD@HOST:PORT/DBNAME", details=str(exc),
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
            with psycopg.connect(self._given_url, connect_timeout=max(2, round(timeout)),
                                 autocommit=True) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise ServiceError(
                f"the Postgres at {redacted(self._given_url)} (from {DATABASE_URL_OPTION}) does not answer",
                fix="start it or correct the URL, or leave the option out so the harness starts its own Postgres",
                details=str(exc).strip(),
            ) from exc

    @property
    def url(self) -> str:
        """The URL as given (driver suffix removed), so query parameters such as sslmode survive."""
        return self._given_url

    def url_for(self, dbname: str) -> str:
        """The given URL with its database replaced by ``dbname`` (query parameters kept)."""
        return urlsplit(self._given_url)._replace(path="/" + quote(dbname, safe="")).geturl()

    def stop(self) -> None:
        _not_owned("Postgres", self.url, "stop")

    def start(self) -> None:
        _not_owned("Postgres", self.url, "start")

    def pause(self) -> None:
        _not_owned("Postgres", self.url, "pause")

    def unpause(self) -> None:
        _not_owned("Postgres", self.url, "unpause")

    def close(self) -> None:
        """Nothing to stop: the server belongs to the user."""


class ExternalRedis(RedisService):
    """A Redis reached through a URL the user gave; checked to answer PING within ``CHECK_TIMEOUT``."""

    provider: ClassVar[str] = "external"
    owns_process: ClassVar[bool] = False

    def __init__(self, url: str, *, timeout: float = CHECK_TIMEOUT) -> None:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ServiceError(
                f"{REDIS_URL_OPTION} is not a Redis URL: {redacted(url)!r}",
                fix="pass redis://[:PASSWORD@]HOST:PORT/DB",
            )
        self.url = url
        try:
            pool = redis.ConnectionPool.from_url(url)
        except ValueError as exc:
            raise ServiceError(f"{REDIS_URL_OPTION} cannot be parsed: {redacted(url)!r}",
                               fix="pass redis://[:PASSWORD@]HOST:PORT/DB", details=str(exc)) from exc
        kwargs = pool.connection_kwargs
        pool.disconnect()
        self.host = str(kwargs.get("host") or kwargs.get("path") or "localhost")
        self.port = int(kwargs.get("port") or 6379)
        try:
            with self.client(socket_connect_timeout=timeout, socket_timeout=timeout) as client:
                client.ping()
        except redis.RedisError as exc:
            raise ServiceError(
                f"the Redis at {redacted(url)} (from {REDIS_URL_OPTION}) does not answer PING",
                fix="start it or correct the URL, or leave the option out so the harness starts its own Redis",
                details=str(exc).strip(),
            ) from exc

    def flushall(self) -> None:
        """Empty the URL's database only (FLUSHDB): a shared server's other databases are left alone."""
        try:
            with self.client() as client:
                client.flushdb()
        except redis.RedisError as exc:
            raise ServiceError(f"could not flush Redis at {redacted(self.url)}", details=str(exc)) from exc

    def stop(self) -> None:
        _not_owned("Redis", self.url, "stop")

    def start(self) -> None:
        _not_owned("Redis", self.url, "start")

    def pause(self) -> None:
        _not_owned("Redis", self.url, "pause")

    def unpause(self) -> None:
        _not_owned("Redis", self.url, "unpause")

    def close(self) -> None:
        """Nothing to stop: the server belongs to the user."""
