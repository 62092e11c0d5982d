"""The containers the docker provider runs: a testcontainers container on a pinned host port, labelled for
cleanup, ready once the caller's probe answers through that port, stopped, paused and removed via the engine."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from ..errors import ServiceError
from ..ports import free_port
from ..waiting import wait_for
from .docker_engine import (
    FIX_ENGINE,
    IMAGE_OPTIONS,
    configure_testcontainers,
    docker_host,
    image_present,
    local_engine,
    one_line,
)
from .docker_ownership import RUN_ID, ensure_reaper, labels
from .owned import PORT_ATTEMPTS, STOP_TIMEOUT, OwnedServer

__all__ = ["ServerContainer"]

_counter = itertools.count(1)


class ServerContainer(OwnedServer):
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
        super().__init__(kind, probe=probe, transient=transient, start_timeout=start_timeout)
        self.kind = kind
        self.make = make
        self.inner_port = inner_port
        self.bind_host = "127.0.0.1" if local_engine() else "0.0.0.0"
        self.host = "127.0.0.1" if local_engine() else (urlsplit(docker_host()).hostname or "localhost")
        self.name = f"makrx-{kind}-{RUN_ID[:8]}-{os.getpid()}-{next(_counter)}"
        self.tc: Any = None

    def run(self) -> None:
        configure_testcontainers()
        ensure_reaper()
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self.port = free_port("127.0.0.1")  # free here; on a remote engine a clash is retried below
            tc = self.make().with_name(self.name).with_kwargs(labels=labels())
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
                    and attempt < PORT_ATTEMPTS
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
        text = one_line(exc)
        if re.search(
            r"pull access denied|not found|manifest unknown|no such host|dial tcp|timeout", text, re.I
        ) and not image_present(image):
            return ServiceError(
                f"the {self.kind} image {image!r} is not present locally and could not be pulled",
                fix=f"build the local images (bash ci/docker-setup.sh), or docker pull {image} where a registry "
                f"is reachable, or name a local image with {IMAGE_OPTIONS[self.kind]}",
                details=text,
            )
        return ServiceError(f"could not start the {self.kind} container from {image!r}", fix=FIX_ENGINE, details=text)

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

    def _exists(self) -> bool:
        return self.tc is not None and not self.closed

    def _stop(self) -> None:
        # `docker stop` sends the image's STOPSIGNAL (for Postgres SIGINT, a fast shutdown).
        self._container().stop(timeout=STOP_TIMEOUT)

    def _start(self) -> None:
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
                    details=one_line(exc),
                ) from exc
        self.await_ready()

    def _pause(self) -> None:
        self._container().pause()  # the cgroup freezer

    def _unpause(self) -> None:
        self._container().unpause()

    def _remove(self) -> None:
        try:
            self.tc.get_wrapped_container().remove(force=True, v=True)
        except Exception:  # never created, or already gone
            pass

    def _close(self) -> None:
        if self.tc is not None:
            self._remove()
