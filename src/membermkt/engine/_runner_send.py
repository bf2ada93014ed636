"""Sending one hand-off batch until every member has a known outcome or stays in doubt (a
part of :class:`~membermkt.engine.runner.CampaignRunner`).

Per attempt: sent / pending / failed are final; an ambiguous failure (timeout, reset after
the request was written) puts the member in doubt — resent with the batch's key on an
idempotent channel, ``unknown`` otherwise; 45066 (the same ``clientmsgid`` retried within a
minute) means the platform saw the key, so the batch is in doubt and resent with the same
key after >= 60 s; quota exhaustion defers the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from membermkt.core.delivery import (
    Delivery,
    DeliveryRecord,
    DeliveryStatus,
    LedgerBatch,
    Outcome,
    SendOutcome,
    SendResult,
)
from membermkt.engine._runner_parts import _RateLimiter, _Stats
from membermkt.errors import TransportError, UsageError

if TYPE_CHECKING:
    from membermkt.engine.runner import CampaignRunner

AMBIGUOUS = "transport:ambiguous"
_DAILY_QUOTA_REASONS = ("errcode:45009",)
SAME_KEY_TOO_FAST = "errcode:45066"
"""The platform saw this ``clientmsgid`` less than a minute ago (ref §1.4, §1.10): the
batch reached it, so its members are in doubt; resend the same batch with the same key
after >= 60 s (never fail it, never give it a new key)."""
SAME_KEY_WAIT = 60.0


def is_daily_quota(reason: str | None) -> bool:
    return reason in _DAILY_QUOTA_REASONS


def _is_quota(reason: str | None) -> bool:
    return bool(reason) and (is_daily_quota(reason) or str(reason).startswith("quota:"))


async def process_batch(
    runner: CampaignRunner,
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
            results = await runner._send(batch, list(pending.values()))
        except asyncio.CancelledError:
            raise
        except UsageError as exc:
            # configuration or programming error: nothing was sent; stop the run
            outcomes.extend(
                Outcome(key=key, status=DeliveryStatus.PLANNED, reason=f"released: {exc}")
                for key in pending
                if key not in doubt
            )
            await runner._record(batch, outcomes, close=not doubt)
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
            if ambiguous and runner.idempotent:
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
                    outcome=SendOutcome.RETRYABLE if runner.idempotent else SendOutcome.UNKNOWN,
                    reason=AMBIGUOUS if runner.idempotent else "no result from channel",
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
            elif outcome is SendOutcome.UNKNOWN and (why != AMBIGUOUS or not runner.idempotent):
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
        if quota_reason is not None or (retry and hint > runner.retry.max_wait):
            held = await runner._defer(quota_reason, hint, shared=quota_reason is not None)
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
        elif retry and attempt >= runner.retry.attempts:
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
            bool(still_doubtful) and runner._within_window(batch, runner.clock.now())
        )
        await runner._record(batch, outcomes, close=not keep_open)
        for o in outcomes:
            if o.key in reconciling:
                if o.status is DeliveryStatus.SENT:
                    stats.counts["reconciled"] += 1
                continue
            runner._count(stats, o.status, o.reason)
        if not retry:
            return
        stats.counts["retried"] += len(retry)
        await runner._sleep(runner.retry.wait(attempt, runner._rng, hint))
        pending = retry
