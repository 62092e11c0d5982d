"""The environment of a path target's instances and alembic runs: the interpreter's, the SPEC §2 settings
that name this run's services and issuer, and the target's `[env]` with the run's facts filled in."""

from __future__ import annotations

import os
import re
import uuid
from typing import Protocol
from urllib.parse import urlsplit

from ..issuer.backend_env import keycloak_env
from ..services.base import RedisService
from .resolve import TargetSpec
from .settings import placeholders_in

__all__ = ["InstanceEnvironment", "RunServices", "TrustedIssuer", "interpreter_env"]

# The harness decides these; inherited values would make runs depend on the developer's shell.
_SCRUBBED = (
    "KEYCLOAK_",
    "DATABASE_URL",
    "REDIS_URL",
    "CORS_ORIGINS",
    "TRUST_PROXY",
    "ENVIRONMENT",
    "PORT",
    "WEB_CONCURRENCY",
    "MAKRX_",
)


class TrustedIssuer(Protocol):
    """The Keycloak an instance trusts (the run's issuer, or a contract's own)."""

    base_url: str
    issuer_url: str
    realm: str

    @property
    def jwks_url(self) -> str: ...


class _Postgres(Protocol):
    def create_database(self, name: str) -> str: ...


class RunServices(Protocol):
    """The run's Postgres and Redis."""

    postgres: _Postgres

    @property
    def redis(self) -> RedisService: ...


def interpreter_env(spec: TargetSpec) -> dict[str, str]:
    """What every process of ``spec`` (its fork server too) has before the harness adds the MakrX settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(spec.import_root), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    # Values naming the run's facts wait for base_env, which knows them.
    env.update({k: v for k, v in spec.settings.env.items() if not placeholders_in(v, k, None)})
    return env


class InstanceEnvironment:
    """The environments of ``spec``'s instances, which use ``services`` and trust ``issuer``."""

    def __init__(self, spec: TargetSpec, *, services: RunServices, issuer: TrustedIssuer) -> None:
        self.spec = spec
        self.services = services
        self.issuer = issuer
        self._database_url: str | None = None

    def database_url(self) -> str:
        """One fresh database per target and run, shared by its instances (like one deployment)."""
        if self._database_url is None:
            slug = re.sub(r"[^a-z0-9]", "_", self.spec.name.lower())[:40]  # Postgres names stop at 63
            name = f"makrx_{slug}_{uuid.uuid4().hex[:8]}"
            self._database_url = self.as_backend_url(self.services.postgres.create_database(name))
        return self._database_url

    def as_backend_url(self, url: str) -> str:
        """A service DSN in the form the backend reads (the `database_url` setting's template, if any)."""
        template = self.spec.settings.database_url
        if not template:
            return url
        parts = urlsplit(url)
        return template.format(
            user=parts.username,
            password=parts.password,
            host=parts.hostname,
            port=parts.port,
            dbname=parts.path.lstrip("/"),
            url=url,
        )

    def facts(self, port: int, database_url: str | None = None, issuer: TrustedIssuer | None = None) -> dict[str, str]:
        """What `[env]` values and `command` may name as placeholders (settings.PLACEHOLDERS): the issuer
        and database (default: the target's), Redis of this run and the instance's port."""
        issuer = issuer or self.issuer
        return {
            "issuer_url": issuer.issuer_url,
            "keycloak_url": issuer.base_url,
            "realm": issuer.realm,
            "client_id": self.spec.client_id,
            "jwks_url": issuer.jwks_url,
            "database_url": database_url or self.database_url(),
            "redis_url": str(self.services.redis.url),
            "port": str(port),
        }

    def base_env(
        self, port: int, database_url: str | None = None, issuer: TrustedIssuer | None = None
    ) -> dict[str, str]:
        """The environment of an instance on ``port`` (or of alembic, port 0) using ``database_url`` (in the
        backend's form) and trusting ``issuer``; default: the target's database and the run's issuer."""
        env = interpreter_env(self.spec)
        facts = self.facts(port, database_url, issuer)
        env.update(
            keycloak_env(
                base_url=facts["keycloak_url"],
                realm=facts["realm"],
                issuer_url=facts["issuer_url"],
                client_id=facts["client_id"],
            )
        )
        env.update(
            {
                "DATABASE_URL": facts["database_url"],
                "REDIS_URL": facts["redis_url"],
                "TRUST_PROXY": "false",
                "ENVIRONMENT": self.spec.settings.environment,
                "PORT": str(port),
            }
        )
        env.update({k: v.format_map(facts) for k, v in self.spec.settings.env.items()})
        return env
