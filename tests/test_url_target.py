"""A running backend given by URL is checked as it is; contracts that must restart or configure it,
or that need tokens it trusts, are skipped with the reason printed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.issuer import Issuer
from harness.services import provide_services
from harness.target.launcher import TargetLauncher
from harness.target.resolve import resolve_target
from tests.suite_runner import REPO


@pytest.fixture(scope="module")
def running_reference() -> Iterator[str]:
    workdir = Path(tempfile.mkdtemp(prefix="urltarget-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    workdir.chmod(0o755)
    services = provide_services("embedded", redis_url=None, database_url=None, workdir=workdir / "services")
    issuer = Issuer(realm="makrx", seed=0).start()
    launcher = TargetLauncher(resolve_target("reference"), services=services, issuer=issuer, workdir=workdir)
    try:
        yield launcher.launch().base_url
    finally:
        launcher.close()
        issuer.stop()
        services.close()
        shutil.rmtree(workdir, ignore_errors=True)


def test_a_url_target_runs_and_skips_with_reasons(running_reference: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pytest", f"--makrx-target={running_reference}", "-q", "-rs",
                           "-p", "no:randomly", "-p", "no:cacheprovider"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    out = done.stdout
    assert done.returncode == 0, out[-4000:]
    assert " passed" in out and " skipped" in out
    assert "is a running URL target" in out  # restart/configure contracts
    assert "trusts its own Keycloak" in out  # token contracts
    assert "static checks need the backend's files" in out  # STRUCTURE
