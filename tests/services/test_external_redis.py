"""A Redis the user gives (--makrx-redis-url) is shared safely: each run claims a database of its own,
flushes only that one, never flushes someone else's data, and gives it back when it closes."""

from __future__ import annotations

import pytest
import redis
from makrx_contracts.harness.errors import ServiceError
from makrx_contracts.harness.services.embedded import EmbeddedRedis
from makrx_contracts.harness.services.external import CLAIM_KEY, ExternalRedis


def _db(server: EmbeddedRedis, db: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, db=db, socket_timeout=5)


def _keys(server: EmbeddedRedis, db: int) -> set[bytes]:
    with _db(server, db) as client:
        return set(client.keys("*"))


def test_two_runs_on_one_url_get_separate_databases(embedded_redis: EmbeddedRedis) -> None:
    given = f"redis://127.0.0.1:{embedded_redis.port}/3"
    first, second = ExternalRedis(given), ExternalRedis(given)
    try:
        assert first.db == 3 and first.url == given
        assert second.db != 3 and second.url == f"redis://127.0.0.1:{embedded_redis.port}/{second.db}"
        with first.client() as one, second.client() as two:
            one.set("ratelimit:127.0.0.2", 5)
            two.set("ratelimit:127.0.0.2", 1)
            second.flushall()
            assert one.get("ratelimit:127.0.0.2") == b"5"  # the other run's counter survives
            assert two.get("ratelimit:127.0.0.2") is None
            assert two.get(CLAIM_KEY) == second.run_id.encode()  # flushing keeps the claim
    finally:
        first.close()
        second.close()
    assert _keys(embedded_redis, 3) == set() and _keys(embedded_redis, second.db) == set()
    again = ExternalRedis(given)  # closed claims are free again
    try:
        assert again.db == 3
    finally:
        again.close()
        again.close()  # twice is harmless


def test_a_database_given_as_a_query_parameter_is_claimed_the_same_way(embedded_redis: EmbeddedRedis) -> None:
    given = f"redis://127.0.0.1:{embedded_redis.port}?db=3"
    first, second = ExternalRedis(given), ExternalRedis(given)
    try:
        assert (first.db, second.db) == (3, 0)
        for claim in (first, second):
            with claim.client() as client:
                client.set("mine", claim.run_id)
            with _db(embedded_redis, claim.db) as client:
                assert client.get("mine") == claim.run_id.encode()  # its URL reaches the claimed database
    finally:
        first.close()
        second.close()


def test_only_the_given_database_may_hold_data_already(embedded_redis: EmbeddedRedis) -> None:
    with _db(embedded_redis, 1) as client:
        client.set("someone-elses", "data")
    first = ExternalRedis(f"redis://127.0.0.1:{embedded_redis.port}/0")
    second = ExternalRedis(f"redis://127.0.0.1:{embedded_redis.port}/0")
    try:
        assert (first.db, second.db) == (0, 2)  # database 1 is not empty: not ours to flush
        second.flushall()
    finally:
        first.close()
        second.close()
    assert _keys(embedded_redis, 1) == {b"someone-elses"}


def test_a_full_server_is_one_clear_error(embedded_redis: EmbeddedRedis) -> None:
    claims = [ExternalRedis(f"redis://127.0.0.1:{embedded_redis.port}/0") for _ in range(16)]
    try:
        assert sorted(claim.db for claim in claims) == list(range(16))
        with pytest.raises(ServiceError, match="no free database") as caught:
            ExternalRedis(f"redis://127.0.0.1:{embedded_redis.port}/0")
        assert CLAIM_KEY in caught.value.fix and "lapses by itself" in caught.value.fix
    finally:
        for claim in claims:
            claim.close()
