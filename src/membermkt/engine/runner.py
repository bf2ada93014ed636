"""The campaign runner: dispatch a campaign's planned deliveries from the ledger to a channel.

Guarantees (DESIGN §4, §4.1):

* **The batch is the unit of idempotency.** Deliveries move ``planned → sending`` only
  inside a hand-off batch (members, request key) written to the ledger in the same
  transaction, right before the call. Nothing is claimed ahead: a crash leaves either
  untouched ``planned`` deliveries or a batch whose call may have happened.
* **Recovery** resends exactly a crashed runner's batch with exactly its key on an
  idempotent channel while the platform still de-duplicates it (mass ``clientmsgid``:
  24 hours); past that window, or on a non-idempotent channel, its deliveries become
  ``unknown`` and are never resent blind. ``sending`` deliveries outside any batch (claimed
  by an older runner, never handed) go back to ``planned``.
* **Ambiguous is not failed.** A timeout or a reset after the request was written — or a
  5xx after such an attempt — ends ``unknown``; on an idempotent channel the batch stays
  open and the next run reconciles it with a keyed resend (the platform answers "already
  sent"). ``failed`` means the platform certainly did not deliver.
* **Quota exhaustion defers.** 45009 (daily quota) and client-side budget refusals put the
  batch back to ``planned`` (unless an earlier attempt was ambiguous), record a hold until
  the platform's daily reset (Beijing time) in the store — shared by every process — and end
  the run ``deferred``; runs started before the hold ends make no call.
* **Policy at hand-off.** A :class:`HandOffPolicy` re-checks each delivery right before its
  batch is written; those that no longer qualify end ``skipped(reason)``.
* Batches of one variant are **balanced** (:func:`~membermkt.core.quotas.balanced_batch`),
  so a mass send never leaves a lone recipient that :func:`simulate` would not predict.

The runner is async (bounded concurrency, a per-channel rate limit); :meth:`CampaignRunner.run`
drives it from sync code.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import inspect
import random
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar

from membermkt.core.delivery import (
    TERMINAL_STATUSES,
    Delivery,
    DeliveryRecord,
    DeliveryStatus,
    LedgerBatch,
    Outcome,
    SendOutcome,
    SendResult,
)
from membermkt.core.ports import AsyncChannel, BatchLedger, Channel, Clock, Ledger
from membermkt.core.quotas import balanced_batch, next_daily_reset
from membermkt.engine._runner_parts import (
    DeliveryRetry,
    HandOffPolicy,
    RunResult,
    SystemClock,
    _default_worker,
    _RateLimiter,
    _Stats,
)
from membermkt.engine._runner_recovery import recover as _recover
from membermkt.engine.progress import Progress, ProgressCallback
from membermkt.errors import TransportError, UsageError

__all__ = ["CampaignRunner", "DeliveryRetry", "HandOffPolicy", "RunResult", "SystemClock"]

T = TypeVar("T")

AMBIGUOUS = "transport:ambiguous"
_DAILY_QUOTA_REASONS = ("errcode:45009",)
SAME_KEY_TOO_FAST = "errcode:45066"
"""The platform saw this ``clientmsgid`` less than a minute ago (ref §1.4, §1.10): the
batch reached it, so its members are in doubt; resend the same batch with the same key
after >= 60 s (never fail it, never give it a new key)."""
SAME_KEY_WAIT = 60.0


def request_key_for(keys: Iterable[str]) -> str:
    """The request key of a hand-off batch: a digest of its member keys (the same as the
    mass channel's own ``clientmsgid`` for them), fixed in the batch row before the call."""
    h = hashlib.sha256("\n".join(sorted(keys)).encode("utf-8")).hexdigest()[:40]
    return f"mm{h}"


def _is_daily_quota(reason: str | None) -> bool:
    return reason in _DAILY_QUOTA_REASONS


def _is_quota(reason: str | None) -> bool:
    return bool(reason) and (_is_daily_quota(reason) or str(reason).startswith("quota:"))


class CampaignRunner:
    """Works a campaign's planned deliveries through one channel.

    Args:
        ledger: the delivery ledger (``InMemoryStore``, ``SqlStore`` — shared by every runner
            of the campaign); it must offer :class:`~membermkt.core.ports.BatchLedger`.
        channel: a :class:`~membermkt.core.ports.Channel` or
            :class:`~membermkt.core.ports.AsyncChannel` (sync channels run in threads). A
            channel with ``send_keyed(batch, request_key)`` gets the ledger batch's key.
        worker: this runner's id (default: host, pid and a random suffix).
        concurrency: batches in flight at once.
        batch_size: most deliveries per ``send`` (default: the channel's ``max_batch_size``
            on an idempotent channel or one whose ``batch_call`` attribute is true — one
            platform call per batch —, else 1: a crash leaves at most
            ``concurrency × batch_size`` deliveries in doubt).
        rate_per_second: most ``send`` calls per second (default: the channel's declared
            ``rate_per_second``; ``None``: unlimited).
        retry: a :class:`DeliveryRetry`.
        lease: how long a hand-off batch may stay without news before another run treats
            its runner as dead (keep it above the slowest batch send).
        clock: where "now" comes from (ledger timestamps, holds, policy).
        sleep: ``await sleep(seconds)``; inject a no-op in tests.
        progress: a :data:`~membermkt.engine.progress.ProgressCallback`.
        offload_ledger: run ledger calls in a thread (for a slow SQL ledger).
        policy: a :class:`HandOffPolicy` re-checked right before each hand-off (e.g.
            :class:`~membermkt.engine.handoff.CampaignPolicy`).
        hold_scope: the store key under which quota exhaustion is shared (default: channel
            name and address namespace, e.g. ``"wechat.mass@wx123"``).
        dedup_window: seconds the platform de-duplicates a keyed resend (default: the
            channel's ``dedup_window`` attribute, else unlimited for an idempotent channel).
        claim_batches: accepted for compatibility; the runner no longer claims ahead.
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
        rate_per_second: float | Literal["channel"] | None = "channel",
        retry: DeliveryRetry = DeliveryRetry(),
        lease: dt.timedelta = dt.timedelta(minutes=10),
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        progress: ProgressCallback | None = None,
        offload_ledger: bool = False,
        policy: HandOffPolicy | None = None,
        hold_scope: str | None = None,
        dedup_window: float | None = None,
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
        if not isinstance(ledger, BatchLedger):
            raise UsageError(
                f"{ledger!r} does not offer hand-off batches (open_batch, record_outcomes, ...)"
            )
        # a non-idempotent channel that calls once per delivery is handed one at a time
        batch_call = bool(getattr(channel, "batch_call", False))
        default = caps.max_batch_size if caps.idempotent or batch_call else 1
        size = batch_size or default
        if not 1 <= size <= caps.max_batch_size:
            raise UsageError(
                f"batch_size {size} is outside 1..{caps.max_batch_size} "
                f"(channel {channel.name!r} max_batch_size)"
            )
        if claim_batches is not None and claim_batches < 1:
            raise UsageError(f"claim_batches must be >= 1, got {claim_batches}")
        self.ledger = ledger
        self._batches: BatchLedger = ledger
        self.channel = channel
        self.worker = worker or _default_worker()
        self.concurrency = concurrency
        self.batch_size = size
        self.rate_per_second: float | None = (
            caps.rate_per_second if rate_per_second == "channel" else rate_per_second
        )
        self.retry = retry
        self.lease = lease
        self.clock: Clock = clock or SystemClock()
        self._sleep = sleep or asyncio.sleep
        self.progress = progress
        self.offload_ledger = offload_ledger
        self.policy = policy
        self.hold_scope = hold_scope or f"{channel.name}@{caps.address_namespace}"
        window = (
            dedup_window if dedup_window is not None else getattr(channel, "dedup_window", None)
        )
        self.dedup_window = None if window is None else dt.timedelta(seconds=float(window))
        self._keyed_min = int(getattr(channel, "keyed_batch_min", 1))
        self._rng = random.Random(seed)
        keyed = getattr(channel, "send_keyed", None)
        self._keyed = keyed if callable(keyed) else None
        fn = self._keyed or channel.send
        self._async_send = inspect.iscoroutinefunction(fn)

    @classmethod
    def for_campaign(
        cls,
        ledger: Ledger,
        channel: Channel | AsyncChannel,
        campaign: Any,
        *,
        members: Any = None,
        **kwargs: Any,
    ) -> CampaignRunner:
        """A runner that re-checks ``campaign``'s policy at every hand-off (consent,
        subscription, address, quiet hours in the member's zone, schedule end, frequency and
        platform caps from the ledger's history).

        Args:
            ledger / channel: as for the constructor.
            campaign: the :class:`~membermkt.core.campaigns.Campaign`.
            members: where members are read (default: ``ledger``, a full store).
            **kwargs: other constructor arguments.

        Raises:
            UsageError: as the constructor, or when no member store is available.
        """
        from membermkt.engine.handoff import CampaignPolicy

        if campaign.channel != channel.name:
            raise UsageError(
                f"campaign {campaign.id!r} is for channel {campaign.channel!r}, "
                f"not {channel.name!r}"
            )
        policy = CampaignPolicy(campaign, members if members is not None else ledger)  # type: ignore[arg-type]
        return cls(ledger, channel, policy=policy, **kwargs)

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
        """Recover a dead runner's batches and reconcile in-doubt ones (if ``recover``), then
        send until no planned delivery of the campaign's channel is left — or the platform's
        quota is exhausted (the result says ``deferred`` and until when).

        Raises:
            UsageError: when the channel refuses its configuration or a batch (``ConfigError``
                for bad credentials); the batch goes back to ``planned``.
            LedgerError: when the ledger refuses a transition it should not (a bug).
            StoreError: when the ledger fails.
        """
        stats = _Stats()
        self._stop = False
        self._error: Exception | None = None
        self._deferred_until: dt.datetime | None = None
        self._counts: dict[str, int] | None = None
        self._in_doubt: list[str] = []
        self._claim_lock = asyncio.Lock()
        limiter = _RateLimiter(self.rate_per_second, self._sleep)
        held = await self._ledger(self._batches.held_until, self.hold_scope, now=self.clock.now())
        counts = await self._ledger(self.ledger.status_counts, campaign_id)
        total = sum(counts.values())
        done0 = sum(counts.get(s.value, 0) for s in (*TERMINAL_STATUSES, DeliveryStatus.PENDING))
        self._progress_base = (campaign_id, total, done0)
        if held is not None:
            self._deferred_until = held
            return self._result(campaign_id, stats)
        resend: list[tuple[LedgerBatch, list[DeliveryRecord]]] = []
        if recover:
            resend = await _recover(self, campaign_id, stats)
        workers = [
            asyncio.create_task(self._work(campaign_id, stats, limiter, resend))
            for _ in range(self.concurrency)
        ]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for t in workers:
                t.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        if self._error is not None:
            raise self._error
        self._report(stats, finished=True)
        return self._result(campaign_id, stats)

    def _result(self, campaign_id: str, stats: _Stats) -> RunResult:
        status = "done"
        if self._deferred_until is not None:
            status = "deferred"
        elif self._stop:
            status = "stopped"
        return RunResult(
            campaign_id=campaign_id,
            worker=self.worker,
            failures=dict(stats.failures),
            skips=dict(stats.skips),
            deferred_until=self._deferred_until,
            status=status,
            in_doubt=tuple(self._in_doubt),
            **stats.counts,
        )

    # ------------------------------------------------------------------ internals

    async def _ledger(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self.offload_ledger:
            return await asyncio.to_thread(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    def _within_window(self, batch: LedgerBatch, now: dt.datetime) -> bool:
        if not self.idempotent or len(batch.keys) < self._keyed_min:
            return False
        return self.dedup_window is None or now - batch.opened_at < self.dedup_window

    async def _mark(self, key: str, status: DeliveryStatus, *, reason: str | None) -> None:
        await self._ledger(self.ledger.mark, key, status, now=self.clock.now(), reason=reason)

    async def _record(self, batch: LedgerBatch, outcomes: list[Outcome], *, close: bool) -> None:
        await self._ledger(
            self._batches.record_outcomes,
            batch.batch_id,
            outcomes,
            now=self.clock.now(),
            close=close,
        )

    def _report(self, stats: _Stats, *, finished: bool = False) -> None:
        if self.progress is None:
            return
        campaign_id, total, done0 = self._progress_base
        c = stats.counts
        done = c["sent"] + c["failed"] + c["unknown"] + c["pending"] + c["skipped"]
        self.progress(
            Progress(
                campaign_id=campaign_id,
                total=total,
                done=min(total, done0 + done),
                sent=c["sent"],
                failed=c["failed"],
                unknown=c["unknown"],
                pending=c["pending"],
                retried=c["retried"],
                finished=finished,
            )
        )

    async def _next_batch(
        self, campaign_id: str, stats: _Stats
    ) -> tuple[LedgerBatch, list[DeliveryRecord]] | None:
        """Peek, re-check policy, write the batch: one hand-off, balanced per variant."""
        name = self.channel.name
        async with self._claim_lock:
            fresh = False
            misses = 0
            while not self._stop:
                if self._counts is None:
                    self._counts = dict(
                        await self._ledger(self._batches.planned_counts, campaign_id, channel=name)
                    )
                    fresh = True
                variant = next((v for v in sorted(self._counts) if self._counts[v] > 0), None)
                if variant is None:
                    if fresh:
                        return None
                    self._counts = None
                    continue
                size = balanced_batch(self._counts[variant], self.batch_size)
                # after a lost race, look a little further so runners spread out
                window = size * (1 + min(misses, 3))
                recs = await self._ledger(
                    self._batches.peek_planned,
                    campaign_id,
                    channel=name,
                    variant=variant,
                    limit=window,
                )
                if misses and len(recs) > size:
                    start = self._rng.randrange(0, len(recs) - size + 1)
                    recs = recs[start : start + size]
                else:
                    recs = recs[:size]
                if not recs:
                    self._counts.pop(variant, None)
                    if fresh:
                        self._counts = None
                        fresh = False
                    continue
                now = self.clock.now()
                skips = self.policy.check(recs, now) if self.policy is not None else {}
                if skips:
                    outs = [
                        Outcome(key=k, status=DeliveryStatus.SKIPPED, reason=r)
                        for k, r in skips.items()
                    ]
                    n = await self._ledger(self._batches.skip, outs, now=now)
                    stats.counts["skipped"] += n
                    for reason in skips.values():
                        stats.skips[reason] = stats.skips.get(reason, 0) + 1
                    self._counts[variant] -= len(skips)
                    recs = [r for r in recs if r.key not in skips]
                    if not recs:
                        continue
                batch = await self._ledger(
                    self._batches.open_batch,
                    campaign_id,
                    channel=name,
                    batch_id=uuid.uuid4().hex,
                    keys=[r.key for r in recs],
                    request_key=request_key_for(r.key for r in recs),
                    worker=self.worker,
                    now=now,
                )
                if batch is None:  # another runner took some of them
                    misses += 1
                    self._counts = None
                    fresh = False
                    continue
                self._counts[variant] -= len(recs)
                stats.counts["claimed"] += len(recs)
                return batch, recs
        return None

    async def _work(
        self,
        campaign_id: str,
        stats: _Stats,
        limiter: _RateLimiter,
        resend: list[tuple[LedgerBatch, list[DeliveryRecord]]],
    ) -> None:
        while not self._stop:
            if resend:
                batch, recs = resend.pop()
            else:
                got = await self._next_batch(campaign_id, stats)
                if got is None:
                    return
                batch, recs = got
            try:
                await self._process(batch, recs, stats, limiter)
            except Exception as exc:
                # stop handing off; in-flight batches finish
                if self._error is None:
                    self._error = exc
                self._stop = True
                return
            self._report(stats)

    async def _send(
        self, batch: LedgerBatch, deliveries: Sequence[Delivery]
    ) -> Sequence[SendResult]:
        if self._keyed is not None:
            if self._async_send:
                keyed: Sequence[SendResult] = await self._keyed(deliveries, batch.request_key)
                return keyed
            return await asyncio.to_thread(self._keyed, deliveries, batch.request_key)
        if self._async_send:
            result: Sequence[SendResult] = await self.channel.send(deliveries)  # type: ignore[misc]
            return result
        sync_send: Callable[[Sequence[Delivery]], Sequence[SendResult]] = self.channel.send  # type: ignore[assignment]
        return await asyncio.to_thread(sync_send, deliveries)

    def _count(self, stats: _Stats, status: DeliveryStatus, reason: str | None, n: int = 1) -> None:
        name = {
            DeliveryStatus.SENT: "sent",
            DeliveryStatus.FAILED: "failed",
            DeliveryStatus.UNKNOWN: "unknown",
            DeliveryStatus.PENDING: "pending",
            DeliveryStatus.PLANNED: "deferred",
        }[status]
        stats.counts[name] += n
        if status in (DeliveryStatus.FAILED, DeliveryStatus.UNKNOWN) and reason:
            stats.failures[reason] = stats.failures.get(reason, 0) + n

    async def _defer(self, reason: str | None, hint: float, *, shared: bool) -> dt.datetime:
        """End the run on a long wait; a quota exhaustion is also held in the store (every
        runner of this ``hold_scope`` makes no call until it ends)."""
        now = self.clock.now()
        if _is_daily_quota(reason):
            until = next_daily_reset(now)
        else:
            until = now + dt.timedelta(seconds=max(hint, 1.0))
        held = until
        if shared:
            held = await self._ledger(self._batches.hold, self.hold_scope, until=until, now=now)
        if self._deferred_until is None or held > self._deferred_until:
            self._deferred_until = held
        self._stop = True
        return held

    async def _process(
        self,
        batch: LedgerBatch,
        records: Sequence[DeliveryRecord],
        stats: _Stats,
        limiter: _RateLimiter,
    ) -> None:
        """Send one batch until every member has a known outcome (or stays in doubt)."""
        doubt: set[str] = {r.key for r in records if r.status is DeliveryStatus.UNKNOWN}
        reconciling = set(doubt)
        pending: dict[str, Delivery] = {r.key: r.delivery for r in records}
        final_unknown: set[str] = set()
        attempt = 0
        while pending:
            attempt += 1
            await limiter.acquire()
            stats.counts["calls"] += 1
            outcomes: list[Outcome] = []
            try:
                results = await self._send(batch, list(pending.values()))
            except asyncio.CancelledError:
                raise
            except UsageError as exc:
                # configuration or programming error: nothing was sent; stop the run
                outcomes.extend(
                    Outcome(key=key, status=DeliveryStatus.PLANNED, reason=f"released: {exc}")
                    for key in pending
                    if key not in doubt
                )
                await self._record(batch, outcomes, close=not doubt)
                raise
            except Exception as exc:
                # No per-delivery answer: the whole batch is uncertain, unless the channel
                # says the request never left (TransportError(ambiguous=False)).
                ambiguous = not (isinstance(exc, TransportError) and not exc.ambiguous)
                reason = f"error:{type(exc).__name__}"
                results = [
                    SendResult(
                        key=k,
                        outcome=SendOutcome.UNKNOWN if ambiguous else SendOutcome.RETRYABLE,
                        reason=AMBIGUOUS if ambiguous else reason,
                    )
                    for k in pending
                ]
                if ambiguous and self.idempotent:
                    results = [
                        SendResult(key=r.key, outcome=SendOutcome.RETRYABLE, reason=AMBIGUOUS)
                        for r in results
                    ]
            by_key = {r.key: r for r in results} if len(results) == len(pending) else {}
            retry: dict[str, Delivery] = {}
            reasons: dict[str, str] = {}
            hint = 0.0
            quota_reason: str | None = None
            for key, delivery in pending.items():
                res = by_key.get(key)
                if res is None:  # no answer for it: in doubt (a keyed resend settles it)
                    res = SendResult(
                        key=key,
                        outcome=SendOutcome.RETRYABLE if self.idempotent else SendOutcome.UNKNOWN,
                        reason=AMBIGUOUS if self.idempotent else "no result from channel",
                    )
                outcome, why = res.outcome, res.reason
                if why == AMBIGUOUS:
                    doubt.add(key)
                elif why == SAME_KEY_TOO_FAST:
                    # an earlier attempt with this key reached the platform: in doubt, and
                    # the same key is tried again after at least a minute
                    doubt.add(key)
                    outcome = SendOutcome.RETRYABLE
                    hint = max(hint, res.retry_after or 0.0, SAME_KEY_WAIT)
                if outcome is SendOutcome.SENT:
                    outcomes.append(
                        Outcome(
                            key=key,
                            status=DeliveryStatus.SENT,
                            platform_id=res.platform_id,
                            reason=None,
                        )
                    )
                elif outcome is SendOutcome.PENDING:
                    outcomes.append(
                        Outcome(key=key, status=DeliveryStatus.PENDING, platform_id=res.platform_id)
                    )
                elif outcome is SendOutcome.PERMANENT and key not in doubt:
                    outcomes.append(
                        Outcome(key=key, status=DeliveryStatus.FAILED, reason=why or "permanent")
                    )
                elif outcome is SendOutcome.PERMANENT:
                    # refused now, but an earlier attempt may have gone through
                    outcomes.append(
                        Outcome(key=key, status=DeliveryStatus.UNKNOWN, reason=f"in doubt: {why}")
                    )
                elif outcome is SendOutcome.UNKNOWN and (why != AMBIGUOUS or not self.idempotent):
                    # the channel says re-sending could duplicate: final
                    final_unknown.add(key)
                    outcomes.append(
                        Outcome(
                            key=key,
                            status=DeliveryStatus.UNKNOWN,
                            reason=why or "unknown",
                            platform_id=res.platform_id,  # a later lookup can settle it
                        )
                    )
                else:  # retryable (keyed resends of in-doubt ones included)
                    retry[key] = delivery
                    reasons[key] = why or outcome.value
                    if _is_quota(why):
                        quota_reason = why
                    if res.retry_after:
                        hint = max(hint, res.retry_after)
            if quota_reason is not None or (retry and hint > self.retry.max_wait):
                held = await self._defer(quota_reason, hint, shared=quota_reason is not None)
                for key in retry:
                    if key in doubt:  # an earlier attempt may have landed: keep the batch
                        outcomes.append(
                            Outcome(
                                key=key,
                                status=DeliveryStatus.UNKNOWN,
                                reason=f"in doubt; deferred until {held.isoformat()}",
                            )
                        )
                    else:
                        outcomes.append(
                            Outcome(
                                key=key,
                                status=DeliveryStatus.PLANNED,
                                reason=f"deferred until {held.isoformat()}: {reasons[key]}",
                            )
                        )
                retry = {}
            elif retry and attempt >= self.retry.attempts:
                for key in retry:
                    if key in doubt:
                        outcomes.append(
                            Outcome(
                                key=key,
                                status=DeliveryStatus.UNKNOWN,
                                reason=f"retries exhausted, in doubt: {reasons[key]}",
                            )
                        )
                    else:
                        outcomes.append(
                            Outcome(
                                key=key,
                                status=DeliveryStatus.FAILED,
                                reason=f"retries exhausted: {reasons[key]}",
                            )
                        )
                retry = {}
            # reconciling deliveries already unknown: only news counts
            outcomes = [
                o
                for o in outcomes
                if not (
                    o.key in reconciling
                    and o.status
                    in (DeliveryStatus.UNKNOWN, DeliveryStatus.PLANNED, DeliveryStatus.FAILED)
                )
            ]
            settled = {o.key for o in outcomes if o.status is not DeliveryStatus.UNKNOWN}
            still_doubtful = (doubt - settled - set(retry) - final_unknown) & set(pending)
            keep_open = bool(retry) or (
                bool(still_doubtful) and self._within_window(batch, self.clock.now())
            )
            await self._record(batch, outcomes, close=not keep_open)
            for o in outcomes:
                if o.key in reconciling:
                    if o.status is DeliveryStatus.SENT:
                        stats.counts["reconciled"] += 1
                    continue
                self._count(stats, o.status, o.reason)
            if not retry:
                return
            stats.counts["retried"] += len(retry)
            await self._sleep(self.retry.wait(attempt, self._rng, hint))
            pending = retry
