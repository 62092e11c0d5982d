"""Start a path target under uvicorn on a free loopback port, with the MakrX environment, and stop it."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from .. import timings
from ..client import tls_context
from ..errors import TargetError
from ..issuer.backend_env import keycloak_env
from ..ports import free_port
from ..process import ManagedProcess, OwnedProcess, stop_all, tail
from ..services.base import RedisService
from ..waiting import wait_for
from .alembic import alembic_layout
from .preload import ForkServer, ForkServerClient, ForkServerError, preload_modules
from .resolve import TargetSpec
from .settings import placeholders_in

__all__ = ["MigrationResult", "RunningTarget", "TargetLauncher"]

# The harness decides these; inherited values would make runs depend on the developer's shell.
_SCRUBBED = (
    "KEYCLOAK_",
    "DATABASE_URL",
    "REDIS_URL",
    "CORS_ORIGINS",
    "TRUST_PROXY",
    "ENVIRONMENT",
    "PORT",
    "WEB_CONCURRENCY",
    "MAKRX_",
)


class _Issuer(Protocol):
    base_url: str
    issuer_url: str
    realm: str

    @property
    def jwks_url(self) -> str: ...


class _Postgres(Protocol):
    def create_database(self, name: str) -> str: ...


class _Services(Protocol):
    postgres: _Postgres

    @property
    def redis(self) -> RedisService: ...


@dataclass(frozen=True)
class MigrationResult:
    """Outcome of an alembic command (`upgrade head` before the backend started, or a contract's)."""

    command: str
    returncode: int
    output: str
    hung: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def cause(self) -> str:
        """The exception line of the output (`sqlalchemy.exc.OperationalError: ...`), not its last line,
        which is often SQLAlchemy's "Background on this error at: <link>"."""
        lines = [line.strip() for line in self.output.splitlines() if line.strip()]
        return next((line for line in reversed(lines) if _EXCEPTION_LINE.match(line)), lines[-1] if lines else "")


_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Exit)|FAILED)\b.*:")


def _setting_for(error: str, log: str, source: Path | None) -> str | None:
    """The per-target setting that fixes the usual boot failures of real backends, named in the message
    (``log``: the last lines, where pydantic puts the field that failed)."""
    where = source.name if source else "makrx-contract.toml beside the backend"
    if error.startswith(("ModuleNotFoundError", "ImportError")):
        return (
            f'the interpreter lacks the backend\'s packages: set python = ".venv/bin/python" (its own venv) '
            f"in {where}, or pass --makrx-python"
        )
    lowered = f"{error}\n{log}".lower()
    if "environment" in lowered and ("development" in lowered or "production" in lowered):
        return f'the backend rejects ENVIRONMENT=test: set environment = "development" (or what it accepts) in {where}'
    names = re.findall(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b", error)
    if names and any(word in lowered for word in ("must be set", "not set", "required", "missing", "keyerror")):
        entries = " ".join(f'{name} = "..."' for name in dict.fromkeys(names))
        return f"the backend needs {', '.join(dict.fromkeys(names))} at import: give it in [env] of {where} ({entries})"
    return None


@dataclass
class RunningTarget:
    """A backend that answers HTTP at ``base_url``; ``process`` is None for URL targets."""

    spec: TargetSpec
    base_url: str
    env: dict[str, str] = field(default_factory=dict)
    process: OwnedProcess | None = None
    log_path: Path | None = None
    migration: MigrationResult | None = None

    @property
    def restartable(self) -> bool:
        return self.process is not None

    def log_text(self) -> str:
        """Everything the backend printed so far (stdout and stderr)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text("utf-8", "replace")

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.log_path, lines) if self.log_path else ""

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


class TargetLauncher:
    """Launches instances of one path target; every instance it starts is stopped by ``close()``."""

    def __init__(
        self,
        spec: TargetSpec,
        *,
        workdir: Path,
        services: _Services | None = None,
        issuer: _Issuer | None = None,
        ready_timeout: float = 30.0,
        python: str | None = None,
        fork_server: str | None = None,
    ) -> None:
        """``services`` and ``issuer`` may be set after construction (before the first instance), so the
        fork server imports the backend's packages while they start. ``fork_server``: the name of a running
        one to use (see ``fork_server``) instead of starting one."""
        self.spec = spec
        self.services: _Services | None = services
        self.issuer: _Issuer | None = issuer
        self.workdir = workdir
        settings = spec.settings
        self.ready_timeout = settings.ready_timeout or ready_timeout
        self.python = self._interpreter(settings.python or python)
        self.cwd = spec.cwd
        self._instances: list[RunningTarget] = []
        self._database_url: str | None = None
        self._count = 0
        self._migration: MigrationResult | None = None
        self._migrations = 0
        self._fork_failed = False
        self._forks = self._fork_server(fork_server)

    def _interpreter(self, python: str | None) -> str:
        """The backend's own interpreter (its venv), which must have uvicorn; default: the suite's."""
        if python is None:
            return sys.executable
        path = Path(python)
        if not path.is_absolute() and self.spec.path is not None and (self.spec.path / path).exists():
            path = self.spec.path / path
        resolved = shutil.which(str(path))
        if resolved is None:
            raise TargetError(
                f"python {python!r} for {self.spec.name} was not found",
                fix='set python = "path/to/venv/bin/python" (or --makrx-python) to an interpreter '
                "that can import the backend",
            )
        if self.spec.settings.command is None:
            done = subprocess.run([resolved, "-c", "import uvicorn"], capture_output=True, text=True, timeout=60)
            if done.returncode != 0:
                raise TargetError(
                    f"uvicorn is not installed in {resolved}, the interpreter of {self.spec.name}",
                    fix=f"{resolved} -m pip install uvicorn (or set 'command' to how it starts)",
                )
        return resolved

    def _fork_server(self, name: str | None) -> ForkServerClient | None:
        """The fork server for the default uvicorn command (``preload = false`` turns it off): the one
        called ``name`` (started by the xdist controller for all workers), else one of its own, which
        imports while the harness goes on; instances fork from it once it is done."""
        settings = self.spec.settings
        if settings.command is not None or not settings.preload or self.spec.path is None:
            return None
        if name is not None:
            return ForkServerClient(name)
        roots = [root for root in (self.spec.import_root, self.cwd) if root is not None]
        try:
            return ForkServer(
                self.python,
                cwd=self.cwd or Path.cwd(),
                env=self._interpreter_env(),
                modules=preload_modules(self.spec.path, roots),
                log_path=self.workdir / "logs" / f"{self.spec.name}-forkserver.log",
            )
        except OSError:
            return None

    @property
    def fork_server(self) -> str | None:
        """The name other processes reach this launcher's fork server by (None: it has none)."""
        return self._forks.name if self._forks is not None else None

    def _fork_for(self, env: Mapping[str, str]) -> ForkServerClient | None:
        """The fork server, when it can give exactly what a fresh interpreter with ``env`` would: the
        interpreter reads PYTHON* variables at start, so an instance that changes one starts fresh."""
        forks = self._forks
        if forks is None or self._fork_failed or not forks.usable():
            return None
        python_vars = {k: v for k, v in env.items() if k.startswith("PYTHON")}
        return forks if python_vars == forks.status()["python_env"] else None

    def _start(
        self, argv: list[str], *, env: Mapping[str, str], log_path: Path, name: str, cwd: Path | None = None
    ) -> OwnedProcess:
        """``python -m module ...``: forked when the fork server can, else a new interpreter; in ``cwd``
        (default: the launcher's)."""
        cwd = cwd or self.cwd or Path.cwd()
        forks = self._fork_for(env)
        if forks is not None and argv[1:2] == ["-m"]:
            try:
                return forks.spawn(argv[2], argv[3:], env=env, cwd=cwd, log_path=log_path, name=name)
            except ForkServerError:
                self._fork_failed = True  # kept for close(): what it forked so far still runs
        return ManagedProcess(argv, log_path=log_path, env=env, cwd=cwd, name=name)

    def _interpreter_env(self) -> dict[str, str]:
        """What every instance's environment has before the harness adds the MakrX settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED)}
        import_root = str(self.spec.import_root)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [import_root, env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        # Values naming the run's facts wait for base_env, which knows them.
        env.update({k: v for k, v in self.spec.settings.env.items() if not placeholders_in(v, k, None)})
        return env

    def _services(self) -> _Services:
        assert self.services is not None, "set TargetLauncher.services before starting instances"
        return self.services

    def database_url(self) -> str:
        """One fresh database per target and run, shared by its instances (like one deployment)."""
        if self._database_url is None:
            slug = re.sub(r"[^a-z0-9]", "_", self.spec.name.lower())[:40]  # Postgres names stop at 63
            name = f"makrx_{slug}_{uuid.uuid4().hex[:8]}"
            self._database_url = self.as_backend_url(self._services().postgres.create_database(name))
        return self._database_url

    def as_backend_url(self, url: str) -> str:
        """A service DSN in the form the backend reads (the `database_url` setting's template, if any)."""
        template = self.spec.settings.database_url
        if not template:
            return url
        parts = urlsplit(url)
        return template.format(
            user=parts.username,
            password=parts.password,
            host=parts.hostname,
            port=parts.port,
            dbname=parts.path.lstrip("/"),
            url=url,
        )

    def facts(self, port: int, database_url: str | None = None, issuer: _Issuer | None = None) -> dict[str, str]:
        """What `[env]` values and `command` may name as placeholders (settings.PLACEHOLDERS): the issuer
        and database (default: the target's), Redis of this run and the instance's port."""
        issuer = issuer or self.issuer
        assert issuer is not None, "set TargetLauncher.issuer before starting instances"
        return {
            "issuer_url": issuer.issuer_url,
            "keycloak_url": issuer.base_url,
            "realm": issuer.realm,
            "client_id": self.spec.client_id,
            "jwks_url": issuer.jwks_url,
            "database_url": database_url or self.database_url(),
            "redis_url": str(self._services().redis.url),
            "port": str(port),
        }

    def base_env(self, port: int, database_url: str | None = None, issuer: _Issuer | None = None) -> dict[str, str]:
        """The environment of an instance on ``port`` (or of alembic, port 0) using ``database_url`` (in the
        backend's form) and trusting ``issuer``; default: the target's database and the run's issuer."""
        env = self._interpreter_env()
        facts = self.facts(port, database_url, issuer)
        env.update(
            keycloak_env(
                base_url=facts["keycloak_url"],
                realm=facts["realm"],
                issuer_url=facts["issuer_url"],
                client_id=facts["client_id"],
            )
        )
        env.update(
            {
                "DATABASE_URL": facts["database_url"],
                "REDIS_URL": facts["redis_url"],
                "TRUST_PROXY": "false",
                "ENVIRONMENT": self.spec.settings.environment,
                "PORT": str(port),
            }
        )
        env.update({k: v.format_map(facts) for k, v in self.spec.settings.env.items()})
        return env

    def _argv(self, port: int) -> list[str]:
        if self.spec.settings.command:
            return shlex.split(self.spec.settings.command.format_map({**self.facts(port), "python": self.python}))
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

    def migrate(self, env: Mapping[str, str]) -> MigrationResult | None:
        """`alembic upgrade head` when the target ships alembic.ini (as a deploy would before start)."""
        ini = self.spec.path / "alembic.ini" if self.spec.path else None
        if ini is None or not ini.is_file() or self.spec.settings.migrate is False:
            return None
        return self.upgrade_head(ini, env)

    def upgrade_head(self, ini: Path, env: Mapping[str, str], timeout: float = 120.0) -> MigrationResult:
        """Run `alembic -c INI upgrade head` with ``env``, in the backend's interpreter, from the directory
        where its script_location resolves (`alembic.py`)."""
        return self.alembic(ini, env, "upgrade", "head", timeout=timeout)

    def alembic(
        self, ini: Path, env: Mapping[str, str], *command: str, timeout: float = 120.0, max_bytes: int = 4000
    ) -> MigrationResult:
        """Run `alembic -c INI <command>` as :meth:`upgrade_head` does; the output's last ``max_bytes``."""
        argv = [self.python, "-m", "alembic", "-c", str(ini), *command]
        self._migrations += 1
        log_path = self.workdir / "logs" / f"{self.spec.name}-alembic-{self._migrations}.log"
        cwd = alembic_layout(ini, self.spec).cwd
        process = self._start(argv, env=env, log_path=log_path, name="alembic", cwd=cwd)
        finished = process.wait(timeout)
        code = process.stop()
        if not finished or code is None:
            return MigrationResult(
                shlex.join(argv), -1, f"alembic {' '.join(command)} did not finish within {timeout:.0f} s", hung=True
            )
        return MigrationResult(shlex.join(argv), code, tail(log_path, lines=100_000, max_bytes=max_bytes))

    def spawn(
        self, env: Mapping[str, str | None] | None = None, *, name: str | None = None, issuer: _Issuer | None = None
    ) -> RunningTarget:
        """Start one instance without waiting for it to answer (``ready()`` waits), so a fixture can boot
        it beside another; ``env`` overrides the base environment (None removes a variable); ``issuer``:
        the Keycloak it trusts instead of the run's. The first instance runs the migrations before it starts."""
        self._count += 1
        label = name or f"{self.spec.name}-{self._count}"
        port = free_port()
        full_env = self.base_env(port, issuer=issuer)
        for key, value in (env or {}).items():
            if value is None:
                full_env.pop(key, None)
            else:
                full_env[key] = value
        if self._count == 1:
            with timings.phase("backend migrations"):
                self._migration = self.migrate(full_env)
        log_path = self.workdir / "logs" / f"{label}.log"
        with timings.phase("backend boot"):
            process = self._start(self._argv(port), env=full_env, log_path=log_path, name=label)
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

        def died() -> str | None:
            code = process.exit_code()
            return None if code is None else f"the process exited with code {code}"

        try:
            wait_for(
                answers,
                what=f"{self.spec.name} to answer on {target.base_url}",
                timeout=self.ready_timeout,
                transient=(httpx.TransportError,),
                abort=died,
            )
        except TimeoutError as exc:
            raise self._start_error(target, str(exc)) from None
        finally:
            client.close()

    def _start_error(self, target: RunningTarget, reason: str) -> TargetError:
        full = target.log_tail(400)
        log = "\n".join(full.splitlines()[-8:])
        cmd = shlex.join(self._argv(int(target.env["PORT"])))
        if "address already in use" in full.lower():
            return TargetError(
                f"{self.spec.name} could not bind its port ({reason})",
                fix="another program holds the port: stop it, or let the harness pick the port "
                "(use {port} in the per-target 'command')",
                details=log,
            )
        error = _last_error_line(full)
        if error is not None:
            setting = _setting_for(error, log, self.spec.settings.source)
            fix = f"run the same command yourself to see it: cd {self.cwd} && {cmd}"
            return TargetError(
                f"{self.spec.name} failed to start: {error}",
                fix=f"{setting}; or {fix}" if setting else fix,
                details=log,
            )
        if target.process and target.process.exit_code() is None:
            return TargetError(
                f"{self.spec.name} started but never answered HTTP ({reason})",
                fix="raise --makrx-ready-timeout if it boots slowly, or check what it waits for",
                details=log,
            )
        return TargetError(
            f"{self.spec.name} exited before answering ({reason})", fix=f"run: cd {self.cwd} && {cmd}", details=log
        )

    def close(self) -> None:
        """Stop every instance still running (all at once) and the fork server."""
        stop_all([target.process for target in self._instances if target.process is not None])
        self._instances.clear()
        if self._forks is not None:
            self._forks.close()
            self._forks = None


def _last_error_line(log: str) -> str | None:
    """The exception line that ended a traceback (or uvicorn's own error line), if there is one."""
    for line in reversed(log.splitlines()):
        stripped = line.strip()
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b", stripped) or stripped.startswith("ERROR:"):
            return stripped[:300]
    return None
