"""Why an instance did not come up, said as one TargetError: the error its log ends with, and the
per-target setting that fixes the usual causes (`python`, `environment`, `[env]`)."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import TargetError
from .running import RunningTarget

__all__ = ["boot_error"]


def boot_error(target: RunningTarget, reason: str, *, command: str, cwd: Path | None) -> TargetError:
    """The error for ``target``, which did not answer (``reason``); ``command`` is how it was started, in ``cwd``."""
    name = target.spec.name
    full = target.log_tail(400)
    log = "\n".join(full.splitlines()[-8:])
    if "address already in use" in full.lower():
        return TargetError(
            f"{name} could not bind its port ({reason})",
            fix="another program holds the port: stop it, or let the harness pick the port "
            "(use {port} in the per-target 'command')",
            details=log,
        )
    error = _last_error_line(full)
    if error is not None:
        setting = _setting_for(error, log, target.spec.settings.source)
        fix = f"run the same command yourself to see it: cd {cwd} && {command}"
        return TargetError(
            f"{name} failed to start: {error}", fix=f"{setting}; or {fix}" if setting else fix, details=log
        )
    if target.process and target.process.exit_code() is None:
        return TargetError(
            f"{name} started but never answered HTTP ({reason})",
            fix="raise --makrx-ready-timeout if it boots slowly, or check what it waits for",
            details=log,
        )
    return TargetError(f"{name} exited before answering ({reason})", fix=f"run: cd {cwd} && {command}", details=log)


def _last_error_line(log: str) -> str | None:
    """The exception line that ended a traceback (or uvicorn's own error line), if there is one."""
    for line in reversed(log.splitlines()):
        stripped = line.strip()
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b", stripped) or stripped.startswith("ERROR:"):
            return stripped[:300]
    return None


def _setting_for(error: str, log: str, source: Path | None) -> str | None:
    """The per-target setting that fixes the usual boot failures of real backends, named in the message
    (``log``: the last lines, where pydantic puts the field that failed)."""
    where = source.name if source else "makrx-contract.toml beside the backend"
    if error.startswith(("ModuleNotFoundError", "ImportError")):
        return (
            f'the interpreter lacks the backend\'s packages: set python = ".venv/bin/python" (its own venv) '
            f"in {where}, or pass --makrx-python"
        )
    lowered = f"{error}\n{log}".lower()
    if "environment" in lowered and ("development" in lowered or "production" in lowered):
        return f'the backend rejects ENVIRONMENT=test: set environment = "development" (or what it accepts) in {where}'
    names = re.findall(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b", error)
    if names and any(word in lowered for word in ("must be set", "not set", "required", "missing", "keyerror")):
        entries = " ".join(f'{name} = "..."' for name in dict.fromkeys(names))
        return f"the backend needs {', '.join(dict.fromkeys(names))} at import: give it in [env] of {where} ({entries})"
    return None
