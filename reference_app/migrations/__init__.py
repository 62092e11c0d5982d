"""Alembic migrations of the reference backend's database."""
