"""Every contract can fail: each broken variant is caught by its own contract and by no other,
and the reference app passes every contract with nothing skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.suite_runner import run_suite
from tests.variants import Variant, load_variants

VARIANTS = load_variants()


def _catalogue() -> list[object]:
    """Every variant; the first of each contract family runs by default, the rest carry the `detection`
    marker (the full catalogue takes ~20 min on 2 cores: `pytest -m detection`, run by .ci/run)."""
    seen: set[str] = set()
    params = []
    for variant in VARIANTS:
        family = variant.violates.split("-", 1)[0]
        marks = () if family not in seen else (pytest.mark.detection,)
        seen.add(family)
        params.append(pytest.param(variant, id=variant.name, marks=marks))
    return params


def test_the_reference_app_passes_every_contract_unskipped(tmp_path: Path) -> None:
    result = run_suite("reference", tmp_path)
    assert result.returncode == 0, result.output
    assert result.outcomes, "no contract ran\n" + result.output
    assert result.failed == set(), result.output
    assert result.ids_with("skipped") == set(), f"skipped on the reference app:\n{result.output}"
    assert not result.unjudged, "\n".join(result.unjudged)


@pytest.mark.parametrize("variant", _catalogue())
def test_a_broken_variant_is_caught_by_its_own_contract_only(variant: Variant, tmp_path: Path) -> None:
    app = variant.build(tmp_path)
    result = run_suite(app, tmp_path)
    assert variant.violates in result.outcomes, f"{variant.violates} did not run:\n{result.output}"
    assert result.failed == {variant.violates}, (
        f"{variant.name} should be caught by {variant.violates} alone; failed: {sorted(result.failed)}\n"
        + result.output
    )
    # A skip whose owner did not fail is a failure of its own (scorecard and exit code; junit says skipped).
    assert not result.unjudged, "\n".join(result.unjudged)
    assert result.returncode == 1


def declared_contracts() -> dict[str, str]:
    """Every contract id the suite declares (from the `contract` markers), with its test function."""
    import importlib
    import pkgutil

    import makrx_contracts.contracts as contracts

    found: dict[str, str] = {}
    for module_info in pkgutil.iter_modules(contracts.__path__):
        if not module_info.name.startswith("test_"):
            continue
        module = importlib.import_module(f"makrx_contracts.contracts.{module_info.name}")
        for name, func in vars(module).items():
            for mark in getattr(func, "pytestmark", []) if name.startswith("test_") else []:
                if mark.name == "contract":
                    found[mark.args[0]] = f"{module_info.name}.{name}"
    return found


def test_every_contract_has_a_broken_variant() -> None:
    declared = declared_contracts()
    assert len(declared) >= 30, declared
    # The browser family's variants are the CORS ones: tests/test_browser.py runs them against it.
    covered = {variant.violates for variant in VARIANTS} | {"CORS-BROWSER", "CORS-BROWSER-REQUEST-ID"}
    missing = sorted(set(declared) - covered)
    assert not missing, f"contracts no broken variant proves able to fail: {missing}"
    unknown = sorted(covered - set(declared))
    assert not unknown, f"variants name contracts the suite does not declare: {unknown}"
