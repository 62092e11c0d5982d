"""How contracts are handed to xdist workers (`-n`, default `--dist load`).

One target: its modules are spread over the workers, longest first, each whole on one worker (so a
module's extra backend instances boot once). Several targets: each target's contracts go to one worker,
so every backend boots once, not once per worker. (xdist's own `loadgroup` relies on rewriting node ids,
which pytest 9.2 no longer allows.) Imported by the plugin's scheduler hook only, under xdist.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Sequence
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

from .suite import CONTRACTS_DIR

__all__ = ["ContractScheduling", "long_rank"]


@functools.cache
def long_rank(module: str) -> int:
    """The rank a contract module's ``pytest.mark.long(rank)`` gives it, 0 without one. The controller
    collects nothing, so the mark is read from the module's source: importing the modules here would cost
    the controller what the workers pay already (schemathesis, hypothesis...)."""
    path = CONTRACTS_DIR / module
    if path.parent != CONTRACTS_DIR or not path.is_file():
        return 0
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "long"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, int)
        ):
            return node.args[0].value
    return 0


def _length(scope: str) -> int:
    return long_rank(scope.rpartition("/")[2])


class ContractScheduling(LoadScopeScheduling):  # type: ignore[misc]  # xdist ships no type hints
    """Scopes are modules (one target) or targets (a matrix, labelled ``labels``); the longest goes first."""

    def __init__(self, config: pytest.Config, log: Any, labels: Sequence[str]) -> None:
        super().__init__(config, log)
        self.labels = sorted(labels, key=len, reverse=True)  # `a/app` before `app`

    def _split_scope(self, nodeid: str) -> str:
        if len(self.labels) == 1:
            return nodeid.partition("::")[0]
        params = nodeid.partition("[")[2]  # the target's id leads the parametrisation ids
        return next((label for label in self.labels if params == f"{label}]" or params.startswith(f"{label}-")), nodeid)

    def _assign_work_unit(self, node: Any) -> None:
        longest = max(self.workqueue, key=_length)
        self.workqueue.move_to_end(longest, last=False)
        super()._assign_work_unit(node)
