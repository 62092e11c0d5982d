"""The fork server: what it preloads, and that a forked run is what a fresh `python -m` would be — its own
environment, directory, arguments and exit code, its name in `ps`, dead with the server."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
from makrx_contracts.harness.backend.preload import ForkServer, preload_modules
from makrx_contracts.harness.backend.resolve import resolve_target
from makrx_contracts.harness.backend.starter import fork_server_for

PROBE = """
import json, os, sys
print(json.dumps({"env": dict(os.environ), "cwd": os.getcwd(), "argv": sys.argv[1:], "path0": sys.path[0]}))
sys.exit(int(os.environ.get("PROBE_EXIT", "0")))
"""


@pytest.fixture
def backend(tmp_path: Path) -> Path:
    root = tmp_path / "backend"
    root.mkdir()
    (root / "probe.py").write_text(PROBE)
    (root / "sleeper.py").write_text("import time\ntime.sleep(60)\n")
    (root / "threads.py").write_text(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
    )
    return root


@pytest.fixture
def server(backend: Path, tmp_path: Path) -> Iterator[ForkServer]:
    found = ForkServer(
        sys.executable,
        cwd=backend,
        env={"PATH": os.environ["PATH"], "SERVER_ONLY": "1"},
        modules=["json", "no_such_module_here"],
        log_path=tmp_path / "server.log",
    )
    yield found
    found.close()


def test_preload_lists_third_party_imports_not_the_backends_own(tmp_path: Path) -> None:
    app = tmp_path / "svc" / "app"
    (app / "routes").mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "main.py").write_text(
        "import fastapi\nfrom sqlalchemy.orm import Session\nfrom app.routes import x\n"
        "from . import config\nfrom __future__ import annotations\n"
    )
    (app / "routes" / "x.py").write_text("from app.main import y\nimport redis.asyncio as r\n")
    for skipped in (".venv", "tests"):
        (app / skipped).mkdir()
        (app / skipped / "x.py").write_text("import should_not_be_seen\n")
    found = preload_modules(app, [tmp_path / "svc"])
    assert found[:3] == ["fastapi", "sqlalchemy.orm", "redis.asyncio"]
    assert "uvicorn.main" in found and "alembic.config" in found
    assert not [m for m in found if m.startswith(("app", "should_not")) or m == "__future__"]


def test_a_forked_run_has_exactly_its_own_environment_directory_and_arguments(
    server: ForkServer, backend: Path, tmp_path: Path
) -> None:
    assert server.usable()
    assert server.status()["failed"][0].startswith("no_such_module_here: ModuleNotFoundError")
    log = tmp_path / "probe.log"
    process = server.spawn(
        "probe", ["--flag", "x y"], env={"PROBE_EXIT": "3", "ONLY_HERE": "yes"}, cwd=backend, log_path=log, name="probe"
    )
    assert process.wait(10)
    assert process.exit_code() == 3
    seen = json.loads(log.read_text())
    assert seen["env"] == {"PROBE_EXIT": "3", "ONLY_HERE": "yes"}  # not the server's SERVER_ONLY, PATH
    assert seen["cwd"] == str(backend) and seen["path0"] == str(backend)
    assert seen["argv"] == ["--flag", "x y"]


def test_a_forked_run_is_named_for_its_module_and_dies_with_the_server(
    server: ForkServer, backend: Path, tmp_path: Path
) -> None:
    process = server.spawn("sleeper", [], env={}, cwd=backend, log_path=tmp_path / "sleeper.log", name="sleeper")
    child = psutil.Process(process.pid)
    deadline = time.monotonic() + 5
    while child.name() != "sleeper" and time.monotonic() < deadline:  # named just after the fork
        time.sleep(0.02)
    assert child.name() == "sleeper"
    assert child.ppid() == server.pid
    assert os.getpgid(process.pid) == process.pid  # leads its own group, so stop() ends what it forks
    server.close()
    deadline = time.monotonic() + 5
    while child.is_running() and child.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    assert process.exit_code() == -9  # the server is gone: its children died with it


def test_stop_ends_a_forked_run(server: ForkServer, backend: Path, tmp_path: Path) -> None:
    process = server.spawn("sleeper", [], env={}, cwd=backend, log_path=tmp_path / "sleeper.log", name="sleeper")
    assert process.is_running()
    assert process.stop(timeout=5) == -15
    assert not psutil.pid_exists(process.pid)


def test_a_preload_that_starts_a_thread_makes_the_server_unusable(backend: Path, tmp_path: Path) -> None:
    server = ForkServer(
        sys.executable,
        cwd=backend,
        env={"PATH": os.environ["PATH"]},
        modules=["threads"],
        log_path=tmp_path / "server.log",
    )
    try:
        assert server.status()["threads"] == 2
        assert not server.usable()
    finally:
        server.close()


def test_preload_false_boots_instances_the_usual_way(tmp_path: Path) -> None:
    spec = resolve_target("reference")
    default = fork_server_for(spec, sys.executable, tmp_path)
    try:
        assert default is not None
    finally:
        if default is not None:
            default.close()
    assert (
        fork_server_for(replace(spec, settings=replace(spec.settings, preload=False)), sys.executable, tmp_path) is None
    )
