"""Response body of `GET /api/v1/me`."""

from pydantic import BaseModel


class Me(BaseModel):
    """The authenticated caller, as the access token describes them."""

    sub: str
    preferred_username: str | None
    email: str | None
    roles: list[str]
