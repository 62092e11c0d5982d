"""Request and response bodies of the items API."""

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ..security.input_validation import NAME_PATTERN, TEXT_PATTERN, sanitize_name

# Postgres `integer` ids: larger path values are a 422, not a database error.
MAX_ITEM_ID = 2**31 - 1

ItemName = Annotated[
    str, Field(min_length=1, max_length=100, pattern=NAME_PATTERN), AfterValidator(sanitize_name)
]
ItemDescription = Annotated[str, Field(max_length=1000, pattern=TEXT_PATTERN)]


class ItemCreate(BaseModel):
    """Body of `POST /api/v1/items`."""

    name: ItemName
    description: ItemDescription | None = None


class ItemRead(BaseModel):
    """An item as the API returns it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    owner_sub: str
    created_at: datetime
