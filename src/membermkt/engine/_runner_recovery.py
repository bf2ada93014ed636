"""Recovery of a dead runner's hand-off batches (a part of
:class:`~membermkt.engine.runner.CampaignRunner`).

Inside the platform's de-duplication window an idempotent batch is resent with its own key
(the platform answers "already sent"). Past it — or on a channel without idempotency keys —
nothing is resent blind: deliveries whose platform id (mass ``msg_id``, WeCom ``msgid``) the
ledger knows are looked up through the channel's optional ``lookup`` (``message/mass/get``,
``get_groupmsg_send_result``); the rest end ``unknown`` and are listed for reconciliation
(``RunResult.in_doubt``; settle them with the platform's job results, e.g.
``MASSSENDJOBFINISH``, or by hand).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import logging
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
from membermkt.engine._runner_parts import _Stats
from membermkt.errors import LedgerError

if TYPE_CHECKING:
    from membermkt.engine.runner import CampaignRunner

log = logging.getLogger("membermkt.engine.runner")

PAST_WINDOW = (
    "in doubt: past the platform's de-duplication window (not resent); "
    "reconcile with the platform's job results"
)
DIED = "in doubt: runner died in flight (not resent); reconcile with the platform's results"

_FINAL = {
    SendOutcome.SENT: DeliveryStatus.SENT,
    SendOutcome.PENDING: DeliveryStatus.PENDING,
    SendOutcome.PERMANENT: DeliveryStatus.FAILED,
}


async def look_up(runner: CampaignRunner, records: Sequence[DeliveryRecord]) -> dict[str, Outcome]:
    """Ask the channel's ``lookup((delivery, platform_id), ...)`` about in-doubt deliveries
    whose platform id the ledger knows; only certain answers (sent, failed; pending for a
    ``sending`` one) count. A failing lookup settles nothing (the deliveries stay in
    doubt, and are asked again by the next run)."""
    lookup = getattr(runner.channel, "lookup", None)
    known = [(r.delivery, r.platform_id) for r in records if r.platform_id]
    if not callable(lookup) or not known:
        return {}
    pairs: list[tuple[Delivery, str]] = [(d, str(pid)) for d, pid in known]
    try:
        if inspect.iscoroutinefunction(lookup):
            results: Sequence[SendResult] = await lookup(pairs)
        else:
            results = await asyncio.to_thread(lookup, pairs)
    except Exception:
        log.warning("lookup of %d in-doubt deliveries failed", len(pairs), exc_info=True)
        return {}
    ids = {d.key: pid for d, pid in pairs}
    was = {r.key: r.status for r in records}
    out: dict[str, Outcome] = {}
    for res in results:
        status = _FINAL.get(res.outcome)
        if status is None or res.key not in ids:
            continue
        if status is DeliveryStatus.PENDING and was[res.key] is DeliveryStatus.UNKNOWN:
            continue  # the ledger moves unknown only to sent/failed: it stays in doubt
        out[res.key] = Outcome(
            key=res.key,
            status=status,
            platform_id=res.platform_id or ids[res.key],
            reason=None if status is DeliveryStatus.SENT else res.reason,
        )
    return out


async def settle_in_doubt(
    runner: CampaignRunner, batch: LedgerBatch, live: Sequence[DeliveryRecord], stats: _Stats
) -> None:
    """A batch that may not be resent: look up what can be looked up, end the rest
    ``unknown`` (``sending`` ones; ``unknown`` ones stay) and list them in ``in_doubt``."""
    found = await look_up(runner, live)
    why = PAST_WINDOW if runner.idempotent else DIED
    outcomes = list(found.values())
    for r in live:
        if r.key in found:
            if r.status is DeliveryStatus.UNKNOWN and found[r.key].status is DeliveryStatus.SENT:
                stats.counts["reconciled"] += 1
            continue
        runner._in_doubt.append(r.key)
        if r.status is DeliveryStatus.SENDING:
            outcomes.append(Outcome(key=r.key, status=DeliveryStatus.UNKNOWN, reason=why))
            stats.counts["recovered_unknown"] += 1
    await runner._record(batch, outcomes, close=True)


async def recover(
    runner: CampaignRunner, campaign_id: str, stats: _Stats
) -> list[tuple[LedgerBatch, list[DeliveryRecord]]]:
    """Batches to resend (idempotent, in the window); a dead runner's other batches are
    settled by :func:`settle_in_doubt`; ``sending`` deliveries outside any batch go back to
    ``planned`` (idempotent channel) or become ``unknown``."""
    now = runner.clock.now()
    cutoff = now - runner.lease
    name = runner.channel.name
    ledger, batches = runner.ledger, runner._batches
    out: list[tuple[LedgerBatch, list[DeliveryRecord]]] = []
    open_all = await runner._ledger(batches.open_batches, campaign_id, channel=name)
    for batch in open_all:
        recs = await runner._ledger(batches.records, list(batch.keys))
        live = [r for r in recs if r.status in (DeliveryStatus.SENDING, DeliveryStatus.UNKNOWN)]
        in_flight = any(r.status is DeliveryStatus.SENDING for r in live)
        # an in-doubt batch nobody sends may be taken at once; a sending one after its lease
        stale_before = cutoff if in_flight else now + dt.timedelta(microseconds=1)
        taken = await runner._ledger(
            batches.take_batch,
            batch.batch_id,
            worker=runner.worker,
            now=now,
            stale_before=stale_before,
        )
        if taken is None:
            continue
        if not live:
            await runner._record(taken, [], close=True)
            continue
        if runner._within_window(taken, now):
            stats.counts["recovered"] += sum(1 for r in live if r.status is DeliveryStatus.SENDING)
            out.append((taken, live))
            continue
        await settle_in_doubt(runner, taken, live, stats)
    # ``sending`` outside any batch: claimed with the legacy ``Ledger.claim`` by another
    # caller, who may have sent it — resent with its key (idempotent) or unknown.
    batch_ids = {b.batch_id for b in open_all}
    stale = await runner._ledger(ledger.stale, campaign_id, older_than=cutoff)
    for rec in stale:
        if rec.delivery.channel != name or rec.worker in batch_ids:
            continue
        try:
            if runner.idempotent:
                await runner._mark(rec.key, DeliveryStatus.PLANNED, reason="recovered")
                stats.counts["recovered"] += 1
            else:
                await runner._mark(
                    rec.key, DeliveryStatus.UNKNOWN, reason="in doubt: claimed, runner died"
                )
                stats.counts["recovered_unknown"] += 1
                runner._in_doubt.append(rec.key)
        except LedgerError:
            continue  # another runner recovered it first
    await _look_up_known(runner, campaign_id, stats)
    return out


async def _look_up_known(runner: CampaignRunner, campaign_id: str, stats: _Stats) -> None:
    """``unknown`` deliveries of this channel whose platform id the ledger knows (a job the
    platform accepted, the members' fate unclear) are settled through ``lookup``."""
    if not callable(getattr(runner.channel, "lookup", None)):
        return
    name, ledger = runner.channel.name, runner.ledger

    def known() -> list[DeliveryRecord]:
        return [
            r
            for r in ledger.deliveries(campaign_id, status=DeliveryStatus.UNKNOWN)
            if r.platform_id and r.delivery.channel == name
        ]

    found = await look_up(runner, await runner._ledger(known))
    now = runner.clock.now()
    for o in found.values():
        try:
            await runner._ledger(
                ledger.mark, o.key, o.status, now=now, reason=o.reason, platform_id=o.platform_id
            )
        except LedgerError:
            continue  # settled by another runner meanwhile
        if o.status is DeliveryStatus.SENT:
            stats.counts["reconciled"] += 1
        else:
            runner._count(stats, o.status, o.reason)
