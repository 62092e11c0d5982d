"""Embedded Postgres: password login, databases, stop/start with data kept, pause, template cache, cleanup."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg
import pytest
from makrx_contracts.harness.errors import ServiceError
from makrx_contracts.harness.ports import free_port
from makrx_contracts.harness.services import embedded
from makrx_contracts.harness.services.embedded import EmbeddedPostgres


def test_login_needs_the_random_password(embedded_postgres: EmbeddedPostgres) -> None:
    pg = embedded_postgres
    assert pg.url == f"postgresql://makrx:{pg.password}@127.0.0.1:{pg.port}/makrx"
    assert len(pg.password) >= 24
    with psycopg.connect(pg.url) as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == ("makrx", "makrx")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg.url.replace(pg.password, "not-the-password"), connect_timeout=2)


def test_create_and_drop_database(embedded_postgres: EmbeddedPostgres) -> None:
    url = embedded_postgres.create_database("makrx_test_db")
    assert url.endswith(f"@127.0.0.1:{embedded_postgres.port}/makrx_test_db")
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.commit()
    fresh = embedded_postgres.create_database("makrx_test_db")  # an existing one is replaced
    with psycopg.connect(fresh) as conn:
        assert conn.execute("SELECT to_regclass('t')").fetchone() == (None,)
    embedded_postgres.drop_database("makrx_test_db")
    embedded_postgres.drop_database("makrx_test_db")  # absent: no error
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(url, connect_timeout=2)


@pytest.mark.parametrize("name", ["makrx", "postgres", "template1", "Robert'); DROP", "", "a" * 64])
def test_refuses_unsafe_database_names(embedded_postgres: EmbeddedPostgres, name: str) -> None:
    with pytest.raises(ServiceError, match="refused database name"):
        embedded_postgres.create_database(name)


def test_stop_refuses_connections_and_start_keeps_data(embedded_postgres: EmbeddedPostgres) -> None:
    pg = embedded_postgres
    with psycopg.connect(pg.url) as conn:
        conn.execute("CREATE TABLE kept (note text)")
        conn.execute("INSERT INTO kept VALUES ('still here')")
    port = pg.port
    pg.stop()
    assert not pg.running
    with pytest.raises(psycopg.OperationalError, match="refused"):
        psycopg.connect(pg.url, connect_timeout=2)
    pg.stop()  # idempotent
    pg.start()
    assert pg.port == port
    with psycopg.connect(pg.url) as conn:
        assert conn.execute("SELECT note FROM kept").fetchall() == [("still here",)]


def test_pause_makes_a_connect_time_out(embedded_postgres: EmbeddedPostgres) -> None:
    pg = embedded_postgres
    pg.pause()
    try:
        with pytest.raises(psycopg.OperationalError, match="timeout"):
            psycopg.connect(pg.url, connect_timeout=2)
    finally:
        pg.unpause()
    with psycopg.connect(pg.url, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_stop_while_paused_is_a_clean_shutdown(embedded_postgres: EmbeddedPostgres) -> None:
    log = embedded_postgres.log_path
    offset = log.stat().st_size
    embedded_postgres.pause()
    embedded_postgres.stop()
    assert not embedded_postgres.running
    # Left frozen, the server would ignore the fast-shutdown signal until the stop timeout's SIGKILL.
    assert "database system is shut down" in log.read_text(errors="replace")[offset:]


def test_template_cache_is_reused(workdir: Path) -> None:
    cache = workdir / "cache"  # a private cache: the first start must build the template
    first = EmbeddedPostgres(workdir=workdir / "one", cache_dir=cache)
    try:
        assert first.template_reused is False
    finally:
        first.close()
    second = EmbeddedPostgres(workdir=workdir / "two", cache_dir=cache)
    try:
        assert second.template_reused is True
        assert second.template_dir == first.template_dir
        assert second.password != first.password  # the template's bootstrap secret is replaced per run
        with psycopg.connect(second.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        second.close()
    assert [p.name for p in (cache / "templates").iterdir() if p.name.startswith(".tmp-")] == []


def test_port_lost_to_a_race_is_retried(workdir: Path, services_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    ports = iter([taken])
    monkeypatch.setattr(
        "makrx_contracts.harness.services.server_process.free_port",
        lambda host="127.0.0.1": next(ports, None) or free_port(host),
    )
    try:
        pg = EmbeddedPostgres(workdir=workdir, cache_dir=services_cache)
        try:
            assert pg.port != taken
            assert "Address already in use" in pg.log_path.read_text()
        finally:
            pg.close()
    finally:
        squatter.close()


def test_a_server_that_dies_fails_fast_with_its_log(
    workdir: Path, services_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(embedded.PG_SETTINGS, "no_such_setting", "1")
    with pytest.raises(ServiceError) as info:
        EmbeddedPostgres(workdir=workdir, cache_dir=services_cache)
    message = str(info.value)
    assert "postgres exited with code" in message
    assert "no_such_setting" in message  # the log tail names the cause
