"""Access-token caches implementing the ``TokenCache`` / ``AsyncTokenCache`` ports.

* :class:`MemoryTokenCache` / :class:`AsyncMemoryTokenCache` — one process.
* :class:`SqlTokenCache` / :class:`AsyncSqlTokenCache` — any SQLAlchemy database
  (SQLite, PostgreSQL, MySQL/MariaDB), shared by processes, with a cross-process lock.
* :class:`~membermkt.tokens.redis.RedisTokenCache` / ``AsyncRedisTokenCache`` — Redis
  (extra ``redis``; imported lazily).
"""

from __future__ import annotations

from typing import Any

from membermkt.tokens._async import ThreadedAsyncTokenCache
from membermkt.tokens.memory import AsyncMemoryTokenCache, MemoryTokenCache
from membermkt.tokens.sql import AsyncSqlTokenCache, SqlTokenCache

__all__ = [
    "AsyncMemoryTokenCache",
    "AsyncRedisTokenCache",
    "AsyncSqlTokenCache",
    "MemoryTokenCache",
    "RedisTokenCache",
    "SqlTokenCache",
    "ThreadedAsyncTokenCache",
]


def __getattr__(name: str) -> Any:
    if name in ("RedisTokenCache", "AsyncRedisTokenCache"):
        from membermkt.tokens import redis

        return getattr(redis, name)
    raise AttributeError(f"module 'membermkt.tokens' has no attribute {name!r}")
