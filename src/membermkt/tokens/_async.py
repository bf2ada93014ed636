"""Run a sync ``TokenCache`` from async code (each call in a worker thread)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from membermkt.core.ports import TokenCache, TokenEntry

__all__ = ["ThreadedAsyncTokenCache"]


class ThreadedAsyncTokenCache:
    """An ``AsyncTokenCache`` over any sync ``TokenCache``: every operation runs in
    :func:`asyncio.to_thread`, and the lock is held by one worker thread for its duration."""

    def __init__(self, cache: TokenCache) -> None:
        self.sync = cache

    def __repr__(self) -> str:
        return f"ThreadedAsyncTokenCache({self.sync!r})"

    async def get(self, key: str) -> TokenEntry | None:
        return await asyncio.to_thread(self.sync.get, key)

    async def set(self, key: str, entry: TokenEntry) -> None:
        await asyncio.to_thread(self.sync.set, key, entry)

    async def expire_if(self, key: str, token: str) -> bool:
        return await asyncio.to_thread(self.sync.expire_if, key, token)

    @asynccontextmanager
    async def lock(self, key: str, *, timeout: float) -> AsyncIterator[None]:
        cm = self.sync.lock(key, timeout=timeout)
        await asyncio.to_thread(cm.__enter__)
        try:
            yield
        finally:
            await asyncio.to_thread(cm.__exit__, None, None, None)
