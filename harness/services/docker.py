"""Placeholder for the testcontainers provider: reports itself unavailable until a later issue builds it."""

from __future__ import annotations

from typing import ClassVar, NoReturn

from ..errors import ServiceError
from .base import Provider
from .external import DATABASE_URL_OPTION, REDIS_URL_OPTION

__all__ = ["DockerProvider"]

_NOT_BUILT = "not built yet (a later release adds it)"


class DockerProvider(Provider):
    """Postgres and Redis in Docker containers (testcontainers). Not built yet: always unavailable."""

    name: ClassVar[str] = "docker"

    def unavailable(self, kind: str) -> str | None:
        return _NOT_BUILT

    def fix(self, kind: str) -> str:
        option = DATABASE_URL_OPTION if kind == "postgres" else REDIS_URL_OPTION
        return f"use --makrx-services=embedded (or auto), or pass {option}"

    def _refuse(self, kind: str) -> NoReturn:
        raise ServiceError(f"cannot start {kind} in docker: {_NOT_BUILT}", fix=self.fix(kind))

    def postgres(self) -> NoReturn:
        self._refuse("postgres")

    def redis(self) -> NoReturn:
        self._refuse("redis")
