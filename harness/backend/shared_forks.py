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
from .interpreter import backend_python
from .preload import ForkServer
from .resolve import TargetSpec
from .starter import fork_server_for

__all__ = ["SharedForkServers"]


class SharedForkServers:
    """Fork servers for ``specs`` (the path targets with the default command); ``names`` maps a target's
    display name to its server's, which the workers' ``makrx_fork_server`` connects to."""

    def __init__(self, specs: Sequence[TargetSpec], *, temp_root: str | None, python: str | None) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="makrx-forks-", dir=temp_root))
        self._watchdog = start_watchdog(self.workdir)
        self._servers: list[ForkServer] = []
        self.names: dict[str, str] = {}
        for spec in specs:
            if spec.is_url:
                continue
            try:
                interpreter = backend_python(spec, python)
            except HarnessError:
                continue  # the workers report it, with the fix
            server = fork_server_for(spec, interpreter, self.workdir / spec.display.replace("/", "_"))
            if server is not None:
                self._servers.append(server)
                self.names[spec.display] = server.name

    def close(self) -> None:
        for server in self._servers:
            server.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
        self._watchdog.terminate()
        self._watchdog.wait(5)
