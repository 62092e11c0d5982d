"""Child processes the harness owns: own process group, die with their parent, logs to a file."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["ManagedProcess", "OwnedProcess", "descendants", "die_with_parent", "stop_all", "tail"]

_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)  # looked up once: preexec_fn runs between fork and exec


def _child_setup(uid: int | None, gid: int | None) -> None:
    """Runs in the child between fork and exec: drop privileges, then ask to die with the parent.

    The parent-death signal is cleared by a credential change, so it is set after setuid.
    A SIGKILLed pytest cannot run its cleanup; this is what stops its servers anyway.
    """
    if gid is not None:
        os.setgroups([])
        os.setgid(gid)
    if uid is not None:
        os.setuid(uid)
    _set_parent_death_signal(signal.SIGKILL)


def _set_parent_death_signal(sig: int) -> None:
    _LIBC.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)


def die_with_parent(parent: int, sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send this process ``sig`` once ``parent`` (its parent) dies; False when it is
    already gone, which the request alone would never notice."""
    _set_parent_death_signal(sig)
    return os.getppid() == parent


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc), parents before children: servers such as Postgres
    put each child in a session of its own, out of reach of the parent's process group."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        parent = int(stat.rpartition(")")[2].split()[1])  # the field after the state; comm may hold spaces
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    queue = [pid]
    while queue:
        kids = children.get(queue.pop(0), [])
        found += kids
        queue += kids
    return found


def tail(path: Path, lines: int = 40, max_bytes: int = 64_000) -> str:
    """The last ``lines`` lines of a text file (empty when it does not exist)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


class OwnedProcess(ABC):
    """A child the harness owns: it leads its own process group and logs to ``log_path``;
    ``stop()`` ends the whole group (workers, reloaders) and always reaps it."""

    argv: list[str]
    log_path: Path
    name: str

    @property
    @abstractmethod
    def pid(self) -> int: ...

    @abstractmethod
    def exit_code(self) -> int | None:
        """The exit code once the process has ended (negative: killed by that signal), else None."""

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the exit; True once it has ended."""
        deadline = time.monotonic() + timeout
        while self.exit_code() is None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def is_running(self) -> bool:
        return self.exit_code() is None

    def exit_reason(self, who: str) -> str | None:
        """``"<who> exited with code N"`` once the process has ended, else None: the ``abort`` of a
        ``wait_for`` on it, so a dead process never costs the whole timeout."""
        code = self.exit_code()
        return None if code is None else f"{who} exited with code {code}"

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the whole process group (no-op once it is gone)."""
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, timeout: float = 5.0, sig: int = signal.SIGTERM) -> int | None:
        """``sig`` to the group, then SIGKILL after ``timeout``; always reaps. Returns the exit code."""
        stop_all([self], timeout, sig)
        return self.exit_code()

    def _wait_group_gone(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(self.pid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.02)


def stop_all(processes: Sequence[OwnedProcess], timeout: float = 5.0, sig: int = signal.SIGTERM) -> None:
    """Stop several processes at once: ``sig`` to every group, one shared ``timeout`` for them to exit, then
    SIGKILL; always reaps. Shutdowns overlap, so ending N backends takes about as long as ending one."""
    running = [process for process in processes if process.exit_code() is None]
    for process in running:
        process.send_signal(sig)
    deadline = time.monotonic() + timeout
    for process in running:
        if not process.wait(max(0.0, deadline - time.monotonic())):
            process.send_signal(signal.SIGKILL)
            process.wait(5)
    for process in processes:
        # Grandchildren that outlived the leader (e.g. workers) share its group: end them too.
        process.send_signal(signal.SIGKILL)
        process._wait_group_gone(2.0)


class ManagedProcess(OwnedProcess):
    """One started program (``subprocess.Popen``); ``prctl(PR_SET_PDEATHSIG)`` kills it if the harness
    dies without cleanup."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        uid: int | None = None,
        gid: int | None = None,
        name: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.name = name or Path(self.argv[0]).name
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=lambda: _child_setup(uid, gid),
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exit_code(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float) -> bool:
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
