"""Removes a run's containers when the harness process that owns them dies without closing them.

The harness's own stand-in for testcontainers' Ryuk (whose image may be unreachable): started once
per process by the docker provider, it polls its parent and, once the parent is gone (SIGKILL, a
crash), removes every container labelled with the parent's run id. Normal runs remove their
containers themselves; the reaper then finds none and exits.
"""

from __future__ import annotations

import signal
import sys
import time

from makrx_contracts.harness.watchdog import parent_alive

__all__ = ["main"]

_POLL = 0.25  # seconds between looks at the parent


def main(argv: list[str]) -> int:
    parent, run_id = int(argv[0]), argv[1]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a SIGTERM to the whole group must not skip the sweep
    while parent_alive(parent):
        time.sleep(_POLL)
    from .docker_ownership import LABEL_RUN, labelled, remove_container  # only now: free while the run is alive

    for entry in labelled(f"{LABEL_RUN}={run_id}"):
        remove_container(entry["Id"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
