"""Per-job scorecards of a CI matrix merged into one (SPEC §6). Each job checks one backend
(`--makrx-target=backends/x --makrx-report=card-x.md`); `python -m makrx_contracts.harness.report merge
card-*.json --report=gate.md` writes the matrix one process checking them all would have written, plus a
table of the jobs (verdict, services, time, boot error), as gate.md and gate.json, appends it to
$GITHUB_STEP_SUMMARY, and exits 1 when any job's gate failed, 2 when a card is missing or unreadable."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import HarnessError
from .report import Scorecard

__all__ = ["CardError", "Job", "MergedScorecard", "load", "main", "merge"]

_GATE = {"passed": "✅ passed", "failed": "❌ failed"}


class CardError(HarnessError):
    """A job's scorecard that is missing, not JSON, or not a scorecard; or two that check one target."""

    prefix = "makrx merge"


@dataclass(frozen=True)
class Job:
    """What the merged card keeps of one job's card beside its rows: its own facts and time."""

    card: str
    meta: dict[str, str]
    duration_s: float
    timings: dict[str, dict[str, float]]
    boot_errors: dict[str, str]


@dataclass(eq=False)
class MergedScorecard(Scorecard):
    """The rows, notes and findings of every job's card, and the jobs themselves."""

    jobs: list[Job] = field(default_factory=list)

    def timings(self) -> dict[str, dict[str, float]]:
        """Every job's phases added up: the jobs ran on their own machines, this process ran none."""
        total: dict[str, dict[str, float]] = {}
        for job in self.jobs:
            for name, spent in job.timings.items():
                into = total.setdefault(name, {})
                for key, value in spent.items():
                    into[key] = round(into.get(key, 0.0) + value, 3)
        return total

    def to_json(self) -> dict[str, object]:
        return {**super().to_json(), "jobs": [asdict(job) for job in self.jobs]}

    def to_markdown(self) -> str:
        lines = [
            "### Jobs",
            "",
            "| card | targets | gate | services | time | boot error |",
            "|---|---|---|---|---|---|",
        ]
        for job in self.jobs:
            spent = ", ".join(f"{name} {t['total_s']:.1f} s" for name, t in job.timings.items())
            booted = "; ".join(f"{target}: {error}" for target, error in job.boot_errors.items())
            lines.append(
                f"| {job.card} | {job.meta.get('targets', '')} | {_GATE[job.meta['gate']]} | "
                f"{job.meta.get('services', '')} | {job.duration_s:.1f} s: {spent} | {_cell(booted)} |"
            )
        return super().to_markdown() + "\n" + "\n".join(lines) + "\n"


def load(path: Path) -> tuple[Scorecard, Job]:
    """One job's card; every problem is one CardError naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CardError(f"{path}: no such file (its job wrote no scorecard: see that job's log)") from None
    except OSError as exc:
        raise CardError(f"{path}: cannot be read ({exc.strerror})") from None
    except ValueError as exc:  # not UTF-8, or not JSON
        hint = f"; its JSON is {path.with_suffix('.json')}" if path.suffix == ".md" else ""
        raise CardError(f"{path}: not JSON ({exc}{hint})") from None
    try:
        card = Scorecard.from_json(data)
        timings = {
            str(name): {str(key): float(value) for key, value in spent.items()}
            for name, spent in data["timings"].items()
        }
        job = Job(
            card=str(path),
            meta=card.meta,
            duration_s=float(data["meta"]["duration_s"]),
            timings=timings,
            boot_errors=card.boot_errors,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CardError(f"{path}: not a makrx scorecard JSON ({type(exc).__name__}: {exc})") from None
    if job.meta.get("gate") not in _GATE:
        raise CardError(f"{path}: records no gate verdict (written by an older makrx-contracts: rerun its job)")
    return card, job


def merge(cards: list[tuple[Scorecard, Job]]) -> MergedScorecard:
    """The jobs' cards as one; two cards that check the same target are a CardError (one card per backend)."""
    jobs = [job for _, job in cards]
    # Started as long ago as the jobs took together: the Markdown's time line adds them up as timings() does.
    merged = MergedScorecard(
        meta=_shared_meta([job.meta for job in jobs]),
        jobs=jobs,
        started=time.monotonic() - sum(job.duration_s for job in jobs),
    )
    owners: dict[str, str] = {}
    for card, job in cards:
        for target in dict.fromkeys([*(row.target for row in card.rows.values()), *card.boot_errors]):
            if target in owners:
                raise CardError(
                    f"target {target!r} is in both {owners[target]} and {job.card}: merge one card per backend"
                )
            owners[target] = job.card
        # Each job's node ids are the same tests: their target keeps them apart.
        merged.rows.update({f"{row.target} {row.nodeid}": row for row in card.rows.values()})
        merged.notes += card.notes
        merged.discovered += card.discovered
        merged.boot_errors.update(card.boot_errors)
    return merged


def _shared_meta(metas: list[dict[str, str]]) -> dict[str, str]:
    """The facts every job's card states alike (harness version, strictness, services...), in their order; the
    targets of all; the gate, passed only when every job's passed. What differs is in the jobs table."""
    shared: dict[str, str] = {}
    for key, value in metas[0].items():
        if key == "targets":
            shared[key] = ", ".join(meta.get(key, "") for meta in metas)
        elif key == "gate":
            shared[key] = "passed" if all(meta[key] == "passed" for meta in metas) else "failed"
        elif all(meta.get(key) == value for meta in metas):
            shared[key] = value
    return shared


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:300]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m makrx_contracts.harness.report", description="Commands on MakrX contract scorecards."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    command = commands.add_parser(
        "merge",
        help="merge the per-job scorecards of a CI matrix into one",
        description="Merge per-job scorecard JSONs (each job's --makrx-report) into one matrix; exits 1 when any "
        "job's gate failed, 2 when a card is missing or unreadable.",
    )
    command.add_argument(
        "cards",
        nargs="+",
        type=Path,
        metavar="CARD.json",
        help="a job's scorecard (--makrx-report=FILE.md writes FILE.json beside it)",
    )
    command.add_argument(
        "--report",
        type=Path,
        required=True,
        metavar="FILE.md",
        help="write the merged scorecard to FILE.md and FILE.json (also appended to $GITHUB_STEP_SUMMARY)",
    )
    args = parser.parse_args(argv)
    try:
        merged = merge([load(path) for path in args.cards])
    except CardError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        merged.publish(args.report)
    except OSError as exc:
        print(CardError(f"cannot write {exc.filename}: {exc.strerror}"), file=sys.stderr)
        return 2
    for job in merged.jobs:
        print(f"{job.card}: {job.meta.get('targets', '')}: gate {job.meta['gate']}")
    for line in merged.area_lines():
        print(line)
    print(f"gate {merged.meta['gate']}: {args.report} and its {'.md' if args.report.suffix == '.json' else '.json'}")
    return 0 if merged.meta["gate"] == "passed" else 1
