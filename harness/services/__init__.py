"""Redis and Postgres for a run: external URLs, docker containers or embedded servers, behind one interface."""

from __future__ import annotations

from .base import PostgresService, RedisService
from .provider import MODES, Services, choose, provide_services

__all__ = ["MODES", "PostgresService", "RedisService", "Services", "choose", "provide_services"]
