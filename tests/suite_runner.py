"""Run the contract suite in a subprocess against a target and read per-contract outcomes from JUnit XML."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class SuiteResult:
    """Outcomes by contract id (a contract's parametrised cases may differ), plus the run's output."""

    returncode: int
    outcomes: dict[str, set[str]]
    output: str
    notes: tuple[str, ...] = ()  # the scorecard's notes: boot errors, unjudged skips, waivers

    @property
    def unjudged(self) -> list[str]:
        """Precondition skips whose owner did not fail (failures of their own; junit still says skipped)."""
        return [note for note in self.notes if "not judged:" in note]

    def ids_with(self, outcome: str) -> set[str]:
        return {cid for cid, seen in self.outcomes.items() if outcome in seen}

    @property
    def failed(self) -> set[str]:
        return self.ids_with("failed") | self.ids_with("error")


def run_suite(target: Path | str, workdir: Path, *extra: str, timeout: float = 300) -> SuiteResult:
    junit = workdir / "junit.xml"
    card = workdir / "scorecard.json"
    # Embedded unless a test asks otherwise: `auto` would switch to docker whenever an engine is up.
    services = [] if any(arg.startswith("--makrx-services") for arg in extra) else ["--makrx-services=embedded"]
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "makrx_contracts.harness.plugin",
        "-p",
        "pytest_timeout",
        f"--makrx-target={target}",
        "--makrx-strict",
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        f"--makrx-report={card}",
        "-q",
        "-rfEs",
        # The browser family fails with every CORS variant (its purpose): tests/test_browser.py runs it.
        "-m",
        "not browser",
        *services,
        *extra,
    ]
    # Only our plugin: autoloading every installed pytest plugin costs seconds per run.
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)
    outcomes: dict[str, set[str]] = defaultdict(set)
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            props = {p.get("name"): p.get("value") for p in case.iter("property")}
            cid = props.get("contract_id")
            if cid is None:
                continue
            if case.find("failure") is not None:
                outcomes[cid].add("failed")
            elif case.find("error") is not None:
                outcomes[cid].add("error")
            elif case.find("skipped") is not None:
                outcomes[cid].add("skipped")
            else:
                outcomes[cid].add("passed")
    notes = tuple(json.loads(card.read_text())["notes"]) if card.exists() else ()
    return SuiteResult(done.returncode, dict(outcomes), done.stdout[-6000:] + done.stderr[-3000:], notes)


def interruptible() -> None:
    """``preexec_fn`` of a run a test interrupts: SIGINT acts as from a terminal, also when this test run was
    started with it ignored (``cmd &`` in a non-interactive shell ignores SIGINT, and exec keeps that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def killed_on_exit(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """A suite run under test: whatever the test asserts or raises, the run does not outlive it."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
