"""Backends that keep the conventions in the shapes real teams build pass every contract with nothing
skipped: the suite discovers what it needs instead of guessing from the reference app's shape."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.suite_runner import run_suite
from tests.variants import Variant

SHAPES_DIR = Path(__file__).resolve().parent / "shapes"
SHAPES = [Variant(path.stem, "", tomllib.loads(path.read_text()).get("description", ""),
                  tomllib.loads(path.read_text())) for path in sorted(SHAPES_DIR.glob("*.toml"))]


@pytest.mark.parametrize("shape", SHAPES, ids=[shape.name for shape in SHAPES])
def test_a_conformant_backend_of_another_shape_passes_unskipped(shape: Variant, tmp_path: Path) -> None:
    result = run_suite(shape.build(tmp_path), tmp_path)
    assert result.outcomes, "no contract ran\n" + result.output
    assert result.failed == set(), f"{shape.name}: {shape.description}\n{result.output}"
    assert result.ids_with("skipped") == set(), f"skipped on {shape.name}:\n{result.output}"
    assert result.returncode == 0, result.output
