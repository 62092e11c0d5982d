"""Backends that keep the conventions in the shapes real teams build pass every contract with nothing
skipped: the suite discovers what it needs instead of guessing from the reference app's shape."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.suite_runner import run_suite
from tests.variants import Variant

SHAPES_DIR = Path(__file__).resolve().parent / "shapes"
SHAPES = [
    Variant(path.stem, "", tomllib.loads(path.read_text()).get("description", ""), tomllib.loads(path.read_text()))
    for path in sorted(SHAPES_DIR.glob("*.toml"))
]


@pytest.mark.parametrize("shape", SHAPES, ids=[shape.name for shape in SHAPES])
def test_a_conformant_backend_of_another_shape_passes_unskipped(shape: Variant, tmp_path: Path) -> None:
    result = run_suite(shape.build(tmp_path), tmp_path)
    assert result.outcomes, "no contract ran\n" + result.output
    assert result.failed == set(), f"{shape.name}: {shape.description}\n{result.output}"
    assert result.ids_with("skipped") == set(), f"skipped on {shape.name}:\n{result.output}"
    assert not result.unjudged, "\n".join(result.unjudged)
    assert result.returncode == 0, result.output


def test_discover_prints_a_settings_block_that_pins_what_was_found(tmp_path: Path) -> None:
    """`--makrx-discover` on the all-behind-auth shape prints valid `[tool.makrx-contract]` TOML naming the
    probe, the rate-limit path and the scope-derived role rule; read back as settings it means the same."""
    from makrx_contracts.harness.backend.settings import RoleRule, load_settings

    shape = next(shape for shape in SHAPES if shape.name == "all-behind-auth")
    result = run_suite(shape.build(tmp_path), tmp_path, "--makrx-discover", "-v")
    assert result.returncode == 0, result.output
    assert (
        "settings: none (no makrx-contract.toml or [tool.makrx-contract]); found by asking the backend "
        "(listed at the end): auth_probe, rate_limit_path, roles from OpenAPI scopes"
    ) in result.output
    block = result.output[result.output.index("\n[tool.makrx-contract]") + 1 :]
    block = block[: block.index("\nAUTH ")]
    (tmp_path / "pyproject.toml").write_text(block + "\n")
    settings = load_settings(tmp_path)
    assert settings.auth_probe == "GET /api/v1/items"
    assert settings.rate_limit_path == "GET /api/v1/items"
    assert settings.roles == (RoleRule("/api/v1/items/{item_id}", "DELETE", ("admin",)),)
    assert set(result.outcomes) == {"AUTH-VALID-TOKEN", "AUTH-ROLE-FORBIDDEN", "RATE-LIMIT"}, result.output
