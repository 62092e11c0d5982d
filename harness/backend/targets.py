"""From the `--makrx-target` values to the backends of a run: globs expanded, each resolved, labelled so
two backends of the same name stay apart."""

from __future__ import annotations

import dataclasses
import glob
from pathlib import Path

from ..config import MakrxConfig
from ..errors import ConfigError
from .resolve import TargetSpec, resolve_target

__all__ = ["expand_globs", "resolve_targets"]


def expand_globs(raw_targets: tuple[str, ...]) -> list[str]:
    """Globs (`backends/*`) become the directories they match, in order; the rest stay as given."""
    expanded: list[str] = []
    for raw in raw_targets:
        if any(ch in raw for ch in "*?[") and not raw.startswith(("http://", "https://")):
            matches = sorted(p for p in glob.glob(raw) if Path(p).is_dir())
            if not matches:
                raise ConfigError(f"--makrx-target={raw} matches no directory", fix="check the glob")
            expanded += matches
        else:
            expanded.append(raw)
    return expanded


def resolve_targets(makrx: MakrxConfig) -> tuple[list[TargetSpec], list[str]]:
    """Every target, labelled, and one line for each directory a glob matched that is not a backend: a
    monorepo's `backends/*` also matches shared packages (`backends/utils`), which must not stop the others."""
    specs: list[TargetSpec] = []
    left_out: list[str] = []
    for raw in makrx.target:
        for path in expand_globs((raw,)):
            try:
                specs.append(resolve_target(path, makrx.config))
            except ConfigError as exc:
                if path == raw:
                    raise
                left_out.append(f"{path}: left out of --makrx-target={raw}: {exc.message}")
    if makrx.target and not specs:
        raise ConfigError(f"no backend among the targets ({'; '.join(left_out)})", fix="check the glob")
    return _labelled(specs), left_out


def _labelled(specs: list[TargetSpec]) -> list[TargetSpec]:
    """Targets that share a directory name are labelled with their parent too (`a/app`, `b/app`); the
    bundled app keeps the name it was asked for, `reference`."""
    names = [spec.name for spec in specs]
    return [
        dataclasses.replace(
            spec, label="reference" if spec.raw == "reference" else f"{spec.path.parent.name}/{spec.name}"
        )
        if names.count(spec.name) > 1 and spec.path is not None
        else spec
        for spec in specs
    ]
