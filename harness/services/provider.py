"""The provider chain: external URLs first, then docker, then embedded; the run says which one won and why."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from ..errors import ServiceError
from .base import SERVICE_KINDS, SERVICE_LABELS, PostgresService, Provider, RedisService, Service
from .docker import DockerProvider
from .embedded import EmbeddedProvider
from .external import URL_OPTIONS, ExternalPostgres, ExternalRedis

__all__ = ["MODES", "Services", "choose", "provide_services"]

MODES = ("auto", "external", "docker", "embedded")
# After external URLs, `auto` takes the first provider here that can supply a service; a forced mode
# names one. Adding a provider is one entry.
CHAIN: tuple[type[Provider], ...] = (DockerProvider, EmbeddedProvider)

_OPTION = {"postgres": "--makrx-database-url", "redis": "--makrx-redis-url"}


@dataclass(frozen=True)
class Services:
    """The run's Postgres and Redis, which provider gave them (``mixed`` when two did), and why."""

    postgres: PostgresService
    redis: RedisService
    provider: str
    reason: str

    def close(self) -> None:
        """Stop whatever the harness started (idempotent); external services are left alone."""
        errors: list[Exception] = []
        for service in (self.redis, self.postgres):
            try:
                service.close()
            except Exception as exc:  # close both, report the first failure
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> Services:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@dataclass
class _Choice:
    kind: str
    provider: Provider | None  # None: external
    cause: str  # "url" | "chain" | "forced"
    skipped: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.provider.name if self.provider else "external"

    def why(self, mode: str) -> str:
        if self.cause == "url":
            return f"{_OPTION[self.kind]} given"
        if self.cause == "forced":
            return f"--makrx-services={mode}"
        return "; ".join([f"no {_OPTION[self.kind]} given", *self.skipped])


def _plan(mode: str, urls: dict[str, str | None], providers: list[Provider]) -> dict[str, _Choice]:
    plan: dict[str, _Choice] = {}
    if mode == "external":
        missing = [URL_OPTIONS[kind] for kind in SERVICE_KINDS if not urls[kind]]
        if missing:
            raise ServiceError(
                f"--makrx-services=external needs a URL for each service; missing {' and '.join(missing)}",
                fix="pass the missing URL, or use --makrx-services=auto to start what is missing",
            )
        return {kind: _Choice(kind, None, "forced") for kind in SERVICE_KINDS}
    if mode != "auto":
        provider = next(p for p in providers if p.name == mode)
        for kind in SERVICE_KINDS:
            why_not = provider.unavailable(kind, forced=True)
            if why_not is not None:
                raise ServiceError(
                    f"--makrx-services={mode}: the {mode} provider cannot supply {SERVICE_LABELS[kind]}: {why_not}",
                    fix=provider.fix(kind),
                )
            plan[kind] = _Choice(kind, provider, "forced")
        return plan
    for kind in SERVICE_KINDS:
        if urls[kind]:
            plan[kind] = _Choice(kind, None, "url")
            continue
        skipped: list[str] = []
        for provider in providers:
            why_not = provider.unavailable(kind)
            if why_not is None:
                plan[kind] = _Choice(kind, provider, "chain", skipped)
                break
            skipped.append(f"{provider.name}: {why_not}")
        else:
            tried = "; ".join([f"external: no {URL_OPTIONS[kind]} given", *skipped])
            raise ServiceError(
                f"no provider can supply {SERVICE_LABELS[kind]} (tried {tried})", fix=providers[-1].fix(kind)
            )
    return plan


def _describe(service: Service) -> str | None:
    description = getattr(service, "description", None)
    if description:
        return str(description)
    binaries = getattr(service, "binaries", None)
    if binaries is None:
        return None
    text = f"{SERVICE_LABELS[service.kind]} {binaries.version} from {binaries.source}"
    if getattr(service, "template_reused", None) is False:
        text += " (template cluster built)"
    return text


def _reason(
    plan: dict[str, _Choice],
    mode: str,
    urls: dict[str, str | None],
    services: dict[str, Service],
) -> str:
    pg, rd = plan["postgres"], plan["redis"]
    if pg.name == rd.name and pg.cause == rd.cause and pg.skipped == rd.skipped:
        if pg.cause == "url":
            parts = [f"{_OPTION['postgres']} and {_OPTION['redis']} given"]
        elif pg.cause == "chain":
            parts = [f"no {_OPTION['postgres']} or {_OPTION['redis']} given", *pg.skipped]
        else:
            parts = [f"--makrx-services={mode}"]
    else:
        parts = [f"{SERVICE_LABELS[c.kind]} {c.name}: {c.why(mode)}" for c in (pg, rd)]
    ignored = [_OPTION[k] for k in SERVICE_KINDS if urls[k] and plan[k].provider is not None]
    if ignored:
        parts.append(f"{' and '.join(ignored)} ignored")
    details = [d for d in (_describe(services[k]) for k in SERVICE_KINDS if k in services) if d]
    if details:
        parts.append(", ".join(details))
    return "; ".join(parts)


def choose(
    mode: str = "auto",
    *,
    redis_url: str | None = None,
    database_url: str | None = None,
    redis_image: str | None = None,
    postgres_image: str | None = None,
) -> str:
    """Which provider would serve a run, and why, without starting anything (the run header's line)."""
    images = {"redis": redis_image, "postgres": postgres_image}
    providers = [cls(workdir=Path("."), images=images) for cls in CHAIN]
    urls = {"postgres": database_url or None, "redis": redis_url or None}
    try:
        plan = _plan(mode, urls, providers)
    except ServiceError as exc:
        return f"none ({exc.message})"
    names = {plan[kind].name for kind in SERVICE_KINDS}
    return f"{names.pop() if len(names) == 1 else 'mixed'} ({_reason(plan, mode, urls, {})})"


def provide_services(
    mode: str = "auto",
    *,
    redis_url: str | None = None,
    database_url: str | None = None,
    workdir: Path,
    cache_dir: Path | None = None,
    redis_image: str | None = None,
    postgres_image: str | None = None,
) -> Services:
    """Redis and Postgres for one run, from the first provider that can supply each.

    ``auto``: a given URL is used as is (external); otherwise docker when it reports available, else
    embedded. ``external``/``docker``/``embedded`` force one (a forced provider ignores URLs). Owned
    servers live under ``workdir``; ``cache_dir`` (default $MAKRX_CACHE_DIR or a per-user cache) holds
    reusable binaries and template clusters; ``redis_image``/``postgres_image`` name the docker
    provider's images (default ``redis:7``, ``postgres:16``). If anything fails, what was started is
    stopped again.
    """
    if mode not in MODES:
        raise ServiceError(f"unknown services mode {mode!r}", fix=f"use --makrx-services={'|'.join(MODES)}")
    workdir = Path(workdir)
    images = {"redis": redis_image, "postgres": postgres_image}
    providers = [cls(workdir=workdir, cache_dir=cache_dir, images=images) for cls in CHAIN]
    urls = {"postgres": database_url or None, "redis": redis_url or None}
    plan = _plan(mode, urls, providers)

    started: dict[str, Service] = {}
    try:
        # URLs first: a wrong one fails within seconds, before any server is spawned.
        order = sorted(SERVICE_KINDS, key=lambda kind: plan[kind].provider is not None)
        for kind in order:
            provider = plan[kind].provider
            if provider is None:
                url = urls[kind]
                assert url is not None
                started[kind] = ExternalPostgres(url) if kind == "postgres" else ExternalRedis(url)
            else:
                started[kind] = provider.postgres() if kind == "postgres" else provider.redis()
    except BaseException:
        for service in reversed(list(started.values())):
            with suppress(Exception):  # already failing: the original error is the one to show
                service.close()
        raise
    postgres, redis = started["postgres"], started["redis"]
    assert isinstance(postgres, PostgresService) and isinstance(redis, RedisService)
    names = {plan[kind].name for kind in SERVICE_KINDS}
    return Services(
        postgres=postgres,
        redis=redis,
        provider=names.pop() if len(names) == 1 else "mixed",
        reason=_reason(plan, mode, urls, started),
    )
