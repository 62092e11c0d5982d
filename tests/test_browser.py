"""The browser family is CORS's ground truth: headless Chromium passes the reference app, and fails every
CORS broken variant a browser can notice (the others say why it cannot)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.suite_runner import run_suite
from tests.variants import Variant, load_variants

CORS_VARIANTS = [v for v in load_variants() if v.violates.startswith("CORS-")]

# Variants a page's fetch() cannot tell apart from a correct backend, and why.
UNNOTICED = {
    "no-vary-origin": "a missing Vary: Origin poisons shared caches; one browser talking to the backend sees "
    "the right headers",
    "cors-preflight-rate-limited": "only a client already over its rate limit sees its preflight refused "
    "(CORS-PREFLIGHT-NOT-LIMITED sets that up; the browser family does not)",
}


def _browser_ready() -> None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing = "Playwright (pip install 'makrx-contracts[browser]')"
    else:
        missing = (
            "" if shutil.which("chromium") or os.environ.get("MAKRX_BROWSER") else "Chromium (apt-get install chromium)"
        )
    if missing:
        if os.environ.get("MAKRX_REQUIRE_BROWSER"):
            pytest.fail(f"MAKRX_REQUIRE_BROWSER is set but {missing} is missing")
        pytest.skip(f"the browser family needs {missing}")


def test_the_reference_app_passes_the_browser_family(tmp_path: Path) -> None:
    _browser_ready()
    result = run_suite("reference", tmp_path, "-m", "browser")
    assert result.outcomes and result.failed == set(), result.output
    assert result.ids_with("skipped") == set(), result.output
    assert result.returncode == 0, result.output


@pytest.mark.parametrize("variant", CORS_VARIANTS, ids=[v.name for v in CORS_VARIANTS])
def test_a_browser_notices_a_cors_variant(variant: Variant, tmp_path: Path) -> None:
    _browser_ready()
    result = run_suite(variant.build(tmp_path), tmp_path, "-m", "browser")
    browser_failed = result.failed & {"CORS-BROWSER", "CORS-BROWSER-REQUEST-ID"}
    if variant.name in UNNOTICED:
        assert not browser_failed, f"{variant.name} is listed as unnoticed but the browser noticed it"
    else:
        assert browser_failed, f"{variant.name} ({variant.violates}) passes in a real browser:\n{result.output}"


def test_every_unnoticed_variant_exists() -> None:
    assert set(UNNOTICED) <= {v.name for v in CORS_VARIANTS}
