"""Which run and which process own a container (its labels), and removing containers whose owner is gone:
a dead run's leftovers when a run starts, this run's by the reaper if this process dies without closing them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import uuid
from typing import Any

from .docker_engine import client

__all__ = [
    "LABEL_OWNER",
    "LABEL_RUN",
    "RUN_ID",
    "ensure_reaper",
    "labelled",
    "labels",
    "remove_container",
    "remove_leftovers",
]

LABEL_RUN = "org.makrx-contracts.run"  # one id per harness process: what its reaper removes
LABEL_OWNER = "org.makrx-contracts.owner"  # "<host>:<pid>:<start time>": a later run removes a dead owner's leftovers
RUN_ID = uuid.uuid4().hex


def _start_time(pid: int) -> str:
    """The kernel's start time of ``pid`` (clock ticks since boot): tells a live owner from pid reuse."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return "?"


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}"


def _owner_alive(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True  # another machine's container (shared engine): never ours to judge
    now = _start_time(int(pid_text))
    return now != "?" and now == started


def labels() -> dict[str, str]:
    """The labels a container this process starts carries."""
    return {LABEL_RUN: RUN_ID, LABEL_OWNER: _owner()}


def labelled(label: str) -> list[dict[str, Any]]:
    """Containers (all states) with ``label`` (``key`` or ``key=value``), as the engine lists them:
    ``Id``, ``Names``, ``Labels``, ... (one API call, no per-container inspect that a removal could race)."""
    return list(client().api.containers(all=True, filters={"label": label}))


def remove_container(container_id: str) -> bool:
    """Force-remove a container and its anonymous volumes; False when it was already gone."""
    import docker.errors

    try:
        client().api.remove_container(container_id, force=True, v=True)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:  # "removal already in progress" (its own reaper)
        if "in progress" in str(exc):
            return False
        raise
    return True


def remove_leftovers() -> list[str]:
    """Remove containers a dead harness process left behind (SIGKILL before its reaper ran); returns their names."""
    removed = []
    for entry in labelled(LABEL_OWNER):
        entry_labels = entry.get("Labels") or {}
        if (
            entry_labels.get(LABEL_RUN) != RUN_ID
            and not _owner_alive(entry_labels.get(LABEL_OWNER, ""))
            and remove_container(entry["Id"])
        ):
            removed.append(str((entry.get("Names") or ["?"])[0]).lstrip("/"))
    return removed


_reaper_lock = threading.Lock()
_reaper: subprocess.Popen[bytes] | None = None


def ensure_reaper() -> None:
    """Once per process: sweep dead runs' leftovers, and start the reaper that removes this run's
    containers if this process dies without closing them (the harness's own Ryuk)."""
    global _reaper
    with _reaper_lock:
        if _reaper is not None:
            return
        remove_leftovers()
        _reaper = subprocess.Popen(
            [sys.executable, "-m", "makrx_contracts.harness.services.reaper", str(os.getpid()), RUN_ID],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C to the terminal's process group must not end it
        )
