"""SQL stores on SQLAlchemy Core: SQLite, PostgreSQL, MySQL/MariaDB."""

from __future__ import annotations

from membermkt.stores.sql import membership as _membership  # noqa: F401  (registers `latest`)
from membermkt.stores.sql.store import SqlStore

__all__ = ["SqlStore"]
