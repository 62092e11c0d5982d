"""Hypothesis strategies that mutate a valid token and say whether the mutation leaves it valid.

Two layers, so a strategy can be built at import time while the issuer is a fixture:
``mutation_plans()`` draws a :class:`MutationPlan` (pure data: an operation and its arguments; shrinks
well), and ``plan.apply(issuer, audience)`` makes the :class:`Mutation` (the token and its verdict).
``mutated_tokens(issuer, audience)`` combines both. The operations, registered per kind (``header``,
``claims``, ``signature``, ``encoding``), are gathered in :mod:`.mutation_kinds` and forge their tokens
with :class:`.forge.Forge`. Every token is printable ASCII, so it fits an HTTP header.

A contract: ``valid=False`` → the backend must answer 401; ``valid=True`` → never 5xx, and 2xx is allowed
(``ambiguous=True`` marks tokens either answer suits: valid ones a strict backend may still refuse, e.g. a
missing ``typ``, and oddities only the issuer could have produced — its own key, unexpired, meant for us —
such as a removed exp or an unknown crit, which a lenient backend may accept; the catalogue's SHOULD cases
judge that strictness). ``valid=False`` is kept for what lets in a token the issuer did not mean for us.
Mutations never touch roles, so a valid mutation cannot turn into a 403.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from ._jose import b64url_decode
from .forge import Forge
from .mutation_kinds import KINDS, OPS

if TYPE_CHECKING:
    from .server import Issuer

__all__ = ["KINDS", "Mutation", "MutationPlan", "mutated_tokens", "mutation_plans", "sample"]


@dataclass(frozen=True)
class Mutation:
    """A mutated token and what a correct backend does with it."""

    token: str
    valid: bool
    ambiguous: bool
    kind: str
    operation: str
    description: str
    plan: MutationPlan | None = field(default=None, repr=False, compare=False)

    @property
    def expected(self) -> str:
        if not self.valid:
            return "401"
        return "2xx or 401 (never 5xx)" if self.ambiguous else "2xx (401 tolerated; never 5xx)"

    def redacted(self) -> str:
        """The mutation for a failure message: header and payload decoded, the signature cut short."""
        parts = self.token.split(".")
        shown = []
        for i, part in enumerate(parts):
            if i == 2 and len(parts) == 3:
                shown.append(f"<signature {len(part)} chars: {part[:6]}…>")
                continue
            try:
                text = b64url_decode(part).decode("utf-8")
            except ValueError:  # binascii.Error and UnicodeError are ValueErrors: not text, shown raw
                text = part
            shown.append(text if len(text) <= 240 else text[:240] + "…")
        return f"{self.kind}/{self.operation}: {self.description}\n  token: " + " . ".join(shown)


@dataclass(frozen=True)
class MutationPlan:
    """An operation and its drawn arguments; ``apply`` makes the token against a live issuer."""

    kind: str
    operation: str
    args: tuple[Any, ...]

    def apply(self, issuer: Issuer, audience: str | None = None, roles: Sequence[str] | None = None) -> Mutation:
        token, valid, ambiguous, description = OPS[self.operation].fn(Forge(issuer, audience, roles), *self.args)
        return Mutation(token, valid, ambiguous, self.kind, self.operation, description, self)

    def __repr__(self) -> str:
        return f"MutationPlan({self.operation}{self.args!r})"


def mutation_plans(kinds: Sequence[str] = KINDS) -> st.SearchStrategy[MutationPlan]:
    """Plans over the given kinds (all by default); no issuer needed, so usable in ``@given`` at import time."""
    ops = [op for op in OPS.values() if op.kind in kinds]
    if not ops:
        raise ValueError(f"no mutation operations for kinds {kinds!r}; use some of {KINDS}")
    return st.sampled_from(ops).flatmap(lambda op: op.args.map(lambda args: MutationPlan(op.kind, op.name, args)))


def mutated_tokens(
    issuer: Issuer, audience: str | None = None, kinds: Sequence[str] = KINDS
) -> st.SearchStrategy[Mutation]:
    """Mutations of a fresh valid token for ``audience`` (use inside a test via ``data.draw(...)``)."""
    return mutation_plans(kinds).map(lambda plan: plan.apply(issuer, audience))


def sample(
    issuer: Issuer, audience: str | None = None, *, n: int = 50, seed: int = 0, kinds: Sequence[str] = KINDS
) -> list[Mutation]:
    """``n`` mutations, the same ones for the same ``seed`` (for parametrised contracts outside ``@given``)."""
    plans: list[MutationPlan] = []

    @hypothesis_seed(seed)
    @settings(
        max_examples=n, database=None, phases=[Phase.generate], deadline=None, suppress_health_check=list(HealthCheck)
    )
    @given(mutation_plans(kinds))
    def collect(plan: MutationPlan) -> None:
        plans.append(plan)

    collect()
    return [plan.apply(issuer, audience) for plan in plans[:n]]
