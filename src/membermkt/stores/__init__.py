"""Stores: where members, events, the delivery ledger and budgets live.

* :class:`InMemoryStore` — Python dicts; notebooks, tests, small shops.
* :class:`SqlStore` — SQLAlchemy Core on SQLite (default, zero set-up), PostgreSQL or
  MySQL/MariaDB; segments are compiled to SQL and evaluated by the database.

Both implement :class:`membermkt.core.ports.Store` and select exactly the same members for
every segment (property-tested).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from membermkt.stores.memory import InMemoryStore

if TYPE_CHECKING:
    from membermkt.stores.sql.store import SqlStore

__all__ = ["InMemoryStore", "SqlStore"]


def __getattr__(name: str) -> Any:
    if name == "SqlStore":
        from membermkt.stores.sql.store import SqlStore

        return SqlStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
