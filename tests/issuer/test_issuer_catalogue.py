"""Every bad-token case decodes or fails the way it claims, checked against the JWKS the issuer serves."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from makrx_contracts.harness.errors import IssuerError
from makrx_contracts.harness.issuer import Issuer, catalogue
from makrx_contracts.harness.issuer._jose import TokenRejected, verify_signature
from makrx_contracts.harness.issuer.catalogue import ACCEPT, CATALOGUE, BadTokens

from .conftest import AUDIENCE


@pytest.fixture(scope="module", params=["RS256", "ES256"])
def module_issuer(request: pytest.FixtureRequest) -> Iterator[Issuer]:
    with Issuer(seed=0, algorithm=request.param, default_audience=AUDIENCE).start() as issuer:
        yield issuer


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as shared:
        yield shared


def _pyjwt_plain(token: str, issuer: Issuer, client: httpx.Client) -> dict[str, Any]:
    """What a backend does with pyjwt alone: key by kid from the served JWKS, alg pinned, aud and iss checked."""
    jwks = client.get(issuer.jwks_url).json()
    header = jwt.get_unverified_header(token)
    key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    return jwt.decode(token, key.key, algorithms=[issuer.algorithm], audience=AUDIENCE, issuer=issuer.issuer_url)


@pytest.mark.parametrize("case", CATALOGUE, ids=lambda c: c.name)
def test_case_decodes_as_documented(case: catalogue.Case, module_issuer: Issuer, client: httpx.Client) -> None:
    if not case.applies(module_issuer):
        with pytest.raises(IssuerError, match="does not apply"):
            case.build(module_issuer, AUDIENCE)
        return
    case.prepare(module_issuer)
    token = case.build(module_issuer, AUDIENCE)
    assert token.isascii() and all(32 <= ord(ch) < 127 for ch in token), "must fit an Authorization header"

    strict = module_issuer.verifier(AUDIENCE)
    if case.verdict is ACCEPT:
        strict.verify(token, now=time.time())
    else:
        with pytest.raises(TokenRejected):
            strict.verify(token, now=time.time())

    try:
        _pyjwt_plain(token, module_issuer, client)
        pyjwt_rejected = False
    except (jwt.PyJWTError, KeyError):
        pyjwt_rejected = True
    assert pyjwt_rejected == case.pyjwt_rejects, f"{case.name}: pyjwt_rejects is documented as {case.pyjwt_rejects}"


def test_cases_are_documented() -> None:
    names = [c.name for c in CATALOGUE]
    assert len(names) == len(set(names)) >= 55
    for case in CATALOGUE:
        assert case.description.strip() and case.hint.strip() and case.verdict.statuses
        assert not case.verdict.allows(500) and not case.verdict.allows(403)
    assert catalogue.names(verdict=ACCEPT) == ["aud_array_with_ours"]
    issue_6 = {
        "alg_none_trailing_dot",
        "alg_NONE_no_dot",
        "signature_stripped",
        "hs256_key_confusion_pem",
        "hs256_key_confusion_pem_no_newline",
        "hs256_key_confusion_der",
        "hs256_empty_secret",
        "ps256_real_key",
        "rs512_real_key",
        "es256_psychic_signature",
        "segments_2",
        "segments_4",
        "segments_5",
        "base64_padded",
        "base64_standard_alphabet",
        "header_bad_json",
        "payload_bad_json",
        "header_duplicate_alg",
        "crit_unknown",
        "jwk_embedded",
        "jku_attacker",
        "x5u_attacker",
        "kid_path_traversal",
        "kid_sql_injection",
        "kid_command_injection",
        "kid_other_key",
        "kid_missing_several_keys",
        "exp_missing",
        "exp_beyond_leeway",
        "nbf_future",
        "iat_future",
        "iss_other_realm",
        "iss_trailing_slash",
        "iss_other_scheme",
        "aud_missing",
        "aud_account_only",
        "aud_array_without_ours",
        "aud_array_with_ours",
        "exp_string",
        "aud_object",
        "id_token_as_access",
        "refresh_token_as_access",
        "oversized_16kb",
        "expired",
        "retired_key",
        "kid_unknown",
        "signature_tampered",
    }
    assert issue_6 <= set(names)
    with pytest.raises(IssuerError, match="no bad-token case"):
        catalogue.get("nope")


def test_oversized_is_16_kb(issuer: Issuer) -> None:
    assert len(catalogue.get("oversized_16kb").build(issuer, AUDIENCE)) == 16 * 1024


def test_prepare_publishes_a_second_signing_key(issuer: Issuer) -> None:
    case = catalogue.get("kid_other_key")
    with pytest.raises(IssuerError, match="second published signing key"):
        case.build(issuer, AUDIENCE)
    case.prepare(issuer)
    assert len(issuer.keys.signing_keys) == 2 and issuer.keys.next is not None
    case.prepare(issuer)  # idempotent
    assert len(issuer.keys.signing_keys) == 2


def test_retired_key_case_uses_the_last_retired_key(issuer: Issuer) -> None:
    old = issuer.keys.active
    issuer.keys.promote()
    issuer.keys.retire()
    token = catalogue.get("retired_key").build(issuer, AUDIENCE)
    assert jwt.get_unverified_header(token)["kid"] == old.kid


def test_attacker_server_serves_and_records(issuer: Issuer, http: httpx.Client) -> None:
    token = catalogue.get("jku_attacker").build(issuer, AUDIENCE)
    jku = jwt.get_unverified_header(token)["jku"]
    attacker = issuer.attacker
    assert not attacker.was_fetched()
    # What a vulnerable backend would do: fetch the jku and verify with it. It works, which is the point.
    jwks = http.get(jku, headers={"User-Agent": "vulnerable/1"}).json()
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    assert jwt.decode(token, key.key, algorithms=["RS256"], audience=AUDIENCE)["typ"] == "Bearer"
    assert attacker.was_fetched("jku_attacker") and not attacker.was_fetched("x5u_attacker")
    assert attacker.hits[0].user_agent == "vulnerable/1"
    x5u = jwt.get_unverified_header(catalogue.get("x5u_attacker").build(issuer, AUDIENCE))["x5u"]
    assert http.get(x5u).text.startswith("-----BEGIN CERTIFICATE-----")
    attacker.reset()
    assert not attacker.was_fetched()
    port = attacker._server.port
    issuer.stop()
    from makrx_contracts.harness.ports import port_is_bound

    assert not port_is_bound(port)


def test_bad_tokens_accessor(issuer: Issuer) -> None:
    bad = BadTokens(issuer, AUDIENCE)
    assert len(bad) == len(CATALOGUE)
    token = bad("kid_missing_several_keys")  # prepares the issuer itself
    assert "kid" not in jwt.get_unverified_header(token) and len(issuer.keys.signing_keys) == 2
    assert bad.case("expired").verdict.name == "reject"
    assert "none" in " ".join(bad.names(tag="none"))
    es = BadTokens(Issuer(algorithm="ES256", public_base_url="http://kc.test"))
    assert "ps256_real_key" not in es.names()


@pytest.mark.parametrize("case", [c for c in CATALOGUE if c.issuer_only], ids=lambda c: c.name)
def test_a_should_case_is_one_only_the_issuer_could_have_signed(case: catalogue.Case, module_issuer: Issuer) -> None:
    """The level rule: a SHOULD case's token is signed by the realm's own active key and is not expired,
    so accepting it lets in no one the issuer did not mean; every other case stays MUST."""
    if not case.applies(module_issuer):
        return
    case.prepare(module_issuer)
    token = case.build(module_issuer, AUDIENCE)
    head, payload, signature = token.split(".")
    active = module_issuer.keys.active.public_key
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    assert any(
        verify_signature(alg, active, f"{head}.{payload}".encode(), raw) for alg in ("RS256", "RS512", "PS256", "ES256")
    ), f"{case.name} is not signed by the active key"
    # First member wins: payload_duplicate_exp's far-future exp comes before its past one.
    claims = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)),
        object_pairs_hook=lambda pairs: dict(reversed(pairs)),
    )
    assert claims["iss"] == module_issuer.issuer_url
    assert not isinstance(claims.get("exp"), int | float) or claims["exp"] > time.time()
    assert case.level == "SHOULD" and case.verdict is not ACCEPT


def test_must_cases_are_the_rest() -> None:
    assert {c.level for c in CATALOGUE if not c.issuer_only} == {"MUST"}
    assert {c.name for c in CATALOGUE if c.issuer_only} >= {"exp_string", "exp_missing", "crit_unknown", "kid_unknown"}
