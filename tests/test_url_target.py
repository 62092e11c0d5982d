"""A running backend given by URL is checked as it is; contracts that must restart or configure it,
or that need tokens it trusts, are skipped with the reason printed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from makrx_contracts.harness.backend.launcher import TargetLauncher
from makrx_contracts.harness.backend.resolve import resolve_target
from makrx_contracts.harness.issuer import Issuer
from makrx_contracts.harness.services import provide_services

from tests.scratch import enterable_dir
from tests.suite_runner import REPO


@pytest.fixture(scope="module")
def running_reference() -> Iterator[str]:
    with enterable_dir("urltarget-", on_shm=True) as workdir:
        services = provide_services("embedded", redis_url=None, database_url=None, workdir=workdir / "services")
        issuer = Issuer(realm="makrx", seed=0).start()
        launcher = TargetLauncher(
            resolve_target("reference"),
            workdir=workdir,
            services=services,
            issuer=issuer,
            fork_server=None,  # one instance: a fork server would only add its own start
            python=sys.executable,
        )
        try:
            yield launcher.launch().base_url
        finally:
            launcher.close()
            issuer.stop()
            services.close()


def test_a_url_target_runs_and_skips_with_reasons(running_reference: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            f"--makrx-target={running_reference}",
            "-q",
            "-rs",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout
    assert done.returncode == 0, out[-4000:]
    assert " passed" in out and " skipped" in out
    assert "is a running URL target" in out  # restart/configure contracts
    assert "trusts its own Keycloak" in out  # token contracts
    assert "static checks need the backend's files" in out  # STRUCTURE
