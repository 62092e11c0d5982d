"""The baseline ratchet (--makrx-baseline, --makrx-baseline-update): recorded failures are known and pass,
a new one fails, a fixed one is reported (and fails under --makrx-strict); matching is by target, contract and
case, never by message; a waiver wins."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from makrx_contracts.harness.baseline import Baseline, case_of
from makrx_contracts.harness.errors import ConfigError

from tests.test_report import FAST, run, variant

TARGET = "reference_app"  # how a run alone labels the reference app and a variant of it: its directory name


def card(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def result_of(document: dict[str, Any], contract: str) -> str:
    return next(c["result"] for c in document["contracts"] if c["contract"] == contract)


def reworded(document: dict[str, Any]) -> dict[str, Any]:
    """The same failures in other words: what a baseline must not depend on."""
    for contract in document["contracts"]:
        contract["reason"] = "reworded"
        for case in contract["cases"]:
            case["reason"] = "reworded in a later release"
            case["exchange"] = ""
    return document


def test_a_baseline_keeps_a_broken_variants_gate_green_and_a_new_failure_turns_it_red(tmp_path: Path) -> None:
    app = variant("CORS-LOCAL-DEFAULT", tmp_path)
    first = tmp_path / "first.json"
    assert run(f"--makrx-target={app}", f"--makrx-report={first}", *FAST).returncode == 1
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(reworded(card(first))))

    report, junit = tmp_path / "again.json", tmp_path / "junit.xml"
    green = run(
        f"--makrx-target={app}",
        f"--makrx-baseline={baseline}",
        f"--makrx-report={report}",
        f"--junitxml={junit}",
        "-v",
        *FAST,
    )  # -v undoes -q: the run header shows
    assert green.returncode == 0, green.stdout[-3000:]
    assert "1 known" in green.stdout.splitlines()[-1], green.stdout[-1000:]
    assert re.search(
        r"makrx services: --makrx-services=auto chooses (embedded|docker) \(no --makrx-database-url", green.stdout
    )
    assert f"makrx baseline: {baseline} (1 known failures" in green.stdout
    assert result_of(card(report), "CORS-LOCAL-DEFAULT") == "known"
    meta = card(report)["meta"]  # the provider that served the run, not the mode asked for
    assert meta["services"] in ("embedded", "docker") and "no --makrx-database-url" in meta["services chosen because"]
    assert "📌 known" in report.with_suffix(".md").read_text()
    props = {
        p.get("value")
        for case in ET.parse(junit).getroot().iter("testcase")
        for p in case.iter("property")
        if p.get("name") == "makrx_outcome"
    }
    assert props == {"known"}
    # The same under xdist: every worker reads the baseline.
    assert run(f"--makrx-target={app}", f"--makrx-baseline={baseline}", "-n", "2", *FAST).returncode == 0

    # Forgetting the failure makes it new again: red.
    forgotten = card(baseline)
    forgotten["contracts"] = [c for c in forgotten["contracts"] if c["contract"] != "CORS-LOCAL-DEFAULT"]
    baseline.write_text(json.dumps(forgotten))
    red = run(f"--makrx-target={app}", f"--makrx-baseline={baseline}", *FAST)
    assert red.returncode == 1
    assert "FAILED" in red.stdout and "CORS-LOCAL-DEFAULT" in red.stdout


def test_a_fixed_failure_is_reported_and_fails_only_under_strict(tmp_path: Path) -> None:
    # The variant's failure, then the same backend fixed: the reference app, also a directory reference_app.
    baseline = tmp_path / "baseline.json"
    run(f"--makrx-target={variant('CORS-LOCAL-DEFAULT', tmp_path)}", f"--makrx-report={baseline}", *FAST)
    report = tmp_path / "now.json"
    lenient = run("--makrx-target=reference", f"--makrx-baseline={baseline}", f"--makrx-report={report}", *FAST)
    assert lenient.returncode == 0, lenient.stdout[-3000:]
    assert f"fixed — update the baseline: {TARGET}: CORS-LOCAL-DEFAULT" in lenient.stdout
    assert "1 fixed" in lenient.stdout.splitlines()[-1]
    assert result_of(card(report), "CORS-LOCAL-DEFAULT") == "fixed"
    strict = run("--makrx-target=reference", f"--makrx-baseline={baseline}", "--makrx-strict", *FAST)
    assert strict.returncode == 1, strict.stdout[-3000:]


def test_update_rewrites_the_baseline_and_says_what_it_added_and_removed(tmp_path: Path) -> None:
    app = variant("CORS-LOCAL-DEFAULT", tmp_path)
    baseline = tmp_path / "ci" / "baseline.json"
    created = run(f"--makrx-target={app}", f"--makrx-baseline={baseline}", "--makrx-baseline-update", *FAST)
    assert created.returncode == 1  # it was new to the (empty) baseline; the file now records it
    assert f"baseline {baseline}: added {TARGET}: CORS-LOCAL-DEFAULT" in created.stdout, created.stdout[-2000:]
    assert result_of(card(baseline), "CORS-LOCAL-DEFAULT") == "failed"

    # A failure recorded for a contract that now passes is removed; one the run did not judge is kept.
    document = card(baseline)
    passing = next(c for c in document["contracts"] if c["contract"] == "CORS-NO-WILDCARD")
    for case in passing["cases"]:
        case["outcome"] = "failed"
    document["contracts"].append(
        {
            "target": TARGET,
            "area": "AUTH",
            "contract": "AUTH-NO-TOKEN",
            "level": "MUST",
            "result": "failed",
            "reason": "",
            "cases": [
                {
                    "target": TARGET,
                    "area": "AUTH",
                    "contract": "AUTH-NO-TOKEN",
                    "level": "MUST",
                    "nodeid": "contracts/test_auth.py::test_no_token",
                    "case": "",
                    "outcome": "failed",
                }
            ],
        }
    )
    baseline.write_text(json.dumps(document))
    updated = run(f"--makrx-target={app}", f"--makrx-baseline={baseline}", "--makrx-baseline-update", *FAST)
    assert updated.returncode == 0, updated.stdout[-3000:]
    assert f"baseline {baseline}: removed {TARGET}: CORS-NO-WILDCARD" in updated.stdout
    assert f"rewritten: 0 added, {len(passing['cases'])} removed" in updated.stdout
    kept = Baseline.load(baseline).keys
    assert (TARGET, "CORS-LOCAL-DEFAULT", "") in kept and (TARGET, "AUTH-NO-TOKEN", "") in kept
    assert not any(contract == "CORS-NO-WILDCARD" for _, contract, _ in kept)
    assert run(f"--makrx-target={app}", f"--makrx-baseline={baseline}", *FAST).returncode == 0


def test_a_waiver_wins_over_the_baseline_and_keeps_its_expiry(tmp_path: Path) -> None:
    first = tmp_path / "first.json"
    run(f"--makrx-target={variant('CORS-LOCAL-DEFAULT', tmp_path / 'a')}", f"--makrx-report={first}", *FAST)
    expired = variant(
        "CORS-LOCAL-DEFAULT",
        tmp_path / "b",
        '[[waivers]]\nid = "CORS-LOCAL-DEFAULT"\nreason = "old excuse"\nexpires = 2020-01-01\n',
    )
    done = run(f"--makrx-target={expired}", f"--makrx-baseline={first}", *FAST)
    assert done.returncode == 1
    assert "waiver for CORS-LOCAL-DEFAULT expired on 2020-01-01" in done.stdout
    valid = variant(
        "CORS-LOCAL-DEFAULT",
        tmp_path / "c",
        '[[waivers]]\nid = "CORS-LOCAL-DEFAULT"\nreason = "TICKET-7"\nexpires = 2999-01-01\n',
    )
    report = tmp_path / "waived.json"
    assert (
        run(f"--makrx-target={valid}", f"--makrx-baseline={first}", f"--makrx-report={report}", *FAST).returncode == 0
    )
    assert result_of(card(report), "CORS-LOCAL-DEFAULT") == "waived"


def test_a_missing_or_foreign_baseline_is_one_clear_message(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="(?s)does not exist.*--makrx-baseline-update"):
        Baseline.load(tmp_path / "nope.json")
    assert Baseline.load(tmp_path / "nope.json", missing_ok=True).keys == frozenset()
    junk = tmp_path / "junk.json"
    junk.write_text('{"results": []}')
    with pytest.raises(ConfigError, match="is not a makrx scorecard JSON"):
        Baseline.load(junk)
    done = run("--makrx-target=reference", f"--makrx-baseline={junk}", *FAST)
    assert done.returncode == 4 and "is not a makrx scorecard JSON" in done.stderr
    assert "Traceback" not in done.stderr
    done = run("--makrx-target=reference", "--makrx-baseline-update", *FAST)
    assert done.returncode == 4 and "--makrx-baseline-update needs the file to write" in done.stderr


@pytest.mark.parametrize(
    ("callspec", "target", "case"),
    [
        (None, "reference", ""),
        ("reference", "reference", ""),
        ("alg_none", "reference", "alg_none"),
        ("reference-alg_none", "reference", "alg_none"),
        ("alg_none-a/app", "a/app", "alg_none"),
    ],
)
def test_the_case_is_the_parametrisation_without_the_target(callspec: str | None, target: str, case: str) -> None:
    assert case_of(callspec, target) == case


def test_a_matrix_keeps_each_targets_failures_apart(tmp_path: Path) -> None:
    broken = variant("CORS-LOCAL-DEFAULT", tmp_path)
    baseline = tmp_path / "matrix-baseline.json"
    targets = ("--makrx-target=reference", f"--makrx-target={broken}")
    recorded = run(*targets, f"--makrx-baseline={baseline}", "--makrx-baseline-update", "-n", "2", *FAST)
    assert "added cors-no-local-default/reference_app: CORS-LOCAL-DEFAULT" in recorded.stdout, recorded.stdout[-2000:]
    assert {target for target, _, _ in Baseline.load(baseline).keys} == {"cors-no-local-default/reference_app"}
    again = run(*targets, f"--makrx-baseline={baseline}", "-n", "2", *FAST)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "1 known" in again.stdout.splitlines()[-1]
