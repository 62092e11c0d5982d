"""The issuer's endpoints over real HTTP: Keycloak's documents, the token endpoint, userinfo, CORS, concurrency."""

from __future__ import annotations

import base64
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from makrx_contracts.harness.errors import IssuerError
from makrx_contracts.harness.issuer import Issuer
from makrx_contracts.harness.issuer.users import User, UserDirectory

from .conftest import AUDIENCE


def test_urls_follow_keycloak(issuer: Issuer) -> None:
    assert issuer.base_url.startswith("http://127.0.0.1:")
    assert issuer.issuer_url == issuer.base_url + "/realms/makrx"
    assert issuer.jwks_url == issuer.issuer_url + "/protocol/openid-connect/certs"
    assert issuer.token_url == issuer.issuer_url + "/protocol/openid-connect/token"
    env = issuer.backend_env()
    assert env["KEYCLOAK_ISSUER"] == issuer.issuer_url and env["KEYCLOAK_CLIENT_ID"] == AUDIENCE


def test_realm_document(issuer: Issuer, http: httpx.Client) -> None:
    body = http.get(issuer.issuer_url).json()
    assert body["realm"] == "makrx"
    assert body["token-service"] == issuer.issuer_url + "/protocol/openid-connect"
    assert body["account-service"] == issuer.issuer_url + "/account"
    assert body["tokens-not-before"] == 0
    public = serialization.load_der_public_key(base64.b64decode(body["public_key"]))
    token = issuer.mint()
    # What python-keycloak style backends do: wrap public_key in PEM and verify.
    pem = f"-----BEGIN PUBLIC KEY-----\n{body['public_key']}\n-----END PUBLIC KEY-----"
    assert jwt.decode(token, pem, algorithms=["RS256"], audience=AUDIENCE)["typ"] == "Bearer"
    assert public.public_numbers() == issuer.keys.active.public_key.public_numbers()  # type: ignore[union-attr]


def test_discovery_document(issuer: Issuer, http: httpx.Client) -> None:
    body = http.get(issuer.discovery_url).json()
    assert body["issuer"] == issuer.issuer_url
    assert body["jwks_uri"] == issuer.jwks_url
    assert body["token_endpoint"] == issuer.token_url
    assert body["userinfo_endpoint"] == issuer.userinfo_url
    assert "RS256" in body["id_token_signing_alg_values_supported"]
    assert {"password", "client_credentials"} <= set(body["grant_types_supported"])


def test_jwks_entries_look_like_keycloaks(issuer: Issuer, http: httpx.Client) -> None:
    keys = http.get(issuer.jwks_url).json()["keys"]
    assert [(k["use"], k["alg"]) for k in keys] == [("enc", "RSA-OAEP"), ("sig", "RS256")]
    for jwk in keys:
        assert {"kid", "kty", "alg", "use", "n", "e", "x5c", "x5t", "x5t#S256"} <= set(jwk)
        der = base64.b64decode(jwk["x5c"][0])
        cert = x509.load_der_x509_certificate(der)
        assert cert.subject == cert.issuer  # self-signed, CN=<realm>
        assert jwk["x5t#S256"] == base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
        assert jwk["x5t"] == base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode()
        from_cert = cert.public_key().public_numbers()  # type: ignore[union-attr]

        def uint(value: str) -> int:
            return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")

        assert (from_cert.n, from_cert.e) == (uint(jwk["n"]), uint(jwk["e"]))
    token = issuer.mint(roles=("admin",))
    signing = jwt.PyJWKSet.from_dict({"keys": keys})[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(token, signing.key, algorithms=["RS256"], audience=AUDIENCE, issuer=issuer.issuer_url)
    assert claims["realm_access"] == {"roles": ["admin"]}


def test_es256_issuer_publishes_ec_keys(es_issuer: Issuer, http: httpx.Client) -> None:
    keys = http.get(es_issuer.jwks_url).json()["keys"]
    sig = [k for k in keys if k["use"] == "sig"]
    assert sig[0]["kty"] == "EC" and sig[0]["crv"] == "P-256" and {"x", "y", "x5c"} <= set(sig[0])
    token = es_issuer.mint()
    key = jwt.PyJWKSet.from_dict({"keys": keys})[jwt.get_unverified_header(token)["kid"]]
    assert jwt.decode(token, key.key, algorithms=["ES256"], audience=AUDIENCE)["iss"] == es_issuer.issuer_url


def test_access_token_claim_shapes(issuer: Issuer) -> None:
    user = issuer.user(3)
    token = issuer.mint(
        audience=["x-api", "account"],
        roles=("user",),
        client_roles={"x-api": ["admin"]},
        user=user,
        expires_in=120,
        overrides={"allowed-origins": ["http://localhost:3000"]},
        acr=None,
    )
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header == {"alg": "RS256", "typ": "JWT", "kid": issuer.keys.active.kid}
    assert claims["aud"] == ["x-api", "account"] and claims["azp"] == "x-api"
    assert claims["exp"] - claims["iat"] == 120
    assert claims["typ"] == "Bearer" and claims["iss"] == issuer.issuer_url
    assert claims["realm_access"] == {"roles": ["user"]}
    assert claims["resource_access"] == {"x-api": {"roles": ["admin"]}}
    assert claims["sub"] == user.sub and claims["preferred_username"] == user.preferred_username
    assert claims["email"] == user.email and claims["name"] == f"{user.given_name} {user.family_name}"
    assert claims["sid"] == claims["session_state"] and claims["scope"] == "openid profile email"
    assert claims["allowed-origins"] == ["http://localhost:3000"] and "acr" not in claims


def test_users_are_deterministic_by_seed() -> None:
    a, b, c = UserDirectory(0), UserDirectory(0), UserDirectory(5)
    assert a.get(1) == b.get(1) and a.get("alice") == b.get("alice")
    assert a.get(1) != a.get(2) and a.get(1) != c.get(1)
    assert a.get(0).sub != a.get(1).sub
    assert Issuer(seed=0).user(1) == a.get(1)


def test_clock_offset_shifts_new_tokens(issuer: Issuer) -> None:
    issuer.clock_offset = -3600
    claims = jwt.decode(issuer.mint(), options={"verify_signature": False})
    assert abs(claims["iat"] - (time.time() - 3600)) < 5


def _token(http: httpx.Client, issuer: Issuer, **form: str) -> httpx.Response:
    return http.post(issuer.token_url, data=form)


def test_token_endpoint_client_credentials(issuer: Issuer, http: httpx.Client) -> None:
    r = _token(http, issuer, grant_type="client_credentials", client_id="svc", client_secret="x")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    assert {"access_token", "refresh_token", "id_token"} <= set(body)
    claims = issuer.verifier(AUDIENCE).verify(body["access_token"], now=time.time())
    assert claims["azp"] == "svc" and claims["preferred_username"] == "service-account-svc"
    assert "account" in claims["aud"] and AUDIENCE in claims["aud"]


def test_token_endpoint_password_grant_and_refresh(http: httpx.Client) -> None:
    alice = User(
        sub="0b0b0b0b-0000-4000-8000-000000000001",
        preferred_username="alice",
        email="alice@example.org",
        given_name="Alice",
        family_name="Liddell",
        password="wonderland",
        roles=("admin",),
    )
    with Issuer(seed=0, clients={"frontend": None, "backend": "s3cret"}, users=[alice]).start() as issuer:
        ok = _token(http, issuer, grant_type="password", client_id="frontend", username="alice", password="wonderland")
        assert ok.status_code == 200, ok.text
        claims = jwt.decode(ok.json()["access_token"], options={"verify_signature": False})
        assert "admin" in claims["realm_access"]["roles"] and claims["sub"] == alice.sub
        id_claims = jwt.decode(ok.json()["id_token"], options={"verify_signature": False})
        assert id_claims["typ"] == "ID" and id_claims["aud"] == "frontend"
        faker_user = issuer.user(2)
        by_email = _token(
            http,
            issuer,
            grant_type="password",
            client_id="frontend",
            username=faker_user.email,
            password=faker_user.password,
        )
        assert by_email.status_code == 200
        refreshed = _token(
            http, issuer, grant_type="refresh_token", client_id="frontend", refresh_token=ok.json()["refresh_token"]
        )
        assert refreshed.status_code == 200, refreshed.text
        assert jwt.decode(refreshed.json()["access_token"], options={"verify_signature": False})["sub"] == alice.sub

        def error(r: httpx.Response) -> tuple[int, str]:
            return r.status_code, r.json()["error"]

        assert error(
            _token(http, issuer, grant_type="password", client_id="frontend", username="alice", password="nope")
        ) == (401, "invalid_grant")
        assert error(
            _token(http, issuer, grant_type="client_credentials", client_id="backend", client_secret="wrong")
        ) == (401, "unauthorized_client")
        assert error(_token(http, issuer, grant_type="client_credentials", client_id="nobody")) == (
            401,
            "invalid_client",
        )
        assert error(_token(http, issuer, grant_type="client_credentials", client_id="frontend")) == (
            401,
            "unauthorized_client",
        )
        assert error(_token(http, issuer, grant_type="magic", client_id="frontend")) == (400, "unsupported_grant_type")
        assert error(_token(http, issuer, grant_type="refresh_token", client_id="frontend", refresh_token="x.y.z")) == (
            400,
            "invalid_grant",
        )
        basic = http.post(issuer.token_url, data={"grant_type": "client_credentials"}, auth=("backend", "s3cret"))
        assert basic.status_code == 200


def test_userinfo_validates_the_bearer_token(issuer: Issuer, http: httpx.Client) -> None:
    user = issuer.user(1)
    ok = http.get(issuer.userinfo_url, headers={"Authorization": f"Bearer {issuer.mint(user=user)}"})
    assert ok.status_code == 200 and ok.json()["preferred_username"] == user.preferred_username
    for bad in ("", "Bearer garbage", f"Bearer {issuer.mint(expires_in=-3600)}", f"Basic {issuer.mint()}"):
        r = http.get(issuer.userinfo_url, headers={"Authorization": bad} if bad else {})
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    old = issuer.mint()
    issuer.keys.promote()
    assert http.get(issuer.userinfo_url, headers={"Authorization": f"Bearer {old}"}).status_code == 200
    issuer.keys.retire()
    assert http.get(issuer.userinfo_url, headers={"Authorization": f"Bearer {old}"}).status_code == 401


def test_userinfo_as_a_backend_validating_by_it_calls_it(issuer: Issuer, http: httpx.Client) -> None:
    """What a service that validates each request through userinfo relies on: the claims for a token the realm
    signed (any audience, as Keycloak does not check it there; GET or POST), 401 for anything else."""
    user = issuer.user(2)
    token = issuer.mint(audience="some-other-api", user=user)
    got = http.get(issuer.userinfo_url, headers={"Authorization": f"Bearer {token}"})
    assert got.status_code == 200 and got.json()["sub"] == user.sub and got.json()["email"] == user.email
    assert http.post(issuer.userinfo_url, headers={"Authorization": f"Bearer {token}"}).json()["sub"] == user.sub
    assert http.post(issuer.userinfo_url, data={"access_token": token}).json()["sub"] == user.sub
    foreign = issuer.sign(issuer.claims(), key=issuer.attacker.key, kid=issuer.keys.active.kid)
    id_token = issuer.tokens.id_token("frontend", user=user, access_token=token, session="s", nonce=None)
    for bad in (foreign, id_token, issuer.mint(expires_in=-60)):
        refused = http.get(issuer.userinfo_url, headers={"Authorization": f"Bearer {bad}"})
        assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert http.put(issuer.userinfo_url, headers={"Authorization": f"Bearer {token}"}).status_code == 405


def test_introspection(issuer: Issuer, http: httpx.Client) -> None:
    live = http.post(issuer.oidc_url + "/token/introspect", data={"token": issuer.mint(), "client_id": "a"}).json()
    assert live["active"] is True and live["token_type"] == "Bearer"
    dead = http.post(issuer.oidc_url + "/token/introspect", data={"token": "x", "client_id": "a"}).json()
    assert dead == {"active": False}
    expired = {"token": issuer.mint(expires_in=-60), "client_id": "a"}
    assert http.post(issuer.oidc_url + "/token/introspect", data=expired).json() == {"active": False}


def test_introspection_needs_a_confidential_client() -> None:
    with (
        Issuer(seed=0, clients={"backend": "s3cret", "frontend": None}).start() as issuer,
        httpx.Client(timeout=5) as http,
    ):
        url, token = issuer.oidc_url + "/token/introspect", issuer.mint()
        ok = http.post(url, data={"token": token}, auth=("backend", "s3cret"))
        assert ok.status_code == 200 and ok.json()["active"] is True
        assert http.post(url, data={"token": token}, auth=("backend", "wrong")).status_code == 401
        assert http.post(url, data={"token": token}).status_code == 401
        public = http.post(url, data={"token": token, "client_id": "frontend"})
        assert (public.status_code, public.json()["error"]) == (403, "invalid_request")


def test_health_unknown_realm_and_methods(issuer: Issuer, http: httpx.Client) -> None:
    for path in ("/health/ready", "/health/live"):
        assert http.get(issuer.base_url + path).json()["status"] == "UP"
    assert http.get(issuer.base_url + "/realms/other").status_code == 404
    assert http.post(issuer.jwks_url).status_code == 405
    assert http.get(issuer.token_url).status_code == 405


def test_cors_for_frontends(issuer: Issuer, http: httpx.Client) -> None:
    origin = "http://localhost:3000"
    pre = http.options(issuer.token_url, headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 204 and pre.headers["Access-Control-Allow-Origin"] == origin
    assert http.get(issuer.jwks_url, headers={"Origin": origin}).headers["Access-Control-Allow-Origin"] == origin


def _status_on_own_connection(url: str) -> int:
    """GET on a connection of its own: httpcore's shared pool can close a connection under a waiting
    request (encode/httpcore#1110), which failed this test with EBADF on a busy machine."""
    parts = urlsplit(url)
    conn = HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    try:
        conn.request("GET", parts.path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_concurrent_requests(issuer: Issuer) -> None:
    with ThreadPoolExecutor(max_workers=32) as pool:
        urls = [issuer.jwks_url if i % 2 else issuer.discovery_url for i in range(128)]
        statuses = list(pool.map(_status_on_own_connection, urls))
    assert statuses == [200] * 128
    assert issuer.fetches("jwks") == 64 and issuer.fetches("discovery") == 64


def test_misuse_is_explained() -> None:
    with pytest.raises(IssuerError, match="before start"):
        _ = Issuer().base_url
    with pytest.raises(IssuerError, match="unsupported signing algorithm"):
        Issuer(algorithm="HS256")
    issuer = Issuer().start()
    issuer.stop()
    issuer.stop()  # idempotent
    with pytest.raises(IssuerError, match="stopped"):
        issuer.start()
    with Issuer().start() as first, pytest.raises(IssuerError, match="cannot listen"):
        Issuer().start(port=first.port)
