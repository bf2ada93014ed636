"""Redis token caches (extra ``redis``): shared by every process that reaches the server.

Entries are ``prefix + key`` strings holding ``expires_at|token`` with a TTL; the refresh lock
is ``SET lock_key owner NX PX lease`` released by a compare-and-delete script, so a holder
that dies frees the lock after its lease; a live holder renews the lease while it fetches
(a slow token endpoint does not let a second caller in).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from membermkt.core.ports import TokenEntry
from membermkt.errors import ConfigError, StoreError
from membermkt.tokens._lease import AsyncLeaseRenewer, LeaseRenewer

__all__ = ["AsyncRedisTokenCache", "RedisTokenCache"]

_COMPARE_DELETE = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, -string.len(ARGV[1]) - 1) == ('|' .. ARGV[1]) then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def _encode(entry: TokenEntry) -> str:
    return f"{entry.expires_at.timestamp():.6f}|{entry.token}"


def _decode(raw: Any) -> TokenEntry | None:
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    ts, _, token = text.partition("|")
    try:
        return TokenEntry(token, dt.datetime.fromtimestamp(float(ts), dt.UTC))
    except ValueError:
        return None


def _ttl_ms(entry: TokenEntry) -> int:
    return max(1, int((entry.expires_at.timestamp() - time.time()) * 1000) + 60_000)


def _redis_module() -> Any:
    try:
        import redis
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "RedisTokenCache needs the 'redis' extra: pip install membermkt[redis]"
        ) from None
    return redis


class RedisTokenCache:
    """A ``TokenCache`` in Redis.

    Args:
        client: a ``redis.Redis`` instance or a ``redis://`` URL.
        prefix: prepended to every key (use one per application/environment).
        lease: seconds a refresh lock lives if its holder dies.

    Raises:
        ConfigError: when the ``redis`` package is missing.
    """

    def __init__(self, client: Any, *, prefix: str = "membermkt:token:", lease: float = 30.0):
        redis = _redis_module()
        self._r = redis.Redis.from_url(client) if isinstance(client, str) else client
        self._prefix = prefix
        self._lease = lease
        self._cmp_del = self._r.register_script(_COMPARE_DELETE)
        self._release = self._r.register_script(_RELEASE)
        self._renew = self._r.register_script(_RENEW)

    def __repr__(self) -> str:
        return f"RedisTokenCache(prefix={self._prefix!r})"

    def get(self, key: str) -> TokenEntry | None:
        return _decode(self._r.get(self._prefix + key))

    def set(self, key: str, entry: TokenEntry) -> None:
        self._r.set(self._prefix + key, _encode(entry), px=_ttl_ms(entry))

    def expire_if(self, key: str, token: str) -> bool:
        return bool(self._cmp_del(keys=[self._prefix + key], args=[token]))

    @contextmanager
    def lock(self, key: str, *, timeout: float) -> Iterator[None]:
        """Hold the cross-process refresh lock of ``key``.

        Raises:
            StoreError: when not acquired within ``timeout`` seconds.
        """
        name, owner = self._prefix + "lock:" + key, secrets.token_hex(8)
        deadline = time.monotonic() + timeout
        delay = 0.005
        while not self._r.set(name, owner, nx=True, px=int(self._lease * 1000)):
            if time.monotonic() >= deadline:
                raise StoreError(f"token lock {key!r} not acquired within {timeout} s")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        lease_ms = int(self._lease * 1000)
        renewer = LeaseRenewer(
            lambda: self._renew(keys=[name], args=[owner, lease_ms]), self._lease
        )
        try:
            yield
        finally:
            renewer.stop()
            self._release(keys=[name], args=[owner])


class AsyncRedisTokenCache:
    """The async twin of :class:`RedisTokenCache` (``redis.asyncio``).

    Raises:
        ConfigError: when the ``redis`` package is missing.
    """

    def __init__(self, client: Any, *, prefix: str = "membermkt:token:", lease: float = 30.0):
        _redis_module()
        import redis.asyncio as aredis

        self._r = aredis.Redis.from_url(client) if isinstance(client, str) else client
        self._prefix = prefix
        self._lease = lease
        self._cmp_del = self._r.register_script(_COMPARE_DELETE)
        self._release = self._r.register_script(_RELEASE)
        self._renew = self._r.register_script(_RENEW)

    def __repr__(self) -> str:
        return f"AsyncRedisTokenCache(prefix={self._prefix!r})"

    async def get(self, key: str) -> TokenEntry | None:
        return _decode(await self._r.get(self._prefix + key))

    async def set(self, key: str, entry: TokenEntry) -> None:
        await self._r.set(self._prefix + key, _encode(entry), px=_ttl_ms(entry))

    async def expire_if(self, key: str, token: str) -> bool:
        return bool(await self._cmp_del(keys=[self._prefix + key], args=[token]))

    async def aclose(self) -> None:
        """Close the connection pool (when the cache created the client from a URL)."""
        await self._r.aclose()

    @asynccontextmanager
    async def lock(self, key: str, *, timeout: float) -> AsyncIterator[None]:
        """Hold the cross-process refresh lock of ``key``.

        Raises:
            StoreError: when not acquired within ``timeout`` seconds.
        """
        name, owner = self._prefix + "lock:" + key, secrets.token_hex(8)
        deadline = time.monotonic() + timeout
        delay = 0.005
        while not await self._r.set(name, owner, nx=True, px=int(self._lease * 1000)):
            if time.monotonic() >= deadline:
                raise StoreError(f"token lock {key!r} not acquired within {timeout} s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        lease_ms = int(self._lease * 1000)

        async def renew() -> object:
            return await self._renew(keys=[name], args=[owner, lease_ms])

        renewer = AsyncLeaseRenewer(renew, self._lease)
        try:
            yield
        finally:
            await renewer.stop()
            await self._release(keys=[name], args=[owner])
