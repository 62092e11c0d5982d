"""Alembic environment: the URL comes from the app's settings, the schema from its models."""

import sys
from importlib import import_module
from logging.config import fileConfig
from pathlib import Path

from alembic import context
from sqlalchemy import create_engine, pool


def _backend_package() -> str:
    """The backend's dotted name (`reference_app`, or `backends.shop` in a monorepo), from where
    this file is: alembic loads env.py by path, so it cannot import relatively, and a copy must need
    no edit."""
    directory = Path(__file__).resolve().parents[1]
    parts: list[str] = []
    while (directory / "__init__.py").is_file():
        parts.insert(0, directory.name)
        directory = directory.parent
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    return ".".join(parts)


_package = _backend_package()
import_module(f"{_package}.models")  # registers every table on Base.metadata
settings = import_module(f"{_package}.core.config").settings
Base = import_module(f"{_package}.database").Base

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)

target_metadata = Base.metadata


def run_migrations_offline() -> None:
    """Emit SQL to stdout (`alembic upgrade head --sql`) without a database connection."""
    context.configure(
        url=settings.database_url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Apply migrations over a fresh connection (no pooling for a one-shot command)."""
    connectable = create_engine(settings.database_url, poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
