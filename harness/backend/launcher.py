"""Start a path target under uvicorn on a free loopback port, with the MakrX environment, and stop it."""

from __future__ import annotations

import shlex
import signal
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from .. import timings
from ..client import tls_context
from ..ports import free_port
from ..process import stop_all
from ..waiting import wait_for
from .boot_failure import boot_error
from .environment import InstanceEnvironment, RunServices, TrustedIssuer
from .migrations import MigrationResult, Migrations
from .preload import ForkServerClient
from .resolve import TargetSpec
from .running import RunningTarget
from .starter import Starter

# RunningTarget and MigrationResult are the launcher's answers; the contract modules import them from here.
__all__ = ["MigrationResult", "RunningTarget", "TargetLauncher"]


class TargetLauncher:
    """Launches instances of one path target; every instance it starts is stopped by ``close()``."""

    def __init__(
        self,
        spec: TargetSpec,
        *,
        workdir: Path,
        services: RunServices,
        issuer: TrustedIssuer,
        fork_server: ForkServerClient | None,
        python: str,
        ready_timeout: float = 30.0,
    ) -> None:
        """``fork_server``: the one the instances fork from (``starter.fork_server_for``, or the xdist
        controller's), None to start each with a fresh interpreter; its owner closes it. ``python``: the
        backend's interpreter (``interpreter.backend_python``)."""
        self.spec = spec
        self.workdir = workdir
        self.python = python
        self.ready_timeout = spec.settings.ready_timeout or ready_timeout
        self.cwd = spec.cwd
        self.environment = InstanceEnvironment(spec, services=services, issuer=issuer)
        self._starter = Starter(fork_server, cwd=self.cwd)
        self.migrations = Migrations(spec, python=python, workdir=workdir, starter=self._starter)
        self._instances: list[RunningTarget] = []
        self._count = 0
        self._migration: MigrationResult | None = None

    def database_url(self) -> str:
        """The target's database, in the backend's form (``InstanceEnvironment.database_url``)."""
        return self.environment.database_url()

    def as_backend_url(self, url: str) -> str:
        """A service DSN in the form the backend reads (``InstanceEnvironment.as_backend_url``)."""
        return self.environment.as_backend_url(url)

    def base_env(
        self, port: int, database_url: str | None = None, issuer: TrustedIssuer | None = None
    ) -> dict[str, str]:
        """The environment of an instance on ``port`` (or of alembic, port 0): ``InstanceEnvironment.base_env``."""
        return self.environment.base_env(port, database_url, issuer)

    def upgrade_head(self, ini: Path, env: Mapping[str, str], timeout: float = 120.0) -> MigrationResult:
        """`alembic -c INI upgrade head` with ``env`` (``Migrations.upgrade_head``)."""
        return self.migrations.upgrade_head(ini, env, timeout)

    def alembic(
        self, ini: Path, env: Mapping[str, str], *command: str, timeout: float = 120.0, max_bytes: int = 4000
    ) -> MigrationResult:
        """`alembic -c INI <command>` with ``env`` (``Migrations.alembic``)."""
        return self.migrations.alembic(ini, env, *command, timeout=timeout, max_bytes=max_bytes)

    def _argv(self, port: int) -> list[str]:
        if self.spec.settings.command:
            facts = self.environment.facts(port)
            return shlex.split(self.spec.settings.command.format_map({**facts, "python": self.python}))
        return [
            self.python,
            "-m",
            "uvicorn",
            str(self.spec.app),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            # Otherwise uvicorn trusts X-Forwarded-For from loopback and TRUST_PROXY cannot be tested.
            "--no-proxy-headers",
            "--timeout-graceful-shutdown",
            "2",
        ]

    def spawn(
        self,
        env: Mapping[str, str | None] | None = None,
        *,
        name: str | None = None,
        issuer: TrustedIssuer | None = None,
    ) -> RunningTarget:
        """Start one instance without waiting for it to answer (``ready()`` waits), so a fixture can boot
        it beside another; ``env`` overrides the base environment (None removes a variable); ``issuer``:
        the Keycloak it trusts instead of the run's. The first instance runs the migrations before it starts."""
        self._count += 1
        label = name or f"{self.spec.name}-{self._count}"
        port = free_port()
        full_env = self.environment.base_env(port, issuer=issuer)
        for key, value in (env or {}).items():
            if value is None:
                full_env.pop(key, None)
            else:
                full_env[key] = value
        if self._count == 1:
            with timings.phase("backend migrations"):
                self._migration = self.migrations.migrate(full_env)
        log_path = self.workdir / "logs" / f"{label}.log"
        with timings.phase("backend boot"):
            process = self._starter.start(self._argv(port), env=full_env, log_path=log_path, name=label)
        target = RunningTarget(
            spec=self.spec,
            base_url=f"http://127.0.0.1:{port}",
            env=full_env,
            process=process,
            log_path=log_path,
            migration=self._migration,
        )
        self._instances.append(target)
        return target

    def ready(self, target: RunningTarget) -> RunningTarget:
        """Wait until a spawned instance answers HTTP; if it does not, stop it and raise TargetError."""
        with timings.phase("backend boot"):
            try:
                self._wait_ready(target)
            except BaseException:
                target.stop()
                raise
        return target

    def launch(self, env: Mapping[str, str | None] | None = None, *, name: str | None = None) -> RunningTarget:
        """Start one instance and wait until it answers (``spawn()`` + ``ready()``)."""
        return self.ready(self.spawn(env, name=name))

    def stop(self, target: RunningTarget) -> None:
        """Stop one instance before the launcher closes, without waiting for it: it gets SIGTERM now and
        shuts down while the run goes on (uvicorn alone spends 0.1-0.3 s on it, which a fixture's
        teardown would otherwise wait out); ``close()`` reaps it, or kills it if it has not ended, and
        ends what is left of its group."""
        if target.process is not None:
            target.process.send_signal(signal.SIGTERM)

    @contextmanager
    def instance(
        self, env: Mapping[str, str | None] | None = None, *, name: str | None = None
    ) -> Iterator[RunningTarget]:
        """A separate instance for the duration of a block (e.g. with CORS_ORIGINS set)."""
        target = self.launch(env, name=name)
        try:
            yield target
        finally:
            self.stop(target)

    def _wait_ready(self, target: RunningTarget) -> None:
        process = target.process
        assert process is not None

        client = httpx.Client(timeout=1.0, verify=tls_context())

        def answers() -> bool:
            # Any HTTP answer counts: whether /health exists is a contract, not a start condition.
            client.get(target.base_url + "/")
            return True

        try:
            wait_for(
                answers,
                what=f"{self.spec.name} to answer on {target.base_url}",
                timeout=self.ready_timeout,
                transient=(httpx.TransportError,),
                abort=lambda: process.exit_reason("the process"),
            )
        except TimeoutError as exc:
            command = shlex.join(self._argv(int(target.env["PORT"])))
            raise boot_error(target, str(exc), command=command, cwd=self.cwd) from None
        finally:
            client.close()

    def close(self) -> None:
        """Stop every instance still running, all at once."""
        stop_all([target.process for target in self._instances if target.process is not None])
        self._instances.clear()
