"""Many backends across CI machines (issue 15): per-job scorecards merge into the matrix one process would
have written; a failed or unbooted job fails the merge; a bad card is one line; docs/ci/github-actions.yml
passes actionlint and its list and merge steps work as written."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from makrx_contracts.harness import merge
from makrx_contracts.harness.backend.resolve import REFERENCE_APP_DIR
from makrx_contracts.harness.discovery import Finding
from makrx_contracts.harness.report import Row, Scorecard

from tests.variants import load_variants

from .scratch import enterable_dir
from .suite_runner import REPO

WORKFLOW = REPO / "docs" / "ci" / "github-actions.yml"
# One area keeps the runs short: the merge is the same for all. The browser family fails every CORS variant
# by design (tests/test_browser.py).
FAST = ("-m", "cors and not browser")
BOOTING = ("good", "nocors", "noexpose")  # passes; fails CORS-LOCAL-DEFAULT; warns CORS-EXPOSE-REQUEST-ID
BOOT_ERROR = "dead failed to start: RuntimeError: cannot boot: no SMTP_HOST"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


@dataclass(frozen=True)
class Runs:
    monorepo: Path
    cards: dict[str, Path]  # backend -> the card JSON of its own run, as a CI job writes it
    matrix: Path  # the card JSON of one run of the booting backends together


def _gate(monorepo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The gate as a CI job runs it, from the monorepo's root."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "-q",
            "--makrx-services=embedded",
            *FAST,
            *args,
        ],
        cwd=monorepo,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _merge(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "makrx_contracts.harness.report", "merge", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def runs() -> Iterator[Runs]:
    """A monorepo of four backends (one cannot boot) and a shared package; each backend's card from its own
    run, and the card of one run of the three that boot."""
    with enterable_dir("makrx-merge-") as root:
        monorepo = root / "repo"
        backends = monorepo / "backends"
        shutil.copytree(REFERENCE_APP_DIR, backends / "good", ignore=_IGNORE)
        for name, violates in (("nocors", "CORS-LOCAL-DEFAULT"), ("noexpose", "CORS-EXPOSE-REQUEST-ID")):
            shutil.move(
                next(v for v in load_variants() if v.violates == violates).build(root / "build"), backends / name
            )
        (backends / "dead").mkdir()
        (backends / "dead" / "main.py").write_text("raise RuntimeError('cannot boot: no SMTP_HOST')\n")
        for name in (*BOOTING, "dead"):
            (backends / name / "requirements.txt").write_text("fastapi\nuvicorn\n")
        (backends / "common").mkdir()  # a shared package, no backend: no requirements.txt
        (backends / "common" / "__init__.py").write_text("")
        cards = {}
        for name in (*BOOTING, "dead"):
            done = _gate(monorepo, f"--makrx-target=backends/{name}", f"--makrx-report=card-{name}.md")
            assert done.returncode == (0 if name in ("good", "noexpose") else 1), done.stdout[-3000:]
            cards[name] = monorepo / f"card-{name}.json"
        done = _gate(monorepo, *(f"--makrx-target=backends/{name}" for name in BOOTING), "--makrx-report=matrix.md")
        assert done.returncode == 1, done.stdout[-3000:]
        yield Runs(monorepo, cards, monorepo / "matrix.json")


# ------------------------------------------------------------------ merged cards of real runs


def _verdicts(card: dict[str, Any]) -> list[dict[str, Any]]:
    """Every contract's verdict and cases, without what belongs to the run: a case's node id (a matrix's
    carries the target), duration and exchange (ports, dates, request ids)."""
    return [
        {
            **contract,
            "cases": [
                {key: value for key, value in case.items() if key not in ("nodeid", "duration", "exchange")}
                for case in contract["cases"]
            ],
        }
        for contract in card["contracts"]
    ]


def _comparable(markdown: str) -> str:
    """The scorecard without its meta and time lines (the run's services reason, durations), the failures'
    exchanges, and the merge's own jobs section."""
    markdown = markdown.split("\n### Jobs\n")[0]
    markdown = re.sub(r"^\*\*(targets|time)\*\* .*\n", "", markdown, flags=re.M)
    return re.sub(r"(<summary>.*?</summary>).*?(</details>)", r"\1\2", markdown, flags=re.S)


_META = ("targets", "harness", "strict", "services", "gate")


def test_merged_cards_equal_the_one_process_matrix(runs: Runs, tmp_path: Path) -> None:
    """Equal: every contract's verdict, reason and cases; notes, boot errors and discovered settings; meta's
    targets, harness, strict, services and gate; the Markdown's area lines, Matrix and Results tables and
    failure summaries. Not: durations, timings, exchanges, node ids, the services' reason (which says when
    a template cluster was built), and the merge's jobs section."""
    done = _merge(*(runs.cards[name] for name in BOOTING), "--report=gate.md", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr  # nocors failed its gate
    merged, matrix = (json.loads(path.read_text()) for path in (tmp_path / "gate.json", runs.matrix))
    assert _verdicts(merged) == _verdicts(matrix)
    assert {c["result"] for c in merged["contracts"]} == {"passed", "failed", "skipped", "warned"}
    assert sorted(merged["notes"]) == sorted(matrix["notes"])  # a matrix appends by kind, a merge by job
    assert (merged["discovered"], merged["boot_errors"]) == (matrix["discovered"], matrix["boot_errors"])
    assert [merged["meta"][key] for key in _META] == [matrix["meta"][key] for key in _META]
    assert merged["meta"]["gate"] == "failed"
    markdown = (tmp_path / "gate.md").read_text()
    assert _comparable(markdown) == _comparable(runs.matrix.with_suffix(".md").read_text())
    assert "### Matrix" in markdown and "| CORS-LOCAL-DEFAULT | MUST | ✅ pass | ❌ FAIL | ✅ pass |" in markdown


def test_merge_passes_when_every_gate_passed_and_keeps_each_jobs_facts(runs: Runs, tmp_path: Path) -> None:
    done = _merge(runs.cards["good"], runs.cards["noexpose"], "--report=gate.md", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads((tmp_path / "gate.json").read_text())
    assert data["meta"]["gate"] == "passed"
    assert [job["meta"]["targets"] for job in data["jobs"]] == ["backends/good", "backends/noexpose"]
    for job, name in zip(data["jobs"], ("good", "noexpose"), strict=True):
        own = json.loads(runs.cards[name].read_text())
        assert job["timings"] == own["timings"] and job["duration_s"] == own["meta"]["duration_s"]
        assert job["meta"]["services"] == "embedded" and job["meta"]["gate"] == "passed"
    # The merged time line adds the jobs up, phase by phase.
    boots = sum(job["timings"]["backend boot"]["total_s"] for job in data["jobs"])
    assert data["timings"]["backend boot"]["total_s"] == pytest.approx(boots)
    row = next(
        line for line in (tmp_path / "gate.md").read_text().splitlines() if line.startswith(f"| {runs.cards['good']} |")
    )
    assert "| backends/good | ✅ passed | embedded |" in row and "backend boot" in row


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_a_lone_target_that_cannot_boot_records_why_and_fails_the_merge(
    runs: Runs, tmp_path: Path, workers: tuple[str, ...]
) -> None:
    """Alone, a backend that cannot boot ends its run at the first error, before any report: its card still
    names the error (under xdist from the worker's message that stopped the run), and the merge shows it."""
    if workers:
        done = _gate(
            runs.monorepo, "--makrx-target=backends/dead", f"--makrx-report={tmp_path / 'card-dead.md'}", *workers
        )
        assert done.returncode == 1, done.stdout[-3000:]
    card = tmp_path / "card-dead.json" if workers else runs.cards["dead"]
    data = json.loads(card.read_text())
    assert (data["boot_errors"], data["meta"]["gate"], data["contracts"]) == ({"dead": BOOT_ERROR}, "failed", [])
    done = _merge(runs.cards["good"], card, "--report=gate.md", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    markdown = (tmp_path / "gate.md").read_text()
    assert f"| dead | – | – | – | 💥 could not boot | {BOOT_ERROR} |" in markdown
    assert f"| {card} | backends/dead | ❌ failed | embedded |" in markdown and f"dead: {BOOT_ERROR} |" in markdown


# ------------------------------------------------------------------ the example workflow


def _actionlint() -> str | None:
    return shutil.which(
        "actionlint", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    )


@pytest.mark.skipif(_actionlint() is None, reason="actionlint is missing: pip install -e '.[dev]' installs it")
def test_the_workflow_passes_actionlint() -> None:
    done = subprocess.run([str(_actionlint()), str(WORKFLOW)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def _filled(text: str, values: dict[str, str]) -> str:
    """`${{ expr }}` as the runner fills it in; one this test does not know fails it, so it follows the file."""

    def value(match: re.Match[str]) -> str:
        assert match.group(1) in values, f"the workflow uses ${{{{ {match.group(1)} }}}}: give this test its value"
        return values[match.group(1)]

    return re.sub(r"\$\{\{\s*(.*?)\s*\}\}", value, text)


def _step(job: dict[str, Any], words: str) -> dict[str, Any]:
    return next(step for step in job["steps"] if words in step.get("run", "") + step.get("uses", ""))


def _bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])  # setup-python's
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": path, **env},
    )


def test_the_workflow_lists_the_backends_and_merges_their_cards(runs: Runs, tmp_path: Path) -> None:
    """The list step and the merge step run with bash as the runner would, on this monorepo and its jobs'
    cards, placed where the gate job uploads them and download-artifact puts them."""
    workflow = yaml.safe_load(WORKFLOW.read_text())
    jobs = workflow["jobs"]
    output = tmp_path / "github_output"
    done = _bash(_step(jobs["list"], "requirements.txt")["run"], runs.monorepo, {"GITHUB_OUTPUT": str(output)})
    assert done.returncode == 0, done.stderr
    listed = output.read_text().strip().removeprefix("backends=")
    assert json.loads(listed) == ["dead", "good", "nocors", "noexpose"]  # backends/common has no requirements

    report = re.search(r"--makrx-report=([^\"\s]+)", _step(jobs["gate"], "--makrx-report")["run"])
    assert report is not None
    upload = _step(jobs["gate"], "upload-artifact")["with"]
    download = _step(jobs["merge"], "download-artifact")["with"]
    cards = tmp_path / download["path"]
    cards.mkdir()
    for name in json.loads(listed):
        written = report.group(1).replace("$BACKEND", name)
        uploaded = _filled(upload["path"], {"matrix.backend": name})
        assert Path(written).with_suffix(".json").name == uploaded  # the gate writes the card the job keeps
        shutil.copy(runs.cards[name], cards / uploaded)

    step = _step(jobs["merge"], "harness.report merge")
    summary = tmp_path / "summary.md"
    env = {
        key: _filled(str(value), {"needs.list.outputs.backends": listed})
        for key, value in {**workflow["env"], **step["env"]}.items()
    }
    done = _bash(step["run"], tmp_path, {**env, "GITHUB_STEP_SUMMARY": str(summary)})
    assert done.returncode == 1, done.stdout + done.stderr  # nocors failed, dead could not boot
    merged = json.loads((tmp_path / "gate.json").read_text())
    assert [job["card"] for job in merged["jobs"]] == [f"cards/card-{name}.json" for name in json.loads(listed)]
    assert merged["boot_errors"] == {"dead": BOOT_ERROR}
    assert summary.read_text() == (tmp_path / "gate.md").read_text()
    # A listed backend without a card (its job failed before the gate) fails the merge by name.
    (cards / "card-good.json").unlink()
    done = _bash(step["run"], tmp_path, env)
    assert done.returncode == 2 and "cards/card-good.json: no such file" in done.stderr, done.stderr


# ------------------------------------------------------------------ hand-built cards


def _card(
    target: str, *outcomes: tuple[str, str], gate: str = "passed", boot_error: str = "", **meta: str
) -> dict[str, Any]:
    """A card as a job writes it: one CORS contract per (contract, outcome)."""
    card = Scorecard(
        meta={
            "targets": f"backends/{target}",
            "harness": "0.1.0",
            "strict": "false",
            "services": "embedded",
            **meta,
            "gate": gate,
        },
        rows={f"t::{c}": Row(target, "CORS", c, "MUST", f"t::{c}", outcome=o) for c, o in outcomes},
        discovered=[Finding(target, "auth_probe", "GET /api/v1/me")],
    )
    if boot_error:
        card.boot_errors[target] = boot_error
        card.notes.append(f"{target} could not boot: {boot_error}")
    return card.to_json()


def _write(directory: Path, **cards: dict[str, Any] | str) -> list[str]:
    for name, card in cards.items():
        (directory / name).write_text(card if isinstance(card, str) else json.dumps(card))
    return [str(directory / name) for name in cards]


def test_from_json_reads_back_what_to_json_wrote() -> None:
    data = _card(
        "shop", ("CORS-LOCAL-DEFAULT", "failed"), ("CORS-NO-WILDCARD", "passed"), gate="failed", boot_error="x"
    )
    again = Scorecard.from_json(json.loads(json.dumps(data))).to_json()
    assert {**again, "timings": None, "meta": None} == {**data, "timings": None, "meta": None}
    assert again["meta"] == pytest.approx(data["meta"], abs=0.05)  # its duration, not this process's


def test_a_card_without_rows_but_a_boot_error_fails_the_merge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _write(
        tmp_path,
        **{
            "a.json": _card("shop", ("CORS-NO-WILDCARD", "passed")),
            "b.json": _card("mail", gate="failed", boot_error="ImportError: no module smtp", services="docker"),
        },
    )
    assert merge.main(["merge", *paths, f"--report={tmp_path / 'gate.md'}"]) == 1
    markdown = (tmp_path / "gate.md").read_text()
    assert "| mail | – | – | – | 💥 could not boot | ImportError: no module smtp |" in markdown
    assert "**services**" not in markdown  # the jobs disagree: each job's is in its row
    assert f"| {paths[1]} | backends/mail | ❌ failed | docker |" in markdown
    assert f"| {paths[0]} | backends/shop | ✅ passed | embedded |" in markdown
    data = json.loads((tmp_path / "gate.json").read_text())
    assert data["boot_errors"] == {"mail": "ImportError: no module smtp"} and data["meta"]["gate"] == "failed"
    assert capsys.readouterr().out.splitlines()[-1] == f"gate failed: {tmp_path / 'gate.md'} and its .json"


def test_a_missing_card_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    done = _merge("card-shop.json", "--report=gate.md", cwd=tmp_path)
    assert done.returncode == 2
    assert (
        done.stderr == "[makrx merge] card-shop.json: no such file (its job wrote no scorecard: see that job's log)\n"
    )
    assert not (tmp_path / "gate.md").exists()


@pytest.mark.parametrize(
    ("cards", "message"),
    [
        ({"a.json": "{not json"}, "a.json: not JSON (Expecting property name enclosed in double quotes"),
        (
            {"a.md": "## MakrX contract scorecard\n"},
            "a.md: not JSON (Expecting value: line 1 column 1 (char 0); its JSON is",
        ),
        ({"a.json": "[1, 2]"}, "a.json: not a makrx scorecard JSON (TypeError: "),
        (
            {"a.json": {**_card("shop"), "contracts": [{"cases": [{"colour": "red"}]}]}},
            "a.json: not a makrx scorecard JSON (TypeError: ",
        ),
        (
            {"a.json": {**_card("shop"), "meta": {"targets": "backends/shop", "duration_s": 1.0}}},
            "a.json: records no gate verdict",
        ),
        (
            {
                "a.json": _card("shop", ("CORS-NO-WILDCARD", "passed")),
                "b.json": _card("shop", ("CORS-NO-WILDCARD", "failed")),
            },
            "target 'shop' is in both ",
        ),
    ],
    ids=["invalid-json", "markdown", "not-an-object", "unknown-case-field", "no-gate", "same-target-twice"],
)
def test_a_bad_card_is_one_line_and_no_report(
    cards: dict[str, Any], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert merge.main(["merge", *_write(tmp_path, **cards), f"--report={tmp_path / 'gate.md'}"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("[makrx merge] ") and message in error and error.count("\n") == 1, error
    assert not (tmp_path / "gate.md").exists()


def test_the_merged_card_is_appended_to_the_github_step_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    paths = _write(
        tmp_path,
        **{
            "a.json": _card("shop", ("CORS-NO-WILDCARD", "passed")),
            "b.json": _card("mail", ("CORS-NO-WILDCARD", "passed")),
        },
    )
    assert merge.main(["merge", *paths, f"--report={tmp_path / 'out' / 'gate.json'}"]) == 0
    markdown = (tmp_path / "out" / "gate.md").read_text()  # a .json report gets its .md sibling too
    assert summary.read_text() == "earlier step\n" + markdown
    assert "| CORS-NO-WILDCARD | MUST | ✅ pass | ✅ pass |" in markdown and "### Jobs" in markdown
