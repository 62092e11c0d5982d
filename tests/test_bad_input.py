"""Bad input ends the run within seconds with one clear line naming the cause and the fix, and leaves
nothing running."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.suite_runner import REPO


def run(target: str, *extra: str, timeout: float = 60, env: dict[str, str] | None = None) -> tuple[int, str]:
    """The suite's exit code and output; a run that hangs fails the test by its ``timeout``."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            f"--makrx-target={target}",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "-q",
            *extra,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    return done.returncode, done.stdout + done.stderr


def _processes_mentioning(marker: str) -> list[str]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if marker in cmd:
            found.append(cmd)
    return found


def _backend(tmp_path: Path, body: str) -> Path:
    app = tmp_path / "badapp"
    app.mkdir()
    (app / "main.py").write_text(body)
    return app


def test_a_missing_target_path(tmp_path: Path) -> None:
    code, out = run(str(tmp_path / "nope"))
    assert code == pytest.ExitCode.USAGE_ERROR
    assert "target path" in out and "does not exist" in out and "fix:" in out
    assert "Traceback" not in out


def test_a_directory_without_an_app(tmp_path: Path) -> None:
    code, out = run(str(tmp_path))
    assert code == pytest.ExitCode.USAGE_ERROR
    assert "no main.py" in out and "fix:" in out


def test_an_app_that_raises_on_import(tmp_path: Path) -> None:
    app = _backend(tmp_path, "raise RuntimeError('boom: SMTP_HOST is not set')\n")
    code, out = run(str(app))
    assert code == pytest.ExitCode.TESTS_FAILED
    assert "failed to start" in out and "RuntimeError: boom: SMTP_HOST is not set" in out
    assert out.count("failed to start") <= 2, "one message, not one per test"
    assert not _processes_mentioning(str(app))


def test_an_app_that_raises_on_import_under_xdist_reads_the_same(tmp_path: Path) -> None:
    """A worker's harness error stops the run with its message and exit 1, as serially: not an
    INTERNALERROR about the tests the worker left unfinished."""
    app = _backend(tmp_path, "raise RuntimeError('boom: SMTP_HOST is not set')\n")
    code, out = run(str(app), "-n", "2")
    assert code == pytest.ExitCode.TESTS_FAILED, out
    assert "failed to start" in out and "RuntimeError: boom: SMTP_HOST is not set" in out
    assert "INTERNALERROR" not in out and "Traceback" not in out
    assert not _processes_mentioning(str(app))


@pytest.mark.parametrize(
    ("error", "setting"),
    [
        (
            "raise ValueError('SMTP_USERNAME and SMTP_PASSWORD environment variables must be set.')",
            'give it in [env] of makrx-contract.toml beside the backend (SMTP_USERNAME = "..." SMTP_PASSWORD = "...")',
        ),
        ("import jose_not_installed", 'set python = ".venv/bin/python"'),
        (
            "raise ValueError('1 validation error for Settings\\nENVIRONMENT\\n  String should match pattern "
            "^(development|staging|production)$')",
            'set environment = "development"',
        ),
    ],
)
def test_a_boot_failure_names_the_setting_that_fixes_it(tmp_path: Path, error: str, setting: str) -> None:
    code, out = run(str(_backend(tmp_path, error + "\n")))
    assert code == pytest.ExitCode.TESTS_FAILED
    assert setting in out, out


def test_an_app_that_never_answers(tmp_path: Path) -> None:
    app = _backend(tmp_path, "import time\ntime.sleep(600)\n")
    code, out = run(str(app), "--makrx-ready-timeout=2")
    assert code == pytest.ExitCode.TESTS_FAILED
    assert "never answered HTTP" in out and "--makrx-ready-timeout" in out
    assert not _processes_mentioning(str(app))


def test_a_port_already_taken(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        app = _backend(tmp_path, "async def app(scope, receive, send):\n    pass\n")
        (app / "makrx-contract.toml").write_text(
            f'command = "{{python}} -m uvicorn main:app --host 127.0.0.1 --port {port}"\n'
        )
        code, out = run(str(app), "--makrx-ready-timeout=5")
    assert code == pytest.ExitCode.TESTS_FAILED
    assert "could not bind its port" in out


def test_an_unreachable_external_service(tmp_path: Path) -> None:
    code, out = run(
        "reference", "--makrx-redis-url=redis://127.0.0.1:9/0", "--makrx-database-url=postgresql://u:p@127.0.0.1:9/db"
    )
    assert code != 0
    assert "127.0.0.1:9" in out and "--makrx-" in out
    assert "Traceback" not in out


def test_a_url_target_with_nothing_listening_is_one_line() -> None:
    with socket.socket() as holder:  # a port that was free a moment ago, closed again: nothing listens
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
    code, out = run(f"http://127.0.0.1:{port}")
    assert code == pytest.ExitCode.TESTS_FAILED
    assert f"http://127.0.0.1:{port} does not answer: ConnectError" in out and "fix: start the backend" in out
    assert out.count("ConnectError") <= 2 and "Traceback" not in out


def test_a_glob_leaves_out_directories_that_are_not_backends(tmp_path: Path) -> None:
    """`backends/*` in a monorepo also matches shared packages: each is one line, the others still run."""
    backends = tmp_path / "backends"
    backends.mkdir()
    _backend(backends, "app = None\n").rename(backends / "shop")
    (backends / "utils").mkdir()
    code, out = run(f"{backends}/*", "--collect-only", "-v")  # -v undoes run()'s -q: the header shows
    assert code == pytest.ExitCode.OK, out
    assert f"{backends}/utils: left out of --makrx-target={backends}/*: no main.py" in out
    assert f"makrx target: {backends}/shop" in out


def test_a_glob_of_no_backend_is_one_usage_error(tmp_path: Path) -> None:
    (tmp_path / "utils").mkdir()
    code, out = run(f"{tmp_path}/*")
    assert code == pytest.ExitCode.USAGE_ERROR
    assert "no backend among the targets" in out and "Traceback" not in out


@pytest.mark.skipif(os.geteuid() != 0, reason="only root drops the servers to an unprivileged user")
def test_a_cache_dir_the_servers_cannot_enter_is_one_message_under_xdist(tmp_path: Path) -> None:
    private = tmp_path / "cache"
    private.mkdir(mode=0o700)
    code, out = run("reference", "-n", "2", "--makrx-services=embedded", env={"MAKRX_CACHE_DIR": str(private)})
    assert code == pytest.ExitCode.TESTS_FAILED, out
    assert "initdb" in out and "chmod 755" in out
    assert "INTERNALERROR" not in out and "Traceback" not in out
