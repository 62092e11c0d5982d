"""Readiness probes: can this instance reach its database and Keycloak right now?"""

import asyncio

import httpx
import structlog
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ..core.config import settings
from ..database import engine

log = structlog.get_logger(__name__)

DATABASE_TIMEOUT_SECONDS = 3.0  # above the 2 s connect timeout; bounds a paused server too
KEYCLOAK_TIMEOUT_SECONDS = 1.5


def _select_one() -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


async def database_ready() -> bool:
    """`SELECT 1` through the app's own pool (pre-ping replaces connections that died)."""
    try:
        # A thread stuck on a paused server is abandoned; the probe still answers in time.
        await asyncio.wait_for(asyncio.to_thread(_select_one), DATABASE_TIMEOUT_SECONDS)
    except (SQLAlchemyError, TimeoutError) as exc:  # the reason goes to the log only
        log.warning("readiness_database_failed", error=repr(exc))
        return False
    return True


async def keycloak_ready() -> bool:
    """The realm's OpenID discovery document answers 200."""
    url = f"{settings.keycloak_issuer}/.well-known/openid-configuration"
    try:
        async with httpx.AsyncClient(timeout=KEYCLOAK_TIMEOUT_SECONDS) as client:
            response = await client.get(url)
    except httpx.HTTPError as exc:
        log.warning("readiness_keycloak_failed", error=repr(exc))
        return False
    if response.status_code != 200:
        log.warning("readiness_keycloak_failed", status=response.status_code)
        return False
    return True


async def check_readiness() -> dict[str, bool]:
    """Every dependency's state, probed concurrently and afresh on each call."""
    database, keycloak = await asyncio.gather(database_ready(), keycloak_ready())
    return {"database": database, "keycloak": keycloak}
