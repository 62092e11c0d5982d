"""After a run — passed, failed, or interrupted with SIGINT/SIGTERM — nothing it started is left:
no backend, postgres or redis-server process and no temp dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import psutil
import pytest

from tests.scratch import enterable_dir
from tests.suite_runner import REPO, interruptible, killed_on_exit
from tests.variants import load_variants


@pytest.fixture
def run_root() -> Iterator[Path]:
    """A traversable dir (servers may run as `nobody`) that holds this run's MAKRX_TMPDIR."""
    with enterable_dir("cleanup-", on_shm=True) as root:
        yield root


_outputs: dict[int, IO[bytes]] = {}


def start(target: str | Path, root: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MAKRX_TMPDIR": str(root), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    # Output to a file, not a pipe: a failing run prints more than a pipe buffer holds.
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed with the process, in _outputs)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "makrx_contracts.harness.plugin",
            "-p",
            "pytest_timeout",
            f"--makrx-target={target}",
            "--makrx-services=embedded",
            "-q",
            "-p",
            "no:cacheprovider",
            *extra,
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=interruptible,
    )
    _outputs[proc.pid] = log
    return proc


def output(proc: subprocess.Popen[bytes]) -> str:
    log = _outputs[proc.pid]
    log.seek(0)
    return log.read().decode("utf-8", "replace")[-5000:]


def descendants(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    try:
        return psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_until_backend_runs(root: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> list[psutil.Process]:
    """The run's process tree once the backend (uvicorn) and Postgres are both up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = []
        for child in descendants(proc):
            try:
                # A backend forked by the fork server has its command line but is named for what it runs.
                child.info = {"pid": child.pid, "cmdline": " ".join([child.name(), *child.cmdline()])}
            except psutil.NoSuchProcess:
                continue
            found.append(child)
        if all(any(name in p.info["cmdline"] for p in found) for name in ("uvicorn", "postgres")):
            return found
        assert proc.poll() is None, output(proc)
        time.sleep(0.1)
    raise AssertionError("the backend never started")


def assert_nothing_left(root: Path, started: list[psutil.Process]) -> None:
    since = min((p.create_time() for p in started), default=time.time())
    shm = [f for f in Path("/dev/shm").glob("PostgreSQL.*") if f.stat().st_mtime >= since]
    assert not shm, f"Postgres shared memory segments left in /dev/shm: {shm}"
    # Generous: a worker told of its controller's death unwinds its fixtures, on a machine that may be busy.
    deadline = time.monotonic() + 20
    alive = started
    while time.monotonic() < deadline:
        alive = [p for p in started if _running(p)]
        if not alive and not list(root.iterdir()):
            return
        time.sleep(0.1)
    assert not alive, [p.info for p in alive]
    assert not list(root.iterdir()), list(root.iterdir())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_leaves_nothing(run_root: Path, sig: signal.Signals) -> None:
    with killed_on_exit(start("reference", run_root)) as proc:
        started = wait_until_backend_runs(run_root, proc)
        assert any("uvicorn" in p.info["cmdline"] for p in started)
        assert any("postgres" in p.info["cmdline"] for p in started)
        proc.send_signal(sig)
        proc.wait(30)
    assert proc.returncode != 0
    assert_nothing_left(run_root, started)


def run_to_end(target: str | Path, root: Path) -> tuple[subprocess.Popen[bytes], list[psutil.Process]]:
    with killed_on_exit(start(target, root)) as proc:
        started = wait_until_backend_runs(root, proc)
        proc.wait(120)
    return proc, started


def test_a_failing_run_leaves_nothing(run_root: Path, tmp_path: Path) -> None:
    variant = next(v for v in load_variants() if v.violates == "CORS-LOCAL-DEFAULT")
    proc, started = run_to_end(variant.build(tmp_path), run_root)
    assert proc.returncode == 1, output(proc)
    assert_nothing_left(run_root, started)


def test_a_passing_run_leaves_nothing(run_root: Path) -> None:
    proc, started = run_to_end("reference", run_root)
    assert proc.returncode == 0, output(proc)
    assert_nothing_left(run_root, started)


def test_a_killed_run_leaves_nothing_for_long(run_root: Path) -> None:
    """SIGKILL runs no cleanup: servers die with their parent (PR_SET_PDEATHSIG) and the watchdog
    removes the temp dir."""
    with killed_on_exit(start("reference", run_root)) as proc:
        started = wait_until_backend_runs(run_root, proc)
        proc.kill()
        proc.wait(10)
    assert_nothing_left(run_root, started)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_an_interrupted_xdist_run_leaves_nothing(run_root: Path, sig: signal.Signals) -> None:
    """Under -n the controller runs the fork server its workers' backends come from: stopping or killing
    the controller ends the workers (told by the kernel, not by execnet's 15 s timeout), the server and
    every backend, and removes every temp dir."""
    with killed_on_exit(start("reference", run_root, "-p", "xdist", "-n", "2")) as proc:
        started = wait_until_backend_runs(run_root, proc)
        assert any("forkserver" in p.info["cmdline"] and p.ppid() == proc.pid for p in started)
        proc.send_signal(sig)
        proc.wait(30)
    assert proc.returncode != 0
    assert_nothing_left(run_root, started)


_ORPHAN = """
import os, signal, sys, time
from pathlib import Path
from makrx_contracts.harness.process import die_with_parent
marker = Path(sys.argv[1])
signal.signal(signal.SIGTERM, lambda *_: (marker.write_text("SIGTERM"), os._exit(0)))
assert not die_with_parent(os.getppid() + 1)  # not its parent: reported as gone
assert die_with_parent(os.getppid())
Path(sys.argv[1] + ".pid").write_text(str(os.getpid()))
time.sleep(60)
"""


def test_a_process_that_asked_to_die_with_its_parent_gets_sigterm_when_the_parent_is_killed(tmp_path: Path) -> None:
    """What tells an xdist worker that its controller was SIGKILLed (execnet alone waits up to 15 s): the
    kernel's SIGTERM on the parent's death, whichever way the parent died."""
    marker = tmp_path / "orphan"
    spawn_then_sleep = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2]]); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", spawn_then_sleep, _ORPHAN, str(marker)], cwd=REPO)
    pid_file = Path(f"{marker}.pid")
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists():
            assert time.monotonic() < deadline and parent.poll() is None, "the child never started"
            time.sleep(0.05)
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while not marker.exists():
            assert time.monotonic() < deadline, "the child got no SIGTERM when its parent was killed"
            time.sleep(0.05)
        assert marker.read_text() == "SIGTERM"
    finally:
        parent.kill()
        parent.wait(10)
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
