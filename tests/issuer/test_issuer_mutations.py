"""The hypothesis mutation strategy: deterministic, HTTP-safe, and its validity labels match a strict verifier."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from makrx_contracts.harness.issuer import Issuer
from makrx_contracts.harness.issuer._jose import TokenRejected
from makrx_contracts.harness.issuer.mutations import (
    KINDS,
    Mutation,
    MutationPlan,
    mutated_tokens,
    mutation_plans,
    sample,
)

from .conftest import AUDIENCE


@pytest.fixture(scope="module")
def shared_issuer() -> Iterator[Issuer]:
    with Issuer(seed=0, default_audience=AUDIENCE).start() as issuer:
        yield issuer


def _check(issuer: Issuer, mutation: Mutation) -> None:
    assert mutation.token.isascii() and all(32 <= ord(ch) < 127 for ch in mutation.token), mutation.redacted()
    try:
        issuer.verifier(AUDIENCE).verify(mutation.token, now=time.time())
        accepted = True
    except TokenRejected:
        accepted = False
    if not mutation.valid:
        assert not accepted, f"labelled invalid but a strict verifier accepts it:\n{mutation.redacted()}"
    elif not mutation.ambiguous:
        assert accepted, f"labelled valid but a strict verifier refuses it:\n{mutation.redacted()}"


@settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=mutation_plans())
def test_labels_match_a_strict_verifier(shared_issuer: Issuer, plan: MutationPlan) -> None:
    _check(shared_issuer, plan.apply(shared_issuer, AUDIENCE))


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_tokens_strategy_with_a_live_issuer(shared_issuer: Issuer, data: st.DataObject) -> None:
    mutation = data.draw(mutated_tokens(shared_issuer, AUDIENCE, kinds=("signature", "encoding")))
    assert mutation.kind in ("signature", "encoding")
    _check(shared_issuer, mutation)


def test_sample_is_deterministic_and_covers_every_kind(shared_issuer: Issuer) -> None:
    first = sample(shared_issuer, AUDIENCE, n=120, seed=7)
    again = sample(shared_issuer, AUDIENCE, n=120, seed=7)
    other = sample(shared_issuer, AUDIENCE, n=120, seed=8)

    def plans(ms: list[Any]) -> list[Any]:
        return [m.plan for m in ms]

    assert plans(first) == plans(again) != plans(other)
    assert {m.kind for m in first} == set(KINDS)
    assert any(not m.valid for m in first) and any(m.valid for m in first)
    for mutation in first:
        _check(shared_issuer, mutation)


def test_redacted_cuts_the_signature(shared_issuer: Issuer) -> None:
    mutation = MutationPlan("claims", "claim_typ", ("ID",)).apply(shared_issuer, AUDIENCE)
    text = mutation.redacted()
    assert '"typ":"ID"' in text and "<signature" in text and mutation.token.split(".")[2] not in text
    assert mutation.expected == "401"


@pytest.mark.parametrize(
    "plan",
    [
        MutationPlan("header", "header_crit", (("x-makrx",),)),
        MutationPlan("header", "header_kid", ("makrx-unknown",)),
        MutationPlan("claims", "claim_exp", (("missing", 0),)),
        MutationPlan("claims", "claim_exp", (("string", 600),)),
        MutationPlan("claims", "claim_time", ("iat", ("future", 3600))),
    ],
    ids=lambda plan: f"{plan.operation}{plan.args}",
)
def test_an_oddity_only_the_issuer_could_sign_allows_either_answer(shared_issuer: Issuer, plan: MutationPlan) -> None:
    """A strict verifier refuses these, a lenient one (python-jose) accepts them; both are right for
    AUTH-MUTATED-TOKEN (never 5xx), and AUTH-STRICT-TOKEN judges the strictness."""
    mutation = plan.apply(shared_issuer, AUDIENCE)
    assert mutation.valid and mutation.ambiguous
    with pytest.raises(TokenRejected):
        shared_issuer.verifier(AUDIENCE).verify(mutation.token, now=time.time())


@pytest.mark.parametrize(
    "plan",
    [
        MutationPlan("claims", "claim_exp", (("past", 3600),)),
        MutationPlan("claims", "claim_time", ("nbf", ("future", 3600))),
        MutationPlan("claims", "claim_aud", (("text", "other-api"),)),
        MutationPlan("header", "header_alg", ("none",)),
    ],
    ids=lambda plan: f"{plan.operation}{plan.args}",
)
def test_a_token_not_meant_for_us_must_be_refused(shared_issuer: Issuer, plan: MutationPlan) -> None:
    assert not plan.apply(shared_issuer, AUDIENCE).valid
