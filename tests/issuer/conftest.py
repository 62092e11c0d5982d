"""Fixtures for the issuer's own tests: a fresh issuer per test (start-up is about a millisecond) and an HTTP client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from makrx_contracts.harness.issuer import Issuer

AUDIENCE = "makrcave-api"


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with Issuer(seed=0, default_audience=AUDIENCE).start() as started:
        yield started


@pytest.fixture
def es_issuer() -> Iterator[Issuer]:
    with Issuer(seed=0, algorithm="ES256", default_audience=AUDIENCE).start() as started:
        yield started


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client
