"""Every `--makrx-*` option, its ini key and env variable, resolved once into a frozen config."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .errors import ConfigError

__all__ = ["OPTIONS", "MakrxConfig", "Option", "add_options", "resolve_config"]

SERVICE_MODES = ("auto", "external", "docker", "embedded")


@dataclass(frozen=True)
class Option:
    """One setting, available as ``--makrx-<name>``, ini key ``makrx_<name>`` and (if set) an env var."""

    name: str
    help: str
    kind: str = "string"  # string | list | bool | float | int
    default: Any = None
    env: str | None = None
    choices: tuple[str, ...] | None = None

    @property
    def flag(self) -> str:
        return "--makrx-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "makrx_" + self.name


OPTIONS: tuple[Option, ...] = (
    Option(
        "target",
        "backend to check: a backend directory, 'reference', or an http(s):// URL; repeat it "
        "(or use a glob) for a matrix.",
        kind="list",
        env="MAKRX_TARGET",
    ),
    Option("config", "per-target settings file (TOML) instead of the target's own pyproject/makrx-contract.toml."),
    Option("strict", "treat SHOULD-level contract failures as failures, not warnings.", kind="bool", default=False),
    Option(
        "services",
        "where Redis and Postgres come from: auto, external, docker or embedded.",
        default="auto",
        env="MAKRX_SERVICES",
        choices=SERVICE_MODES,
    ),
    Option("redis_url", "use this running Redis (redis://...) instead of starting one.", env="MAKRX_REDIS_URL"),
    Option(
        "database_url",
        "use this running Postgres (postgresql://...) instead of starting one.",
        env="MAKRX_DATABASE_URL",
    ),
    Option(
        "redis_image",
        "image of the docker provider's Redis (official redis contract).",
        default="redis:7",
        env="MAKRX_REDIS_IMAGE",
    ),
    Option(
        "postgres_image",
        "image of the docker provider's Postgres (official postgres contract: POSTGRES_USER/PASSWORD/DB).",
        default="postgres:16",
        env="MAKRX_POSTGRES_IMAGE",
    ),
    Option("ready_timeout", "seconds to wait for the backend to answer after start.", kind="float", default=30.0),
    Option("rate_budget", "most requests a rate-limit test may send to reach the limit.", kind="int", default=600),
    Option("seed", "seed for generated users, tokens and addresses (reproducible runs).", kind="int", default=None),
    Option(
        "fuzz_examples",
        "examples per operation for the OpenAPI fuzz contracts (deselect: -m 'not fuzz').",
        kind="int",
        default=10,
    ),
    Option("python", "interpreter that runs path targets (e.g. the backend's venv/bin/python).", env="MAKRX_PYTHON"),
    Option("report", "write the conformance scorecard to FILE.md and FILE.json.", env="MAKRX_REPORT"),
    Option(
        "baseline",
        "a scorecard JSON of an earlier run: its failures are 'known' and pass, new ones fail, "
        "fixed ones are reported (and fail under --makrx-strict).",
        env="MAKRX_BASELINE",
    ),
    Option(
        "baseline_update",
        "rewrite the --makrx-baseline file with this run's failures, printing what was added and removed.",
        kind="bool",
        default=False,
    ),
    Option(
        "discover",
        "boot the target, run only the contracts that discover settings, and print them as a "
        "[tool.makrx-contract] block to paste.",
        kind="bool",
        default=False,
    ),
)


@dataclass(frozen=True)
class MakrxConfig:
    """The resolved settings of one pytest run."""

    target: tuple[str, ...] = ()
    config: Path | None = None
    strict: bool = False
    services: str = "auto"
    redis_url: str | None = None
    database_url: str | None = None
    redis_image: str = "redis:7"
    postgres_image: str = "postgres:16"
    ready_timeout: float = 30.0
    rate_budget: int = 600
    seed: int | None = None
    fuzz_examples: int = 10
    python: str | None = None
    report: Path | None = None
    baseline: Path | None = None
    baseline_update: bool = False
    discover: bool = False
    rootdir: Path = field(default_factory=Path.cwd)


def add_options(parser: pytest.Parser) -> None:
    """Register every option in one ``makrx`` group of ``pytest --help``, plus its ini key."""
    group = parser.getgroup("makrx", "makrx contract suite (MakrX backend conventions)")
    for opt in OPTIONS:
        if opt.kind == "bool":
            group.addoption(opt.flag, action="store_true", default=None, dest=opt.ini, help=opt.help)
            parser.addini(opt.ini, opt.help, type="bool", default=opt.default)
            continue
        if opt.kind == "list":
            group.addoption(
                opt.flag,
                action="append",
                default=None,
                dest=opt.ini,
                metavar=opt.name.upper(),
                help=opt.help + (f" Env: {opt.env}." if opt.env else ""),
            )
            parser.addini(opt.ini, opt.help, type="args", default=[])
            continue
        extra = f" Default: {opt.default}." if opt.default is not None else ""
        env = f" Env: {opt.env}." if opt.env else ""
        group.addoption(
            opt.flag, action="store", default=None, dest=opt.ini, metavar=opt.name.upper(), help=opt.help + extra + env
        )
        parser.addini(opt.ini, opt.help, default=None)


def _convert(opt: Option, raw: Any) -> Any:
    if opt.kind == "list":
        items = raw.split(",") if isinstance(raw, str) else list(raw or [])
        return tuple(item.strip() for item in items if item and item.strip())
    if raw is None or raw == "":
        return opt.default
    try:
        if opt.kind == "bool":
            return raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes", "on")
        if opt.kind == "float":
            return float(raw)
        if opt.kind == "int":
            return int(raw)
    except ValueError:
        raise ConfigError(
            f"{opt.flag}={raw!r} is not a valid {opt.kind}",
            fix=f"pass a {opt.kind} to {opt.flag} (or ini key {opt.ini})",
        ) from None
    value = str(raw)
    if opt.choices and value not in opt.choices:
        raise ConfigError(
            f"{opt.flag}={value!r} is not one of {', '.join(opt.choices)}",
            fix=f"use {opt.flag}={'|'.join(opt.choices)}",
        )
    return value


def resolve_config(config: pytest.Config) -> MakrxConfig:
    """Command line wins over the ini key, which wins over the environment variable."""
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        raw = config.getoption(opt.ini)
        if raw is None:
            raw = config.getini(opt.ini)
            if opt.kind == "bool" and raw == opt.default:
                raw = None
        if (raw is None or raw == "" or raw == []) and opt.env:
            raw = os.environ.get(opt.env)
        values[opt.name] = _convert(opt, raw)
    if values["config"] is not None:
        path = Path(values["config"]).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"--makrx-config file {path} does not exist",
                fix="pass the path of a TOML file with the per-target settings",
            )
        values["config"] = path.resolve()
    for name in ("report", "baseline"):
        if values[name] is not None:
            values[name] = Path(values[name]).expanduser()
    if values["baseline_update"] and values["baseline"] is None:
        raise ConfigError(
            "--makrx-baseline-update needs the file to write", fix="pass --makrx-baseline=FILE.json with it"
        )
    return MakrxConfig(rootdir=Path(str(config.rootpath)), **values)
