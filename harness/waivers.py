"""How a contract's failure is settled: waived (a valid waiver of the target's settings), known (the
baseline records it), warned (a SHOULD contract without --makrx-strict), or failed; and the notes on
waivers that expired or no longer waive anything."""

from __future__ import annotations

import warnings

import pytest

from . import stash
from .backend.settings import Waiver
from .baseline import FIXED, KNOWN
from .contract import SHOULD, ContractViolation, contract_of
from .report import WAIVED, WARNED, Scorecard

__all__ = [
    "MakrxShouldWarning",
    "MakrxWaivedWarning",
    "expired_waivers",
    "in_baseline",
    "settle_failure",
    "settle_pass",
    "stale_waivers",
]


class MakrxShouldWarning(UserWarning):
    """A SHOULD-level contract failed; reported, but fails the run only under --makrx-strict."""


class MakrxWaivedWarning(UserWarning):
    """A contract failed under a waiver of the target's settings; reported, not failed."""


def _waiver_for(item: pytest.Item, contract: str) -> Waiver | None:
    spec = stash.spec_of(item)
    return next((w for w in spec.settings.waivers if w.contract == contract), None) if spec else None


def in_baseline(item: pytest.Item) -> bool:
    """Whether the run's baseline records this item's (target, contract, case) as failing."""
    baseline = item.config.stash.get(stash.BASELINE, None)
    if baseline is None or contract_of(item) is None:
        return False
    props = dict(item.user_properties)
    return (str(props["makrx_target"]), str(props["contract_id"]), str(props["makrx_case"])) in baseline


def settle_failure(item: pytest.Item, exc: Exception, baselined: bool) -> bool:
    """True when the failure is settled as waived, known or warned (recorded on the item); False when it
    fails the run (an expired waiver's note is added to the message)."""
    info = contract_of(item)
    if info is None:
        return False
    title = exc.title if isinstance(exc, ContractViolation) else (str(exc).splitlines() or [repr(exc)])[0]
    waiver = _waiver_for(item, info.id)
    violated = isinstance(exc, AssertionError)  # anything else (no answer, a crash) is no SHOULD's warning
    if violated and waiver is not None and not waiver.expired():
        item.user_properties += [
            ("makrx_outcome", WAIVED),
            ("makrx_reason", f"{title} (waived until {waiver.expires}: {waiver.reason})"),
        ]
        warnings.warn(MakrxWaivedWarning(f"{info.id} waived until {waiver.expires}: {title}"), stacklevel=1)
        return True
    if baselined and waiver is None:  # a waiver wins, also once expired
        item.user_properties += [("makrx_outcome", KNOWN), ("makrx_reason", f"{title} (known: in the baseline)")]
        return True
    if not violated:
        return False
    if info.level is SHOULD and not item.config.stash[stash.CONFIG].strict:
        item.user_properties += [("makrx_outcome", WARNED), ("makrx_reason", title)]
        warnings.warn(MakrxShouldWarning(f"{info.id} [SHOULD] {title}"), stacklevel=1)
        return True
    if waiver is not None:
        exc.args = (f"{exc.args[0] if exc.args else ''}\n\n(waiver expired on {waiver.expires}: {waiver.reason})",)
    return False


def settle_pass(item: pytest.Item, baselined: bool) -> None:
    """A pass the baseline records as a failure is `fixed`."""
    if baselined:
        item.user_properties += [
            ("makrx_outcome", FIXED),
            ("makrx_reason", "fixed — update the baseline (--makrx-baseline-update)"),
        ]


def expired_waivers(config: pytest.Config) -> list[str]:
    return [
        f"{spec.display}: waiver for {w.contract} expired on {w.expires} ({w.reason})"
        for spec in config.stash.get(stash.SPECS, [])
        for w in spec.settings.waivers
        if w.expired()
    ]


def stale_waivers(config: pytest.Config, scorecard: Scorecard) -> list[str]:
    results = {(t, c): Scorecard.verdict(rows).outcome for (t, _, c), rows in scorecard.by_contract().items()}
    return [
        f"{spec.display}: waiver for {w.contract} is stale, the contract passes"
        for spec in config.stash.get(stash.SPECS, [])
        for w in spec.settings.waivers
        if results.get((spec.display, w.contract)) == "passed"
    ]
