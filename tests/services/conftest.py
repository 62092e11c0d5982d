"""Fixtures for the services tests: real embedded servers under a private workdir and cache."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from makrx_contracts.harness.services import Services, provide_services
from makrx_contracts.harness.services.embedded import EmbeddedPostgres, EmbeddedRedis

from ..scratch import enterable_dir


@pytest.fixture(scope="session")
def services_cache() -> Iterator[Path]:
    """A cache dir of this session only, so tests see a cold start first and leave the real cache alone."""
    with enterable_dir("makrx-test-cache-") as path:
        yield path


@pytest.fixture
def workdir() -> Iterator[Path]:
    with enterable_dir("makrx-test-services-") as path:
        yield path


@pytest.fixture(scope="module")
def _module_workdir() -> Iterator[Path]:
    with enterable_dir("makrx-test-services-") as path:
        yield path


@pytest.fixture(scope="module")
def _shared_postgres(_module_workdir: Path, services_cache: Path) -> Iterator[EmbeddedPostgres]:
    service = EmbeddedPostgres(workdir=_module_workdir, cache_dir=services_cache)
    try:
        yield service
    finally:
        service.close()


@pytest.fixture
def embedded_postgres(_shared_postgres: EmbeddedPostgres) -> Iterator[EmbeddedPostgres]:
    """One server per module; each test gets it running and unpaused (tests may stop or pause it)."""
    yield _shared_postgres
    _shared_postgres.unpause()
    _shared_postgres.start()


@pytest.fixture(scope="module")
def _shared_redis(_module_workdir: Path, services_cache: Path) -> Iterator[EmbeddedRedis]:
    service = EmbeddedRedis(workdir=_module_workdir, cache_dir=services_cache)
    try:
        yield service
    finally:
        service.close()


@pytest.fixture
def embedded_redis(_shared_redis: EmbeddedRedis) -> Iterator[EmbeddedRedis]:
    """One server per module, running, unpaused and empty for each test."""
    yield _shared_redis
    _shared_redis.unpause()
    _shared_redis.start()
    _shared_redis.flushall()


@pytest.fixture(scope="module")
def embedded_services(_module_workdir: Path, services_cache: Path) -> Iterator[Services]:
    """Both services from ``provide_services("embedded")``, shared by a module (left running)."""
    services = provide_services("embedded", workdir=_module_workdir / "running", cache_dir=services_cache)
    try:
        yield services
    finally:
        services.close()


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and all its descendants, as psutil handles (is_running() survives pid reuse)."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def running_as_root() -> bool:
    return os.geteuid() == 0
