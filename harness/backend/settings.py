"""Per-target settings: `[tool.makrx-contract]` in pyproject.toml, `makrx-contract.toml`, or --makrx-config."""

from __future__ import annotations

import datetime as dt
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = [
    "PLACEHOLDERS",
    "RoleRule",
    "TargetSettings",
    "Waiver",
    "load_settings",
    "parse_operation",
    "placeholders_in",
]

_KNOWN_KEYS = {
    "app",
    "command",
    "env",
    "environment",
    "client_id",
    "rate_limit_path",
    "roles",
    "waivers",
    "cwd",
    "python",
    "ready_timeout",
    "database_url",
    "migrate",
    "preload",
    "auth_probe",
    "token_roles",
}


@dataclass(frozen=True)
class RoleRule:
    """An endpoint that needs one of ``roles``."""

    path: str
    method: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class Waiver:
    """A known failure of ``contract`` accepted until ``expires`` (inclusive), for ``reason``."""

    contract: str
    reason: str
    expires: dt.date

    def expired(self, today: dt.date | None = None) -> bool:
        return (today or dt.date.today()) > self.expires


@dataclass(frozen=True)
class TargetSettings:
    """What the harness needs to know about a backend beyond its directory; every key optional."""

    app: str | None = None
    command: str | None = None
    env: dict[str, str] = field(default_factory=dict)  # values may name PLACEHOLDERS: "{issuer_url}"
    environment: str = "test"
    client_id: str | None = None
    rate_limit_path: str | None = None  # "POST /api/v1/orders" or "/api/v1/items" (GET): what the bursts send
    auth_probe: str | None = None  # "GET /api/v1/me": the operation a plain valid token may call
    token_roles: tuple[str, ...] = ("user",)  # realm roles of the plain valid token
    roles: tuple[RoleRule, ...] = ()
    waivers: tuple[Waiver, ...] = ()
    migrate: bool | None = None
    preload: bool = True
    python: str | None = None
    cwd: str | None = None
    ready_timeout: float | None = None
    database_url: str | None = None
    source: Path | None = None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", fix="correct the file's syntax") from None


def _find(target_dir: Path | None, explicit: Path | None) -> tuple[dict[str, Any], Path | None]:
    if explicit is not None:
        data = _read_toml(explicit)
        return data.get("tool", {}).get("makrx-contract", data), explicit
    if target_dir is None:
        return {}, None
    own = target_dir / "makrx-contract.toml"
    if own.is_file():
        return _read_toml(own), own
    pyproject = target_dir / "pyproject.toml"
    if pyproject.is_file():
        section = _read_toml(pyproject).get("tool", {}).get("makrx-contract")
        if section is not None:
            return section, pyproject
    return {}, None


def parse_operation(raw: str, key: str = "auth_probe") -> tuple[str, str]:
    """`"GET /api/v1/me"` or `"/api/v1/me"` (GET) → (method, path)."""
    method, _, path = raw.strip().rpartition(" ")
    if not path.startswith("/"):
        raise ConfigError(f"{key} {raw!r} is not `METHOD /path`", fix=f'e.g. {key} = "GET /api/v1/me"')
    return (method.strip().upper() or "GET"), path


def _operation(raw: Any, source: Path | None, key: str) -> str | None:
    if raw is None:
        return None
    try:
        return " ".join(parse_operation(str(raw), key))
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc.message}", fix=exc.fix) from None


# The run's facts `[env]` values and `command` may name; they change every run (ports, database names).
PLACEHOLDERS = ("issuer_url", "keycloak_url", "realm", "client_id", "jwks_url", "database_url", "redis_url", "port")


def placeholders_in(value: str, where: str, source: Path | None, known: tuple[str, ...] = PLACEHOLDERS) -> set[str]:
    """The placeholders ``value`` names (str.format syntax); an unknown one or a stray brace is a ConfigError."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as exc:
        raise ConfigError(
            f"{source}: {where} {value!r} is not a valid template ({exc})", fix="write {{ and }} for literal braces"
        ) from None
    unknown = sorted(names - set(known))
    if unknown:
        raise ConfigError(
            f"{source}: {where} names unknown placeholder(s) {', '.join('{' + n + '}' for n in unknown)}",
            fix=f"use only: {', '.join('{' + n + '}' for n in known)} (and {{{{ }}}} for literal braces)",
        )
    return names


def _strings(value: Any, key: str, source: Path | None) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{source}: '{key}' must be a list of strings", fix=f'e.g. {key} = ["user"]')
    return tuple(value)


def load_settings(target_dir: Path | None, explicit: Path | None = None) -> TargetSettings:
    """Read the settings of one target; unknown keys and wrong types are a ConfigError naming the file."""
    data, source = _find(target_dir, explicit)
    unknown = set(data) - _KNOWN_KEYS
    if unknown:
        raise ConfigError(
            f"{source}: unknown per-target key(s) {', '.join(sorted(unknown))}",
            fix=f"use only: {', '.join(sorted(_KNOWN_KEYS))}",
        )
    env = data.get("env", {})
    if not isinstance(env, dict):
        raise ConfigError(f"{source}: 'env' must be a table of NAME = \"value\"", fix='e.g. [env] SMTP_HOST = "x"')
    env = {str(k): str(v) for k, v in env.items()}
    for name, value in env.items():
        placeholders_in(value, f"[env] {name}", source)
    if data.get("command") is not None:
        placeholders_in(str(data["command"]), "command", source, (*PLACEHOLDERS, "python"))
    roles = []
    for rule in data.get("roles", []):
        try:
            roles.append(
                RoleRule(path=rule["path"], method=rule.get("method", "GET").upper(), roles=tuple(rule["roles"]))
            )
        except (KeyError, TypeError):
            raise ConfigError(
                f"{source}: each [[roles]] entry needs path, method and roles",
                fix='e.g. [[roles]] path = "/api/v1/x" method = "DELETE" roles = ["admin"]',
            ) from None
    waivers = []
    for item in data.get("waivers", []):
        try:
            expires = item["expires"]
            if isinstance(expires, str):
                expires = dt.date.fromisoformat(expires)
            waivers.append(Waiver(contract=str(item["id"]), reason=str(item["reason"]), expires=expires))
        except (KeyError, TypeError, ValueError):
            raise ConfigError(
                f"{source}: each [[waivers]] entry needs id, reason and expires (a date)",
                fix='e.g. [[waivers]] id = "CORS-VARY-ORIGIN" reason = "CDN fix, TICKET-1" expires = 2027-01-31',
            ) from None
    return TargetSettings(
        app=data.get("app"),
        command=data.get("command"),
        env=env,
        environment=str(data.get("environment", "test")),
        client_id=data.get("client_id"),
        rate_limit_path=_operation(data.get("rate_limit_path"), source, "rate_limit_path"),
        auth_probe=_operation(data.get("auth_probe"), source, "auth_probe"),
        token_roles=_strings(data.get("token_roles", ["user"]), "token_roles", source),
        roles=tuple(roles),
        waivers=tuple(waivers),
        migrate=data.get("migrate"),
        preload=bool(data.get("preload", True)),
        python=data.get("python"),
        cwd=data.get("cwd"),
        ready_timeout=float(data["ready_timeout"]) if "ready_timeout" in data else None,
        database_url=data.get("database_url"),
        source=source,
    )
