"""Two suite runs at the same time on one machine do not collide: each has its own ports, temp dir,
Redis and database, so both pass (the detection catalogue under `-n 2` does this all the time)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from makrx_contracts.harness.services import provide_services

from tests.scratch import enterable_dir
from tests.suite_runner import run_suite

# The areas that share most state: rate-limit counters in Redis, fault injection on Postgres and Redis.
AREAS = ("-m", "ratelimit or health")


def test_two_runs_at_once_both_pass(tmp_path: Path) -> None:
    dirs = [tmp_path / "one", tmp_path / "two"]
    for path in dirs:
        path.mkdir()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda workdir: run_suite("reference", workdir, *AREAS), dirs))
    for result in results:
        assert result.returncode == 0, result.output
        assert {"RATE-LIMIT", "RATE-SHARED", "RATE-REDIS-DOWN", "HEALTH-READY-DB"} <= result.ids_with("passed"), (
            result.output
        )


def test_two_runs_sharing_one_external_redis_and_postgres_both_pass(tmp_path: Path) -> None:
    """The user's own servers (--makrx-redis-url / --makrx-database-url) shared by two runs at once: each
    run claims its own Redis database, so neither counts the other's requests nor flushes its counters."""
    with enterable_dir("makrx-test-shared-") as workdir:
        servers = provide_services("embedded", workdir=workdir)
        try:
            urls = (
                f"--makrx-redis-url={servers.redis.url}",
                f"--makrx-database-url={servers.postgres.url}",
                "--makrx-services=external",
            )
            dirs = [tmp_path / "one", tmp_path / "two"]
            for path in dirs:
                path.mkdir()
            with ThreadPoolExecutor(max_workers=2) as pool:
                results = list(pool.map(lambda path: run_suite("reference", path, "-m", "ratelimit", *urls), dirs))
            for result in results:
                assert result.returncode == 0, result.output
                assert {"RATE-LIMIT", "RATE-SHARED", "RATE-HEADERS"} <= result.ids_with("passed"), result.output
            with servers.redis.client() as client:
                assert client.info("keyspace") == {}  # both runs gave their databases back, emptied
        finally:
            servers.close()
