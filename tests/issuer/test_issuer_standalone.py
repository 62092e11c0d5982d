"""The respx route (no network), the pytest fixtures, and the standalone server as a subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import jwt
import pytest
import respx
from makrx_contracts.harness.issuer import Issuer
from makrx_contracts.harness.issuer.catalogue import BadTokens
from makrx_contracts.harness.issuer.fixtures import (
    TokenMaker,
    bad_token,
    make_token,
    make_token_factory,
    makrx_issuer,
    makrx_issuer_clean,
    makrx_issuer_factory,
)
from makrx_contracts.harness.issuer.respx_routes import issuer_respx_routes
from makrx_contracts.harness.ports import free_port, port_is_bound
from makrx_contracts.harness.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]

# The default fixtures, registered here the way harness.plugin registers them.
__all__ = ["bad_token", "make_token", "makrx_issuer", "makrx_issuer_clean"]
es_issuer = makrx_issuer_factory(algorithm="ES256", default_audience="es-api", scope="module")
es_token = make_token_factory("es_issuer")


# ---------------------------------------------------------------------------------------------- respx


def test_respx_route_serves_without_network() -> None:
    issuer = Issuer(seed=0, public_base_url="http://keycloak.test")
    with respx.mock(assert_all_called=False) as router:
        route = issuer_respx_routes(router, issuer)
        with httpx.Client() as client:
            discovery = client.get(issuer.discovery_url).json()
            assert discovery["jwks_uri"] == "http://keycloak.test/realms/makrx/protocol/openid-connect/certs"
            jwks = client.get(discovery["jwks_uri"]).json()
            token = client.post(
                discovery["token_endpoint"], data={"grant_type": "client_credentials", "client_id": "svc"}
            ).json()["access_token"]
            key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
            assert jwt.decode(token, key.key, algorithms=["RS256"], audience="makrx-api")["azp"] == "svc"
            assert issuer.fetches("jwks", client="respx") == 1 and route.call_count == 3

            issuer.keys.promote()
            assert len(client.get(issuer.jwks_url).json()["keys"]) == 3  # enc + old + new
            issuer.faults.jwks_status(500)
            assert client.get(issuer.jwks_url).status_code == 500
            issuer.faults.clear()
            issuer.go_down()
            with pytest.raises(httpx.ConnectError):
                client.get(issuer.jwks_url)
            issuer.come_up()
            assert client.get(issuer.jwks_url).status_code == 200


def test_respx_route_with_an_async_client_and_a_started_issuer() -> None:
    with Issuer(seed=0).start() as issuer, respx.mock() as router:
        issuer_respx_routes(router, issuer)

        async def fetch() -> int:
            async with httpx.AsyncClient() as client:
                return (await client.get(issuer.jwks_url)).status_code

        assert asyncio.run(fetch()) == 200
        assert issuer.fetches("jwks", client="respx") == 1


# ---------------------------------------------------------------------------------------------- fixtures


def test_default_fixtures(makrx_issuer: Issuer, make_token: TokenMaker, bad_token: BadTokens) -> None:
    token = make_token(roles=("admin",))
    claims = makrx_issuer.verifier("makrx-api").verify(token, now=makrx_issuer.now())
    assert claims["realm_access"]["roles"] == ["admin"]
    assert bad_token("expired", audience="makrx-api").count(".") == 2
    assert bad_token.issuer is makrx_issuer


def test_clean_fixture_resets_between_tests(makrx_issuer_clean: Issuer) -> None:
    assert not makrx_issuer_clean.faults and makrx_issuer_clean.fetches("jwks") == 0
    makrx_issuer_clean.faults.jwks_status(500)  # must not leak into other tests
    makrx_issuer_clean.keys.promote()


def test_clean_fixture_resets_between_tests_again(makrx_issuer_clean: Issuer) -> None:
    assert not makrx_issuer_clean.faults and len(makrx_issuer_clean.keys.signing_keys) == 1


def test_factory_fixtures(es_issuer: Issuer, es_token: TokenMaker) -> None:
    assert es_issuer.algorithm == "ES256"
    assert jwt.get_unverified_header(es_token())["alg"] == "ES256"
    assert jwt.decode(es_token(), options={"verify_signature": False})["aud"] == "es-api"


# ---------------------------------------------------------------------------------------------- standalone


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_cli_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "makrx_contracts.harness.issuer", "serve", "--help"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=30,
        check=True,
    ).stdout
    assert "--port" in out and "--client-id" in out and "Ctrl-C" in out


def test_standalone_server_serves_and_stops_on_ctrl_c() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "makrx_contracts.harness.issuer",
            "serve",
            "--port",
            str(port),
            "--client-id",
            "frontend",
            "--user",
            "alice:wonderland:admin",
            "--audience",
            "makrcave-api",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
    )
    try:
        wait_for(
            lambda: port_is_bound(port),
            what="the standalone issuer's port",
            timeout=15,
            abort=lambda: None if proc.poll() is None else f"it exited with {proc.returncode}",
        )
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=5) as client:
            assert (
                client.get(f"{base}/realms/makrx/.well-known/openid-configuration").json()["issuer"]
                == f"{base}/realms/makrx"
            )
            r = client.post(
                f"{base}/realms/makrx/protocol/openid-connect/token",
                data={"grant_type": "password", "client_id": "frontend", "username": "alice", "password": "wonderland"},
            )
            assert r.status_code == 200, r.text
            claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
            assert "makrcave-api" in claims["aud"] and "admin" in claims["realm_access"]["roles"]
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert f"{base}/realms/makrx" in out and "sample access token" in out and "alice" in out
    assert not port_is_bound(port)


def test_standalone_server_reports_a_busy_port() -> None:
    with Issuer().start() as busy:
        result = subprocess.run(
            [sys.executable, "-m", "makrx_contracts.harness.issuer", "serve", "--port", str(busy.port)],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=30,
        )
    assert result.returncode == 1 and "cannot listen" in result.stderr and "fix:" in result.stderr
