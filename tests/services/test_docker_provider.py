"""The docker provider for real: containers from the local redis:7 / postgres:16 images, pinned ports,
stop/start/pause, labels, removal on close, after SIGKILL (reaper) and of dead runs' leftovers.

Needs a Docker engine (`bash ci/docker-setup.sh`); skips loudly without one (fails with MAKRX_REQUIRE_DOCKER=1).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from makrx_contracts.harness.errors import ServiceError
from makrx_contracts.harness.ports import port_is_bound
from makrx_contracts.harness.services import Services, docker_ownership, provide_services
from makrx_contracts.harness.services import docker_engine as engine
from makrx_contracts.harness.services.docker import DEFAULT_IMAGES, DockerPostgres, DockerRedis
from makrx_contracts.harness.services.docker_ownership import LABEL_OWNER, LABEL_RUN

from ..suite_runner import REPO, interruptible, killed_on_exit

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine")]


def _client():  # type: ignore[no-untyped-def]
    return engine.client()


def _exists(name: str) -> bool:
    return bool(_client().api.containers(all=True, filters={"name": f"^/{name}$"}))


@pytest.fixture(scope="module")
def services(_module_workdir: Path) -> Iterator[Services]:
    running = provide_services("docker", workdir=_module_workdir / "docker")
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def pg(services: Services) -> Iterator[DockerPostgres]:
    """The module's Postgres, running and unpaused after each test."""
    assert isinstance(services.postgres, DockerPostgres)
    yield services.postgres
    services.postgres.unpause()
    services.postgres.start()


@pytest.fixture
def rd(services: Services) -> Iterator[DockerRedis]:
    """The module's Redis, running, unpaused and empty after each test."""
    assert isinstance(services.redis, DockerRedis)
    yield services.redis
    services.redis.unpause()
    services.redis.start()
    services.redis.flushall()


def test_forced_docker_gives_both_services_from_the_default_images(services: Services) -> None:
    assert services.provider == "docker"
    assert services.reason.startswith("--makrx-services=docker")
    assert "Postgres 16." in services.reason and "from image postgres:16" in services.reason
    assert "Redis 7." in services.reason and "from image redis:7" in services.reason
    for service in (services.postgres, services.redis):
        assert service.owns_process and service.host == "127.0.0.1"
    assert services.redis.url == f"redis://127.0.0.1:{services.redis.port}/0"


def test_postgres_is_usable_and_runs_as_non_root(pg: DockerPostgres) -> None:
    url = pg.create_database("makrx_docker_db")
    with psycopg.connect(url, connect_timeout=5) as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == ("makrx", "makrx_docker_db")
    pg.drop_database("makrx_docker_db")
    container = _client().containers.get(pg.container_name)
    assert container.exec_run("id -u").output.strip() != b"0"
    assert container.attrs["Config"]["StopSignal"] == "SIGINT"


def test_containers_are_labelled_with_run_and_owner(services: Services) -> None:
    for service in (services.postgres, services.redis):
        labels = _client().containers.get(service.container_name).labels  # type: ignore[attr-defined]
        assert labels[LABEL_RUN] == docker_ownership.RUN_ID
        assert labels[LABEL_OWNER].split(":")[1] == str(os.getpid())


def test_postgres_stop_and_start_keep_port_and_data(pg: DockerPostgres) -> None:
    port = pg.port
    with pg.connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS kept (x int)")
        conn.execute("INSERT INTO kept VALUES (1)")
    holder = pg.connect()  # a connected client must not hold the stop up (STOPSIGNAL SIGINT)
    pg.stop()
    holder.close()
    # A smart shutdown (SIGTERM) would wait for the client until docker's SIGKILL: exit code 137.
    exit_code = _client().containers.get(pg.container_name).attrs["State"]["ExitCode"]  # type: ignore[attr-defined]
    assert exit_code == 0, f"postgres exited with {exit_code} on docker stop with a client connected"
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg.url, connect_timeout=2)
    pg.start()
    assert pg.port == port
    with pg.connect() as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone()[0] >= 1  # type: ignore[index]


def test_redis_stop_and_start_keep_the_port(rd: DockerRedis) -> None:
    port = rd.port
    rd.stop()
    assert not port_is_bound(port)
    with pytest.raises(redis.ConnectionError):
        with rd.client(socket_connect_timeout=1) as client:
            client.ping()
    rd.start()
    assert rd.port == port
    with rd.client() as client:
        assert client.ping()


def test_pause_makes_requests_hang_until_unpause(rd: DockerRedis, pg: DockerPostgres) -> None:
    rd.pause()
    with pytest.raises(redis.TimeoutError):
        with rd.client(socket_timeout=0.5, socket_connect_timeout=0.5) as client:
            client.ping()
    rd.unpause()
    with rd.client() as client:
        assert client.ping()
    pg.pause()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg.url, connect_timeout=1)
    pg.unpause()
    with pg.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_close_removes_the_containers(_module_workdir: Path) -> None:
    running = provide_services("docker", workdir=_module_workdir / "close")
    names = [running.postgres.container_name, running.redis.container_name]  # type: ignore[attr-defined]
    ports = [running.postgres.port, running.redis.port]
    assert all(_exists(name) for name in names)
    running.close()
    running.close()
    assert not any(_exists(name) for name in names)
    assert not any(port_is_bound(port) for port in ports)
    with pytest.raises(ServiceError, match="closed"):
        running.redis.start()


def test_auto_takes_docker_when_the_images_are_present(_module_workdir: Path) -> None:
    running = provide_services("auto", workdir=_module_workdir / "auto")
    try:
        assert running.provider == "docker"
        assert running.reason.startswith("no --makrx-database-url or --makrx-redis-url given")
    finally:
        running.close()


def test_auto_never_pulls_a_missing_image(_module_workdir: Path) -> None:
    running = provide_services("auto", workdir=_module_workdir / "missing", redis_image="makrx-contracts-missing:0")
    try:
        assert running.postgres.provider == "docker" and running.redis.provider == "embedded"
        assert running.provider == "mixed"
        assert "image makrx-contracts-missing:0 is not present locally (auto never pulls" in running.reason
    finally:
        running.close()


def test_forced_docker_with_an_unpullable_image_says_how_to_fix_it(_module_workdir: Path) -> None:
    ours = {"label": f"{LABEL_RUN}={docker_ownership.RUN_ID}"}
    before = {e["Id"] for e in docker_ownership.labelled(ours["label"])}
    with pytest.raises(ServiceError) as info:
        provide_services("docker", workdir=_module_workdir / "unpullable", redis_image="makrx-contracts-missing:0")
    message = str(info.value)
    assert "image 'makrx-contracts-missing:0' is not present locally and could not be pulled" in message
    assert "ci/docker-setup.sh" in message and "--makrx-redis-image" in message
    # The Postgres started before the failure is removed again.
    assert {e["Id"] for e in docker_ownership.labelled(ours["label"])} == before


def test_leftovers_of_a_dead_run_are_removed() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    owner = f"{os.uname().nodename}:{dead.pid}:12345"  # no such process now
    stale = _client().containers.create(
        DEFAULT_IMAGES["redis"], name=f"makrx-stale-{dead.pid}", labels={LABEL_RUN: "a-dead-run", LABEL_OWNER: owner}
    )
    try:
        removed = docker_ownership.remove_leftovers()
        assert stale.name in removed
        assert not _exists(stale.name)
    finally:
        if _exists(stale.name):
            stale.remove(force=True)


def test_a_sigkilled_harness_process_has_its_containers_reaped() -> None:
    script = textwrap.dedent("""
        import sys, time
        from makrx_contracts.harness.services.docker import DockerRedis
        service = DockerRedis()
        print(service.container_name, flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        name = proc.stdout.readline().strip()
        assert name.startswith("makrx-redis-") and _exists(name)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 20
    while _exists(name) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _exists(name), f"container {name} outlived its SIGKILLed owner by 20 s"


def test_the_images_work_with_stock_testcontainers_classes() -> None:
    """The local images honour the official images' contract: testcontainers' own classes, with their
    own readiness checks (psql via sh inside the container; PING), start and connect."""
    postgres_class, redis_class = engine.container_classes()
    engine.configure_testcontainers()
    with postgres_class(
        DEFAULT_IMAGES["postgres"], username="tc_user", password="tc-pass", dbname="tc_db", driver=None
    ) as container:
        with psycopg.connect(container.get_connection_url(), connect_timeout=5) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("tc_db",)
    with redis_class(DEFAULT_IMAGES["redis"], password="tc-secret") as container:
        client = container.get_client()
        assert client.ping()
        client.close()


def _containers_of(pid: int) -> list[str]:
    return [
        entry["Names"][0]
        for entry in docker_ownership.labelled(LABEL_OWNER)
        if (entry.get("Labels") or {}).get(LABEL_OWNER, "").split(":")[1:2] == [str(pid)]
    ]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_removes_its_containers(sig: signal.Signals, tmp_path: Path) -> None:
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "MAKRX_TMPDIR": str(tmp_path)}
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "makrx_contracts.harness.plugin",
            "--makrx-target=reference",
            "--makrx-services=docker",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=interruptible,
    )
    with killed_on_exit(run) as proc:
        deadline = time.monotonic() + 60
        while len(_containers_of(proc.pid)) < 2 and time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before its containers were up"
            time.sleep(0.1)
        assert len(_containers_of(proc.pid)) == 2
        proc.send_signal(sig)
        proc.wait(30)
    assert proc.returncode != 0
    deadline = time.monotonic() + 10
    while _containers_of(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _containers_of(proc.pid) == []
