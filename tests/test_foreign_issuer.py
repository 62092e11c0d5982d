"""Backends that validate tokens by calling the issuer (tests/foreign/): the caching contract counts those calls."""

from __future__ import annotations

import json
from pathlib import Path

from tests.foreign import foreign_backend
from tests.suite_runner import run_suite


def test_userinfo_on_every_request_is_not_a_cache(tmp_path: Path) -> None:
    """It never fetches the JWKS, so a count of JWKS fetches alone would pass it; every issuer call counts,
    and the verdict names the endpoint and how often it was called."""
    app = foreign_backend("userinfo-per-request").build(tmp_path)
    result = run_suite(app, tmp_path, "-k", "test_the_jwks_is_cached")
    assert result.failed == {"AUTH-JWKS-CACHED"}, result.output
    # The run's output tail is mostly backend log; the scorecard holds each case's verdict.
    reasons = {
        case["nodeid"]: case["reason"]
        for contract in json.loads((tmp_path / "scorecard.json").read_text())["contracts"]
        for case in contract["cases"]
    }
    valid = reasons["contracts/test_auth_keys.py::test_the_jwks_is_cached[valid]"]
    assert "called Keycloak 20 times (userinfo)" in valid, reasons
    assert "received: userinfo: 20 calls for 20 requests" in valid, reasons
