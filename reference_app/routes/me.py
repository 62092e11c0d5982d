"""The authenticated caller's identity."""

from fastapi import APIRouter

from ..dependencies import CurrentUser
from ..schemas.me import Me

router = APIRouter(prefix="/v1/me", tags=["me"])


@router.get("")
async def read_me(user: CurrentUser) -> Me:
    """Who the access token says the caller is, with realm and client roles."""
    return Me(
        sub=user.sub,
        preferred_username=user.preferred_username,
        email=user.email,
        roles=sorted(user.roles),
    )
