"""The contract gate on the docker provider: the reference app passes every contract, nothing skipped,
with Redis and Postgres in containers (`pytest -m docker`; CI runs it after ci/docker-setup.sh)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.suite_runner import run_suite

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine")]


def test_the_reference_app_passes_every_contract_on_docker(tmp_path: Path) -> None:
    # Forced: a docker provider that cannot start ends the run instead of falling back to embedded.
    result = run_suite("reference", tmp_path, "--makrx-services=docker")
    assert result.returncode == 0, result.output
    assert result.outcomes, "no contract ran\n" + result.output
    assert result.failed == set(), result.output
    assert result.ids_with("skipped") == set(), f"skipped on the reference app:\n{result.output}"
