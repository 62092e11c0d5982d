"""The xdist scheduler reads each contract module's `long` mark from its source, as the controller must."""

from __future__ import annotations

import importlib

import pytest
from makrx_contracts.harness.scheduler import long_rank
from makrx_contracts.harness.suite import CONTRACTS_DIR


def _marked_rank(name: str) -> int:
    module = importlib.import_module(f"makrx_contracts.contracts.{name.removesuffix('.py')}")
    marks = getattr(module, "pytestmark", [])
    marks = marks if isinstance(marks, list) else [marks]
    return next((mark.args[0] for mark in marks if isinstance(mark, pytest.MarkDecorator) and mark.name == "long"), 0)


def test_long_ranks_read_from_source_match_the_marks_the_modules_carry() -> None:
    """The rank the controller parses is the one each imported module carries; the hangs, the
    longest module and so the gate's critical path, rank highest."""
    names = sorted(path.name for path in CONTRACTS_DIR.glob("test_*.py"))
    seen = {name: _marked_rank(name) for name in names}
    assert seen == {name: long_rank(name) for name in names}
    ranked = sorted((rank, name) for name, rank in seen.items() if rank)
    assert ranked[-1][1] == "test_health_hangs.py" and len({rank for rank, _ in ranked}) == len(ranked) >= 5


def test_scopes_that_are_not_contract_modules_rank_zero() -> None:
    assert long_rank("backends/app") == 0 and long_rank("../test_rate_limit.py") == 0 and long_rank("nope.py") == 0
