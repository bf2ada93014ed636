"""Enriching new followers with their unionid, off the callback's 5-second path.

:class:`FollowerEnricher` takes the openids the
:class:`~membermkt.channels.wechat.CallbackHandler` submits (a new ``subscribe``, or the
first push of a follower never seen before), asks the platform who they are —
``user/info`` for one, ``user/info/batchget`` for up to 100 at once — at most ``rate``
calls per second, and links each openid to the unionid reported
(``store.link(openid, unionid, "unionid", at, by="wechat.callback")``), so the same person
following two official accounts, or known to WeCom by unionid, is one member. A unionid is
only reported when the account is bound to an Open Platform account.

How the worker runs (see :mod:`membermkt.channels._enrich`): with a sync
``OfficialAccount`` a daemon thread starts on the first submission (WSGI and ASGI apps
alike: :func:`membermkt.contrib.asgi.asgi_app` runs the handler in a worker thread); with an
``AsyncOfficialAccount`` run ``await enricher.run()`` in the app's lifespan; in a job call
:meth:`~membermkt.channels._enrich.Enricher.drain`. Ids still queued when the process stops
are lost; :func:`~membermkt.channels.wechat.sync_followers` catches them up.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from membermkt.channels._enrich import ClientEnricher, _utcnow
from membermkt.channels.wechat.api.users import UserInfo
from membermkt.channels.wechat.sync import BY_CALLBACK, LinkTally
from membermkt.errors import ConfigError

__all__ = ["FollowerEnricher"]


class FollowerEnricher(ClientEnricher):
    """Links new followers' openids to their unionids, asynchronously and rate-limited.

    Args:
        client: the account's ``OfficialAccount`` (a worker thread drains the queue) or
            ``AsyncOfficialAccount`` (run :meth:`run` as a task).
        store: a store with ``link`` (``InMemoryStore``, ``SqlStore``).
        rate: platform calls per second, at most (default 10; ``user/info`` allows
            5,000,000 calls a day per the platform's docs, some consoles show 500,000).
        batch: openids per call (1..100; more than one pending uses ``user/info/batchget``).
        max_pending: the most openids waiting (more are dropped and counted).
        retry_after: seconds before the next call after a failed one.
        max_attempts: failed calls an openid may be part of before it is dropped.
        now: the time stamped on the links (default: the wall clock, UTC).
        clock / sleep: monotonic clock and wait, for the rate limit (tests inject them).
        autostart: start the worker thread on the first submission (sync client). ``False``:
            nothing runs until you call :meth:`drain` or :meth:`start` (a job, a test).

    Raises:
        ConfigError: for a client without an appid or a setting out of range.
    """

    name = "wechat-follower-enricher"

    def __init__(
        self,
        client: Any,
        store: Any,
        *,
        rate: float = 10.0,
        batch: int = 100,
        max_pending: int = 10_000,
        retry_after: float = 30.0,
        max_attempts: int = 3,
        now: Callable[[], dt.datetime] = _utcnow,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        autostart: bool = True,
    ) -> None:
        appid = getattr(client, "appid", None)
        if not isinstance(appid, str) or not appid:
            raise ConfigError(f"FollowerEnricher needs an official-account client, got {client!r}")
        if isinstance(batch, int) and batch > 100:
            raise ConfigError(f"batch must be 1..100 (user/info/batchget limit), got {batch!r}")
        super().__init__(
            client,
            store,
            probe="user_info",
            batch=batch,
            rate=rate,
            max_pending=max_pending,
            retry_after=retry_after,
            max_attempts=max_attempts,
            now=now,
            clock=clock,
            sleep=sleep,
            autostart=autostart,
        )
        self.appid = appid

    def __repr__(self) -> str:
        return f"FollowerEnricher(appid={self.appid!r}, pending={self.pending})"

    def _link(self, infos: list[UserInfo]) -> None:
        tally = LinkTally()
        tally.add(self.appid, infos, self.store, self.now(), BY_CALLBACK)
        for key, n in (
            ("followers", tally.followers),
            ("with_unionid", tally.with_unionid),
            ("linked", tally.linked),
            ("merges", tally.merges),
            ("conflicts", len(tally.conflicts)),
        ):
            for _ in range(n):
                self.stats.add(key)

    def _process(self, ids: list[str]) -> None:
        infos = [self.client.user_info(ids[0])] if len(ids) == 1 else self.client.user_infos(ids)
        self._link(infos)

    async def _aprocess(self, ids: list[str]) -> None:
        if len(ids) == 1:
            infos = [await self.client.user_info(ids[0])]
        else:
            infos = await self.client.user_infos(ids)
        await asyncio.to_thread(self._link, infos)
