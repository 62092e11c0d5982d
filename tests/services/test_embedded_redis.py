"""Embedded Redis: commands, flushall, stop/start on the same port, pause, cleanup."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from makrx_contracts.harness.errors import ServiceError
from makrx_contracts.harness.ports import port_is_bound
from makrx_contracts.harness.services.embedded import EmbeddedRedis

from .conftest import process_tree, running_as_root


def test_set_get_and_flushall(embedded_redis: EmbeddedRedis) -> None:
    assert embedded_redis.url == f"redis://127.0.0.1:{embedded_redis.port}/0"
    with embedded_redis.client() as client:
        client.set("k", "v")
        assert client.get("k") == b"v"
        embedded_redis.flushall()
        assert client.get("k") is None


def test_stop_refuses_and_start_reuses_the_port(embedded_redis: EmbeddedRedis) -> None:
    port = embedded_redis.port
    embedded_redis.stop()
    with pytest.raises(redis.ConnectionError), embedded_redis.client(socket_connect_timeout=1) as client:
        client.ping()
    embedded_redis.start()
    assert embedded_redis.port == port
    with embedded_redis.client() as client:
        assert client.ping()


def test_pause_makes_commands_hang(embedded_redis: EmbeddedRedis) -> None:
    embedded_redis.pause()
    try:
        with pytest.raises(redis.TimeoutError), embedded_redis.client(socket_timeout=0.5) as client:
            client.ping()
    finally:
        embedded_redis.unpause()
    with embedded_redis.client() as client:
        assert client.ping()


def test_close_leaves_no_process(workdir: Path, services_cache: Path) -> None:
    service = EmbeddedRedis(workdir=workdir, cache_dir=services_cache)
    assert service.pid is not None
    tree = process_tree(service.pid)
    if running_as_root():
        assert all(p.uids().real != 0 for p in tree)
    port = service.port
    service.close()
    service.close()
    assert [p.pid for p in tree if p.is_running()] == []
    assert not port_is_bound(port)
    with pytest.raises(ServiceError, match="closed"):
        service.start()
