"""The gate's output: scorecard files, the per-area summary, waivers (valid, expired, stale), a
matrix of several targets, and a target that cannot boot reported in one line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.suite_runner import REPO
from tests.variants import load_variants

# One area keeps these runs short (the report logic is the same for all); the browser family fails with
# every CORS variant by design (tests/test_browser.py).
FAST = ("-m", "cors and not browser")


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider", "-q", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def variant(violates: str, root: Path, waivers: str = "") -> Path:
    app = next(v for v in load_variants() if v.violates == violates).build(root)
    if waivers:
        with (app / "makrx-contract.toml").open("a") as fh:
            fh.write("\n" + waivers)
    return app


def test_scorecard_files_and_summary_lines(tmp_path: Path) -> None:
    app = variant("CORS-LOCAL-DEFAULT", tmp_path)
    report = tmp_path / "out" / "score.md"
    done = run(f"--makrx-target={app}", f"--makrx-report={report}", *FAST)
    assert done.returncode == 1
    assert "CORS 3/6 MUST ok, 1/2 SHOULD ok, 1 failed, 3 skipped" in done.stdout, done.stdout[-2000:]
    markdown = report.read_text()
    assert "| CORS-LOCAL-DEFAULT | MUST | ❌ FAIL | a local app origin is not allowed by default" in markdown
    assert "OPTIONS http://127.0.0.1" in markdown  # the exchange that showed it
    data = json.loads(report.with_suffix(".json").read_text())
    results = {c["contract"]: c["result"] for c in data["contracts"]}
    assert results["CORS-LOCAL-DEFAULT"] == "failed" and results["CORS-NO-WILDCARD"] == "passed"
    spent = data["timings"]
    assert {"services", "issuer", "backend boot", "backend migrations", "test calls"} <= set(spent), spent
    assert spent["backend boot"]["count"] >= 1 and 0 < spent["backend boot"]["total_s"] < data["meta"]["duration_s"]
    assert "**time**" in markdown and "backend boot" in markdown


def test_junit_carries_contract_ids_and_levels(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    done = run("--makrx-target=reference", f"--junitxml={junit}", *FAST)
    assert done.returncode == 0, done.stdout[-3000:]
    text = junit.read_text()
    assert '<property name="contract_id" value="CORS-VARY-ORIGIN"' in text
    assert '<property name="contract_level" value="SHOULD"' in text


def test_a_valid_waiver_turns_the_failure_into_waived(tmp_path: Path) -> None:
    app = variant(
        "CORS-LOCAL-DEFAULT",
        tmp_path,
        '[[waivers]]\nid = "CORS-LOCAL-DEFAULT"\nreason = "new domain, TICKET-7"\nexpires = 2999-01-01\n',
    )
    report = tmp_path / "score.json"
    done = run(f"--makrx-target={app}", f"--makrx-report={report}", *FAST)
    assert done.returncode == 0, done.stdout[-3000:]
    data = json.loads(report.read_text())
    verdict = next(c for c in data["contracts"] if c["contract"] == "CORS-LOCAL-DEFAULT")
    assert verdict["result"] == "waived" and "TICKET-7" in verdict["reason"]


def test_an_expired_waiver_fails_the_gate(tmp_path: Path) -> None:
    app = variant(
        "CORS-LOCAL-DEFAULT",
        tmp_path,
        '[[waivers]]\nid = "CORS-LOCAL-DEFAULT"\nreason = "old excuse"\nexpires = 2020-01-01\n',
    )
    done = run(f"--makrx-target={app}", *FAST)
    assert done.returncode == 1
    assert "waiver for CORS-LOCAL-DEFAULT expired on 2020-01-01" in done.stdout


def test_a_waiver_for_a_passing_contract_is_stale(tmp_path: Path) -> None:
    app = variant(
        "CORS-LOCAL-DEFAULT",
        tmp_path,
        '[[waivers]]\nid = "CORS-NO-WILDCARD"\nreason = "was broken"\nexpires = 2999-01-01\n',
    )
    done = run(f"--makrx-target={app}", *FAST)
    assert "waiver for CORS-NO-WILDCARD is stale, the contract passes" in done.stdout


def test_should_failures_warn_unless_strict(tmp_path: Path) -> None:
    app = variant("CORS-EXPOSE-REQUEST-ID", tmp_path)
    lenient = run(f"--makrx-target={app}", *FAST)
    assert lenient.returncode == 0
    assert "MakrxShouldWarning: CORS-EXPOSE-REQUEST-ID [SHOULD]" in lenient.stdout
    assert "1 warned" in lenient.stdout
    assert run(f"--makrx-target={app}", "--makrx-strict", *FAST).returncode == 1


def test_several_targets_give_one_matrix_and_a_dead_one_is_one_line(tmp_path: Path) -> None:
    broken = variant("CORS-LOCAL-DEFAULT", tmp_path)
    dead = tmp_path / "deadapp"
    dead.mkdir()
    (dead / "main.py").write_text("raise RuntimeError('cannot boot: no SMTP_HOST')\n")
    report = tmp_path / "matrix.md"
    done = run(
        "--makrx-target=reference",
        f"--makrx-target={broken}",
        f"--makrx-target={dead}",
        f"--makrx-report={report}",
        *FAST,
    )
    assert done.returncode == 1
    markdown = report.read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| contract | level |"))
    assert "| reference |" in header and "cors-no-local-default/reference_app" in header and "deadapp" in header
    row = next(line for line in markdown.splitlines() if line.startswith("| CORS-LOCAL-DEFAULT |"))
    assert row.count("✅ pass") == 1 and row.count("❌ FAIL") == 1
    assert markdown.count("could not boot") >= 1
    assert "RuntimeError: cannot boot: no SMTP_HOST" in markdown
    assert "| deadapp | CORS |" not in markdown  # one line for it, not a wall of rows
    # In the terminal too: its first error carries the boot message, the rest are counted as unbooted.
    assert len(re.findall(r"^ERROR .*deadapp", done.stdout, re.M)) == 1, done.stdout[-3000:]
    assert re.search(r"\b\d+ unbooted\b", done.stdout.splitlines()[-1]), done.stdout[-500:]


def workers_by(stdout: str, what: str) -> dict[str, set[str]]:
    """From `-vv` xdist output: the workers (gw0, gw1...) that ran each value of ``what``'s group."""
    workers: dict[str, set[str]] = {}
    for line in stdout.splitlines():
        match = re.match(rf"\[(gw\d+)\].*{what}", line)
        if match:
            workers.setdefault(match.group(2), set()).add(match.group(1))
    return workers


def test_several_targets_under_xdist_run_each_target_on_one_worker(tmp_path: Path) -> None:
    broken = variant("CORS-LOCAL-DEFAULT", tmp_path)
    report = tmp_path / "matrix.json"
    done = run(
        "--makrx-target=reference",
        f"--makrx-target={broken}",
        "-n",
        "2",
        "-vv",
        "--makrx-services=embedded",
        f"--makrx-report={report}",
        *FAST,
    )
    assert done.returncode == 1, done.stdout[-3000:]
    workers = workers_by(
        done.stdout, r"(?:PASSED|FAILED|SKIPPED) \S+\[(reference|cors-no-local-default/reference_app)\b"
    )
    assert set(workers) == {"reference", "cors-no-local-default/reference_app"}, done.stdout[-3000:]
    assert all(len(seen) == 1 for seen in workers.values()), workers  # one backend per target, not per worker
    results = {(c["target"], c["contract"]): c["result"] for c in json.loads(report.read_text())["contracts"]}
    assert results[("cors-no-local-default/reference_app", "CORS-LOCAL-DEFAULT")] == "failed"
    assert results[("reference", "CORS-LOCAL-DEFAULT")] == "passed"


def test_one_target_under_xdist_spreads_its_modules_each_on_one_worker(tmp_path: Path) -> None:
    report = tmp_path / "gate.json"
    done = run(
        "--makrx-target=reference",
        "-n",
        "2",
        "-vv",
        "--makrx-services=embedded",
        "-m",
        "(cors or prefix) and not browser",
        f"--makrx-report={report}",
    )
    assert done.returncode == 0, done.stdout[-3000:]
    workers = workers_by(done.stdout, r"PASSED (contracts/test_\w+\.py)::")
    assert set(workers) == {"contracts/test_cors.py", "contracts/test_prefix.py"}, done.stdout[-3000:]
    assert all(len(seen) == 1 for seen in workers.values()), workers  # a module's instances boot once
    assert set().union(*workers.values()) == {"gw0", "gw1"}, workers  # and the modules run side by side
    contracts = json.loads(report.read_text())["contracts"]
    assert {c["contract"] for c in contracts} >= {"CORS-LOCAL-DEFAULT", "PREFIX-API"}
    assert all(c["result"] == "passed" for c in contracts)


def test_n_auto_gives_one_target_two_workers_per_core_up_to_four() -> None:
    """The plugin's `-n auto` must win over xdist's own (one worker per core), whatever order the
    plugins were installed in; workers without tests start nothing, so this stays cheap."""
    done = run("--makrx-target=reference", "-n", "auto", "-m", "prefix", "--makrx-services=embedded", "-v")
    assert done.returncode == 0, done.stdout[-3000:]
    workers = min(4, 2 * len(os.sched_getaffinity(0)))
    assert f"created: {workers}/{workers} workers" in done.stdout, done.stdout[-3000:]


def test_github_step_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    done = run("--makrx-target=reference", *FAST)
    assert done.returncode == 0
    text = summary.read_text()
    assert text.startswith("earlier step\n") and "## MakrX contract scorecard" in text


_SKIP_NO_VALID_TOKEN = "precondition: a valid token is refused (see AUTH-VALID-TOKEN)"
_SKIP_NOT_ECHOED = "precondition: http://localhost:3000 is not echoed at all (see CORS-LOCAL-DEFAULT)"


def _judged(*rows: tuple[str, str, str, str]) -> tuple[list[str], list[str]]:
    """Rows of (contract, level, outcome, reason) on one target through the owner rule: the outcomes
    after it, and its lines."""
    from makrx_contracts.harness.report import Row, Scorecard

    card = Scorecard()
    card.rows = {
        str(n): Row("t", "AREA", contract, level, str(n), outcome, reason)
        for n, (contract, level, outcome, reason) in enumerate(rows)
    }
    lines = card.fail_orphan_skips()
    return [row.outcome for row in card.rows.values()], lines


def test_a_precondition_skip_whose_owner_did_not_fail_fails_itself() -> None:
    """`(see OWNER)` points at the contract that keeps the gate red; when OWNER passed or skipped, nothing
    judged the skipped contract, and it fails (a SHOULD one warns) instead of hiding a gap."""
    outcomes, lines = _judged(
        ("AUTH-VALID-TOKEN", "MUST", "passed", ""),
        ("AUTH-ROLE-FORBIDDEN", "MUST", "skipped", _SKIP_NO_VALID_TOKEN),
        ("ERR-STATUS", "MUST", "failed", "the 422 situation answered 500"),
        ("ERR-SHAPE", "MUST", "skipped", "precondition: the 422 situation answered 500 (see ERR-STATUS)"),
        ("CORS-EXPOSE", "SHOULD", "skipped", _SKIP_NOT_ECHOED),
        ("CORS-LOCAL-DEFAULT", "MUST", "passed", ""),
        ("RATE-SHARED", "MUST", "skipped", "Redis is external (not started by the harness), so it cannot be stopped"),
    )
    assert outcomes == ["passed", "failed", "failed", "skipped", "warned", "passed", "skipped"]
    assert len(lines) == 2 and "AUTH-VALID-TOKEN did not fail in this run" in lines[0]


def test_an_owner_that_failed_under_a_waiver_or_did_not_run_keeps_the_skip() -> None:
    outcomes, lines = _judged(
        ("CORS-LOCAL-DEFAULT", "MUST", "waived", ""),
        ("CORS-VARY-ORIGIN", "MUST", "skipped", _SKIP_NOT_ECHOED),
        ("AUTH-ROLE-FORBIDDEN", "MUST", "skipped", _SKIP_NO_VALID_TOKEN),
    )
    assert (outcomes, lines) == (["waived", "skipped", "skipped"], [])


def test_a_skip_pointing_at_a_skip_whose_owner_failed_is_owned() -> None:
    """ERR-SHAPE[403] points at AUTH-ROLE-FORBIDDEN, which skipped because AUTH-VALID-TOKEN failed."""
    outcomes, lines = _judged(
        ("AUTH-VALID-TOKEN", "MUST", "failed", "a valid access token was refused"),
        ("AUTH-ROLE-FORBIDDEN", "MUST", "skipped", _SKIP_NO_VALID_TOKEN),
        ("ERR-SHAPE", "MUST", "skipped", "precondition: the 403 situation answered 401 (see AUTH-ROLE-FORBIDDEN)"),
    )
    assert (outcomes, lines) == (["failed", "skipped", "skipped"], [])
