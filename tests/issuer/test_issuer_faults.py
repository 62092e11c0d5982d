"""Fetch counting per client, fault modes, and the issuer going down and up on the same port."""

from __future__ import annotations

import threading

import httpx
import pytest
from makrx_contracts.harness.errors import IssuerError
from makrx_contracts.harness.issuer import Issuer
from makrx_contracts.harness.issuer.server import FETCH_KINDS
from makrx_contracts.harness.ports import port_is_bound
from makrx_contracts.harness.waiting import wait_for


def test_fetches_count_per_kind_and_reset(issuer: Issuer, http: httpx.Client) -> None:
    for _ in range(3):
        http.get(issuer.jwks_url)
    http.get(issuer.issuer_url)
    http.get(issuer.discovery_url)
    assert (issuer.fetches("jwks"), issuer.fetches("realm"), issuer.fetches("discovery")) == (3, 1, 1)
    assert issuer.fetches("token") == 0
    assert [f.kind for f in issuer.fetch_log()] == ["jwks", "jwks", "jwks", "realm", "discovery"]
    issuer.reset_fetches()
    assert issuer.fetches("jwks") == 0 and issuer.fetch_log() == []
    with pytest.raises(IssuerError, match="unknown fetch kind"):
        issuer.fetches("certs")


def test_fetch_counts_cover_every_endpoint_a_backend_calls(issuer: Issuer, http: httpx.Client) -> None:
    token = issuer.mint()
    for _ in range(2):
        http.get(issuer.userinfo_url, headers={"Authorization": f"Bearer {token}"})
    http.post(issuer.oidc_url + "/token/introspect", data={"token": token, "client_id": "a"})
    http.get(issuer.discovery_url)
    http.get(issuer.base_url + "/realms/makrx/nowhere")
    counts = issuer.fetch_counts()
    assert list(counts) == list(FETCH_KINDS)
    assert {kind: n for kind, n in counts.items() if n} == {"userinfo": 2, "introspect": 1, "discovery": 1, "other": 1}
    assert issuer.fetch_counts(client="127.0.0.9") == dict.fromkeys(FETCH_KINDS, 0)
    assert http.get(issuer.admin_url + "/fetches").json()["fetches"] == {**counts, "admin": 1}  # itself counted


def test_fetches_per_client_by_source_ip_and_user_agent(issuer: Issuer) -> None:
    backend_a = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), headers={"User-Agent": "a/1"})
    backend_b = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.3"), headers={"User-Agent": "b/1"})
    with backend_a, backend_b:
        for _ in range(4):
            backend_a.get(issuer.jwks_url)
        backend_b.get(issuer.jwks_url)
        # A new connection (new source port) is still the same client.
        with httpx.Client(
            transport=httpx.HTTPTransport(local_address="127.0.0.2"), headers={"User-Agent": "a/1"}
        ) as again:
            again.get(issuer.jwks_url)
    assert issuer.fetches("jwks", client="127.0.0.2") == 5
    assert issuer.fetches("jwks", client="b/1") == 1
    assert issuer.fetches("jwks", client=("127.0.0.3", "b/1")) == 1
    assert issuer.fetch_clients("jwks") == {("127.0.0.2", "a/1"): 5, ("127.0.0.3", "b/1"): 1}


def test_jwks_status_fault_counts_and_spares_other_paths(issuer: Issuer, http: httpx.Client) -> None:
    issuer.faults.jwks_status(500)
    r = http.get(issuer.jwks_url)
    assert r.status_code == 500 and r.json()["error"] == "injected_fault"
    assert http.get(issuer.discovery_url).status_code == 200
    assert issuer.fetches("jwks") == 1  # faulted requests count too
    issuer.faults.clear()
    assert http.get(issuer.jwks_url).status_code == 200


@pytest.mark.parametrize("garbage", ["truncated", "html", "not-a-jwks", "empty", "binary", "null"])
def test_jwks_garbage(issuer: Issuer, http: httpx.Client, garbage: str) -> None:
    issuer.faults.jwks_garbage(garbage)
    r = http.get(issuer.jwks_url)
    assert r.status_code == 200
    try:
        keys = r.json().get("keys")
    except (ValueError, AttributeError):
        keys = None
    assert not isinstance(keys, list) or keys == []


def _until_received(issuer: Issuer, jwks_fetches: int) -> None:
    """Until the issuer counted that JWKS request (counted on arrival, before a delay fault holds it)."""
    wait_for(lambda: issuer.fetches("jwks") >= jwks_fetches, what="the JWKS request to reach the issuer", timeout=10)


def test_slow_jwks_blocks_only_the_jwks(issuer: Issuer) -> None:
    issuer.faults.jwks_delay(30)
    with httpx.Client(timeout=0.3) as client, pytest.raises(httpx.ReadTimeout):
        client.get(issuer.jwks_url)
    # Blocked behind the JWKS request still waiting, discovery would time out too.
    with httpx.Client(timeout=10) as client:
        assert client.get(issuer.discovery_url).status_code == 200
    # clear() wakes a request that is waiting and it is answered normally
    result: dict[str, int] = {}
    waiting = issuer.fetches("jwks") + 1
    with httpx.Client(timeout=20) as client:
        waiter = threading.Thread(target=lambda: result.update(status=client.get(issuer.jwks_url).status_code))
        waiter.start()
        _until_received(issuer, waiting)
        issuer.faults.clear()
        waiter.join(timeout=15)
    assert result == {"status": 200}


def test_go_down_and_come_up_on_the_same_port(issuer: Issuer, http: httpx.Client) -> None:
    port = issuer.port
    assert http.get(issuer.jwks_url).status_code == 200  # leaves a keep-alive connection in the pool
    issuer.go_down()
    assert not issuer.is_up and not port_is_bound(port)
    with pytest.raises(httpx.TransportError):
        http.get(issuer.jwks_url)
    issuer.come_up()
    assert issuer.port == port and issuer.is_up
    assert http.get(issuer.jwks_url).status_code == 200


def test_go_down_drops_a_request_waiting_in_a_delay(issuer: Issuer) -> None:
    issuer.faults.jwks_delay(60)
    errors: list[BaseException] = []

    def fetch() -> None:
        try:
            with httpx.Client(timeout=30) as client:
                client.get(issuer.jwks_url)
        except httpx.TransportError as exc:
            errors.append(exc)

    waiting = issuer.fetches("jwks") + 1
    worker = threading.Thread(target=fetch)
    worker.start()
    _until_received(issuer, waiting)
    issuer.go_down()
    # Not dropped, the request would wait out its 30 s timeout.
    worker.join(timeout=15)
    assert not worker.is_alive() and errors


def test_admin_faults_clock_and_down(issuer: Issuer, http: httpx.Client) -> None:
    admin = issuer.admin_url
    assert http.post(admin + "/faults", json={"kind": "jwks", "status": 503}).status_code == 200
    assert http.get(issuer.jwks_url).status_code == 503
    assert http.post(admin + "/faults", json={"kind": "nope", "status": 503}).status_code == 409
    assert http.delete(admin + "/faults").json() == {"faults": {}}
    assert http.get(issuer.jwks_url).status_code == 200
    assert http.post(admin + "/clock", json={"offset": 30}).json() == {"clock_offset": 30.0}
    assert issuer.clock_offset == 30
    assert http.get(admin + "/fetches").json()["fetches"]["jwks"] == 2
    http.post(admin + "/fetches/reset")
    assert issuer.fetches("jwks") == 0
    port = issuer.port
    assert http.post(admin + "/down", json={"seconds": 3}).status_code == 202
    wait_for(lambda: not port_is_bound(port), what="the issuer's port to close", timeout=3)
    wait_for(lambda: port_is_bound(port), what="the issuer's port to reopen", timeout=20)
    assert http.get(issuer.jwks_url).status_code == 200


def test_reset_clears_run_time_state(issuer: Issuer) -> None:
    issuer.faults.jwks_status(500)
    issuer.clock_offset = 99
    issuer.go_down()
    issuer.reset()
    assert issuer.is_up and not issuer.faults and issuer.clock_offset == 0
    with httpx.Client() as client:
        assert client.get(issuer.jwks_url).status_code == 200
