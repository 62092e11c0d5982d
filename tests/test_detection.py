"""Every contract can fail: each broken variant is caught by its own contract and by no other,
and the reference app passes every contract with nothing skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.suite_runner import run_suite
from tests.variants import Variant, load_variants

VARIANTS = load_variants()


def test_the_reference_app_passes_every_contract_unskipped(tmp_path: Path) -> None:
    result = run_suite("reference", tmp_path)
    assert result.returncode == 0, result.output
    assert result.outcomes, "no contract ran\n" + result.output
    assert result.failed == set(), result.output
    assert result.ids_with("skipped") == set(), f"skipped on the reference app:\n{result.output}"


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_a_broken_variant_is_caught_by_its_own_contract_only(variant: Variant, tmp_path: Path) -> None:
    app = variant.build(tmp_path)
    result = run_suite(app, tmp_path)
    assert variant.violates in result.outcomes, f"{variant.violates} did not run:\n{result.output}"
    assert result.failed == {variant.violates}, (
        f"{variant.name} should be caught by {variant.violates} alone; failed: {sorted(result.failed)}\n"
        + result.output)
    assert result.returncode == 1
