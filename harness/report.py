"""The conformance scorecard: area × contract × result, written as Markdown and JSON, and the
per-area summary line at the end of the terminal output. Built from test reports only, so it also
works under pytest-xdist (the controller sees reports, not items)."""

from __future__ import annotations

import json
import os
import re
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from . import timings
from .baseline import FIXED, KNOWN, Key
from .discovery import Finding, read, render_toml

__all__ = ["WAIVED", "WARNED", "Row", "Scorecard"]

WARNED = "warned"
WAIVED = "waived"
_ORDER = {
    "failed": 0,
    "error": 1,
    "expired-waiver": 2,
    WARNED: 3,
    KNOWN: 4,
    WAIVED: 5,
    "skipped": 6,
    FIXED: 7,
    "passed": 8,
}


@dataclass
class Row:
    """One test case of one contract on one target."""

    target: str
    area: str
    contract: str
    level: str
    nodeid: str
    outcome: str = "passed"
    reason: str = ""
    exchange: str = ""
    duration: float = 0.0
    case: str = ""  # the parametrisation without the target's part: what a baseline matches


@dataclass(eq=False)  # registered as a pytest plugin, which must be hashable
class Scorecard:
    """Collects rows from reports; renders the scorecard."""

    meta: dict[str, str] = field(default_factory=dict)
    rows: dict[str, Row] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    discovered: list[Finding] = field(default_factory=list)
    boot_errors: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    call_seconds: float = 0.0

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Registered as a plugin, so it sees every report (from xdist workers too)."""
        if report.when == "call":
            self.call_seconds += report.duration
        self.add(report)

    def add(self, report: pytest.TestReport) -> None:
        self.discovered += [found for found in read(report) if found not in self.discovered]
        props = dict(report.user_properties)
        if "makrx_provider" in props:  # what served the run, not the mode asked for (`auto`)
            self.meta["services"] = str(props["makrx_provider"])
            self.meta["services chosen because"] = str(props["makrx_provider_reason"])
        if "contract_id" not in props:
            return
        boot_error = props.get("makrx_boot_error")
        if boot_error is not None:
            target = str(props.get("makrx_target", ""))
            if target not in self.boot_errors:
                self.boot_errors[target] = str(boot_error)
                self.notes.append(f"{target or 'the target'} could not boot: {boot_error}")
        row = self.rows.setdefault(
            report.nodeid,
            Row(
                target=str(props.get("makrx_target", "")),
                area=str(props.get("contract_area", "")),
                contract=str(props["contract_id"]),
                level=str(props.get("contract_level", "MUST")),
                nodeid=report.nodeid,
                case=str(props.get("makrx_case", "")),
            ),
        )
        row.duration += report.duration
        if report.failed:
            row.outcome = "error" if report.when != "call" else "failed"
            text = report.longreprtext
            crash = getattr(report.longrepr, "reprcrash", None)
            row.reason = str(props.get("makrx_reason") or (crash.message if crash else _first_line(text)))
            row.exchange = _exchange_part(text)
        elif report.skipped and row.outcome == "passed":
            row.outcome = "skipped"
            row.reason = _skip_reason(report)
        elif report.when == "call" and props.get("makrx_outcome"):
            row.outcome = str(props["makrx_outcome"])
            row.reason = str(props.get("makrx_reason", ""))

    def fail_orphan_skips(self, known: frozenset[Key] = frozenset()) -> list[str]:
        """A contract may skip because another rule is already broken (`precondition: ... (see OWNER)`) only
        when OWNER fails in the same run; otherwise nothing judged it, and it fails itself (a SHOULD one
        warns; one in the ``known`` baseline is known). Returns one line per such contract."""
        ran = {(row.target, row.contract) for row in self.rows.values()}
        pointers = {
            row.nodeid: [owner for owner in _owners(row.reason) if (row.target, owner) in ran]
            for row in self.rows.values()
            if row.outcome == "skipped"
        }  # a deselected owner: no verdict
        # Owned: a contract that failed, or one that skipped pointing at an owned one (AUTH-ROLE-FORBIDDEN
        # skipped because AUTH-VALID-TOKEN failed owns what points at it in turn).
        owned = {
            (row.target, row.contract)
            for row in self.rows.values()
            if row.outcome in ("failed", "error", "expired-waiver", WARNED, WAIVED, KNOWN)
        }
        grew = True
        while grew:
            before = len(owned)
            owned |= {
                (row.target, row.contract)
                for row in self.rows.values()
                if any((row.target, owner) in owned for owner in pointers.get(row.nodeid, []))
            }
            grew = len(owned) > before
        lines = []
        for row in self.rows.values():
            owners = pointers.get(row.nodeid, [])
            if not owners or any((row.target, owner) in owned for owner in owners):
                continue
            row.outcome = (
                KNOWN if (row.target, row.contract, row.case) in known else "failed" if row.level == "MUST" else WARNED
            )
            row.reason = (
                f"not judged: {row.reason}, yet {' / '.join(owners)} did not fail in this run, so no "
                "contract owns this gap (the backend's shape kept the suite from provoking it)"
            )
            lines.append(f"{row.nodeid}: {row.reason}")
        return lines

    # ------------------------------------------------------------ summaries

    def by_contract(self) -> dict[tuple[str, str, str], list[Row]]:
        """(target, area, contract) -> its rows (parametrised cases)."""
        grouped: dict[tuple[str, str, str], list[Row]] = defaultdict(list)
        for row in self.rows.values():
            grouped[(row.target, row.area, row.contract)].append(row)
        return dict(sorted(grouped.items()))

    @staticmethod
    def verdict(rows: list[Row]) -> Row:
        """A contract's result is that of its worst case."""
        return min(rows, key=lambda r: _ORDER.get(r.outcome, 9))

    def area_lines(self) -> list[str]:
        """One line per target and area, e.g. `AUTH 17/19 MUST ok, 2 failed`."""
        counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for (target, area, _), rows in self.by_contract().items():
            worst = self.verdict(rows)
            bucket = counts[(target, area)]
            bucket[f"{worst.level}-total"] += 1
            bucket[f"{worst.level}-{worst.outcome}"] += 1
        lines = []
        for (target, area), c in sorted(counts.items()):
            must = c["MUST-total"]
            parts = [f"{c['MUST-passed']}/{must} MUST ok"] if must else []
            if c["SHOULD-total"]:
                parts.append(f"{c['SHOULD-passed']}/{c['SHOULD-total']} SHOULD ok")
            for outcome in ("failed", "error", WARNED, KNOWN, WAIVED, FIXED, "skipped"):
                n = c[f"MUST-{outcome}"] + c[f"SHOULD-{outcome}"]
                if n:
                    parts.append(f"{n} {outcome}")
            prefix = f"{target}: " if len({t for t, _ in counts}) > 1 else ""
            lines.append(f"{prefix}{area} " + ", ".join(parts))
        return lines

    def timings(self) -> dict[str, dict[str, float]]:
        """Harness phases of this process (an xdist controller starts none) and the contracts' own calls."""
        return {**timings.snapshot(), "test calls": {"total_s": round(self.call_seconds, 3)}}

    def to_json(self) -> dict[str, object]:
        return {
            "meta": {**self.meta, "duration_s": round(time.monotonic() - self.started, 2)},
            # Phases of this process (the xdist controller starts none: see harness/timings.py).
            "timings": self.timings(),
            "notes": self.notes,
            # target -> why it could not boot; a lone target's run stops before any row (harness/merge.py).
            "boot_errors": self.boot_errors,
            "discovered": [asdict(found) for found in self.discovered],
            "contracts": [
                {
                    "target": t,
                    "area": a,
                    "contract": c,
                    "level": self.verdict(rows).level,
                    "result": self.verdict(rows).outcome,
                    "reason": self.verdict(rows).reason,
                    "cases": [asdict(r) for r in rows],
                }
                for (t, a, c), rows in self.by_contract().items()
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scorecard:
        """The scorecard another process wrote with `to_json` (a CI job's: harness/merge.py); malformed data
        raises KeyError, TypeError or ValueError. Its phase timings stay in ``data``: `timings()` is always
        this process's."""
        rows = [Row(**case) for contract in data["contracts"] for case in contract["cases"]]
        duration = float(data["meta"]["duration_s"])
        return cls(
            meta={str(key): str(value) for key, value in data["meta"].items() if key != "duration_s"},
            rows={row.nodeid: row for row in rows},
            notes=[str(note) for note in data["notes"]],
            discovered=[Finding(**found) for found in data["discovered"]],
            boot_errors={str(target): str(error) for target, error in data.get("boot_errors", {}).items()},
            # Started that long ago, so the Markdown and JSON keep the run's own duration.
            started=time.monotonic() - duration,
            call_seconds=float(data["timings"]["test calls"]["total_s"]),
        )

    def to_markdown(self) -> str:
        meta = self.meta
        out = ["## MakrX contract scorecard", ""]
        out.append(" · ".join(f"**{k}** {v}" for k, v in meta.items()))
        spent = [f"{name} {t['total_s']:.1f} s" for name, t in self.timings().items()]
        out += ["", f"**time** {time.monotonic() - self.started:.1f} s: " + ", ".join(spent)]
        out += ["", *[f"- {line}" for line in self.area_lines()], ""]
        out += [f"> {note}" for note in self.notes]
        if self.discovered:
            out += ["", "Discovered settings:", "", "```toml", *render_toml(self.discovered), "```"]
        targets = sorted({row.target for row in self.rows.values()})
        grouped = self.by_contract()
        if len(targets) > 1:
            out += [
                "### Matrix",
                "",
                "| contract | level | " + " | ".join(targets) + " |",
                "|---|---|" + "---|" * len(targets),
            ]
            contracts = sorted({(a, c) for (_, a, c) in grouped})
            for area, contract in contracts:
                cells = []
                level = ""
                for target in targets:
                    rows = grouped.get((target, area, contract))
                    if rows:
                        worst = self.verdict(rows)
                        level = worst.level
                        cells.append(_icon(worst.outcome))
                    else:
                        cells.append("–")
                out.append(f"| {contract} | {level} | " + " | ".join(cells) + " |")
            out.append("")
        out += [
            "### Results",
            "",
            "| target | area | contract | level | result | reason |",
            "|---|---|---|---|---|---|",
        ]
        for target, error in self.boot_errors.items():
            out.append(f"| {target} | – | – | – | 💥 could not boot | {error[:200]} |")
        for (target, area, contract), rows in grouped.items():
            if target in self.boot_errors:
                continue
            worst = self.verdict(rows)
            reason = worst.reason.replace("|", "\\|").replace("\n", " ")[:200]
            out.append(f"| {target} | {area} | {contract} | {worst.level} | {_icon(worst.outcome)} | {reason} |")
        failures = [
            self.verdict(rows)
            for (target, _, _), rows in grouped.items()
            if target not in self.boot_errors
            and self.verdict(rows).outcome in ("failed", "error", WARNED)
            and self.verdict(rows).exchange
        ]
        if failures:
            out += ["", "### What showed each failure", ""]
            for row in failures:
                out += [
                    f"<details><summary>{row.contract} on {row.target}: {row.reason[:120]}</summary>",
                    "",
                    "```",
                    row.exchange[:4000],
                    "```",
                    "",
                    "</details>",
                ]
        return "\n".join(out) + "\n"

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".json":
            path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        else:
            path.write_text(self.to_markdown())

    def publish(self, path: Path | None) -> None:
        """Write the report (Markdown and/or JSON) and, in GitHub Actions, append it to the step summary."""
        if path is not None:
            self.write(path)
            sibling = path.with_suffix(".json" if path.suffix != ".json" else ".md")
            self.write(sibling)
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            with open(summary, "a", encoding="utf-8") as fh:
                fh.write(self.to_markdown())


def _icon(outcome: str) -> str:
    return {
        "passed": "✅ pass",
        "failed": "❌ FAIL",
        "error": "💥 error",
        WARNED: "⚠️ warn",
        WAIVED: "🏳️ waived",
        "skipped": "⏭️ skip",
        "expired-waiver": "❌ expired waiver",
        KNOWN: "📌 known",
        FIXED: "🎉 fixed — update the baseline",
    }.get(outcome, outcome)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip() and not line.startswith(("_", " ")):
            return line.strip()[:300]
    return text.strip().splitlines()[0][:300] if text.strip() else ""


def _exchange_part(text: str) -> str:
    start = text.find("HTTP exchange:")
    return text[start:] if start >= 0 else text[:2000]


_SEE = re.compile(r"\(see ([A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+(?:\[[^\]]*\])?(?:, [A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+)*)\)")


def _owners(reason: str) -> list[str]:
    """The contract ids a precondition skip points to: `(see AUTH-NO-TOKEN)`, `(see ERR-SHAPE, AUTH-NO-TOKEN)`;
    a case (`AUTH-BAD-TOKEN[expired]`) counts as its contract."""
    found = _SEE.search(reason) if reason.startswith("precondition") else None
    return [owner.split("[", 1)[0] for owner in found.group(1).split(", ")] if found else []


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)[:300]


def main(argv: list[str] | None = None) -> int:
    """`python -m makrx_contracts.harness.report merge CARD.json ... --report=gate.md` (harness/merge.py)."""
    from .merge import main as merge_main  # merge.py builds on this module: imported when run, not at import

    return merge_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
