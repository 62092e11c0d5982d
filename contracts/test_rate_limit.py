"""RATE LIMIT: 429 with Retry-After, limits shared through Redis with an in-memory fallback, client
identity from X-Forwarded-For only behind a trusted proxy (CONVENTIONS: Rate Limiting).

Every test starts from a clean counter: its own loopback source address (a fresh bucket for a
per-IP limiter) and, where instances share Redis, an emptied Redis. Bursts reuse one keep-alive
connection per client, so a limit of several hundred is reached in about a second.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from makrx_contracts.harness.backend.launcher import RunningTarget, TargetLauncher
from makrx_contracts.harness.client import ContractClient
from makrx_contracts.harness.config import MakrxConfig
from makrx_contracts.harness.contract import MUST, SHOULD, expect
from makrx_contracts.harness.ports import SourceAddresses

from .burst import Limit, RateOp, burst, shared, shared_within
from .openapi import Operation
from .provoke import HEALTH_PATHS, Provoker, outage
from .ratelimit_headers import LIMIT_HEADERS, limit_headers, retry_after

# -n hands this module out early (harness/scheduler.py): its contracts wait on timers.
pytestmark = [pytest.mark.ratelimit, pytest.mark.long(4)]

XFF = "X-Forwarded-For"
RECOVERY_TIMEOUT = 20.0  # seconds a backend has to use Redis again after it returns


@pytest.mark.contract("RATE-LIMIT", level=MUST)
def test_a_burst_reaches_the_limit(
    provoked: Callable[..., httpx.Response], makrx_config: MakrxConfig, provoker: Provoker
) -> None:
    """A burst from one client reaches the rate limit and is answered 429 Too Many Requests.

    CONVENTIONS, Error Handling: "include rate limit middleware"; RFC 6585 §4.
    """
    response = provoked("429", check_status=True)
    tried = provoker.rate_ops_tried
    expect(
        response.status_code == 429,
        f"no 429 within --makrx-rate-budget={makrx_config.rate_budget} requests from one client",
        received=f"{response.status_code} on the last request"
        + (f" (each of {', '.join(tried)} burst from a fresh client)" if len(tried) > 1 else ""),
        expected="429 once the client is over its limit (raise --makrx-rate-budget if the limit is higher, "
        "or lower it for the test run through [env] in [tool.makrx-contract])",
        response=response,
    )


@pytest.mark.contract("RATE-RETRY-AFTER", level=MUST)
def test_a_429_says_when_to_retry(provoked: Callable[..., httpx.Response]) -> None:
    """A 429 carries Retry-After (delay-seconds or an HTTP date), so clients know when to come back.

    CONVENTIONS, Rate Limiting; RFC 6585 §4 and RFC 9110 §10.2.3. (Its body's shape is ERR-SHAPE[429].)
    """
    response = provoked("429")
    value = response.headers.get("Retry-After")
    expect(
        retry_after(response) is not None,
        "a 429 without a valid Retry-After",
        received=f"Retry-After: {value!r}",
        expected="Retry-After: <seconds> or an HTTP date",
        response=response,
    )


@pytest.mark.contract("RATE-HEADERS", level=SHOULD)
def test_limit_headers_are_sent(
    provoked: Callable[..., httpx.Response],
    makrx_client: ContractClient,
    rate_op: RateOp,
    rate_auth: Callable[[], dict[str, str]],
) -> None:
    """Responses of a limited endpoint, the 429 included, tell the client its limit: the IETF draft's
    RateLimit/RateLimit-Policy (or RateLimit-Limit/-Remaining), or the legacy X-RateLimit-*.

    CONVENTIONS, Rate Limiting; draft-ietf-httpapi-ratelimit-headers.
    """
    limited = provoked("429")
    ok = rate_op.send(makrx_client, rate_auth())
    if ok.status_code >= 500:
        pytest.skip(
            f"precondition: {rate_op} answers {ok.status_code} under its limit (a server error, "
            "not a rate-limit matter)"
        )
    for response in (ok, limited):
        expect(
            limit_headers(response),
            f"the {response.status_code} response of {rate_op} has no limit headers",
            received="none of " + ", ".join(LIMIT_HEADERS),
            expected="RateLimit + RateLimit-Policy (or RateLimit-Limit/-Remaining, or X-RateLimit-*)",
            response=response,
        )


@pytest.mark.contract("RATE-SHARED", level=MUST)
def test_limits_are_shared_across_instances(
    makrx_target: RunningTarget,
    second_instance: RunningTarget,
    makrx_services: Any,
    limit: Limit | None,
    makrx_config: MakrxConfig,
    fresh: Callable[..., list[ContractClient]],
) -> None:
    """Two instances on one Redis count one client together: alternating between them, the client is
    limited after about the one-instance limit, not twice it.

    CONVENTIONS, Rate Limiting: "Prefer Redis-backed limiter" (shared by workers and instances).
    """
    found = need(limit, makrx_config)
    seen = shared_within(RECOVERY_TIMEOUT, makrx_services.redis, fresh, makrx_target, second_instance, found)
    expect(
        shared(seen, found),
        "two instances on one Redis do not share the limit",
        received=(
            f"{seen.allowed} requests passed across both instances"
            + ("" if seen.limited is not None else " without a 429")
            + f" (tried for {RECOVERY_TIMEOUT:.0f} s)"
        ),
        expected=f"a 429 after about {found.allowed} (the one-instance limit; at most {found.shared_ceiling})",
        response=seen.evidence,
    )


@pytest.mark.contract("RATE-REDIS-DOWN", level=MUST)
def test_redis_outage_falls_back_to_memory(
    makrx_target: RunningTarget,
    second_instance: RunningTarget,
    makrx_services: Any,
    limit: Limit | None,
    makrx_config: MakrxConfig,
    fresh: Callable[..., list[ContractClient]],
) -> None:
    """With Redis stopped the service keeps answering (no 5xx) and still limits, in memory; once Redis
    is back it is used again, so the instances share the count again (without a restart).

    CONVENTIONS, Rate Limiting: "Redis-backed limiter with in-memory fallback".
    """
    found = need(limit, makrx_config)
    redis = makrx_services.redis
    redis_down = outage(redis, "Redis")
    if not shared(shared_within(RECOVERY_TIMEOUT, redis, fresh, makrx_target, second_instance, found), found):
        pytest.skip("precondition: the instances do not share the limit through Redis (see RATE-SHARED)")
    (midway,) = fresh(makrx_target)  # a client whose count is half spent when Redis goes away
    before = burst([midway], found.op, max(1, found.allowed // 2))
    if before.server_errors:
        pytest.skip(
            f"precondition: {found.op} answers {before.server_errors[0].status_code} already with "
            "Redis up (a server error, not a rate-limit matter)"
        )
    with redis_down:
        during = [burst([midway], found.op, 3), burst(fresh(second_instance), found.op, 3)]
        down = burst(fresh(makrx_target), found.op, found.budget)
    errors = [r for seen in (*during, down) for r in seen.server_errors]
    failures = [e for seen in (*during, down) for e in seen.transport_errors]
    expect(
        not errors and not failures,
        "requests failed while Redis was down",
        received=(
            f"{len(errors)} responses 5xx" if errors else "; ".join(f"{type(e).__name__}: {e}" for e in failures[:2])
        ),
        expected="the service keeps serving when Redis is down",
        response=errors[:2] or down.evidence,
    )
    expect(
        down.limited is not None,
        "no limit while Redis was down",
        received=f"{down.allowed} requests from one client passed, no 429",
        expected=f"429 after about {found.allowed} requests (limits kept in memory)",
        response=down.evidence,
    )
    back = shared_within(RECOVERY_TIMEOUT, redis, fresh, makrx_target, second_instance, found)
    expect(
        shared(back, found),
        "Redis is not used again after it came back",
        received=f"{back.allowed} requests passed across both instances {RECOVERY_TIMEOUT:.0f} s after Redis returned",
        expected=f"a shared limit again: 429 after about {found.allowed}",
        response=back.evidence,
    )


@pytest.mark.contract("RATE-XFF-SPOOF", level=MUST)
def test_spoofed_forwarded_for_does_not_escape_the_limit(
    makrx_launcher: TargetLauncher,
    makrx_target: RunningTarget,
    limit: Limit | None,
    makrx_config: MakrxConfig,
    fresh: Callable[..., list[ContractClient]],
) -> None:
    """With TRUST_PROXY=false (the default) X-Forwarded-For is ignored: a client that sends a new
    forged address with every request is still limited.

    CONVENTIONS, Rate Limiting: "If running behind reverse proxies, set TRUST_PROXY=true and extract
    client IP from X-Forwarded-For" (and only then).
    """
    found = need(limit, makrx_config)
    seen = burst(fresh(makrx_target), found.op, found.budget, headers=lambda n: {XFF: _doc_address()})
    expect(
        seen.limited is not None,
        "a forged X-Forwarded-For escapes the limit (TRUST_PROXY=false)",
        received=f"{seen.allowed} requests passed, each with a different {XFF}",
        expected=f"429 after about {found.allowed}, as without the header",
        response=seen.evidence,
    )


@pytest.mark.contract("RATE-XFF-TRUSTED", level=MUST)
def test_trusted_proxy_buckets_per_forwarded_client(
    proxied_instance: RunningTarget,
    limit: Limit | None,
    makrx_config: MakrxConfig,
    fresh: Callable[..., list[ContractClient]],
) -> None:
    """With TRUST_PROXY=true the client is the X-Forwarded-For address: after one forwarded client is
    limited, another one behind the same proxy is not.

    CONVENTIONS, Rate Limiting: "set TRUST_PROXY=true and extract client IP from X-Forwarded-For".
    """
    found = need(limit, makrx_config)
    (proxy,) = fresh(proxied_instance)
    first, second = _doc_address(), _doc_address()
    while second == first:
        second = _doc_address()
    seen = burst([proxy], found.op, found.budget, headers=lambda n: {XFF: first})
    expect(
        seen.limited is not None,
        "a forwarded client is never limited (TRUST_PROXY=true)",
        received=f"{seen.allowed} requests with {XFF}: {first} passed",
        expected=f"429 after about {found.allowed}",
        response=seen.evidence,
    )
    other = found.op.send(proxy, {XFF: second})
    expect(
        other.status_code != 429,
        "another client behind the same proxy shares the limited bucket",
        received=f"{other.status_code} for {XFF}: {second} right after {first} was limited",
        expected="a separate bucket per X-Forwarded-For client",
        response=[seen.limited, other],
    )


@pytest.mark.contract("RATE-HEALTH-EXEMPT", level=SHOULD)
def test_health_probes_are_not_limited(
    makrx_target: RunningTarget,
    limit: Limit | None,
    makrx_config: MakrxConfig,
    fresh: Callable[..., list[ContractClient]],
) -> None:
    """Health and readiness probes are never answered 429: an orchestrator probing often (or from the
    same address as limited traffic) must not see a healthy instance as failing.

    CONVENTIONS, Health/Readiness; good practice (SPEC §5: probes not limited).
    """
    found = need(limit, makrx_config)
    (client,) = fresh(makrx_target)
    # Only probes this backend serves: a missing one is HEALTH-ENDPOINTS' business (and may be limited).
    served = [path for path in HEALTH_PATHS if client.get(path).status_code not in (404, 405)]
    liveness = next((path for path in ("/health", "/health/live", "/api/health") if path in served), None)
    if liveness is None:
        pytest.skip("precondition: no liveness probe answers (see HEALTH-ENDPOINTS, HEALTH-LIVE)")
    probes = burst([client], RateOp(Operation(liveness, "GET", False, False, {})), found.shared_ceiling + 1)
    expect(
        probes.limited is None,
        f"{liveness} is rate limited",
        received=f"429 after {probes.allowed} probes",
        expected="no 429 for health probes",
        response=probes.evidence,
    )
    spent = burst([client], found.op, found.budget)
    if spent.limited is None:
        pytest.skip(f"precondition: {found.op} did not answer 429 to this client (see RATE-LIMIT)")
    answers = [client.get(path) for path in served]
    limited = [r for r in answers if r.status_code == 429]
    expect(
        not limited,
        "health probes are limited together with the API",
        received=", ".join(f"{r.request.url.path} 429" for r in limited),
        expected="probes answer (200/503) even when the client is over its API limit",
        response=[spent.limited, *limited],
    )


# -------------------------------------------------------------------------------------- fixtures, helpers


@pytest.fixture(scope="module")
def rate_op(provoker: Provoker) -> RateOp:
    """The request under test: ``rate_limit_path`` of the target's settings, else the first of a public GET
    under /api, the GET a plain valid token may call, a write per method, that a burst sees limited."""
    return provoker.rate_op


@pytest.fixture(scope="module")
def rate_auth(provoker: Provoker) -> Callable[[], dict[str, str]]:
    """Credentials of one new caller of the rate path (none when it is public)."""
    return provoker.rate_limit_auth


@pytest.fixture(scope="module")
def limit(
    makrx_target: RunningTarget,
    rate_op: RateOp,
    makrx_config: MakrxConfig,
    makrx_source_addresses: SourceAddresses,
    rate_auth: Callable[[], dict[str, str]],
) -> Limit | None:
    """The limit as observed by a burst from a fresh address (a second try if the window reset)."""
    for _ in range(2):
        with ContractClient(
            makrx_target.base_url, source_address=makrx_source_addresses.next(), headers=rate_auth()
        ) as client:
            seen = burst([client], rate_op, makrx_config.rate_budget)
        if seen.limited is None:
            return None
        if not seen.rolled_over:
            break
    return Limit(seen.allowed, rate_op, makrx_config.rate_budget)


@pytest.fixture
def fresh(
    makrx_source_addresses: SourceAddresses, rate_auth: Callable[[], dict[str, str]], request: pytest.FixtureRequest
) -> Callable[..., list[ContractClient]]:
    """``fresh(a, b, ...)``: one client per given instance, all from one new source address and with one
    caller's credentials (one caller)."""

    def make(*targets: RunningTarget) -> list[ContractClient]:
        address = makrx_source_addresses.next()
        headers = rate_auth()
        clients = [ContractClient(t.base_url, source_address=address, headers=headers) for t in targets]
        for client in clients:
            request.addfinalizer(client.close)
        return clients

    return make


@pytest.fixture(scope="module")
def second_instance(makrx_launcher: TargetLauncher, makrx_target: RunningTarget) -> Iterator[RunningTarget]:
    """A second instance of the backend with the same environment (same Redis, same database)."""
    with makrx_launcher.instance(name=f"{makrx_target.spec.name}-second") as target:
        yield target


@pytest.fixture(scope="module")
def proxied_instance(makrx_launcher: TargetLauncher, makrx_target: RunningTarget) -> Iterator[RunningTarget]:
    """An instance started with TRUST_PROXY=true, as behind a reverse proxy."""
    with makrx_launcher.instance({"TRUST_PROXY": "true"}, name=f"{makrx_target.spec.name}-trust-proxy") as target:
        yield target


def need(limit: Limit | None, makrx_config: MakrxConfig) -> Limit:
    """The limit found, or a skip pointing at RATE-LIMIT (which fails when no burst is limited)."""
    if limit is None:
        pytest.skip(
            f"precondition: no 429 within --makrx-rate-budget={makrx_config.rate_budget} requests (see RATE-LIMIT)"
        )
    return limit


_DOC_NETS = ("192.0.2", "198.51.100", "203.0.113")
_rng = random.Random()


def _doc_address() -> str:
    """A client address for X-Forwarded-For only (RFC 5737 documentation ranges): no traffic is sent to it."""
    return f"{_rng.choice(_DOC_NETS)}.{_rng.randrange(1, 255)}"
