"""How a path target's `python -m MODULE` runs (uvicorn instances, alembic) start: forked from its fork server
when that gives what a fresh interpreter would, else as a fresh interpreter (DESIGN.md, Performance)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..process import ManagedProcess, OwnedProcess
from .environment import interpreter_env
from .preload import ForkServer, ForkServerClient, ForkServerError, preload_modules
from .resolve import TargetSpec

__all__ = ["Starter", "fork_server_for"]


def fork_server_for(spec: TargetSpec, python: str, workdir: Path) -> ForkServer | None:
    """A fork server for ``spec``'s default uvicorn command, run by ``python``; it returns at once and imports
    while the caller goes on. None when the target has its own `command`, `preload = false`, or the server
    cannot start: its runs then start the usual way."""
    settings = spec.settings
    if settings.command is not None or not settings.preload or spec.path is None:
        return None
    roots = [root for root in (spec.import_root, spec.cwd) if root is not None]
    try:
        return ForkServer(
            python,
            cwd=spec.cwd or Path.cwd(),
            env=interpreter_env(spec),
            modules=preload_modules(spec.path, roots),
            log_path=workdir / "logs" / f"{spec.name}-forkserver.log",
        )
    except OSError:
        return None


class Starter:
    """Starts a target's runs in ``cwd`` (default: the harness's), from ``fork_server`` when it can. The
    fork server's owner closes it; what it forked dies with it."""

    def __init__(self, fork_server: ForkServerClient | None, *, cwd: Path | None) -> None:
        self.cwd = cwd
        self._forks = fork_server
        self._fork_failed = False

    def _fork_for(self, env: Mapping[str, str]) -> ForkServerClient | None:
        """The fork server, when it can give exactly what a fresh interpreter with ``env`` would: the
        interpreter reads PYTHON* variables at start, so a run that changes one starts fresh."""
        forks = self._forks
        if forks is None or self._fork_failed or not forks.usable():
            return None
        python_vars = {k: v for k, v in env.items() if k.startswith("PYTHON")}
        return forks if python_vars == forks.status()["python_env"] else None

    def start(
        self, argv: list[str], *, env: Mapping[str, str], log_path: Path, name: str, cwd: Path | None = None
    ) -> OwnedProcess:
        """``python -m module ...``: forked when the fork server can, else a new interpreter; in ``cwd``
        (default: the starter's)."""
        cwd = cwd or self.cwd or Path.cwd()
        forks = self._fork_for(env)
        if forks is not None and argv[1:2] == ["-m"]:
            try:
                return forks.spawn(argv[2], argv[3:], env=env, cwd=cwd, log_path=log_path, name=name)
            except ForkServerError:
                self._fork_failed = True  # not dropped: what it forked so far still runs, polled through it
        return ManagedProcess(argv, log_path=log_path, env=env, cwd=cwd, name=name)
