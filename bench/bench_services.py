"""Start-to-ready of the embedded services against pytest-postgresql / pytest-redis, as medians over runs.

    python bench/bench_services.py --runs 7 [--base-dir DIR]

Measured per run, interleaved so machine noise hits every subject alike:
- embedded Postgres cold: no template cluster in the cache (initdb + bootstrap + copy + start + login);
- embedded Postgres warm: from the cached template (copy + start + login with the run's password);
- embedded Redis: spawn until PING answers;
- pytest-postgresql's PostgreSQLExecutor (pg_ctl initdb + pg_ctl start -w, then a login), same binaries
  and the same fast settings;
- pytest-redis's RedisExecutor (spawn until the port answers, then PING), same binary;
- docker Postgres / docker Redis (when a Docker engine answers and the images are present): the
  docker provider's DockerPostgres / DockerRedis, `docker create` + `start` until a login / PING works
  through the pinned port (images: --postgres-image, --redis-image; defaults postgres:16, redis:7).
Under root the baselines run in a forked child as the same unprivileged user as the embedded servers
(Postgres refuses root), with the binaries from the same cache replica. Everything lives in a temp dir
under --base-dir (default: the system temp dir), and the templates in a private dir of the real cache
(as a real cold start builds them there); both are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil
import psycopg
import redis
from makrx_contracts.harness.ports import free_port
from makrx_contracts.harness.services.binaries import Binaries, find_postgres, find_redis
from makrx_contracts.harness.services.cache import RunAs, cache_root, run_as
from makrx_contracts.harness.services.embedded import PG_SETTINGS, EmbeddedPostgres, EmbeddedRedis

try:
    from pytest_postgresql.executors import PostgreSQLExecutor
except ImportError:  # older layout
    from pytest_postgresql.executor import PostgreSQLExecutor  # type: ignore[no-redef]
from makrx_contracts.harness.services import docker as docker_provider
from makrx_contracts.harness.services import docker_engine
from pytest_redis.executor import RedisExecutor

_ = psutil  # mirakuru uses it when stopping


def _as_user(who: RunAs | None, workdir: Path, fn: Callable[[], float]) -> float:
    """Run ``fn`` in a forked child as ``who`` (None: as we are); returns its seconds or raises its error."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            if who is not None:
                os.setgroups([])
                os.setgid(who.gid)
                os.setuid(who.uid)
            os.chdir(workdir)
            os.environ["HOME"] = str(workdir)
            result: dict[str, object] = {"seconds": fn()}
        except BaseException as exc:  # report everything to the parent
            result = {"error": f"{type(exc).__name__}: {exc}"}
        os.write(write_fd, json.dumps(result).encode())
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    result = json.loads(data or '{"error": "child died"}')
    if "error" in result:
        raise RuntimeError(result["error"])
    return float(str(result["seconds"]))


def _own_dir(path: Path, who: RunAs | None) -> Path:
    path.mkdir(mode=0o700)
    if who is not None:
        os.chown(path, who.uid, who.gid)
    return path


def pytest_postgresql_start(pg_ctl: Path, workdir: Path) -> float:
    port = free_port()
    password = "bench-secret"
    postgres_options = " ".join(
        f"-c {key}={value}" for key, value in PG_SETTINGS.items() if key not in ("logging_collector", "log_destination")
    )
    executor = PostgreSQLExecutor(
        executable=str(pg_ctl),
        host="127.0.0.1",
        port=port,
        datadir=str(workdir / "data"),
        unixsocketdir=str(workdir),
        logfile=str(workdir / "postgres.log"),
        startparams="-w",
        dbname="makrx",
        user="makrx",
        password=password,
        postgres_options=postgres_options,
    )
    started = time.monotonic()
    executor.start()
    with psycopg.connect(
        host="127.0.0.1", port=port, user="makrx", password=password, dbname="postgres", connect_timeout=5
    ):
        pass
    seconds = time.monotonic() - started
    executor.stop()
    return seconds


def pytest_redis_start(redis_server: Path, workdir: Path) -> float:
    port = free_port()
    executor = RedisExecutor(
        executable=str(redis_server),
        databases=16,
        redis_timeout=30,
        loglevel="notice",
        host="127.0.0.1",
        port=port,
        datadir=workdir,
    )
    started = time.monotonic()
    executor.start()
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    client.ping()
    seconds = time.monotonic() - started
    client.close()
    executor.stop()
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--base-dir", type=Path, default=None, help="where the temp dir goes (default: $TMPDIR)")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="cache root for the private bench cache (default: the harness's cache dir)",
    )
    parser.add_argument("--no-baselines", action="store_true", help="skip pytest-postgresql and pytest-redis")
    parser.add_argument("--no-docker", action="store_true", help="skip the docker provider")
    parser.add_argument("--postgres-image", default=docker_engine.DEFAULT_IMAGES["postgres"])
    parser.add_argument("--redis-image", default=docker_engine.DEFAULT_IMAGES["redis"])
    args = parser.parse_args()

    parser_cache = args.cache_dir
    base = Path(tempfile.mkdtemp(prefix="makrx-bench-", dir=args.base_dir))
    base.chmod(0o755)
    cache = Path(tempfile.mkdtemp(prefix="bench-", dir=cache_root(parser_cache)))
    cache.chmod(0o755)
    who = run_as()
    times: dict[str, list[float]] = {}
    docker_why_not = "--no-docker" if args.no_docker else docker_engine.engine_problem()
    if docker_why_not is None:
        missing = [i for i in (args.postgres_image, args.redis_image) if not docker_engine.image_present(i)]
        docker_why_not = f"image(s) {', '.join(missing)} not present" if missing else None

    def record(name: str, seconds: float) -> None:
        times.setdefault(name, []).append(seconds)

    try:
        # Prime the binary replicas (and a template) outside the measurements.
        EmbeddedRedis(workdir=base / "prime", cache_dir=cache).close()
        EmbeddedPostgres(workdir=base / "prime", cache_dir=cache).close()
        pg_bins, redis_bins = find_postgres(), find_redis()
        assert isinstance(pg_bins, Binaries) and isinstance(redis_bins, Binaries)
        pg_ctl = pg_bins.runnable_by(who, cache).parent / "pg_ctl"
        redis_server = redis_bins.runnable_by(who, cache)
        if docker_why_not is None:  # the once-per-process reaper and leftover sweep, outside the timings
            docker_provider.DockerRedis(image=args.redis_image).close()

        for run in range(args.runs):
            run_dir = base / f"run{run}"
            run_dir.mkdir()
            run_dir.chmod(0o755)

            shutil.rmtree(cache / "templates")
            started = time.monotonic()
            pg = EmbeddedPostgres(workdir=run_dir / "cold", cache_dir=cache)
            record("embedded Postgres, cold (no template)", time.monotonic() - started)
            assert not pg.template_reused
            pg.close()

            started = time.monotonic()
            pg = EmbeddedPostgres(workdir=run_dir / "warm", cache_dir=cache)
            record("embedded Postgres, warm (template)", time.monotonic() - started)
            assert pg.template_reused
            pg.close()

            started = time.monotonic()
            rd = EmbeddedRedis(workdir=run_dir / "redis", cache_dir=cache)
            record("embedded Redis", time.monotonic() - started)
            rd.close()

            if docker_why_not is None:
                started = time.monotonic()
                dpg = docker_provider.DockerPostgres(image=args.postgres_image)
                record(f"docker Postgres ({args.postgres_image})", time.monotonic() - started)
                dpg.close()
                started = time.monotonic()
                drd = docker_provider.DockerRedis(image=args.redis_image)
                record(f"docker Redis ({args.redis_image})", time.monotonic() - started)
                drd.close()

            if not args.no_baselines:
                ppg = _own_dir(run_dir / "ppg", who)
                record(
                    "pytest-postgresql PostgreSQLExecutor",
                    _as_user(who, ppg, partial(pytest_postgresql_start, pg_ctl, ppg)),
                )
                prd = _own_dir(run_dir / "prd", who)
                record("pytest-redis RedisExecutor", _as_user(who, prd, partial(pytest_redis_start, redis_server, prd)))
            shutil.rmtree(run_dir)
            print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
    finally:
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)

    medians = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"start-to-ready, median of {args.runs} runs (min-max), workdir under {base.parent}, "
        f"cache under {cache.parent}, "
        f"servers run as {who.name if who else 'the current user'}; Postgres {pg_bins.version}, "
        f"Redis {redis_bins.version}" + ("" if docker_why_not is None else f"; docker skipped: {docker_why_not}")
    )
    for name, values in times.items():
        print(f"  {name:<42} {medians[name] * 1000:7.0f} ms  ({min(values) * 1000:.0f}-{max(values) * 1000:.0f})")
    baseline_pg = medians.get("pytest-postgresql PostgreSQLExecutor")
    baseline_redis = medians.get("pytest-redis RedisExecutor")
    if baseline_pg and baseline_redis:
        print("ratios (baseline / ours; >1 means ours is faster):")
        for name in ("embedded Postgres, cold (no template)", "embedded Postgres, warm (template)"):
            print(f"  pytest-postgresql / {name:<38} {baseline_pg / medians[name]:5.2f}x")
        print(f"  pytest-redis / {'embedded Redis':<43} {baseline_redis / medians['embedded Redis']:5.2f}x")
        for name in medians:
            if name.startswith("docker Postgres"):
                print(f"  pytest-postgresql / {name:<38} {baseline_pg / medians[name]:5.2f}x")
            elif name.startswith("docker Redis"):
                print(f"  pytest-redis / {name:<43} {baseline_redis / medians[name]:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
