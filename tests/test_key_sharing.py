"""Under -n the controller makes the issuer's keys once and every worker adopts them: a worker that made a
key of its own would pay ~0.1-0.8 s of CPU while booting its backend, unnoticed (no verdict changes)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .suite_runner import run_suite

# Loaded into each worker: records every key its issuer asks for and every key OpenSSL had to make there.
_RECORDER = """
import atexit, json, os
from makrx_contracts.harness.issuer import attacker, key, keys

asked, generated = [], []
_generated_key, _generate = key.generated_key, key._generate


def generated_key(*spec):
    asked.append(spec[3])
    return _generated_key(*spec)


def generate(*args):
    generated.append(args)
    return _generate(*args)


def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # the controller (PYTEST_XDIST_WORKER may be an outer run's)
        return
    key._generate = generate
    keys.generated_key = attacker.generated_key = generated_key
    out = os.path.join(os.environ["KEY_RECORD_DIR"], config.workerinput["workerid"] + ".json")
    atexit.register(lambda: open(out, "w").write(json.dumps({"asked": asked, "generated": len(generated)})))
"""


def test_workers_make_no_key_of_their_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rotation contracts (sig-1...), the retired stand-in and the attacker's jku key included."""
    (tmp_path / "key_recorder.py").write_text(_RECORDER)
    records = tmp_path / "records"
    records.mkdir()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("KEY_RECORD_DIR", str(records))
    result = run_suite(
        "reference",
        tmp_path,
        "-p",
        "xdist",
        "-n",
        "2",
        "-p",
        "key_recorder",
        "contracts/test_auth_keys.py",
        "contracts/test_auth.py::test_a_bad_token_is_refused[jku_attacker]",
        "contracts/test_auth.py::test_a_bad_token_is_refused[retired_key]",
    )
    assert result.returncode == 0, result.output
    seen = [json.loads(path.read_text()) for path in records.glob("gw*.json")]
    assert len(seen) == 2, result.output
    asked = {label for record in seen for label in record["asked"]}
    assert {"sig-0", "sig-1", "retired-0", "attacker-0"} <= asked, asked
    assert [record["generated"] for record in seen] == [0, 0]
