"""A mutation operation: a function that forges one mutated token, the hypothesis strategy of its arguments,
and its kind.

An operation returns its token and how a correct backend treats it, ``(token, valid, ambiguous, description)``;
see :mod:`.mutations` for what the labels promise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

__all__ = ["Op", "Outcome"]

Outcome = tuple[str, bool, bool, str]
"""``(token, valid, ambiguous, description)``."""

OpFn = Callable[..., Outcome]


@dataclass(frozen=True)
class Op:
    name: str
    kind: str
    args: st.SearchStrategy[tuple[Any, ...]]
    fn: OpFn

    @staticmethod
    def collector(kind: str, ops: list[Op]) -> Callable[..., Callable[[OpFn], OpFn]]:
        """``@collect(*arg_strategies)``: append the decorated function to ``ops`` as an operation of ``kind``,
        named after it without its leading underscores. ``ops`` keeps definition order, which sampling follows."""

        def collect(*arg_strategies: st.SearchStrategy[Any]) -> Callable[[OpFn], OpFn]:
            def register(fn: OpFn) -> OpFn:
                ops.append(Op(fn.__name__.lstrip("_"), kind, st.tuples(*arg_strategies), fn))
                return fn

            return register

        return collect
