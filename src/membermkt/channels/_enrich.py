"""Asynchronous, rate-limited enrichment of members after a push: the shared machinery.

A callback must be answered within 5 seconds, and a platform call (``user/info``,
``externalcontact/get``) may take longer or fail; so a handler never calls the platform
itself. It *submits* an id to an :class:`Enricher` — O(1), never blocking — and the
enricher's worker calls the platform later, at most ``rate`` calls per second, and links
what it learns into the store.

Three ways to run the worker, for the three kinds of app:

* a sync client (``OfficialAccount``, ``WeCom``) in a WSGI or ASGI app: a daemon thread,
  started on the first :meth:`Enricher.submit` (or by :meth:`Enricher.start`); stop it with
  :meth:`Enricher.close` (the handler's ``close()`` does);
* an async client (``AsyncOfficialAccount``, ``AsyncWeCom``) in an ASGI app: run
  ``await enricher.run()`` as a task of the app's lifespan;
* a job (cron, a worker process, a test): call :meth:`Enricher.drain` (sync client) or
  ``await enricher.adrain()`` (async client) — it processes what is pending and returns.

The queue is bounded (``max_pending``): when full, a submitted id is dropped and counted
(``stats["dropped"]``) — a later bulk sync (``sync_followers`` / ``sync_contacts``) catches
it. Pending ids live in this process's memory only: a restart loses them (the same bulk sync
recovers them). A failed call is retried after ``retry_after`` seconds, each id at most
``max_attempts`` times; the ids of a batch the platform refused are retried one per call,
so one id it refuses (an invalid openid) does not sink the others.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from membermkt.channels.wechat._guard import Outcomes
from membermkt.errors import ConfigError, MembermktError, PlatformError

__all__ = ["ClientEnricher", "Enricher"]

log = logging.getLogger(__name__)


def _positive(name: str, value: Any, *, integer: bool = False) -> Any:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    return value


class Enricher:
    """A bounded, de-duplicated queue of ids drained by a rate-limited worker.

    Subclasses implement ``_process(ids)`` (sync client) and/or ``_aprocess(ids)`` (async
    client): one platform call for up to ``batch`` ids, then the store writes.

    Args:
        batch: ids per platform call.
        rate: platform calls per second, at most (the worker sleeps between calls).
        max_pending: the most ids waiting; more are dropped (and counted).
        retry_after: seconds to wait after a failed call before the next one.
        max_attempts: calls an id may fail in before it is dropped.
        clock: monotonic seconds (for the rate limit).
        sleep: how a wait for the rate limit is done (default: ``time.sleep`` in
            :meth:`drain`; in the worker thread, a wait that :meth:`close` ends early).

    Raises:
        ConfigError: for a non-positive setting.
    """

    name = "enricher"
    is_async = False
    """Whether the client is async (drained by :meth:`adrain` / :meth:`run`)."""

    def __init__(
        self,
        *,
        batch: int,
        rate: float = 10.0,
        max_pending: int = 10_000,
        retry_after: float = 30.0,
        max_attempts: int = 3,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.batch = _positive("batch", batch, integer=True)
        self.rate = _positive("rate", rate)
        self.max_pending = _positive("max_pending", max_pending, integer=True)
        self.retry_after = float(_positive("retry_after", retry_after))
        self.max_attempts = _positive("max_attempts", max_attempts, integer=True)
        self.clock = clock
        self._stopping = threading.Event()
        self._sleep = sleep
        self._cond = threading.Condition()
        self._pending: OrderedDict[str, int] = OrderedDict()  # id -> failed attempts
        self._solo: set[str] = set()  # ids of a refused batch: retried one per call
        self._next_call = 0.0
        self._thread: threading.Thread | None = None
        self.stats = Outcomes()
        """Counters: ``submitted``, ``dropped`` (queue full or out of attempts), ``calls``,
        ``failed_calls``, and what the subclass reports (``linked``, ``merges``, ...)."""

    # ------------------------------------------------------------------ the queue

    def submit(self, key: str) -> bool:
        """Queue ``key`` for enrichment (never blocks, never calls the platform).

        Returns:
            ``False`` when it was dropped because the queue is full; ``True`` when queued
            (or already pending).
        """
        start = False
        with self._cond:
            if key in self._pending:
                return True
            if len(self._pending) >= self.max_pending:
                self.stats.add("dropped")
                log.warning("%s: queue full (%d); dropped %r", self.name, self.max_pending, key)
                return False
            self._pending[key] = 0
            self.stats.add("submitted")
            self._cond.notify()
            start = self._thread is None and self._auto_start()
        if start:
            self.start()
        return True

    @property
    def pending(self) -> int:
        """How many ids wait for a call."""
        with self._cond:
            return len(self._pending)

    def _take(self) -> list[tuple[str, int]]:
        with self._cond:
            out: list[tuple[str, int]] = []
            while self._pending and len(out) < self.batch:
                key = next(iter(self._pending))
                if key in self._solo and out:
                    break  # an id of a refused batch goes alone
                out.append(self._pending.popitem(last=False))
                if key in self._solo:
                    break
            return out

    def _done(self, taken: Sequence[tuple[str, int]]) -> None:
        with self._cond:
            self._solo.difference_update(k for k, _ in taken)

    def _failed(self, taken: Sequence[tuple[str, int]], exc: BaseException) -> None:
        self.stats.add("failed_calls")
        log.warning("%s: call for %d ids failed (%s); retrying later", self.name, len(taken), exc)
        # a batch the platform refused may hold one id it refuses (an invalid openid):
        # its ids are retried one by one, so one bad id does not sink the others
        split = len(taken) > 1 and isinstance(exc, PlatformError)
        with self._cond:
            for key, attempts in taken:
                if attempts + 1 >= self.max_attempts:
                    self.stats.add("dropped")
                    self._solo.discard(key)
                elif key not in self._pending and len(self._pending) < self.max_pending:
                    self._pending[key] = attempts + 1
                    if split:
                        self._solo.add(key)
                else:
                    self.stats.add("dropped")
                    self._solo.discard(key)
        self._next_call = max(self._next_call, self.clock() + self.retry_after)

    def _wait(self) -> float:
        """Seconds to wait before the next call may go (the rate limit / back-off)."""
        return max(0.0, self._next_call - self.clock())

    def _called(self) -> None:
        self.stats.add("calls")
        self._next_call = max(self._next_call, self.clock() + 1.0 / self.rate)

    # ------------------------------------------------------------------ sync

    def _process(self, ids: list[str]) -> None:
        """One platform call for ``ids`` and the store writes (sync client)."""
        raise ConfigError(f"{self.name} has no sync client")

    def _auto_start(self) -> bool:
        return False

    def drain(self, *, max_calls: int | None = None) -> int:
        """Process pending ids now, in this thread, honouring the rate limit (sync client).

        Args:
            max_calls: stop after this many platform calls (default: until empty).

        Returns:
            How many platform calls were made.

        Raises:
            ConfigError: with an async client.
        """
        if self.is_async:
            raise ConfigError(f"{self.name}: the client is async; run `await enricher.run()`")
        return self._drain(max_calls, worker=False)

    def _drain(self, max_calls: int | None, *, worker: bool) -> int:
        # the worker stops when closed and waits interruptibly; a caller's drain() runs
        # to the end (also after close(), to flush what is pending)
        pause = self._sleep or (self._stopping.wait if worker else time.sleep)
        calls = 0
        while max_calls is None or calls < max_calls:
            if not self.pending or (worker and self._stopping.is_set()):
                break
            wait = self._wait()
            if wait > 0:
                pause(wait)
                if worker and self._stopping.is_set():
                    break
            taken = self._take()
            if not taken:
                break
            self._called()
            calls += 1
            try:
                self._process([k for k, _ in taken])
            except MembermktError as exc:
                self._failed(taken, exc)
            else:
                self._done(taken)
        return calls

    def start(self) -> None:
        """Start the background worker thread (idempotent; sync client)."""
        with self._cond:
            if self._thread is not None:
                return
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._loop, name=f"membermkt-{self.name}", daemon=True
            )
            self._thread.start()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                while not self._pending and not self._stopping.is_set():
                    self._cond.wait()
            try:
                self._drain(1, worker=True)
            except Exception:  # a bug must not kill the worker silently
                log.exception("%s: worker error", self.name)
                self._stopping.wait(self.retry_after)

    def close(self, *, timeout: float | None = 10.0) -> None:
        """Stop the worker thread (ids still pending stay queued; :meth:`drain` or a bulk
        sync processes them). A later submission with ``autostart`` starts it again."""
        with self._cond:
            self._stopping.set()
            self._cond.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    # ------------------------------------------------------------------ async

    async def _aprocess(self, ids: list[str]) -> None:
        """One platform call for ``ids`` and the store writes (async client)."""
        raise ConfigError(f"{self.name} has no async client")

    async def adrain(self, *, max_calls: int | None = None) -> int:
        """:meth:`drain` for an async client (waits with ``asyncio.sleep``).

        Raises:
            ConfigError: with a sync client.
        """
        if not self.is_async:
            raise ConfigError(f"{self.name}: the client is sync; use drain() or start()")
        calls = 0
        while max_calls is None or calls < max_calls:
            if not self.pending:
                break
            wait = self._wait()
            if wait > 0:
                await asyncio.sleep(wait)
            taken = self._take()
            if not taken:
                break
            self._called()
            calls += 1
            try:
                await self._aprocess([k for k, _ in taken])
            except MembermktError as exc:
                self._failed(taken, exc)
            else:
                self._done(taken)
        return calls

    async def run(self, *, idle: float = 0.5) -> None:
        """Drain forever (async client): run it as a task of the app's lifespan and cancel
        it on shutdown. Checks for new ids every ``idle`` seconds when the queue is empty."""
        while True:
            if not await self.adrain():
                await asyncio.sleep(idle)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ClientEnricher(Enricher):
    """An :class:`Enricher` that calls a platform client and links what it learns into a
    store: the set-up both callback enrichers share.

    Args:
        client: the platform client, sync or async — async when its ``probe`` method is a
            coroutine function (drained by :meth:`adrain` / :meth:`run`).
        store: a store with ``link``.
        probe: the name of the client method the subclass calls.
        now: the time stamped on the links.
        autostart: start the worker thread on the first submission (sync client only).
        batch / rate / max_pending / retry_after / max_attempts / clock / sleep: see
            :class:`Enricher`.

    Raises:
        ConfigError: for a non-positive setting.
    """

    def __init__(
        self,
        client: Any,
        store: Any,
        *,
        probe: str,
        batch: int,
        rate: float,
        max_pending: int,
        retry_after: float,
        max_attempts: int,
        now: Callable[[], dt.datetime],
        clock: Callable[[], float],
        sleep: Callable[[float], object] | None,
        autostart: bool,
    ) -> None:
        super().__init__(
            batch=batch,
            rate=rate,
            max_pending=max_pending,
            retry_after=retry_after,
            max_attempts=max_attempts,
            clock=clock,
            sleep=sleep,
        )
        self.client = client
        self.store = store
        self.now = now
        self.autostart = autostart
        self.is_async = inspect.iscoroutinefunction(getattr(client, probe, None))

    def _auto_start(self) -> bool:
        return self.autostart and not self.is_async
