"""Shared FastAPI dependencies: database session, authenticated user, role checks."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import structlog
from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from .core.config import settings
from .database import get_db
from .services.keycloak import (
    InvalidTokenError,
    KeycloakUnavailableError,
    TokenVerifier,
    roles_from_claims,
)

log = structlog.get_logger(__name__)

DbSession = Annotated[Session, Depends(get_db)]

# auto_error=False: FastAPI would answer 403 for a missing header; the contract is 401.
bearer_scheme = HTTPBearer(auto_error=False, description="Keycloak access token")

token_verifier = TokenVerifier(
    issuer=settings.keycloak_issuer,
    audience=settings.keycloak_client_id,
    verify_audience=settings.keycloak_verify_aud,
    jwks_ttl=settings.keycloak_pk_ttl_seconds,
)


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller behind a verified access token."""

    sub: str
    preferred_username: str | None
    email: str | None
    roles: frozenset[str]


async def get_current_user(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """The verified caller: 401 without a valid Bearer token, 503 when Keycloak is unreachable."""
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Not authenticated",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        claims = await token_verifier.verify(credentials.credentials)
    except InvalidTokenError as exc:
        log.info("token_rejected", reason=str(exc))
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Invalid or expired token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from None
    except KeycloakUnavailableError as exc:
        log.warning("keycloak_unavailable", reason=str(exc))
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "Authentication service unavailable"
        ) from None
    return Principal(
        sub=claims["sub"],
        preferred_username=claims.get("preferred_username"),
        email=claims.get("email"),
        roles=roles_from_claims(claims, settings.keycloak_client_id),
    )


CurrentUser = Annotated[Principal, Depends(get_current_user)]


def require_roles(*roles: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets through only callers holding every one of `roles` (else 403)."""

    async def check(user: CurrentUser) -> Principal:
        if not user.roles.issuperset(roles):
            log.info("forbidden", sub=user.sub, required=sorted(roles))
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Insufficient permissions")
        return user

    return check
