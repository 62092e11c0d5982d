"""Queries and writes for `Item`."""

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Item
from ..schemas.item import ItemCreate


def list_items(db: Session, *, limit: int, offset: int) -> Sequence[Item]:
    return db.scalars(select(Item).order_by(Item.id).limit(limit).offset(offset)).all()


def get_item(db: Session, item_id: int) -> Item | None:
    return db.get(Item, item_id)


def create_item(db: Session, data: ItemCreate, *, owner_sub: str) -> Item:
    item = Item(name=data.name, description=data.description, owner_sub=owner_sub)
    db.add(item)
    db.commit()
    db.refresh(item)  # loads the server-side created_at
    return item


def delete_item(db: Session, item: Item) -> None:
    db.delete(item)
    db.commit()
