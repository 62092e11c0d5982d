"""The issuer fixtures work in any pytest run, without a target (SPEC §3, "usable on its own")."""

from __future__ import annotations

import pytest


def test_fixtures_without_a_target(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import httpx, jwt

        def test_mint_and_verify(makrx_issuer, make_token, bad_token):
            token = make_token(roles=("admin",))
            jwks = httpx.get(makrx_issuer.jwks_url).json()
            key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
            claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=makrx_issuer.default_audience,
                                issuer=makrx_issuer.issuer_url)
            assert "admin" in claims["realm_access"]["roles"]
            assert bad_token("expired") != token
    """)
    pytester.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=1)


def test_contract_fixtures_skip_without_a_target(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_needs_target(makrx_target):
            pass
    """)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no target: pass --makrx-target*"])
