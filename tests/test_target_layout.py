"""How a path target is read: its app's import name and where its migrations run (issue 12, rough edges)."""

from __future__ import annotations

from pathlib import Path

import pytest
from makrx_contracts.harness.backend.alembic import alembic_layout
from makrx_contracts.harness.backend.launcher import MigrationResult
from makrx_contracts.harness.backend.resolve import resolve_target


def _backend(root: Path, script_location: str, settings: str = "") -> Path:
    backend = root / "backends" / "shop"
    (backend / "migrations" / "versions").mkdir(parents=True)
    for package in (root / "backends", backend):
        (package / "__init__.py").write_text("")
    (backend / "main.py").write_text("app = None\n")
    (backend / "alembic.ini").write_text(f"[alembic]\nscript_location = {script_location}\n")
    (backend / "makrx-contract.toml").write_text(settings)
    return backend


@pytest.mark.parametrize("app", ["main:app", "backends.shop.main:app"])
def test_app_is_qualified_once(tmp_path: Path, app: str) -> None:
    """`main:app` is inside the package; `backends.shop.main:app` is already whole (not doubled)."""
    backend = _backend(tmp_path, "migrations", f'app = "{app}"\n')
    assert resolve_target(str(backend)).app == "backends.shop.main:app"


def test_relative_script_location_runs_from_the_backend_directory(tmp_path: Path) -> None:
    """`script_location = migrations` (how real backends write it) resolves from the backend's directory."""
    backend = _backend(tmp_path, "migrations")
    layout = alembic_layout(backend / "alembic.ini", resolve_target(str(backend)))
    assert (layout.cwd, layout.script_dir) == (backend, backend / "migrations")


def test_location_written_from_the_repository_root_runs_from_there(tmp_path: Path) -> None:
    backend = _backend(tmp_path, "backends/shop/migrations")
    layout = alembic_layout(backend / "alembic.ini", resolve_target(str(backend)))
    assert (layout.cwd, layout.script_dir) == (tmp_path, backend / "migrations")


def test_here_is_the_ini_directory(tmp_path: Path) -> None:
    backend = _backend(tmp_path, "%(here)s/migrations")
    assert alembic_layout(backend / "alembic.ini", resolve_target(str(backend))).script_dir == backend / "migrations"


def test_a_location_that_exists_nowhere_is_judged_from_the_backend(tmp_path: Path) -> None:
    """STRUCT-ALEMBIC then reports `<backend>/gone/versions missing`."""
    backend = _backend(tmp_path, "gone")
    layout = alembic_layout(backend / "alembic.ini", resolve_target(str(backend)))
    assert (layout.cwd, layout.script_dir) == (backend, backend / "gone")


def test_migration_cause_is_the_exception_line_not_sqlalchemys_link() -> None:
    output = (
        'Traceback (most recent call last):\n  File "env.py", line 3\n'
        'sqlalchemy.exc.ProgrammingError: (psycopg.errors.UndefinedTable) relation "items" does not exist\n'
        "[SQL: ALTER TABLE items ADD COLUMN x INTEGER]\n"
        "(Background on this error at: https://sqlalche.me/e/20/f405)\n"
    )
    cause = MigrationResult("alembic upgrade head", 1, output).cause
    assert cause.startswith("sqlalchemy.exc.ProgrammingError: (psycopg.errors.UndefinedTable)")
