"""The baseline ratchet: failures recorded in an earlier scorecard JSON are `known` and do not fail the run;
a new failure does; a recorded failure that now passes is `fixed` (and fails under --makrx-strict, so a
baseline only shrinks).

A failure is matched by target, contract id and case (the test's parameters, without the target's), never
by message text: a reworded message keeps its baseline entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .report import Scorecard

__all__ = ["FIXED", "KNOWN", "RECORDED", "Baseline", "Key", "case_of", "key_text", "rewrite"]

KNOWN = "known"
FIXED = "fixed"
RECORDED = frozenset({"failed", "error", "expired-waiver", "warned", KNOWN})
"""Outcomes a baseline records: everything that is not a pass, a skip or a waiver (a waiver wins)."""

Key = tuple[str, str, str]
"""(target, contract id, case): ``("reference", "AUTH-BAD-TOKEN", "alg_none")``; case "" when unparametrised."""


def key_text(key: Key) -> str:
    """``reference: AUTH-BAD-TOKEN[alg_none]``."""
    target, contract, case = key
    return f"{target}: {contract}{f'[{case}]' if case else ''}"


def case_of(callspec_id: str | None, target: str) -> str:
    """A test's case: its parametrisation id without the target's part (present in a matrix run only)."""
    if not callspec_id or callspec_id == target:
        return ""
    if callspec_id.startswith(f"{target}-"):
        return callspec_id[len(target) + 1 :]
    if callspec_id.endswith(f"-{target}"):
        return callspec_id[: -len(target) - 1]
    return callspec_id


@dataclass(frozen=True)
class Baseline:
    """The failures an earlier run recorded, and the scorecard JSON they came from."""

    path: Path
    keys: frozenset[Key]
    document: dict[str, Any]

    @classmethod
    def load(cls, path: Path, *, missing_ok: bool = False) -> Baseline:
        """Read a scorecard JSON (`--makrx-report=FILE.json`); ``missing_ok`` for a first `--makrx-baseline-update`."""
        if not path.is_file():
            if missing_ok:
                return cls(path, frozenset(), {"contracts": []})
            raise ConfigError(
                f"--makrx-baseline file {path} does not exist",
                fix="write one with --makrx-baseline-update (or --makrx-report=FILE.json)",
            )
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            keys = frozenset(_recorded(document))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"--makrx-baseline file {path} is not a makrx scorecard JSON ({exc})",
                fix="pass the .json a run wrote with --makrx-report, or rewrite it with --makrx-baseline-update",
            ) from None
        return cls(path, keys, document)

    def __contains__(self, key: Key) -> bool:
        return key in self.keys

    def targets(self) -> set[str]:
        return {target for target, _, _ in self.keys}


def _recorded(document: dict[str, Any]) -> list[Key]:
    keys = []
    for contract in document["contracts"]:
        for case in contract["cases"]:
            if case["outcome"] in RECORDED:
                keys.append(
                    (
                        str(case["target"]),
                        str(case["contract"]),
                        str(case.get("case", case_of(_nodeid_params(case["nodeid"]), case["target"]))),
                    )
                )
    return keys


def _nodeid_params(nodeid: str) -> str | None:
    """`path::test[a-b]` -> `a-b` (scorecards written before rows carried their case)."""
    _, bracket, rest = nodeid.partition("[")
    return rest[:-1] if bracket and rest.endswith("]") else None


def merged(baseline: Baseline, today: dict[str, Any], ran: set[tuple[str, str]]) -> dict[str, Any]:
    """Today's scorecard JSON, plus the baseline's contracts this run did not run (a `-k` run updates only
    what it judged)."""
    kept = [c for c in baseline.document.get("contracts", []) if (c["target"], c["contract"]) not in ran]
    return {**today, "contracts": today["contracts"] + kept}


def diff(before: frozenset[Key], after: frozenset[Key]) -> tuple[list[str], list[str]]:
    """(added, removed) lines for `--makrx-baseline-update`."""
    return ([key_text(k) for k in sorted(after - before)], [key_text(k) for k in sorted(before - after)])


def recorded_keys(document: dict[str, Any]) -> frozenset[Key]:
    return frozenset(_recorded(document))


def rewrite(baseline: Baseline, scorecard: Scorecard) -> list[str]:
    """Rewrite the baseline with this run's failures (keeping what the run did not judge); one line per
    failure added or removed, so none is added silently."""
    ran = {(row.target, row.contract) for row in scorecard.rows.values()}
    document = merged(baseline, scorecard.to_json(), ran)
    baseline.path.parent.mkdir(parents=True, exist_ok=True)
    baseline.path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    added, removed = diff(baseline.keys, recorded_keys(document))
    return (
        [f"baseline {baseline.path}: added {line}" for line in added]
        + [f"baseline {baseline.path}: removed {line}" for line in removed]
        + [f"baseline {baseline.path} rewritten: {len(added)} added, {len(removed)} removed"]
    )
