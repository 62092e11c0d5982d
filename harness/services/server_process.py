"""The server processes the embedded provider runs: spawned as the service user under a service directory,
ready once they log it and answer, stopped by signal, frozen with SIGSTOP; and one-shot runs such as initdb."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import ServiceError
from ..ports import free_port, port_is_bound
from ..process import ManagedProcess, descendants
from ..waiting import wait_for
from .cache import RunAs, require_reachable
from .owned import PORT_ATTEMPTS, STOP_TIMEOUT, OwnedServer

__all__ = ["HOST", "ServerProcess", "private_dir", "run_to_end", "service_dir"]

HOST = "127.0.0.1"
_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}
_PROBE_SLICE = 0.5  # seconds one readiness probe keeps retrying at a fine grain
_PROBE_STEP = 0.005


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


def run_to_end(
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


class ServerProcess(OwnedServer):
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
        super().__init__(name, probe=probe, transient=transient, start_timeout=start_timeout)
        self.ready_line = ready_line
        self.argv_for = argv_for
        self.log_path = log_path
        self.cwd = cwd
        self.who = who
        self.stop_signal = stop_signal
        self.proc: ManagedProcess | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.is_running()

    def spawn(self, port: int | None = None) -> None:
        """Start on ``port`` (None: a free one, re-chosen if another process takes it first); wait until ready."""
        attempts = 1 if port is not None else PORT_ATTEMPTS
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
                name=self.label,
            )
            try:
                self._await_ready(offset)
                return
            except _PortTaken:
                self.proc.stop()
                self.proc = None
                if attempt == attempts:
                    raise ServiceError(
                        f"{self.label} could not bind {HOST}:{self.port}: the port is taken (tried {attempts} port(s))",
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
                        raise ConnectionRefusedError(f"{self.label} has not logged {self.ready_line!r} yet")
                    return self.probe(self.port)
                except self.transient:
                    if time.monotonic() >= deadline:
                        raise
                time.sleep(_PROBE_STEP)

        try:
            wait_for(
                probe,
                what=f"{self.label} to accept connections on {HOST}:{self.port}",
                timeout=self.start_timeout,
                transient=self.transient,
                abort=lambda: proc.exit_reason(self.label),
            )
        except TimeoutError as exc:
            log = _log_since(self.log_path, log_offset)
            if proc.exit_code() is not None and "Address already in use" in log:
                raise _PortTaken from None
            raise ServiceError(f"{self.label} did not start: {exc}; full log {self.log_path}", details=log) from None

    def _exists(self) -> bool:
        return self.proc is not None

    def _start(self) -> None:
        if self.running:
            return
        if self.proc is not None:  # died on its own: reap it before starting anew
            self.proc.stop()
            self.proc = None
        if port_is_bound(self.port, HOST):
            raise ServiceError(
                f"cannot restart {self.label} on {HOST}:{self.port}: another process now listens there",
                fix="stop the process that took the port",
            )
        self.spawn(self.port)

    def _stop(self) -> None:
        assert self.proc is not None
        self.proc.stop(timeout=STOP_TIMEOUT, sig=self.stop_signal)
        self.proc = None

    def _pause(self) -> None:
        if not self.running:
            raise ServiceError(f"cannot pause {self.label}: it is not running")
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)  # the parent first: it starts no child while we freeze
        self._signal_descendants(signal.SIGSTOP)

    def _unpause(self) -> None:
        if self.proc is not None:
            self._signal_descendants(signal.SIGCONT)
            self.proc.send_signal(signal.SIGCONT)

    def _signal_descendants(self, sig: int) -> None:
        """Postgres' backends lead sessions of their own: a group signal leaves open connections answering."""
        assert self.proc is not None
        for child in descendants(self.proc.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(child, sig)

    def _close(self) -> None:
        self.stop()


def service_dir(workdir: Path, prefix: str, who: RunAs | None) -> Path:
    """A fresh directory ``workdir/PREFIX*`` for one server, which ``who`` can enter."""
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


def private_dir(path: Path, who: RunAs | None) -> Path:
    """Make ``path`` private to ``who`` (mode 700; Postgres refuses a data directory others can enter)."""
    path.mkdir(mode=0o700)
    if who is not None:
        os.chown(path, who.uid, who.gid)
    return path
