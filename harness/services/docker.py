"""Postgres and Redis in Docker containers (testcontainers), on pinned loopback ports, removed by the harness."""

from __future__ import annotations

import functools
import itertools
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import urlsplit

import psycopg
import redis
from psycopg import sql

from ..errors import ServiceError
from ..ports import free_port
from ..waiting import wait_for
from .base import PostgresService, Provider, RedisService
from .external import DATABASE_URL_OPTION, REDIS_URL_OPTION

__all__ = [
    "DEFAULT_IMAGES",
    "LABEL_OWNER",
    "LABEL_RUN",
    "DockerPostgres",
    "DockerProvider",
    "DockerRedis",
    "engine_problem",
    "labelled",
    "remove_container",
    "remove_leftovers",
]

# The official images' families. `bash ci/docker-setup.sh` builds local stand-ins under exactly these
# tags (Redis 7.0 from Debian, PostgreSQL 16.2 from the pgserver wheel) where no registry is reachable.
DEFAULT_IMAGES: dict[str, str] = {"redis": "redis:7", "postgres": "postgres:16"}
IMAGE_OPTIONS: dict[str, str] = {"redis": "--makrx-redis-image", "postgres": "--makrx-postgres-image"}
LABEL_RUN = "org.makrx-contracts.run"  # one id per harness process: what its reaper removes
LABEL_OWNER = "org.makrx-contracts.owner"  # "<host>:<pid>:<start time>": a later run removes a dead owner's leftovers
PG_USER = "makrx"
PG_DB = "makrx"
# Throwaway test data: durability off (the same settings the embedded Postgres uses).
PG_COMMAND = "postgres -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
START_TIMEOUT = 60.0  # seconds from `docker start` to ready (a pull is extra and not bounded here)
STOP_TIMEOUT = 10  # seconds `docker stop` waits before SIGKILL
_PING_TIMEOUT = 3  # seconds the engine has to answer the availability check
_PORT_ATTEMPTS = 3
_FIX_ENGINE = (
    "start a Docker engine (on this project's CI machine kind: bash ci/docker-setup.sh), "
    "or use --makrx-services=embedded"
)
_RUN_ID = uuid.uuid4().hex
_counter = itertools.count(1)


# --- the engine -------------------------------------------------------------------------------------


def _docker_host() -> str:
    return os.environ.get("DOCKER_HOST", "") or "unix:///var/run/docker.sock"


def _local_engine() -> bool:
    """True when published ports are on this machine's loopback (a unix socket, or tcp to localhost)."""
    host = _docker_host()
    if host.startswith("unix://"):
        return True
    return (urlsplit(host).hostname or "") in ("localhost", "127.0.0.1", "::1")


@functools.cache
def _client() -> Any:
    import docker  # testcontainers' dependency; imported only when docker is considered

    return docker.from_env(timeout=STOP_TIMEOUT + 20)


@functools.cache
def engine_problem() -> str | None:
    """None when a Docker engine answers here, else why not (one line). Checked once per process."""
    host = _docker_host()
    if host.startswith("unix://") and not os.path.exists(host[len("unix://") :]):
        where = "DOCKER_HOST unset and no" if "DOCKER_HOST" not in os.environ else "no"
        return f"no Docker engine ({where} socket {host[len('unix://') :]})"
    try:
        import docker
        import testcontainers  # noqa: F401  (the provider needs it; say so here, not mid-start)
    except ImportError as exc:
        return f"the Python package {exc.name!r} is not installed (pip install 'makrx-contracts[docker]')"
    try:
        client = docker.from_env(timeout=_PING_TIMEOUT)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # docker raises several unrelated types for "nobody answers"
        return f"the Docker engine at {host} does not answer ({_one_line(exc)})"
    return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] + ("..." if len(text) > 200 else "")


def _image_present(image: str) -> bool:
    import docker.errors

    try:
        _client().images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def _configure_testcontainers() -> None:
    """Ryuk off (the harness removes its own containers; its image may be unreachable), and, for a
    local engine, connect via 127.0.0.1 — unless the user set these themselves."""
    from testcontainers.core.config import testcontainers_config as config

    if "TESTCONTAINERS_RYUK_DISABLED" not in os.environ and hasattr(config, "ryuk_disabled"):
        config.ryuk_disabled = True
    if not _local_engine():
        return
    if not (os.environ.get("TC_HOST") or os.environ.get("TESTCONTAINERS_HOST_OVERRIDE")) and hasattr(
        config, "tc_host_override"
    ):
        config.tc_host_override = "127.0.0.1"
    if "TESTCONTAINERS_CONNECTION_MODE" not in os.environ and hasattr(config, "connection_mode_override"):
        from testcontainers.core.config import ConnectionMode

        config.connection_mode_override = ConnectionMode.docker_host


def _container_classes() -> tuple[type, type]:
    """testcontainers' (PostgresContainer, RedisContainer): testcontainers.community.* since 4.14, top level before."""
    try:
        from testcontainers.community.postgres import PostgresContainer
        from testcontainers.community.redis import RedisContainer
    except ImportError:
        from testcontainers.postgres import PostgresContainer  # type: ignore[no-redef,unused-ignore]
        from testcontainers.redis import RedisContainer  # type: ignore[no-redef,unused-ignore]
    return PostgresContainer, RedisContainer


# --- ownership, leftovers and the reaper ------------------------------------------------------------


def _start_time(pid: int) -> str:
    """The kernel's start time of ``pid`` (clock ticks since boot): tells a live owner from pid reuse."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return "?"


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}"


def _owner_alive(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True  # another machine's container (shared engine): never ours to judge
    now = _start_time(int(pid_text))
    return now != "?" and now == started


def labelled(label: str) -> list[dict[str, Any]]:
    """Containers (all states) with ``label`` (``key`` or ``key=value``), as the engine lists them:
    ``Id``, ``Names``, ``Labels``, ... (one API call, no per-container inspect that a removal could race)."""
    return list(_client().api.containers(all=True, filters={"label": label}))


def remove_container(container_id: str) -> bool:
    """Force-remove a container and its anonymous volumes; False when it was already gone."""
    import docker.errors

    try:
        _client().api.remove_container(container_id, force=True, v=True)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:  # "removal already in progress" (its own reaper)
        if "in progress" in str(exc):
            return False
        raise
    return True


def remove_leftovers() -> list[str]:
    """Remove containers a dead harness process left behind (SIGKILL before its reaper ran); returns their names."""
    removed = []
    for entry in labelled(LABEL_OWNER):
        labels = entry.get("Labels") or {}
        if (
            labels.get(LABEL_RUN) != _RUN_ID
            and not _owner_alive(labels.get(LABEL_OWNER, ""))
            and remove_container(entry["Id"])
        ):
            removed.append(str((entry.get("Names") or ["?"])[0]).lstrip("/"))
    return removed


_reaper_lock = threading.Lock()
_reaper: subprocess.Popen[bytes] | None = None


def _ensure_reaper() -> None:
    """Once per process: sweep dead runs' leftovers, and start the reaper that removes this run's
    containers if this process dies without closing them (the harness's own Ryuk)."""
    global _reaper
    with _reaper_lock:
        if _reaper is not None:
            return
        remove_leftovers()
        _reaper = subprocess.Popen(
            [sys.executable, "-m", "makrx_contracts.harness.services.reaper", str(os.getpid()), _RUN_ID],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C to the terminal's process group must not end it
        )


# --- one container ------------------------------------------------------------------------------------


class _Container:
    """A testcontainers container on a pinned host port: start (retrying a port lost to a race),
    readiness through the caller's probe, stop/start keeping port and data, pause, remove."""

    def __init__(
        self,
        kind: str,
        make: Callable[[], Any],
        inner_port: int,
        probe: Callable[[int], object],
        transient: tuple[type[BaseException], ...],
        start_timeout: float,
    ) -> None:
        self.kind = kind
        self.make = make
        self.inner_port = inner_port
        self.probe = probe
        self.transient = transient
        self.start_timeout = start_timeout
        self.bind_host = "127.0.0.1" if _local_engine() else "0.0.0.0"
        self.host = "127.0.0.1" if _local_engine() else (urlsplit(_docker_host()).hostname or "localhost")
        self.port = 0
        self.name = f"makrx-{kind}-{_RUN_ID[:8]}-{os.getpid()}-{next(_counter)}"
        self.tc: Any = None
        self.paused = False
        self.closed = False

    def _labels(self) -> dict[str, str]:
        return {LABEL_RUN: _RUN_ID, LABEL_OWNER: _owner()}

    def run(self) -> None:
        _configure_testcontainers()
        _ensure_reaper()
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self.port = free_port("127.0.0.1")  # free here; on a remote engine a clash is retried below
            tc = self.make().with_name(self.name).with_kwargs(labels=self._labels())
            # A published port chosen by Docker changes on every restart: pin it (loopback only when local).
            tc.ports[str(self.inner_port)] = (self.bind_host, self.port)
            self.tc = tc
            try:
                tc.start()
            except BaseException as exc:
                self._remove()  # also on Ctrl-C mid-start: the container may exist already
                if not isinstance(exc, Exception):
                    raise
                text = str(exc)
                if (
                    re.search(r"port is already allocated|address already in use", text, re.I)
                    and attempt < _PORT_ATTEMPTS
                ):
                    continue
                raise self._start_error(exc) from exc
            break
        try:
            self.await_ready()
        except BaseException:
            self._remove()
            raise

    def _start_error(self, exc: Exception) -> ServiceError:
        image = getattr(self.tc, "image", "?")
        text = _one_line(exc)
        if re.search(
            r"pull access denied|not found|manifest unknown|no such host|dial tcp|timeout", text, re.I
        ) and not _image_present(image):
            return ServiceError(
                f"the {self.kind} image {image!r} is not present locally and could not be pulled",
                fix=f"build the local images (bash ci/docker-setup.sh), or docker pull {image} where a registry "
                f"is reachable, or name a local image with {IMAGE_OPTIONS[self.kind]}",
                details=text,
            )
        return ServiceError(f"could not start the {self.kind} container from {image!r}", fix=_FIX_ENGINE, details=text)

    def _container(self) -> Any:
        return self.tc.get_wrapped_container()

    def logs(self, lines: int = 30) -> str:
        try:
            return str(self._container().logs(tail=lines).decode("utf-8", "replace"))
        except Exception:
            return ""

    def await_ready(self) -> None:
        def exited() -> str | None:
            container = self._container()
            container.reload()
            return (
                None
                if container.status in ("running", "created", "restarting")
                else f"the container is {container.status}"
            )

        try:
            wait_for(
                lambda: self.probe(self.port),
                what=f"{self.kind} in container {self.name} on {self.host}:{self.port}",
                timeout=self.start_timeout,
                interval=0.01,
                transient=self.transient,
                abort=exited,
            )
        except TimeoutError as exc:
            raise ServiceError(
                f"the {self.kind} container did not become ready: {exc}",
                fix=f"docker logs {self.name}",
                details=self.logs(),
            ) from None

    def stop(self) -> None:
        if self.tc is None or self.closed:
            return
        if self.paused:
            self.unpause()
        self._container().stop(timeout=STOP_TIMEOUT)

    def start(self) -> None:
        if self.closed:
            raise ServiceError(f"cannot start {self.kind}: the service was closed")
        container = self._container()
        container.reload()
        if container.status == "paused":
            self.unpause()
        if container.status != "running":
            try:
                container.start()
            except Exception as exc:
                raise ServiceError(
                    f"cannot restart the {self.kind} container on {self.host}:{self.port}",
                    fix="another process may hold the port now: stop it",
                    details=_one_line(exc),
                ) from exc
        self.await_ready()

    def pause(self) -> None:
        self._container().pause()
        self.paused = True

    def unpause(self) -> None:
        if self.paused:
            self._container().unpause()
        self.paused = False

    def _remove(self) -> None:
        try:
            self.tc.get_wrapped_container().remove(force=True, v=True)
        except Exception:  # never created, or already gone
            pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.tc is not None:
            self._remove()


# --- services -----------------------------------------------------------------------------------------


class _ContainerFaults:
    """Fault injection on a service's ``_container``: stop/start keep the pinned port (and the data)."""

    _container: _Container

    def stop(self) -> None:
        """``docker stop`` (the image's STOPSIGNAL: SIGINT, a fast shutdown, for Postgres)."""
        self._container.stop()

    def start(self) -> None:
        """``docker start`` on the same port with the same data; returns once the server answers."""
        self._container.start()

    def pause(self) -> None:
        """``docker pause`` (cgroup freezer): requests hang until ``unpause()``."""
        self._container.pause()

    def unpause(self) -> None:
        """``docker unpause``."""
        self._container.unpause()

    def close(self) -> None:
        """Remove the container and its volumes (idempotent)."""
        self._container.close()


class DockerPostgres(_ContainerFaults, PostgresService):
    """Postgres in a container of ``image`` (official ``postgres`` image contract), on a pinned loopback port.

    Constructing it starts the container and returns once ``makrx`` can log in with a fresh random
    password. ``stop()``/``start()`` keep the port and the data.
    """

    provider: ClassVar[str] = "docker"
    owns_process: ClassVar[bool] = True

    def __init__(self, *, image: str = DEFAULT_IMAGES["postgres"], start_timeout: float = START_TIMEOUT) -> None:
        postgres_class, _ = _container_classes()
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

        self._container = _Container(
            "postgres",
            make,
            5432,
            self._probe,
            transient=(psycopg.OperationalError, OSError),
            start_timeout=start_timeout,
        )
        self.host = self._container.host
        self._container.run()
        self.version = self._server_version()

    @property
    def port(self) -> int:  # type: ignore[override]
        return self._container.port

    @property
    def container_name(self) -> str:
        return self._container.name

    @property
    def description(self) -> str:
        return f"Postgres {self.version} from image {self.image}"

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


class DockerRedis(_ContainerFaults, RedisService):
    """Redis in a container of ``image`` (official ``redis`` image contract), on a pinned loopback port.

    Constructing it starts the container and returns once it answers PING. ``stop()``/``start()`` keep
    the port (and whatever the server saved on shutdown).
    """

    provider: ClassVar[str] = "docker"
    owns_process: ClassVar[bool] = True

    def __init__(self, *, image: str = DEFAULT_IMAGES["redis"], start_timeout: float = START_TIMEOUT) -> None:
        _, redis_class = _container_classes()
        self.image = image

        class _Redis(redis_class):  # type: ignore[misc, valid-type]
            def _connect(self) -> None:
                """Readiness is the harness's own host-side probe (testcontainers < 4.9 called this)."""

        def make() -> Any:
            container = _Redis(image)
            if hasattr(container, "_wait_strategy"):
                container._wait_strategy = None  # the stock PING wait polls once a second
            return container

        self._container = _Container(
            "redis",
            make,
            6379,
            self._probe,
            transient=(redis.ConnectionError, redis.TimeoutError, OSError),
            start_timeout=start_timeout,
        )
        self.host = self._container.host
        self._container.run()
        with self.client() as client:
            self.version = str(client.info("server").get("redis_version", "?"))

    @property
    def port(self) -> int:  # type: ignore[override]
        return self._container.port

    @property
    def url(self) -> str:  # type: ignore[override]
        return f"redis://{self.host}:{self.port}/0"

    @property
    def container_name(self) -> str:
        return self._container.name

    @property
    def description(self) -> str:
        return f"Redis {self.version} from image {self.image}"

    def _probe(self, port: int) -> bool:
        client = redis.Redis(host=self.host, port=port, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()


# --- provider -----------------------------------------------------------------------------------------


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
                present = _image_present(image)
            except Exception as exc:
                return f"the Docker engine could not inspect image {image} ({_one_line(exc)})"
            if not present:
                return (
                    f"image {image} is not present locally (auto never pulls; docker pull {image}, or "
                    "--makrx-services=docker pulls it)"
                )
        return None

    def fix(self, kind: str) -> str:
        option = DATABASE_URL_OPTION if kind == "postgres" else REDIS_URL_OPTION
        return f"{_FIX_ENGINE}, or pass {option}"

    def postgres(self) -> DockerPostgres:
        return DockerPostgres(image=self.image("postgres"))

    def redis(self) -> DockerRedis:
        return DockerRedis(image=self.image("redis"))


def _main() -> None:  # pragma: no cover - a manual check: python -m harness.services.docker
    started = time.monotonic()
    problem = engine_problem()
    print(problem or f"Docker engine answers at {_docker_host()} ({time.monotonic() - started:.2f}s)")


if __name__ == "__main__":  # pragma: no cover
    _main()
