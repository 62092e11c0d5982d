"""The Docker engine the docker provider uses: where it is, whether it answers, its client, the images,
and testcontainers set up for it."""

from __future__ import annotations

import functools
import os
from typing import Any
from urllib.parse import urlsplit

from .owned import STOP_TIMEOUT

__all__ = [
    "DEFAULT_IMAGES",
    "FIX_ENGINE",
    "IMAGE_OPTIONS",
    "client",
    "configure_testcontainers",
    "container_classes",
    "docker_host",
    "engine_problem",
    "image_present",
    "local_engine",
    "one_line",
]

# The official images' families. `bash ci/docker-setup.sh` builds local stand-ins under exactly these
# tags (Redis 7.0 from Debian, PostgreSQL 16.2 from the pgserver wheel) where no registry is reachable.
DEFAULT_IMAGES: dict[str, str] = {"redis": "redis:7", "postgres": "postgres:16"}
IMAGE_OPTIONS: dict[str, str] = {"redis": "--makrx-redis-image", "postgres": "--makrx-postgres-image"}
_PING_TIMEOUT = 3  # seconds the engine has to answer the availability check
FIX_ENGINE = (
    "start a Docker engine (on this project's CI machine kind: bash ci/docker-setup.sh), "
    "or use --makrx-services=embedded"
)


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST", "") or "unix:///var/run/docker.sock"


def local_engine() -> bool:
    """True when published ports are on this machine's loopback (a unix socket, or tcp to localhost)."""
    host = docker_host()
    if host.startswith("unix://"):
        return True
    return (urlsplit(host).hostname or "") in ("localhost", "127.0.0.1", "::1")


@functools.cache
def client() -> Any:
    import docker  # testcontainers' dependency; imported only when docker is considered

    return docker.from_env(timeout=STOP_TIMEOUT + 20)  # outlasts a `docker stop` call


@functools.cache
def engine_problem() -> str | None:
    """None when a Docker engine answers here, else why not (one line). Checked once per process."""
    host = docker_host()
    if host.startswith("unix://") and not os.path.exists(host[len("unix://") :]):
        where = "DOCKER_HOST unset and no" if "DOCKER_HOST" not in os.environ else "no"
        return f"no Docker engine ({where} socket {host[len('unix://') :]})"
    try:
        import docker
        import testcontainers  # noqa: F401  (the provider needs it; say so here, not mid-start)
    except ImportError as exc:
        return f"the Python package {exc.name!r} is not installed (pip install 'makrx-contracts[docker]')"
    try:
        ping_client = docker.from_env(timeout=_PING_TIMEOUT)
        try:
            ping_client.ping()
        finally:
            ping_client.close()
    except Exception as exc:  # docker raises several unrelated types for "nobody answers"
        return f"the Docker engine at {host} does not answer ({one_line(exc)})"
    return None


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] + ("..." if len(text) > 200 else "")


def image_present(image: str) -> bool:
    import docker.errors

    try:
        client().images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def configure_testcontainers() -> None:
    """Ryuk off (the harness removes its own containers; its image may be unreachable), and, for a
    local engine, connect via 127.0.0.1 — unless the user set these themselves."""
    from testcontainers.core.config import testcontainers_config as config

    if "TESTCONTAINERS_RYUK_DISABLED" not in os.environ and hasattr(config, "ryuk_disabled"):
        config.ryuk_disabled = True
    if not local_engine():
        return
    if not (os.environ.get("TC_HOST") or os.environ.get("TESTCONTAINERS_HOST_OVERRIDE")) and hasattr(
        config, "tc_host_override"
    ):
        config.tc_host_override = "127.0.0.1"
    if "TESTCONTAINERS_CONNECTION_MODE" not in os.environ and hasattr(config, "connection_mode_override"):
        from testcontainers.core.config import ConnectionMode

        config.connection_mode_override = ConnectionMode.docker_host


def container_classes() -> tuple[type, type]:
    """testcontainers' (PostgresContainer, RedisContainer): testcontainers.community.* since 4.14, top level before."""
    try:
        from testcontainers.community.postgres import PostgresContainer
        from testcontainers.community.redis import RedisContainer
    except ImportError:
        from testcontainers.postgres import PostgresContainer  # type: ignore[no-redef,unused-ignore]
        from testcontainers.redis import RedisContainer  # type: ignore[no-redef,unused-ignore]
    return PostgresContainer, RedisContainer
