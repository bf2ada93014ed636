"""Access tokens for an official account: the pure decisions and the two small drivers.

``stable_token`` (default) returns the same token while it is valid, so several processes
can share an appid without a central fetcher; the classic ``token`` endpoint issues a new
token on every call (and kills the previous one 5 minutes later), so it must be fetched by
one process at a time. Either way the token lives in a ``TokenCache`` and refreshes are
single-flight: the cache's lock is held while one caller fetches; the others wait, then
re-read. Each provider also keeps the last entry it saw, so a valid token costs no cache
round-trip. On 40001/40014/42001 the failed token is expired *only if it is still the cached
one* (compare-then-expire), so a late failure never throws away a newer token.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable

import attrs

from membermkt.channels.wechat.api._call import ApiCall
from membermkt.channels.wechat.api.token import AccessToken, classic_token, stable_token
from membermkt.core.ports import AsyncTokenCache, TokenCache, TokenEntry
from membermkt.errors import ConfigError, StoreError, UsageError

__all__ = ["AsyncTokenProvider", "TokenPolicy", "TokenProvider"]

log = logging.getLogger(__name__)

LOCK_ROUNDS = 6
"""How many ``lock_timeout`` rounds a caller waits for another caller's refresh (which
keeps its lock's lease renewed however slow the token endpoint is) before it fetches on
its own — the last resort when the lock itself is broken."""


@attrs.frozen(slots=True, kw_only=True)
class TokenPolicy:
    """What token to fetch and when to consider a cached one stale (pure).

    Attributes:
        appid, secret: the account's credentials.
        mode: ``"stable"`` (``/cgi-bin/stable_token``, default) or ``"classic"``
            (``/cgi-bin/token``).
        margin: refresh this many seconds before the platform's expiry (capped at a tenth
            of the lifetime, so very short test lifetimes still work).
        lock_timeout: how long to wait for another caller's refresh.
    """

    appid: str
    secret: str = attrs.field(repr=False)
    mode: str = "stable"
    margin: float = 60.0
    lock_timeout: float = 10.0

    def __attrs_post_init__(self) -> None:
        if self.mode not in ("stable", "classic"):
            raise UsageError(f"token mode must be 'stable' or 'classic', got {self.mode!r}")
        if not self.appid or not self.secret:
            raise ConfigError("an official account needs an appid and a secret")

    @property
    def key(self) -> str:
        """The cache key (the two endpoints' tokens are independent: both in the key)."""
        return f"wechat:oa:{self.appid}:{self.mode}"

    def fetch_call(self) -> ApiCall[AccessToken]:
        """The token request."""
        if self.mode == "stable":
            return stable_token(self.appid, self.secret)
        return classic_token(self.appid, self.secret)

    def entry(self, token: AccessToken, now: dt.datetime) -> TokenEntry:
        """The cache entry for a fetched token: usable until ``expires_in - margin``."""
        margin = min(self.margin, token.expires_in / 10)
        return TokenEntry(token.access_token, now + dt.timedelta(seconds=token.expires_in - margin))

    @staticmethod
    def fresh(entry: TokenEntry | None, now: dt.datetime) -> bool:
        """Whether a cached entry may still be used."""
        return entry is not None and entry.expires_at > now


class TokenProvider:
    """Sync driver: get a valid token, refreshing single-flight through the cache.

    Args:
        policy: the :class:`TokenPolicy`.
        cache: a ``TokenCache``.
        fetch: runs the token :class:`ApiCall` (with the client's retries) and returns it.
        now: the current aware datetime.
    """

    def __init__(
        self,
        policy: TokenPolicy,
        cache: TokenCache,
        fetch: Callable[[ApiCall[AccessToken]], AccessToken],
        now: Callable[[], dt.datetime],
    ) -> None:
        self.policy, self.cache, self._fetch, self._now = policy, cache, fetch, now
        self.fetches = 0
        self._local: TokenEntry | None = None

    def get(self) -> str:
        """A valid token (cached, or fetched by exactly one caller at a time).

        Raises:
            PlatformError: when the token endpoint refuses (wrong secret: ``TokenError``).
            TransportError: when the token endpoint cannot be reached.
        """
        p = self.policy
        local = self._local
        if local is not None and p.fresh(local, self._now()):
            return local.token
        entry = self.cache.get(p.key)
        if p.fresh(entry, self._now()):
            assert entry is not None
            self._local = entry
            return entry.token
        for attempt in range(LOCK_ROUNDS):
            lock = self.cache.lock(p.key, timeout=p.lock_timeout)
            try:
                lock.__enter__()
            except StoreError as exc:
                # The holder may still be fetching (it renews its lease): if it has
                # finished, use its token; otherwise wait another round.
                entry = self.cache.get(p.key)
                if p.fresh(entry, self._now()):
                    assert entry is not None
                    self._local = entry
                    return entry.token
                if attempt == LOCK_ROUNDS - 1:
                    log.warning(
                        "token lock for %s unavailable (%s); fetching without it", p.key, exc
                    )
                    return self._refresh_locked()
                continue
            try:
                return self._refresh_locked()
            finally:
                lock.__exit__(None, None, None)
        raise AssertionError("unreachable")

    def _refresh_locked(self) -> str:
        p = self.policy
        entry = self.cache.get(p.key)
        if p.fresh(entry, self._now()):
            assert entry is not None
            self._local = entry
            return entry.token
        token = self._fetch(p.fetch_call())
        self.fetches += 1
        new = p.entry(token, self._now())
        self.cache.set(p.key, new)
        self._local = new
        return new.token

    def refresh(self, failed: str) -> str:
        """Expire ``failed`` if it is still the cached token, then :meth:`get`."""
        if self._local is not None and self._local.token == failed:
            self._local = None
        self.cache.expire_if(self.policy.key, failed)
        return self.get()


class AsyncTokenProvider:
    """Async driver: the twin of :class:`TokenProvider` over an ``AsyncTokenCache``."""

    def __init__(
        self,
        policy: TokenPolicy,
        cache: AsyncTokenCache,
        fetch: Callable[[ApiCall[AccessToken]], Awaitable[AccessToken]],
        now: Callable[[], dt.datetime],
    ) -> None:
        self.policy, self.cache, self._fetch, self._now = policy, cache, fetch, now
        self.fetches = 0
        self._local: TokenEntry | None = None

    async def get(self) -> str:
        """A valid token (see :meth:`TokenProvider.get`).

        Raises:
            PlatformError: when the token endpoint refuses.
            TransportError: when the token endpoint cannot be reached.
        """
        p = self.policy
        local = self._local
        if local is not None and p.fresh(local, self._now()):
            return local.token
        entry = await self.cache.get(p.key)
        if p.fresh(entry, self._now()):
            assert entry is not None
            self._local = entry
            return entry.token
        for attempt in range(LOCK_ROUNDS):
            lock = self.cache.lock(p.key, timeout=p.lock_timeout)
            try:
                await lock.__aenter__()
            except StoreError as exc:
                entry = await self.cache.get(p.key)
                if p.fresh(entry, self._now()):
                    assert entry is not None
                    self._local = entry
                    return entry.token
                if attempt == LOCK_ROUNDS - 1:
                    log.warning(
                        "token lock for %s unavailable (%s); fetching without it", p.key, exc
                    )
                    return await self._refresh_locked()
                continue
            try:
                return await self._refresh_locked()
            finally:
                await lock.__aexit__(None, None, None)
        raise AssertionError("unreachable")

    async def _refresh_locked(self) -> str:
        p = self.policy
        entry = await self.cache.get(p.key)
        if p.fresh(entry, self._now()):
            assert entry is not None
            self._local = entry
            return entry.token
        token = await self._fetch(p.fetch_call())
        self.fetches += 1
        new = p.entry(token, self._now())
        await self.cache.set(p.key, new)
        self._local = new
        return new.token

    async def refresh(self, failed: str) -> str:
        """Expire ``failed`` if it is still the cached token, then :meth:`get`."""
        if self._local is not None and self._local.token == failed:
            self._local = None
        await self.cache.expire_if(self.policy.key, failed)
        return await self.get()
