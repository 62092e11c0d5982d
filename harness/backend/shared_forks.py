"""One fork server per path target for all the xdist workers of a run, started by the controller.

Each worker would otherwise start its own and import the backend's packages once more (about a second
of CPU each, on a machine whose cores the workers already share); the workers reach these by name.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import HarnessError
from ..watchdog import start_watchdog
from .launcher import TargetLauncher
from .resolve import TargetSpec

__all__ = ["SharedForkServers"]


class SharedForkServers:
    """Fork servers for ``specs`` (the path targets with the default command); ``names`` maps a target's
    display name to its server's, for the workers' ``TargetLauncher(fork_server=...)``."""

    def __init__(self, specs: Sequence[TargetSpec], *, temp_root: str | None, python: str | None) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="makrx-forks-", dir=temp_root))
        self._watchdog = start_watchdog(self.workdir)
        self._launchers: list[TargetLauncher] = []
        self.names: dict[str, str] = {}
        for spec in specs:
            if spec.is_url:
                continue
            try:
                launcher = TargetLauncher(spec, workdir=self.workdir / spec.display.replace("/", "_"), python=python)
            except HarnessError:
                continue  # the workers report it, with the fix
            self._launchers.append(launcher)
            if launcher.fork_server is not None:
                self.names[spec.display] = launcher.fork_server

    def close(self) -> None:
        for launcher in self._launchers:
            launcher.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
        self._watchdog.terminate()
        self._watchdog.wait(5)
