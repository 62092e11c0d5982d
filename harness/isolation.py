"""A contract run is the same wherever it starts. From a monorepo root, pytest would otherwise apply that
repository's own test set-up to the gate: its `addopts` (options of plugins the suite's environment lacks,
`-m` selections), `testpaths`, `filterwarnings = error`, and `conftest.py` files that import the
backends' own test dependencies. None of it is the gate's: a run with a target keeps only the `makrx_*`
ini keys, the command line (and PYTEST_ADDOPTS), and loads no conftest.py."""

from __future__ import annotations

import os
import shlex
from typing import Any

import pytest

__all__ = ["isolate"]


def _ini_values(config: pytest.Config) -> Any:
    """The ini file's values: pytest 9 keeps them in `_inicfg`, pytest 8 in `inicfg` (there is no public
    way to set them aside)."""
    return config._inicfg if hasattr(config, "_inicfg") else config.inicfg


def _without(args: list[str], tokens: list[str]) -> list[str]:
    """`args` less the ini's addopts, which pytest put right after PYTEST_ADDOPTS (in an xdist worker the
    controller's args come without them, and stay as they are)."""
    start = len(shlex.split(os.environ.get("PYTEST_ADDOPTS", "")))
    if tokens and args[start : start + len(tokens)] == tokens:
        return args[:start] + args[start + len(tokens) :]
    return args


def isolate(early_config: pytest.Config, parser: pytest.Parser, args: list[str], default_args: list[str]) -> None:
    """Set the run's args (in place) and ini values apart from the invoking directory's test set-up;
    `default_args` are collected when the command line names no path."""
    args[:] = _without(args, list(early_config.getini("addopts")))
    values = _ini_values(early_config)
    for key in [key for key in values if not key.startswith("makrx_")]:
        del values[key]
    early_config._inicache.clear()
    namespace = early_config.known_args_namespace
    namespace.noconftest = True
    args.append("--noconftest")
    if not parser.parse_known_args(args).file_or_dir:
        args.extend(default_args)
        namespace.file_or_dir = list(default_args)
