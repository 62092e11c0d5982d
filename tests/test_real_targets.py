"""Real MakrX backends as targets: monorepo packages with absolute and relative imports, per-target
env/ENVIRONMENT/database_url/ready_timeout, the backend's own interpreter, a launch command."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.suite_runner import REPO

MAIN = """
import os

from fastapi import FastAPI

from backends.utils.api_errors import error_body  # absolute, across the monorepo
from .database import scheme  # relative, inside the service

# Real backends crash at import without their env, or reject ENVIRONMENT values they do not know.
assert os.environ["SMTP_HOST"] == "localhost", "SMTP_HOST is not set"
assert os.environ["ENVIRONMENT"] in ("development", "staging", "production"), os.environ["ENVIRONMENT"]
assert scheme() == "postgresql+asyncpg", os.environ["DATABASE_URL"]

app = FastAPI()


@app.get("/api/v1/ping")
def ping() -> dict:
    return error_body("pong")
"""


def monorepo(root: Path, settings: str) -> Path:
    files = {
        "backends/__init__.py": "",
        "backends/utils/__init__.py": "",
        "backends/utils/api_errors.py": "def error_body(message):\n    return {'message': message}\n",
        "backends/shop/__init__.py": "",
        "backends/shop/database.py": "import os\n\ndef scheme():\n    return os.environ['DATABASE_URL'].split('://')[0]\n",
        "backends/shop/main.py": MAIN,
        "backends/shop/pyproject.toml": settings,
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))
    return root / "backends" / "shop"


SETTINGS = """
[tool.makrx-contract]
environment = "staging"
database_url = "postgresql+asyncpg://{user}:{password}@{host}:{port}/{dbname}"
ready_timeout = 20
%s
[tool.makrx-contract.env]
SMTP_HOST = "localhost"
"""


def run(target: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            f"--makrx-target={target}",
            "-m",
            "prefix",
            "-q",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            *args,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_monorepo_backend_boots_with_its_settings(tmp_path: Path) -> None:
    shop = monorepo(tmp_path, SETTINGS % "")
    done = run(shop)
    assert "failed to start" not in done.stdout and "could not boot" not in done.stdout, done.stdout[-3000:]
    assert "PREFIX 3/3 MUST ok" in done.stdout  # booted: imported as backends.shop.main:app


def test_a_launch_command_with_port_substitution(tmp_path: Path) -> None:
    command = 'command = "{python} -m uvicorn backends.shop.main:app --host 127.0.0.1 --port {port}"'
    shop = monorepo(tmp_path, SETTINGS % command)
    done = run(shop)
    assert " passed" in done.stdout and "could not boot" not in done.stdout, done.stdout[-3000:]


def test_an_interpreter_without_uvicorn_is_one_clear_line(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    shop = monorepo(tmp_path, SETTINGS % "")
    done = run(shop, f"--makrx-python={venv / 'bin' / 'python'}")
    assert done.returncode == 1
    assert f"uvicorn is not installed in {venv / 'bin' / 'python'}" in done.stdout
    assert "Traceback" not in done.stdout
