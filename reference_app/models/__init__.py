"""ORM models; importing this package registers every table on `Base.metadata`."""

from .item import Item

__all__ = ["Item"]
