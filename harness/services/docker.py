"""Postgres and Redis in Docker containers (testcontainers), on pinned loopback ports, removed by the harness."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any, ClassVar

import psycopg
import redis
from psycopg import sql

from ..errors import ServiceError
from .base import SERVICE_LABELS, PostgresService, Provider, RedisService
from .docker_engine import (
    DEFAULT_IMAGES,
    FIX_ENGINE,
    IMAGE_OPTIONS,
    container_classes,
    docker_host,
    engine_problem,
    image_present,
    one_line,
)
from .external import URL_OPTIONS
from .owned import PG_DB, PG_DURABILITY_OFF, PG_USER, OwnedService, redis_answers
from .server_container import ServerContainer

__all__ = ["DEFAULT_IMAGES", "DockerPostgres", "DockerProvider", "DockerRedis", "engine_problem"]

PG_COMMAND = "postgres " + " ".join(f"-c {key}={value}" for key, value in PG_DURABILITY_OFF.items())
START_TIMEOUT = 60.0  # seconds from `docker start` to ready (a pull is extra and not bounded here)


class _DockerService(OwnedService):
    """What both docker services share: one container of ``image``, described by what it runs."""

    provider: ClassVar[str] = "docker"
    _server: ServerContainer
    image: str

    @property
    def container_name(self) -> str:
        return self._server.name

    @property
    def description(self) -> str:
        return f"{SERVICE_LABELS[self.kind]} {self.version} from image {self.image}"


class DockerPostgres(_DockerService, PostgresService):
    """Postgres in a container of ``image`` (official ``postgres`` image contract), on a pinned loopback port.

    Constructing it starts the container and returns once ``makrx`` can log in with a fresh random
    password. ``stop()``/``start()`` keep the port and the data.
    """

    def __init__(self, *, image: str = DEFAULT_IMAGES["postgres"], start_timeout: float = START_TIMEOUT) -> None:
        postgres_class, _ = container_classes()
        self.image = image
        self.user = PG_USER
        self.dbname = PG_DB
        self.password = secrets.token_urlsafe(24)

        class _Postgres(postgres_class):  # type: ignore[misc, valid-type]
            def _connect(self) -> None:
                """Readiness is the harness's own host-side probe (fast, and through the published port)."""

        def make() -> Any:
            container = _Postgres(image, username=PG_USER, password=self.password, dbname=PG_DB, driver=None)
            return container.with_command(PG_COMMAND)

        self._server = ServerContainer(
            "postgres",
            make,
            5432,
            self._probe,
            transient=(psycopg.OperationalError, OSError),
            start_timeout=start_timeout,
        )
        self.host = self._server.host
        self._server.run()
        self.version = self._server_version()

    def _probe(self, port: int) -> bool:
        try:
            with psycopg.connect(
                host=self.host, port=port, user=PG_USER, password=self.password, dbname=PG_DB, connect_timeout=2
            ):
                return True
        except psycopg.OperationalError as exc:
            if re.search(r"password authentication failed|role .* does not exist", str(exc)):
                raise ServiceError(
                    f"the {self.image} container refused the harness's login",
                    fix=f"use an image that honours POSTGRES_USER/POSTGRES_PASSWORD/POSTGRES_DB "
                    f"({IMAGE_OPTIONS['postgres']})",
                    details=str(exc),
                ) from exc
            raise

    def _server_version(self) -> str:
        with self.connect() as conn:
            row = conn.execute(sql.SQL("SHOW server_version")).fetchone()
        return str(row[0]).split()[0] if row else "?"


class DockerRedis(_DockerService, RedisService):
    """Redis in a container of ``image`` (official ``redis`` image contract), on a pinned loopback port.

    Constructing it starts the container and returns once it answers PING. ``stop()``/``start()`` keep
    the port (and whatever the server saved on shutdown).
    """

    def __init__(self, *, image: str = DEFAULT_IMAGES["redis"], start_timeout: float = START_TIMEOUT) -> None:
        _, redis_class = container_classes()
        self.image = image

        class _Redis(redis_class):  # type: ignore[misc, valid-type]
            def _connect(self) -> None:
                """Readiness is the harness's own host-side probe (testcontainers < 4.9 called this)."""

        def make() -> Any:
            container = _Redis(image)
            if hasattr(container, "_wait_strategy"):
                container._wait_strategy = None  # the stock PING wait polls once a second
            return container

        self._server = ServerContainer(
            "redis",
            make,
            6379,
            lambda port: redis_answers(self.host, port),
            transient=(redis.ConnectionError, redis.TimeoutError, OSError),
            start_timeout=start_timeout,
        )
        self.host = self._server.host
        self._server.run()
        with self.client() as client:
            self.version = str(client.info("server").get("redis_version", "?"))

    @property
    def url(self) -> str:  # type: ignore[override]
        return f"redis://{self.host}:{self.port}/0"


class DockerProvider(Provider):
    """Servers in Docker containers via testcontainers, from ``images`` (default ``redis:7``, ``postgres:16``).

    ``auto`` takes it only when an engine answers and the image is already present locally (auto
    never pulls); ``--makrx-services=docker`` also pulls a missing image.
    """

    name: ClassVar[str] = "docker"

    def image(self, kind: str) -> str:
        return self.images.get(kind) or DEFAULT_IMAGES[kind]

    def unavailable(self, kind: str, *, forced: bool = False) -> str | None:
        problem = engine_problem()
        if problem is not None:
            return problem
        image = self.image(kind)
        if not forced:
            try:
                present = image_present(image)
            except Exception as exc:
                return f"the Docker engine could not inspect image {image} ({one_line(exc)})"
            if not present:
                return (
                    f"image {image} is not present locally (auto never pulls; docker pull {image}, or "
                    "--makrx-services=docker pulls it)"
                )
        return None

    def fix(self, kind: str) -> str:
        return f"{FIX_ENGINE}, or pass {URL_OPTIONS[kind]}"

    def postgres(self) -> DockerPostgres:
        return DockerPostgres(image=self.image("postgres"))

    def redis(self) -> DockerRedis:
        return DockerRedis(image=self.image("redis"))


def _main() -> None:  # pragma: no cover - a manual check: python -m harness.services.docker
    started = time.monotonic()
    problem = engine_problem()
    print(problem or f"Docker engine answers at {docker_host()} ({time.monotonic() - started:.2f}s)")


if __name__ == "__main__":  # pragma: no cover
    _main()
