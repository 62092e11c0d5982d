"""STRUCTURE: the backend's files follow the conventions' layout (static checks on a path target)."""

from __future__ import annotations

import ast
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from makrx_contracts.harness.backend.alembic import alembic_layout
from makrx_contracts.harness.backend.launcher import MigrationResult, TargetLauncher
from makrx_contracts.harness.backend.resolve import TargetSpec
from makrx_contracts.harness.contract import MUST, SHOULD, expect, violation
from makrx_contracts.harness.services.base import PostgresService

pytestmark = pytest.mark.structure

LAYOUT = (
    "main.py",
    "database.py",
    "dependencies.py",
    "models/",
    "schemas/",
    "crud/",
    "routes/",
    "middleware/",
    "services/",
    "security/",
    "core/config.py",
    "migrations/",
)
ENV_EXAMPLE_NAMES = (
    "KEYCLOAK_URL",
    "KEYCLOAK_REALM",
    "KEYCLOAK_CLIENT_ID",
    "DATABASE_URL",
    "REDIS_URL",
    "CORS_ORIGINS",
    "TRUST_PROXY",
)


@pytest.fixture(scope="module")
def backend_dir(makrx_target_spec: TargetSpec) -> Path:
    if makrx_target_spec.path is None:
        pytest.skip("static checks need the backend's files; a URL target has none here")
    return makrx_target_spec.path


def _missing(root: Path, entries: tuple[str, ...]) -> list[str]:
    return [
        e
        for e in entries
        if (e.endswith("/") and not (root / e.rstrip("/")).is_dir())
        or (not e.endswith("/") and not (root / e).is_file())
    ]


@pytest.mark.contract("STRUCT-LAYOUT", level=MUST)
def test_the_backend_has_the_conventional_layout(backend_dir: Path) -> None:
    """The backend has main.py, database.py, dependencies.py, models/, schemas/, crud/, routes/,
    middleware/, services/, security/, core/config.py and migrations/.

    CONVENTIONS, Structure.
    """
    missing = _missing(backend_dir, LAYOUT)
    expect(
        not missing,
        f"{backend_dir.name} lacks parts of the layout",
        received="missing " + ", ".join(missing),
        expected=", ".join(LAYOUT),
    )


@pytest.mark.contract("STRUCT-ERROR-MIDDLEWARE", level=MUST)
def test_errors_are_handled_in_middleware_error_handling(backend_dir: Path) -> None:
    """Structured error responses live in middleware/error_handling.py.

    CONVENTIONS, Error Handling: "Use middleware/error_handling.py for structured responses".
    """
    expect(
        (backend_dir / "middleware" / "error_handling.py").is_file(),
        "no middleware/error_handling.py",
        received="file missing",
        expected=f"{backend_dir.name}/middleware/error_handling.py",
    )


@pytest.mark.contract("STRUCT-SECURITY-HELPERS", level=MUST)
def test_security_helpers_live_under_security(backend_dir: Path) -> None:
    """Reusable security helpers and sanitizers are security/helpers.py and security/input_validation.py.

    CONVENTIONS, Security.
    """
    missing = _missing(backend_dir / "security", ("helpers.py", "input_validation.py"))
    expect(
        not missing,
        "security helpers missing",
        received="missing security/" + ", security/".join(missing),
        expected="security/helpers.py and security/input_validation.py",
    )


def _defines_base_settings(path: Path) -> bool:
    try:
        tree = ast.parse(path.read_text())
    except (SyntaxError, OSError):
        return False
    imported = any(
        isinstance(n, ast.ImportFrom) and (n.module or "").startswith("pydantic_settings") for n in ast.walk(tree)
    )
    subclass = any(
        isinstance(n, ast.ClassDef)
        and any(
            (isinstance(b, ast.Name) and b.id == "BaseSettings")
            or (isinstance(b, ast.Attribute) and b.attr == "BaseSettings")
            for b in n.bases
        )
        for n in ast.walk(tree)
    )
    return imported and subclass


@pytest.mark.contract("STRUCT-PYDANTIC-SETTINGS", level=MUST)
def test_config_is_pydantic_settings(backend_dir: Path) -> None:
    """core/config.py defines the runtime options as a pydantic-settings BaseSettings class.

    CONVENTIONS, Config: "Service runtime options via core/config.py (pydantic settings)".
    """
    config = backend_dir / "core" / "config.py"
    expect(
        config.is_file() and _defines_base_settings(config),
        "core/config.py has no pydantic-settings class",
        received="missing file" if not config.is_file() else "no BaseSettings subclass from pydantic_settings",
        expected="class Settings(BaseSettings) imported from pydantic_settings",
    )


@pytest.mark.contract("STRUCT-ENV-EXAMPLE", level=MUST)
def test_env_example_names_the_variables(backend_dir: Path) -> None:
    """`.env.example` exists and names the variables the harness (and production) sets.

    CONVENTIONS, Config: "plus .env.example per backend"; SPEC §2 (the MakrX auth contract).
    """
    example = backend_dir / ".env.example"
    text = example.read_text() if example.is_file() else ""
    named = set(re.findall(r"^\s*#?\s*([A-Z][A-Z0-9_]*)\s*=", text, re.M))
    missing = [n for n in ENV_EXAMPLE_NAMES if n not in named]
    expect(
        example.is_file() and not missing,
        ".env.example is missing or incomplete",
        received="no .env.example" if not example.is_file() else "missing " + ", ".join(missing),
        expected=", ".join(ENV_EXAMPLE_NAMES),
    )


@pytest.mark.contract("STRUCT-ALEMBIC", level=MUST)
def test_alembic_config_and_versions_exist(backend_dir: Path, makrx_target_spec: TargetSpec) -> None:
    """alembic.ini exists, its script_location resolves (from the backend's directory, or the root a
    team runs alembic from: where the harness runs it), and that folder has a versions/ dir.

    CONVENTIONS, Migrations: "Include Alembic config and versions dir per backend."
    """
    ini = backend_dir / "alembic.ini"
    scripts = alembic_layout(ini, makrx_target_spec).script_dir if ini.is_file() else None
    expect(
        scripts is not None and (scripts / "versions").is_dir(),
        "no Alembic config with a versions dir",
        received="no alembic.ini with [alembic] script_location" if scripts is None else f"{scripts}/versions missing",
        expected="alembic.ini + <script_location>/versions/",
    )


@dataclass(frozen=True)
class FreshMigration:
    """`alembic upgrade head` on a fresh database, the tables it left there (but alembic_version), then
    `alembic check` (models against that schema)."""

    upgrade: MigrationResult
    migrated_tables: tuple[str, ...]
    check: MigrationResult | None


# alembic check's diff lists the tables autogenerate would add or drop:
# ('add_table', Table('members', MetaData(), ...   ('remove_table', Table('items', MetaData(), ...
_TABLE_OP = re.compile(r"\('(add|remove)_table', Table\('([^']+)'")


def _diff_tables(output: str, op: str) -> list[str]:
    """The tables alembic check's diff would ``op`` ("add" or "remove"), once each: its ERROR log line and
    its FAILED line repeat the diff."""
    return list(dict.fromkeys(name for kind, name in _TABLE_OP.findall(output) if kind == op))


def _listed(names: Sequence[str], most: int = 12) -> str:
    """The first ``most`` names, and how many more: a large schema would bury the message."""
    return ", ".join(names[:most]) + (f" (+{len(names) - most} more)" if len(names) > most else "")


def _user_tables(postgres: PostgresService, dbname: str) -> tuple[str, ...]:
    """The tables of every non-system schema of ``dbname``, without Alembic's own alembic_version."""
    with postgres.connect(dbname) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', "
            "'information_schema') AND tablename <> 'alembic_version'"
        ).fetchall()
    return tuple(sorted({row[0] for row in rows}))


@pytest.fixture(scope="module")
def fresh_migration(backend_dir: Path, makrx_launcher: TargetLauncher, makrx_services: Any) -> FreshMigration:
    ini = backend_dir / "alembic.ini"
    if not ini.is_file():
        pytest.skip("precondition: no alembic.ini (see STRUCT-ALEMBIC)")
    dbname = f"makrx_migrate_{uuid.uuid4().hex[:8]}"
    url = makrx_services.postgres.create_database(dbname)
    env = makrx_launcher.base_env(0, makrx_launcher.as_backend_url(url))
    try:
        upgrade = makrx_launcher.upgrade_head(ini, env)
        migrated = _user_tables(makrx_services.postgres, dbname)
        # The whole diff: each Table's repr lists its columns, so a few tables fill kilobytes.
        check = makrx_launcher.alembic(ini, env, "check", max_bytes=1_000_000) if upgrade.ok else None
    finally:
        makrx_services.postgres.drop_database(dbname)
    return FreshMigration(upgrade, migrated, check)


@pytest.mark.contract("STRUCT-MIGRATIONS-APPLY", level=MUST)
def test_alembic_upgrade_head_succeeds(fresh_migration: FreshMigration) -> None:
    """`alembic -c <backend>/alembic.ini upgrade head` succeeds against a fresh test database.

    CONVENTIONS, Migrations: "Use alembic ... upgrade head".
    """
    done = fresh_migration.upgrade
    if done.hung:
        raise violation("alembic upgrade head hung", received=done.output, expected="exit 0")
    expect(
        done.ok,
        "alembic upgrade head failed on a fresh database",
        received=f"exit {done.returncode}: {done.cause[:300]}",
        expected="exit 0",
    )


@pytest.mark.contract("STRUCT-MIGRATIONS-COMPLETE", level=MUST)
def test_migrations_create_the_tables_the_models_declare(fresh_migration: FreshMigration) -> None:
    """After `alembic upgrade head` on a fresh database, every table the models declare (the MetaData
    migrations/env.py gives alembic as target_metadata) exists: `alembic check` finds no table to add. A
    chain of empty placeholder migrations, or models added without a revision, fails here. That MetaData
    must hold the models' tables: when the check would drop every table the migrations created (env.py
    never imported the models, so `Base.metadata` is empty) or has no MetaData at all, it compared
    nothing, and that fails too. (Column-level drift is not judged.)

    CONVENTIONS, Migrations: "alembic ... revision --autogenerate" (needs target_metadata) and "upgrade head".
    """
    done = fresh_migration.check
    if done is None:
        pytest.skip("precondition: alembic upgrade head failed (see STRUCT-MIGRATIONS-APPLY)")
    if done.hung:
        raise violation("alembic check hung", received=done.output[-500:], expected="exit 0 or 1")
    if "invalid choice: 'check'" in done.output:
        pytest.skip("the backend's alembic has no `check` command (alembic 1.9+): it cannot compare the models")
    missing = _diff_tables(done.output, "add")
    expect(
        not missing,
        "tables the models declare are not created by the migrations",
        received=f"missing after upgrade head: {_listed(missing)}",
        expected="alembic upgrade head creates every table in target_metadata (autogenerate a revision)",
    )
    expect(
        done.ok or "New upgrade operations detected" in done.output,
        "alembic cannot compare the models with the migrated schema",
        received=f"exit {done.returncode}: {done.cause[:300]}",
        expected="migrations/env.py passes the models' MetaData as target_metadata (as autogenerate needs)",
    )
    migrated = fresh_migration.migrated_tables
    removed = _diff_tables(done.output, "remove")
    # Models that declare a migrated table keep it out of the diff; with no migrated table, nothing tells.
    expect(
        not migrated or not set(migrated) <= set(removed),
        "target_metadata declares no tables",
        received=f"alembic check would remove every migrated table: {_listed(migrated)}",
        expected="migrations/env.py imports the models so target_metadata holds their tables "
        "(autogenerate compares nothing otherwise)",
    )


# Not the service's modules: tests, environments and caches inside the backend directory.
_NOT_SERVICE = {"tests", "test", "__pycache__", "node_modules", "site-packages"}


def _absolute_self_imports(backend_dir: Path, package: str) -> list[str]:
    found = []
    for path in sorted(backend_dir.rglob("*.py")):
        relative = path.relative_to(backend_dir)
        if any(part in _NOT_SERVICE or part.startswith(".") or part.endswith("venv") for part in relative.parts[:-1]):
            continue
        try:
            tree = ast.parse(path.read_text())
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.level == 0
                and node.module
                and (node.module == package or node.module.startswith(package + "."))
            ):
                found.append(f"{relative}:{node.lineno} from {node.module}")
            elif isinstance(node, ast.Import):
                found += [
                    f"{relative}:{node.lineno} import {alias.name}"
                    for alias in node.names
                    if alias.name == package or alias.name.startswith(package + ".")
                ]
    return found


@pytest.mark.contract("STRUCT-RELATIVE-IMPORTS", level=SHOULD)
def test_package_uses_relative_imports(backend_dir: Path, makrx_target_spec: TargetSpec) -> None:
    """The backend's modules import its own modules relatively (`from ..database import get_db`), so the
    package works under any name (a copy as `backends/shop`); its tests are not the service.

    CONVENTIONS, Imports: "Prefer package-relative imports inside service".
    """
    root = makrx_target_spec.import_root
    if root is None or root == backend_dir:
        pytest.skip("precondition: the backend is not a package, so relative imports are impossible")
    package = ".".join(backend_dir.relative_to(root).parts)
    found = _absolute_self_imports(backend_dir, package)
    expect(
        not found,
        "modules import their own package absolutely",
        received="; ".join(found[:5]),
        expected="relative imports such as `from ..database import get_db`",
    )
