"""Removes a run's temp dirs when the pytest process that owns them dies without cleaning up (SIGKILL).

Servers die with their parent through PR_SET_PDEATHSIG; files cannot, so this small process polls
its parent and removes the given paths once the parent is gone. Started by the plugin; it exits by
itself when the paths are already gone.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["parent_alive", "start_watchdog"]


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


def main(argv: list[str]) -> int:
    parent, paths = int(argv[0]), [Path(p) for p in argv[1:]]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while parent_alive(parent) and any(p.exists() for p in paths):
        time.sleep(0.25)
    time.sleep(0.5)  # let servers killed by the parent's death release their files
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
