"""Removes a run's temp dirs when the pytest process that owns them dies without cleaning up (SIGKILL).

Servers die with their parent through PR_SET_PDEATHSIG; files cannot, so this small process polls
its parent and removes the given paths once the parent is gone. Started by the plugin; it exits by
itself when the paths are already gone. Before removing them it kills whatever still works in them: a
server's children that a freeze (``pause()``, SIGSTOP) left stopped, which PDEATHSIG cannot reach (only
their parent has it) and which, stopped, never notice their parent is gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["kill_working_in", "parent_alive", "start_watchdog"]


def start_watchdog(*paths: Path) -> subprocess.Popen[bytes]:
    """Watch the current process; remove ``paths`` once it has died."""
    # A script in isolated mode without site: the standard library is all it needs, and importing the
    # harness package (pytest, httpx) would cost each run's watchdog ~0.2 s of CPU.
    return subprocess.Popen(
        [sys.executable, "-I", "-S", __file__, str(os.getpid()), *map(str, paths)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # Ctrl-C to the terminal's group must not end it


def parent_alive(pid: int) -> bool:
    """Whether ``pid``, the process that started this one, still runs: once it dies this process is
    reparented at once (before the dead one is even reaped), and a reused pid cannot fool the check."""
    return os.getppid() == pid


def kill_working_in(paths: list[Path]) -> None:
    """SIGKILL (which ends stopped processes too) every process whose working directory is in ``paths``."""
    roots = [path.resolve() for path in paths]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if any(cwd == root or root in cwd.parents for root in roots):
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGKILL)


def main(argv: list[str]) -> int:
    parent, paths = int(argv[0]), [Path(p) for p in argv[1:]]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while parent_alive(parent) and any(p.exists() for p in paths):
        time.sleep(0.25)
    time.sleep(0.5)  # let servers killed by the parent's death release their files
    kill_working_in(paths)
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
