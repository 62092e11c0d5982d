"""Items: public reads, authenticated create, admin-only delete."""

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from sqlalchemy.orm import Session

from ..crud import item as item_crud
from ..dependencies import CurrentUser, DbSession, require_roles
from ..models import Item
from ..schemas.item import MAX_ITEM_ID, ItemCreate, ItemRead

router = APIRouter(prefix="/v1/items", tags=["items"])

ItemId = Annotated[int, Path(ge=1, le=MAX_ITEM_ID)]


def _get_or_404(db: Session, item_id: int) -> Item:
    item = item_crud.get_item(db, item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Item not found")
    return item


@router.get("", response_model=list[ItemRead])
def list_items(
    db: DbSession,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_ITEM_ID)] = 0,
) -> Sequence[Item]:
    """Items in creation order, one page at a time."""
    return item_crud.list_items(db, limit=limit, offset=offset)


@router.get("/{item_id}", response_model=ItemRead)
def get_item(db: DbSession, item_id: ItemId) -> Item:
    """One item by id."""
    return _get_or_404(db, item_id)


@router.post("", response_model=ItemRead, status_code=status.HTTP_201_CREATED)
def create_item(db: DbSession, user: CurrentUser, body: ItemCreate) -> Item:
    """Create an item owned by the caller."""
    return item_crud.create_item(db, body, owner_sub=user.sub)


@router.delete(
    "/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(require_roles("admin"))],
)
def delete_item(db: DbSession, item_id: ItemId) -> None:
    """Delete an item (role `admin`)."""
    item_crud.delete_item(db, _get_or_404(db, item_id))
