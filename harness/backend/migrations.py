"""A path target's alembic runs: `upgrade head` before its first instance starts (as a deploy would), and
the commands STRUCTURE contracts run, in the backend's interpreter."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..process import tail
from .alembic import alembic_layout
from .resolve import TargetSpec
from .starter import Starter

__all__ = ["MigrationResult", "Migrations"]

_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Exit)|FAILED)\b.*:")


@dataclass(frozen=True)
class MigrationResult:
    """Outcome of an alembic command (`upgrade head` before the backend started, or a contract's)."""

    command: str
    returncode: int
    output: str
    hung: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def cause(self) -> str:
        """The exception line of the output (`sqlalchemy.exc.OperationalError: ...`), not its last line,
        which is often SQLAlchemy's "Background on this error at: <link>"."""
        lines = [line.strip() for line in self.output.splitlines() if line.strip()]
        return next((line for line in reversed(lines) if _EXCEPTION_LINE.match(line)), lines[-1] if lines else "")


class Migrations:
    """Runs alembic for ``spec`` with ``python``, started by ``starter``; logs under ``workdir``/logs."""

    def __init__(self, spec: TargetSpec, *, python: str, workdir: Path, starter: Starter) -> None:
        self.spec = spec
        self.python = python
        self.workdir = workdir
        self.starter = starter
        self._runs = 0

    def migrate(self, env: Mapping[str, str]) -> MigrationResult | None:
        """`alembic upgrade head` when the target ships alembic.ini (as a deploy would before start)."""
        ini = self.spec.path / "alembic.ini" if self.spec.path else None
        if ini is None or not ini.is_file() or self.spec.settings.migrate is False:
            return None
        return self.upgrade_head(ini, env)

    def upgrade_head(self, ini: Path, env: Mapping[str, str], timeout: float = 120.0) -> MigrationResult:
        """Run `alembic -c INI upgrade head` with ``env``, in the backend's interpreter, from the directory
        where its script_location resolves (`alembic.py`)."""
        return self.alembic(ini, env, "upgrade", "head", timeout=timeout)

    def alembic(
        self, ini: Path, env: Mapping[str, str], *command: str, timeout: float = 120.0, max_bytes: int = 4000
    ) -> MigrationResult:
        """Run `alembic -c INI <command>` as :meth:`upgrade_head` does; the output's last ``max_bytes``."""
        argv = [self.python, "-m", "alembic", "-c", str(ini), *command]
        self._runs += 1
        log_path = self.workdir / "logs" / f"{self.spec.name}-alembic-{self._runs}.log"
        cwd = alembic_layout(ini, self.spec).cwd
        process = self.starter.start(argv, env=env, log_path=log_path, name="alembic", cwd=cwd)
        finished = process.wait(timeout)
        code = process.stop()
        if not finished or code is None:
            return MigrationResult(
                shlex.join(argv), -1, f"alembic {' '.join(command)} did not finish within {timeout:.0f} s", hung=True
            )
        return MigrationResult(shlex.join(argv), code, tail(log_path, lines=100_000, max_bytes=max_bytes))
