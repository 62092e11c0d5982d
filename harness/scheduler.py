"""How contracts are handed to xdist workers (`-n`, default `--dist load`).

One target: its modules are spread over the workers, longest first, each whole on one worker (so a
module's extra backend instances boot once). Several targets: each target's contracts go to one worker,
so every backend boots once, not once per worker. (xdist's own `loadgroup` relies on rewriting node ids,
which pytest 9.2 no longer allows.) Imported by the plugin's scheduler hook only, under xdist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

__all__ = ["LONG_MODULES", "ContractScheduling"]

LONG_MODULES = ("test_rate_limit.py", "test_auth_jwks_outage.py", "test_auth_keys.py", "test_auth.py")
"""Modules whose contracts wait on the conventions' timers (JWKS TTL, refetch cooldowns, Redis recovery),
longest first: the longest scopes under -n (bench/bench_gate.py), handed out first so none starts last."""


def _length(scope: str) -> int:
    name = scope.rpartition("/")[2]
    return len(LONG_MODULES) - LONG_MODULES.index(name) if name in LONG_MODULES else 0


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
