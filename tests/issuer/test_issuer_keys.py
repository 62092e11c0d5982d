"""Keys: Keycloak's rotation lifecycle as seen in the JWKS, the admin endpoints, and seed-derived keys."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import jwt
import pytest
from makrx_contracts.harness.errors import IssuerError
from makrx_contracts.harness.issuer import Issuer, KeySet
from makrx_contracts.harness.issuer._seed0 import PRIMES
from makrx_contracts.harness.issuer.keys import _derive_rsa_primes, _material, derived_private_key

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


def test_shipped_seed0_primes_are_the_derived_ones() -> None:
    # sig-3 derives fastest (~0.1 s); the others come from the same function.
    assert _derive_rsa_primes(_material("RSA", 2048, 0, "sig-3"), 2048) == PRIMES[(2048, "sig-3")]


def test_disk_cache_round_trip(tmp_path: Path) -> None:
    from makrx_contracts.harness.issuer import keys as keys_module

    # seed 0 is shipped precomputed; a cache file for it is written only when derivation ran, so plant one.
    planted = keys_module._rsa_from_primes(*PRIMES[(2048, "sig-3")])
    keys_module._store_disk(tmp_path / "v1" / "RSA2048-seed0-sig-3.der", planted)
    loaded = keys_module._load_disk(tmp_path / "v1" / "RSA2048-seed0-sig-3.der")
    assert loaded is not None and loaded.private_numbers() == planted.private_numbers()  # type: ignore[union-attr]
    assert [f.name for f in (tmp_path / "v1").iterdir()] == ["RSA2048-seed0-sig-3.der"]  # no temp file left
    (tmp_path / "v1" / "broken.der").write_bytes(b"not a key")
    assert keys_module._load_disk(tmp_path / "v1" / "broken.der") is None
    ec_key = derived_private_key("EC", 256, 424242, "sig-0", tmp_path)
    assert not (tmp_path / "v1" / "EC256-seed424242-sig-0.der").exists()  # EC derives instantly: not cached
    assert derived_private_key("EC", 256, 424242, "sig-0", None).private_numbers() == ec_key.private_numbers()  # type: ignore[union-attr]


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
