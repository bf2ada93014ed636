"""The campaign runner: dispatch a campaign's planned deliveries from the ledger to a channel.

Guarantees (DESIGN §4, §4.1):

* **The batch is the unit of idempotency.** Deliveries move ``planned → sending`` only
  inside a hand-off batch (members, request key) written to the ledger in the same
  transaction, right before the call. Nothing is claimed ahead: a crash leaves either
  untouched ``planned`` deliveries or a batch whose call may have happened.
* **Recovery** resends exactly a crashed runner's batch with exactly its key on an
  idempotent channel while the platform still de-duplicates it (mass ``clientmsgid``:
  24 hours); past that window, or on a non-idempotent channel, nothing is resent blind:
  deliveries whose platform id the ledger knows are looked up (the channel's ``lookup``:
  ``message/mass/get``, ``get_groupmsg_send_result``), the rest become ``unknown`` and are
  listed in ``RunResult.in_doubt`` for reconciliation (``MASSSENDJOBFINISH``). ``sending``
  deliveries outside any batch (claimed by an older runner, never handed) go back to
  ``planned``.
* **Too fast is in doubt, not failed.** 45066 (the same ``clientmsgid`` within a minute of
  the previous attempt) means the platform saw the batch: it is resent with the same key
  after >= 60 s, or — when the runner may not wait that long — left open, ``unknown``, and
  the run deferred.
* **Ambiguous is not failed.** A timeout or a reset after the request was written — or a
  5xx after such an attempt — ends ``unknown``; on an idempotent channel the batch stays
  open and the next run reconciles it with a keyed resend (the platform answers "already
  sent"). ``failed`` means the platform certainly did not deliver.
* **Quota exhaustion defers.** 45009 (daily quota) and client-side budget refusals put the
  batch back to ``planned`` (unless an earlier attempt was ambiguous), record a hold until
  the platform's daily reset (Beijing time) in the store — shared by every process — and end
  the run ``deferred``; runs started before the hold ends make no call.
* **Policy at hand-off.** A :class:`HandOffPolicy` re-checks each delivery right before its
  batch is written; those that no longer qualify end ``skipped(reason)``. ``run(campaign)``
  re-checks the campaign's own policy; a bare id without ``policy=`` re-checks nothing and
  says so (a warning, ``RunResult.policy_checked``).
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
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from membermkt.core.delivery import (
    TERMINAL_STATUSES,
    Delivery,
    DeliveryRecord,
    DeliveryStatus,
    LedgerBatch,
    Outcome,
    SendResult,
)
from membermkt.core.ports import AsyncChannel, BatchLedger, Channel, Clock, Ledger
from membermkt.core.quotas import balanced_batch, next_daily_reset
from membermkt.engine._runner_parts import (
    NO_HANDOFF_CHECKS,
    DeliveryRetry,
    HandOffPolicy,
    RunResult,
    SystemClock,
    _default_worker,
    _RateLimiter,
    _Stats,
)
from membermkt.engine._runner_recovery import recover as _recover
from membermkt.engine._runner_send import AMBIGUOUS, SAME_KEY_TOO_FAST, process_batch
from membermkt.engine._runner_send import is_daily_quota as _is_daily_quota
from membermkt.engine.progress import Progress, ProgressCallback
from membermkt.errors import UsageError

if TYPE_CHECKING:
    from membermkt.core.campaigns import Campaign

__all__ = [
    "AMBIGUOUS",
    "NO_HANDOFF_CHECKS",
    "SAME_KEY_TOO_FAST",
    "CampaignRunner",
    "DeliveryRetry",
    "HandOffPolicy",
    "RunResult",
    "SystemClock",
]

T = TypeVar("T")
log = logging.getLogger("membermkt.engine.runner")


def request_key_for(keys: Iterable[str]) -> str:
    """The request key of a hand-off batch: a digest of its member keys (the same as the
    mass channel's own ``clientmsgid`` for them), fixed in the batch row before the call."""
    h = hashlib.sha256("\n".join(sorted(keys)).encode("utf-8")).hexdigest()[:40]
    return f"mm{h}"


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
            :class:`~membermkt.engine.handoff.CampaignPolicy`). Without one, a run given the
            :class:`~membermkt.core.campaigns.Campaign` (``run(campaign)``) re-checks that
            campaign's policy; a run given only an id re-checks nothing (and logs a warning).
            :data:`NO_HANDOFF_CHECKS` re-checks nothing on purpose (no warning).
        members: where a campaign's policy reads members (default: the ledger, when it is
            a full store).
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
        members: Any = None,
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
        self.members = members
        self._run_policy: HandOffPolicy | None = policy
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
        return cls(ledger, channel, policy=policy, members=members, **kwargs)

    def __repr__(self) -> str:
        return (
            f"<CampaignRunner channel={self.channel.name!r} worker={self.worker!r} "
            f"concurrency={self.concurrency} batch_size={self.batch_size}>"
        )

    @property
    def idempotent(self) -> bool:
        return bool(self.channel.capabilities.idempotent)

    # ------------------------------------------------------------------ driving

    def run(self, campaign: str | Campaign, *, recover: bool = True) -> RunResult:
        """Run from sync code (``asyncio.run`` around :meth:`arun`).

        Raises:
            UsageError: when called inside a running event loop (use ``await arun()``), or
                as :meth:`arun`.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.arun(campaign, recover=recover))
        raise UsageError("CampaignRunner.run() called inside an event loop; await arun()")

    def _policy_for(self, campaign: str | Campaign) -> tuple[str, HandOffPolicy | None]:
        """The campaign id and the hand-off policy of this run.

        Given the :class:`~membermkt.core.campaigns.Campaign`, a runner without a policy
        re-checks the campaign's own (a :class:`~membermkt.engine.handoff.CampaignPolicy`
        over ``members``, default the ledger). Given only an id, the runner cannot know the
        campaign's consent, quiet hours or caps: without a policy nothing is re-checked at
        hand-off, and the run says so (a log warning, ``RunResult.policy_checked=False``).
        """
        from membermkt.core.campaigns import Campaign
        from membermkt.engine.handoff import CampaignPolicy

        if isinstance(campaign, str):
            if self.policy is NO_HANDOFF_CHECKS:
                return campaign, None  # no re-checks, by the caller's explicit choice
            if self.policy is None:
                log.warning(
                    "campaign %r runs without a hand-off policy: consent, subscription, quiet "
                    "hours, schedule end and caps are NOT re-checked before sending; pass "
                    "the Campaign (run(campaign)) or policy= (CampaignRunner.for_campaign)",
                    campaign,
                )
            return campaign, self.policy
        if not isinstance(campaign, Campaign):
            raise UsageError(f"run() takes a Campaign or a campaign id, got {campaign!r}")
        if campaign.channel != self.channel.name:
            raise UsageError(
                f"campaign {campaign.id!r} is for channel {campaign.channel!r}, "
                f"not {self.channel.name!r}"
            )
        if self.policy is NO_HANDOFF_CHECKS:
            return campaign.id, None
        if self.policy is None:
            members: Any = self.members if self.members is not None else self.ledger
            if not hasattr(members, "get_members"):
                raise UsageError(
                    f"campaign {campaign.id!r}: the runner has no hand-off policy and "
                    f"{members!r} cannot read members to re-check consent, quiet hours and "
                    "caps; pass members= (a member store) or policy="
                )
            return campaign.id, CampaignPolicy(campaign, members)
        bound = getattr(self.policy, "campaign", None)
        if isinstance(bound, Campaign) and bound.id != campaign.id:
            raise UsageError(
                f"the runner's policy is campaign {bound.id!r}'s, not {campaign.id!r}'s"
            )
        return campaign.id, self.policy

    async def arun(self, campaign: str | Campaign, *, recover: bool = True) -> RunResult:
        """Recover a dead runner's batches and reconcile in-doubt ones (if ``recover``), then
        send until no planned delivery of the campaign's channel is left — or the platform's
        quota is exhausted (the result says ``deferred`` and until when).

        Args:
            campaign: the :class:`~membermkt.core.campaigns.Campaign` (its policy is
                re-checked at every hand-off, see :meth:`_policy_for`) or its id (then
                only this runner's ``policy=`` is).
            recover: recover a dead runner's batches first.

        Raises:
            UsageError: when the channel refuses its configuration or a batch (``ConfigError``
                for bad credentials; the batch goes back to ``planned``); for a campaign of
                another channel, or one whose policy cannot be checked (no member store).
            LedgerError: when the ledger refuses a transition it should not (a bug).
            StoreError: when the ledger fails.
        """
        campaign_id, self._run_policy = self._policy_for(campaign)
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
            policy_checked=self._run_policy is not None,
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
                policy = self._run_policy
                skips = policy.check(recs, now) if policy is not None else {}
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
        await process_batch(self, batch, records, stats, limiter)
