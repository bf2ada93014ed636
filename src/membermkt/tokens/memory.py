"""In-process token caches (one process; threads / tasks share them)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from membermkt.core.ports import TokenEntry
from membermkt.errors import StoreError

__all__ = ["AsyncMemoryTokenCache", "MemoryTokenCache"]


class MemoryTokenCache:
    """A dict of tokens with a per-key :class:`threading.Lock` (the ``TokenCache`` port).

    Good for one process with many threads; use the SQL or Redis cache across processes.
    """

    def __init__(self) -> None:
        self._entries: dict[str, TokenEntry] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryTokenCache({len(self._entries)} entries)"

    def get(self, key: str) -> TokenEntry | None:
        return self._entries.get(key)

    def set(self, key: str, entry: TokenEntry) -> None:
        self._entries[key] = entry

    def expire_if(self, key: str, token: str) -> bool:
        with self._guard:
            entry = self._entries.get(key)
            if entry is not None and entry.token == token:
                del self._entries[key]
                return True
            return False

    @contextmanager
    def lock(self, key: str, *, timeout: float) -> Iterator[None]:
        """Hold the refresh lock of ``key``.

        Raises:
            StoreError: when the lock is not acquired within ``timeout`` seconds.
        """
        with self._guard:
            lk = self._locks.setdefault(key, threading.Lock())
        if not lk.acquire(timeout=timeout):
            raise StoreError(f"token lock {key!r} not acquired within {timeout} s")
        try:
            yield
        finally:
            lk.release()


class AsyncMemoryTokenCache:
    """The async twin of :class:`MemoryTokenCache` (an :class:`asyncio.Lock` per key)."""

    def __init__(self) -> None:
        self._entries: dict[str, TokenEntry] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def __repr__(self) -> str:
        return f"AsyncMemoryTokenCache({len(self._entries)} entries)"

    async def get(self, key: str) -> TokenEntry | None:
        return self._entries.get(key)

    async def set(self, key: str, entry: TokenEntry) -> None:
        self._entries[key] = entry

    async def expire_if(self, key: str, token: str) -> bool:
        entry = self._entries.get(key)
        if entry is not None and entry.token == token:
            del self._entries[key]
            return True
        return False

    @asynccontextmanager
    async def lock(self, key: str, *, timeout: float) -> AsyncIterator[None]:
        """Hold the refresh lock of ``key``.

        Raises:
            StoreError: when the lock is not acquired within ``timeout`` seconds.
        """
        lk = self._locks.setdefault(key, asyncio.Lock())
        try:
            await asyncio.wait_for(lk.acquire(), timeout)
        except TimeoutError:
            raise StoreError(f"token lock {key!r} not acquired within {timeout} s") from None
        try:
            yield
        finally:
            lk.release()
