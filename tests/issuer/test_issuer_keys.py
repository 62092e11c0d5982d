"""Keys: Keycloak's rotation lifecycle as seen in the JWKS, the admin endpoints, and keys made once per process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from makrx_contracts.harness.errors import IssuerError
from makrx_contracts.harness.issuer import Issuer, KeySet
from makrx_contracts.harness.issuer import keys as keys_module
from makrx_contracts.harness.issuer.key import export_keys
from makrx_contracts.harness.issuer.keys import Key, generated_key

from .conftest import AUDIENCE


def _published(http: httpx.Client, issuer: Issuer) -> list[str]:
    return [k["kid"] for k in http.get(issuer.jwks_url).json()["keys"] if k["use"] == "sig"]


def _kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def test_rotation_lifecycle_in_the_jwks(issuer: Issuer, http: httpx.Client) -> None:
    keys = issuer.keys
    first = keys.active
    assert _published(http, issuer) == [first.kid] and keys.state(first.kid) == "active"

    nxt = keys.publish_next()
    assert keys.state(nxt.kid) == "next"
    assert _published(http, issuer) == [first.kid, nxt.kid]
    assert _kid(issuer.mint()) == first.kid  # published, not yet signing

    promoted = keys.promote()
    assert promoted is nxt and keys.active is nxt
    assert keys.state(first.kid) == "passive" and _published(http, issuer) == [first.kid, nxt.kid]
    assert _kid(issuer.mint()) == nxt.kid

    retired = keys.retire()
    assert retired == [first] and keys.state(first.kid) == "retired"
    assert _published(http, issuer) == [nxt.kid]
    assert keys.last_retired() is first


def test_promote_without_next_publishes_one(issuer: Issuer, http: httpx.Client) -> None:
    old = issuer.keys.active
    new = issuer.keys.promote()
    assert new is not old and _published(http, issuer) == [old.kid, new.kid]


def test_lifecycle_misuse_is_refused(issuer: Issuer) -> None:
    issuer.keys.publish_next()
    with pytest.raises(IssuerError, match="already published"):
        issuer.keys.publish_next()
    with pytest.raises(IssuerError, match="active key"):
        issuer.keys.retire(issuer.keys.active.kid)
    with pytest.raises(IssuerError, match="no key with kid"):
        issuer.keys.retire("nope")


def test_reset_returns_to_the_first_key(issuer: Issuer) -> None:
    first = issuer.keys.active.kid
    issuer.keys.promote()
    issuer.keys.retire()
    issuer.reset()
    assert issuer.keys.active.kid == first and [k.kid for k in issuer.keys.signing_keys] == [first]


def test_admin_endpoints_drive_rotation(issuer: Issuer, http: httpx.Client) -> None:
    first = issuer.keys.active.kid
    nxt = http.post(issuer.admin_url + "/keys/next").json()["kid"]
    assert http.post(issuer.admin_url + "/keys/next").status_code == 409
    assert http.post(issuer.admin_url + "/keys/promote").json()["kid"] == nxt
    retired = http.post(issuer.admin_url + "/keys/retire").json()
    assert retired["retired"] == [first]
    states = {k["kid"]: k["state"] for k in http.get(issuer.admin_url + "/keys").json()["keys"]}
    assert states[first] == "retired" and states[nxt] == "active"
    assert http.get(issuer.admin_url).json()["endpoints"]


def test_retired_key_tokens_stop_verifying(issuer: Issuer) -> None:
    old = issuer.mint()
    issuer.keys.promote()
    assert issuer.verifier(AUDIENCE).verify(old, now=time.time())
    issuer.keys.retire()
    with pytest.raises(Exception, match="not a published signing key"):
        issuer.verifier(AUDIENCE).verify(old, now=time.time())


def test_same_seed_same_keys_and_seed_none_random() -> None:
    a, b = KeySet(seed=0), KeySet(seed=0)
    assert a.active.kid == b.active.kid and a.publish_next().kid == b.publish_next().kid
    assert KeySet(seed=None, enc_key=False).active.kid != a.active.kid


def test_a_seeds_keys_are_made_once_per_process() -> None:
    with ThreadPoolExecutor(8) as pool:  # two issuers' warm-up threads may ask at once
        made = list(pool.map(lambda _: generated_key("RSA", 2048, 4242, "sig-0"), range(8)))
    assert all(key is made[0] for key in made)
    assert generated_key("RSA", 2048, 4242, "sig-1") is not made[0]
    assert generated_key("RSA", 2048, 4243, "sig-0") is not made[0]
    assert generated_key("EC", 256, None, "sig-0") is not generated_key("EC", 256, None, "sig-0")


def test_a_key_set_makes_no_key_before_one_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[tuple[Any, ...]] = []

    def counting(*spec: Any) -> Any:
        made.append(spec)
        return generated_key(*spec)

    monkeypatch.setattr(keys_module, "generated_key", counting)
    keys = KeySet(seed=4242)
    assert made == []
    assert keys.active.kid and made == [("RSA", 2048, 4242, "sig-0")]


def test_a_lazy_key_is_made_once_under_concurrent_use() -> None:
    calls: list[int] = []

    def make() -> ec.EllipticCurvePrivateKey:
        calls.append(1)
        time.sleep(0.05)
        return ec.generate_private_key(ec.SECP256R1())

    key = Key(make, alg="ES256", use="sig", realm="makrx", label="sig-0", index=0)
    assert calls == []
    with ThreadPoolExecutor(4) as pool:
        kids = set(pool.map(lambda _: key.kid, range(4)))
    assert calls == [1] and kids == {key.kid}


def test_enc_key_can_be_left_out(http: httpx.Client) -> None:
    with Issuer(enc_key=False).start() as issuer:
        assert [k["use"] for k in http.get(issuer.jwks_url).json()["keys"]] == ["sig"]


def test_key_size_floor() -> None:
    with pytest.raises(IssuerError, match="below 2048"):
        KeySet(key_size=1024)


def test_token_factory_without_a_server() -> None:
    from makrx_contracts.harness.issuer import TokenFactory

    keys = KeySet(seed=0)
    factory = TokenFactory(keys, "http://keycloak.test/realms/makrx", default_audience="x-api")
    token = factory.mint(roles=("admin",), expires_in=60)
    public = keys.active.public_key
    claims = jwt.decode(
        token, public, algorithms=["RS256"], audience="x-api", issuer="http://keycloak.test/realms/makrx"
    )
    assert claims["realm_access"]["roles"] == ["admin"] and claims["exp"] - claims["iat"] == 60
    assert jwt.get_unverified_header(factory.sign({"a": 1}, kid=None, headers={"x-test": 1})) == {
        "alg": "RS256",
        "typ": "JWT",
        "x-test": 1,
    }
    with pytest.raises(IssuerError, match="no issuer URL"):
        TokenFactory(keys).mint()


def test_keys_exported_by_one_process_are_the_keys_another_adopts() -> None:
    """What the xdist controller hands its workers: the same key material, so no worker makes its own."""
    spec = ("RSA", 2048, 987654, "sig-0")
    pems = export_keys([spec])
    script = (
        "import json, sys\n"
        "from makrx_contracts.harness.issuer.key import adopt_keys, generated_key\n"
        "adopt_keys(json.loads(sys.stdin.read()))\n"
        f"print(generated_key{spec!r}.public_key().public_numbers().n)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], input=json.dumps(pems), capture_output=True, text=True, check=True
    ).stdout
    assert int(out) == generated_key(*spec).public_key().public_numbers().n
