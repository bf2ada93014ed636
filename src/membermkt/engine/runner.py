"""The campaign runner: dispatch a campaign's planned deliveries from the ledger to a channel.

Guarantees (DESIGN §4):

* Every delivery the runner touches ends ``sent``, ``failed(reason)``, ``unknown`` or
  ``pending_confirmation`` — or, when the platform asks for a wait longer than the policy
  allows, goes back to ``planned`` for a later run (reported as ``deferred``).
* Nothing is sent twice. A delivery is claimed (``planned → sending``, atomically, one worker
  per delivery even across processes) before it is sent. If a runner dies, its ``sending``
  deliveries are recovered by the next run: on an idempotent channel they are re-queued and
  re-sent *with the same key* (the platform de-duplicates), on a non-idempotent one they are
  marked ``unknown`` and never blindly re-sent.
* Retryable failures are retried with exponential backoff (honouring the platform's
  ``retry_after``). A per-delivery ``unknown`` answer is final: the channel reports it when
  re-sending could duplicate (an idempotent call that timed out is ``retryable`` instead). A
  ``send`` that raises leaves the whole batch uncertain: retried with the same keys on an
  idempotent channel, ``unknown`` otherwise.

The runner is async (bounded concurrency, a per-channel rate limit); :meth:`CampaignRunner.run`
drives it from sync code.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import attrs

from membermkt.core.delivery import (
    TERMINAL_STATUSES,
    Delivery,
    DeliveryRecord,
    DeliveryStatus,
    SendOutcome,
    SendResult,
)
from membermkt.core.ports import AsyncChannel, Channel, Clock, Ledger
from membermkt.engine.progress import Progress, ProgressCallback
from membermkt.errors import LedgerError, TransportError, UsageError

__all__ = ["CampaignRunner", "DeliveryRetry", "RunResult", "SystemClock"]

T = TypeVar("T")


class SystemClock:
    """The real clock (UTC)."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


@attrs.frozen(slots=True, kw_only=True)
class DeliveryRetry:
    """How the runner retries deliveries.

    Attributes:
        attempts: sends per delivery in one run, the first included.
        backoff: first wait in seconds (doubles per attempt).
        max_backoff: cap of one backoff wait.
        jitter: random fraction added to each wait.
        max_wait: the longest platform ``retry_after`` the runner waits for; longer hints
            (daily quotas, ref §1.10 45009) defer the delivery to a later run.

    Raises:
        UsageError: for non-positive attempts or negative waits.
    """

    attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    jitter: float = 0.1
    max_wait: float = 120.0

    def __attrs_post_init__(self) -> None:
        if self.attempts < 1:
            raise UsageError("DeliveryRetry.attempts must be >= 1")
        if min(self.backoff, self.max_backoff, self.jitter, self.max_wait) < 0:
            raise UsageError("DeliveryRetry waits must be >= 0")

    def wait(self, attempt: int, rng: random.Random, hint: float | None = None) -> float:
        """Seconds before attempt ``attempt + 1``."""
        base: float = min(self.backoff * 2.0 ** (attempt - 1), self.max_backoff)
        base = max(base, hint or 0.0)
        return base + (rng.random() * self.jitter * base if self.jitter else 0.0)


@attrs.frozen(slots=True, kw_only=True)
class RunResult:
    """What one runner did in one run.

    Attributes:
        campaign_id / worker: the campaign and this runner's id.
        claimed: deliveries this run claimed.
        sent / failed / unknown / pending: final outcomes recorded by this run.
        deferred: deliveries handed back to ``planned`` (platform asked for a long wait).
        retried: retry attempts.
        recovered: a crashed runner's ``sending`` deliveries re-queued (idempotent channel).
        recovered_unknown: ... or marked ``unknown`` (non-idempotent channel).
        failures: failure reason → count.
    """

    campaign_id: str
    worker: str
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    pending: int = 0
    deferred: int = 0
    retried: int = 0
    recovered: int = 0
    recovered_unknown: int = 0
    failures: dict[str, int] = attrs.field(factory=dict)


class _Stats:
    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(
            (
                "claimed",
                "sent",
                "failed",
                "unknown",
                "pending",
                "deferred",
                "retried",
                "recovered",
                "recovered_unknown",
            ),
            0,
        )
        self.failures: dict[str, int] = {}


class _RateLimiter:
    """At most ``rate`` acquisitions per second (evenly spaced)."""

    def __init__(self, rate: float | None, sleep: Callable[[float], Awaitable[None]]) -> None:
        self._interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._sleep = sleep

    async def acquire(self) -> None:
        if not self._interval:
            return
        now = asyncio.get_running_loop().time()
        at = max(now, self._next)
        self._next = at + self._interval
        if at > now:
            await self._sleep(at - now)


def _default_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class CampaignRunner:
    """Works a campaign's planned deliveries through one channel.

    Args:
        ledger: the delivery ledger (``InMemoryStore``, ``SqlStore`` — shared by every runner
            of the campaign).
        channel: a :class:`~membermkt.core.ports.Channel` or
            :class:`~membermkt.core.ports.AsyncChannel` (sync channels run in threads).
        worker: this runner's id (default: host, pid and a random suffix).
        concurrency: batches in flight at once.
        batch_size: deliveries per ``send`` (default and maximum: the channel's
            ``max_batch_size``).
        rate_per_second: most ``send`` calls per second (default: the channel's declared
            ``rate_per_second``; ``None`` = unlimited).
        retry: a :class:`DeliveryRetry`.
        lease: how long a ``sending`` delivery may stay unfinished before another run treats
            its runner as dead (keep it above the slowest batch send).
        clock: where "now" comes from (for ledger timestamps).
        sleep: ``await sleep(seconds)``; inject a no-op in tests.
        progress: a :data:`~membermkt.engine.progress.ProgressCallback`.
        offload_ledger: run ledger calls in a thread (for a slow SQL ledger).
        claim_batches: batches claimed per ledger call (default: ``concurrency``); claimed
            deliveries wait in ``sending`` until a worker is free, so keep
            ``claim_batches × slowest batch`` below ``lease``.
        seed: seed of the backoff jitter.

    Raises:
        UsageError: for a bad concurrency/batch size or an object that is not a channel.
    """

    def __init__(
        self,
        ledger: Ledger,
        channel: Channel | AsyncChannel,
        *,
        worker: str | None = None,
        concurrency: int = 8,
        batch_size: int | None = None,
        rate_per_second: float | None = None,
        retry: DeliveryRetry = DeliveryRetry(),
        lease: dt.timedelta = dt.timedelta(minutes=10),
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        progress: ProgressCallback | None = None,
        offload_ledger: bool = False,
        claim_batches: int | None = None,
        seed: int | None = None,
    ) -> None:
        caps = getattr(channel, "capabilities", None)
        if not hasattr(channel, "send") or not isinstance(getattr(channel, "name", None), str):
            raise UsageError(f"{channel!r} is not a channel (needs name, capabilities, send)")
        if caps is None:
            raise UsageError(f"channel {channel.name!r} declares no capabilities")
        if concurrency < 1:
            raise UsageError(f"concurrency must be >= 1, got {concurrency}")
        size = batch_size or caps.max_batch_size
        if not 1 <= size <= caps.max_batch_size:
            raise UsageError(
                f"batch_size {size} is outside 1..{caps.max_batch_size} "
                f"(channel {channel.name!r} max_batch_size)"
            )
        self.ledger = ledger
        self.channel = channel
        self.worker = worker or _default_worker()
        self.concurrency = concurrency
        self.batch_size = size
        self.rate_per_second = (
            rate_per_second if rate_per_second is not None else caps.rate_per_second
        )
        self.retry = retry
        self.lease = lease
        self.clock: Clock = clock or SystemClock()
        self._sleep = sleep or asyncio.sleep
        self.progress = progress
        self.offload_ledger = offload_ledger
        self.claim_batches = claim_batches or concurrency
        if self.claim_batches < 1:
            raise UsageError(f"claim_batches must be >= 1, got {claim_batches}")
        self._rng = random.Random(seed)
        self._async_send = inspect.iscoroutinefunction(channel.send)

    def __repr__(self) -> str:
        return (
            f"<CampaignRunner channel={self.channel.name!r} worker={self.worker!r} "
            f"concurrency={self.concurrency} batch_size={self.batch_size}>"
        )

    @property
    def idempotent(self) -> bool:
        return bool(self.channel.capabilities.idempotent)

    # ------------------------------------------------------------------ driving

    def run(self, campaign_id: str, *, recover: bool = True) -> RunResult:
        """Run from sync code (``asyncio.run`` around :meth:`arun`).

        Raises:
            UsageError: when called inside a running event loop (use ``await arun()``).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.arun(campaign_id, recover=recover))
        raise UsageError("CampaignRunner.run() called inside an event loop; await arun()")

    async def arun(self, campaign_id: str, *, recover: bool = True) -> RunResult:
        """Recover a dead runner's leftovers (if ``recover``), then send until no planned
        delivery of the campaign's channel is left.

        Raises:
            UsageError: when the channel refuses its configuration or a batch (``ConfigError``
                for bad credentials); the batch goes back to ``planned``.
            LedgerError: when the ledger refuses a transition it should not (a bug).
            StoreError: when the ledger fails.
        """
        stats = _Stats()
        limiter = _RateLimiter(self.rate_per_second, self._sleep)
        if recover:
            await self._recover(campaign_id, stats)
        counts = await self._ledger(self.ledger.status_counts, campaign_id)
        total = sum(counts.values())
        done0 = sum(counts.get(s.value, 0) for s in (*TERMINAL_STATUSES, DeliveryStatus.PENDING))
        self._progress_base = (campaign_id, total, done0)
        self._stop = False
        self._error: Exception | None = None
        queue: asyncio.Queue[list[DeliveryRecord] | None] = asyncio.Queue(self.concurrency)
        workers = [
            asyncio.create_task(self._work(queue, stats, limiter)) for _ in range(self.concurrency)
        ]
        tasks = [asyncio.create_task(self._claim(campaign_id, queue, stats)), *workers]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # claimed but never handed to the channel: back to planned
            while not queue.empty():
                batch = queue.get_nowait()
                for rec in batch or ():
                    await self._finish(stats, rec.key, DeliveryStatus.PLANNED, "released")
            raise
        if self._error is not None:
            raise self._error
        self._report(stats, finished=True)
        c = stats.counts
        return RunResult(
            campaign_id=campaign_id,
            worker=self.worker,
            failures=dict(stats.failures),
            **c,
        )

    # ------------------------------------------------------------------ internals

    async def _ledger(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self.offload_ledger:
            return await asyncio.to_thread(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    async def _recover(self, campaign_id: str, stats: _Stats) -> None:
        cutoff = self.clock.now() - self.lease
        stale = await self._ledger(self.ledger.stale, campaign_id, older_than=cutoff)
        for rec in stale:
            if rec.delivery.channel != self.channel.name:
                continue
            try:
                if self.idempotent:
                    await self._mark(rec.key, DeliveryStatus.PLANNED, reason="recovered")
                    stats.counts["recovered"] += 1
                else:
                    await self._mark(
                        rec.key, DeliveryStatus.UNKNOWN, reason="interrupted: runner died"
                    )
                    stats.counts["recovered_unknown"] += 1
            except LedgerError:
                continue  # another runner recovered it first

    async def _mark(
        self,
        key: str,
        status: DeliveryStatus,
        *,
        reason: str | None = None,
        platform_id: str | None = None,
    ) -> None:
        await self._ledger(
            self.ledger.mark,
            key,
            status,
            now=self.clock.now(),
            reason=reason,
            platform_id=platform_id,
        )

    def _report(self, stats: _Stats, *, finished: bool = False) -> None:
        if self.progress is None:
            return
        campaign_id, total, done0 = self._progress_base
        c = stats.counts
        self.progress(
            Progress(
                campaign_id=campaign_id,
                total=total,
                done=min(total, done0 + c["sent"] + c["failed"] + c["unknown"] + c["pending"]),
                sent=c["sent"],
                failed=c["failed"],
                unknown=c["unknown"],
                pending=c["pending"],
                retried=c["retried"],
                finished=finished,
            )
        )

    async def _claim(
        self, campaign_id: str, queue: asyncio.Queue[list[DeliveryRecord] | None], stats: _Stats
    ) -> None:
        """Claim several batches per ledger call (fewer round trips), feed the workers."""
        while not self._stop:
            records = await self._ledger(
                self.ledger.claim,
                campaign_id,
                worker=self.worker,
                limit=self.batch_size * self.claim_batches,
                now=self.clock.now(),
                channel=self.channel.name,
            )
            if not records:
                break
            stats.counts["claimed"] += len(records)
            for i in range(0, len(records), self.batch_size):
                await queue.put(list(records[i : i + self.batch_size]))
        for _ in range(self.concurrency):
            await queue.put(None)

    async def _work(
        self,
        queue: asyncio.Queue[list[DeliveryRecord] | None],
        stats: _Stats,
        limiter: _RateLimiter,
    ) -> None:
        while (batch := await queue.get()) is not None:
            if self._stop:  # claimed but not sent: hand back
                for rec in batch:
                    await self._finish(stats, rec.key, DeliveryStatus.PLANNED, "released")
                continue
            try:
                await self._process(batch, stats, limiter)
            except Exception as exc:
                # stop claiming; in-flight batches finish, queued ones are released
                if self._error is None:
                    self._error = exc
                self._stop = True
                continue
            self._report(stats)

    async def _send(self, batch: Sequence[Delivery]) -> Sequence[SendResult]:
        if self._async_send:
            result: Sequence[SendResult] = await self.channel.send(batch)  # type: ignore[misc]
            return result
        sync_send: Callable[[Sequence[Delivery]], Sequence[SendResult]] = self.channel.send  # type: ignore[assignment]
        return await asyncio.to_thread(sync_send, batch)

    async def _finish(
        self,
        stats: _Stats,
        key: str,
        status: DeliveryStatus,
        reason: str | None = None,
        platform_id: str | None = None,
    ) -> None:
        await self._mark(key, status, reason=reason, platform_id=platform_id)
        name = {
            DeliveryStatus.SENT: "sent",
            DeliveryStatus.FAILED: "failed",
            DeliveryStatus.UNKNOWN: "unknown",
            DeliveryStatus.PENDING: "pending",
            DeliveryStatus.PLANNED: "deferred",
        }[status]
        stats.counts[name] += 1
        if status in (DeliveryStatus.FAILED, DeliveryStatus.UNKNOWN) and reason:
            stats.failures[reason] = stats.failures.get(reason, 0) + 1

    async def _process(
        self, records: Sequence[DeliveryRecord], stats: _Stats, limiter: _RateLimiter
    ) -> None:
        pending: dict[str, Delivery] = {r.key: r.delivery for r in records}
        attempt = 0
        while pending:
            attempt += 1
            await limiter.acquire()
            batch = list(pending.values())
            try:
                results = await self._send(batch)
            except asyncio.CancelledError:
                raise
            except UsageError as exc:
                # configuration or programming error: nothing was sent; stop the run
                for key in pending:
                    await self._finish(stats, key, DeliveryStatus.PLANNED, f"released: {exc}")
                raise
            except Exception as exc:
                # No per-delivery answer: the whole batch is uncertain, unless the channel
                # says the request never left (TransportError(ambiguous=False)).
                ambiguous = not (isinstance(exc, TransportError) and not exc.ambiguous)
                reason = f"error:{type(exc).__name__}"
                if ambiguous and not self.idempotent:
                    for key in pending:
                        await self._finish(stats, key, DeliveryStatus.UNKNOWN, reason)
                    return
                if attempt >= self.retry.attempts:
                    final = DeliveryStatus.UNKNOWN if ambiguous else DeliveryStatus.FAILED
                    for key in pending:
                        await self._finish(stats, key, final, f"retries exhausted: {reason}")
                    return
                stats.counts["retried"] += len(pending)
                await self._sleep(self.retry.wait(attempt, self._rng))
                continue
            by_key = {r.key: r for r in results} if len(results) == len(batch) else {}
            retry: dict[str, Delivery] = {}
            reasons: dict[str, str] = {}
            uncertain: set[str] = set()
            hint = 0.0
            for key, delivery in pending.items():
                res = by_key.get(key)
                why: str | None
                pid: str | None
                if res is None:
                    outcome, why, pid = SendOutcome.UNKNOWN, "no result from channel", None
                else:
                    outcome, why, pid = res.outcome, res.reason, res.platform_id
                if outcome is SendOutcome.SENT:
                    await self._finish(stats, key, DeliveryStatus.SENT, platform_id=pid)
                elif outcome is SendOutcome.PENDING:
                    await self._finish(stats, key, DeliveryStatus.PENDING, platform_id=pid)
                elif outcome is SendOutcome.PERMANENT:
                    await self._finish(stats, key, DeliveryStatus.FAILED, why or "permanent")
                elif outcome is SendOutcome.UNKNOWN and (res is not None or not self.idempotent):
                    # the channel says re-sending could duplicate: final
                    await self._finish(stats, key, DeliveryStatus.UNKNOWN, why or "unknown")
                else:  # retryable, or missing from an idempotent channel's answer
                    retry[key] = delivery
                    reasons[key] = why or outcome.value
                    if outcome is SendOutcome.UNKNOWN:
                        uncertain.add(key)
                    if res is not None and res.retry_after:
                        hint = max(hint, res.retry_after)
            if not retry:
                return
            if attempt >= self.retry.attempts:
                for key in retry:
                    status = DeliveryStatus.UNKNOWN if key in uncertain else DeliveryStatus.FAILED
                    await self._finish(stats, key, status, f"retries exhausted: {reasons[key]}")
                return
            if hint > self.retry.max_wait:
                for key in retry:
                    await self._finish(
                        stats, key, DeliveryStatus.PLANNED, f"deferred: {reasons[key]}"
                    )
                self._stop = True  # the platform asks for a long pause: end this run
                return
            stats.counts["retried"] += len(retry)
            await self._sleep(self.retry.wait(attempt, self._rng, hint))
            pending = retry
