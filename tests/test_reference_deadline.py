"""The reference app's request deadline with a frozen database: the late request's DB session is closed by
its own teardown once the database resumes, so no connection is left for the garbage collector to close
in the event loop's thread (which blocked readiness for as long as the next freeze lasted)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from makrx_contracts.harness.ports import free_port
from makrx_contracts.harness.services.embedded import EmbeddedPostgres
from makrx_contracts.harness.waiting import wait_for

from .scratch import enterable_dir

APP = textwrap.dedent("""
    from fastapi import FastAPI
    from sqlalchemy import text
    from starlette.middleware import Middleware

    from makrx_contracts.reference_app.database import engine
    from makrx_contracts.reference_app.dependencies import DbSession
    from makrx_contracts.reference_app.middleware.timeout import RequestTimeoutMiddleware

    app = FastAPI(middleware=[Middleware(RequestTimeoutMiddleware, timeout=0.5)])


    @app.get("/query")
    def query(db: DbSession) -> dict[str, int]:
        return {"one": db.execute(text("SELECT 1")).scalar_one()}


    @app.get("/pool")
    async def pool() -> dict[str, int]:
        return {"checked_out": engine.pool.checkedout()}
""")


@pytest.fixture
def postgres() -> Iterator[EmbeddedPostgres]:
    with enterable_dir("makrx-test-deadline-") as workdir:
        service = EmbeddedPostgres(workdir=workdir)
        try:
            yield service
        finally:
            service.close()


@pytest.fixture
def backend(postgres: EmbeddedPostgres, tmp_path: Path) -> Iterator[str]:
    (tmp_path / "deadline_app.py").write_text(APP)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://{postgres.user}:{postgres.password}@{postgres.host}:"
        f"{postgres.port}/{postgres.dbname}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "deadline_app:app", "--port", str(port), "--log-level", "warning"],
        cwd=tmp_path,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: _answers(url),
            timeout=30,
            what="the deadline test app",
            abort=lambda: None if proc.poll() is None else f"it exited with {proc.returncode}",
        )
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/pool", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_a_request_past_the_deadline_returns_its_connection_once_the_database_resumes(
    postgres: EmbeddedPostgres, backend: str
) -> None:
    assert httpx.get(f"{backend}/query", timeout=5).json() == {"one": 1}
    postgres.pause()
    try:
        late = httpx.get(f"{backend}/query", timeout=5)
    finally:
        postgres.unpause()
    assert late.status_code == 503 and late.json()["error"]["message"] == "Request timed out"
    # The late handler finishes on its own, then its teardown closes the session: nothing stays checked out.
    wait_for(
        lambda: httpx.get(f"{backend}/pool", timeout=2).json()["checked_out"] == 0,
        timeout=10,
        what="the late request's connection back in the pool",
    )
