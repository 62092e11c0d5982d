"""SQLAlchemy engine, session factory, declarative base and the `get_db` dependency."""

from collections.abc import Iterator

from sqlalchemy import create_engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from .core.config import settings

DB_CONNECT_TIMEOUT_SECONDS = 2  # libpq's minimum; a stopped database fails fast instead of hanging

engine = create_engine(
    settings.database_url,
    pool_pre_ping=True,  # drop connections that died while the database was away
    connect_args={"connect_timeout": DB_CONNECT_TIMEOUT_SECONDS},
)
SessionLocal = sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    """Base class of every ORM model (Alembic reads its metadata)."""


def get_db() -> Iterator[Session]:
    """One session per request, closed (and rolled back if uncommitted) afterwards."""
    with SessionLocal() as session:
        yield session
