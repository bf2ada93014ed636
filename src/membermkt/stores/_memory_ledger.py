"""The delivery ledger of :class:`~membermkt.stores.memory.InMemoryStore`: plan, hand-off
batches, outcomes, holds. Not public API (mixed into ``InMemoryStore``)."""

from __future__ import annotations

import datetime as dt
import heapq
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from membermkt.core.delivery import (
    BATCH_CLOSED,
    BATCH_OPEN,
    HANDED_STATUSES,
    Delivery,
    DeliveryRecord,
    DeliveryStatus,
    LedgerBatch,
    Outcome,
    check_transition,
)
from membermkt.core.quotas import PastSend
from membermkt.errors import LedgerError, UsageError
from membermkt.stores._common import check_delivery_status, check_now

_Slot = tuple[str, str, str]  # campaign, channel, variant


def _check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise UsageError(f"claim limit must be a non-negative int, got {limit!r}")
    return limit


class _MemoryLedger:
    """Deliveries, hand-off batches and holds in dicts, under the store's lock.

    Planned keys are kept in one heap per (campaign, channel, variant) with lazy deletion,
    so claiming and peeking cost O(limit log n), not a sort of the campaign per call.
    """

    _lock: threading.RLock

    def _init_ledger(self) -> None:
        self._deliveries: dict[str, DeliveryRecord] = {}
        self._campaigns: dict[str, set[str]] = {}  # campaign id -> delivery keys
        self._planned: dict[_Slot, list[str]] = {}  # heaps of (maybe stale) planned keys
        self._batches: dict[str, LedgerBatch] = {}
        self._holds: dict[str, dt.datetime] = {}
        self._by_member: dict[str, list[str]] = {}  # member id -> delivery keys
        self._job_results: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ plan

    def _push_planned(self, d: Delivery) -> None:
        heapq.heappush(self._planned.setdefault((d.campaign_id, d.channel, d.variant), []), d.key)

    def record_plan(self, deliveries: Iterable[Delivery], *, now: dt.datetime) -> int:
        """Insert deliveries as ``planned`` unless their key exists; returns how many new.

        Raises:
            UsageError: for a value that is not a Delivery or a naive ``now``.
        """
        when = check_now(now)
        batch = list(deliveries)
        for d in batch:
            if not isinstance(d, Delivery):
                raise UsageError(f"record_plan takes Delivery values, got {d!r}")
        new = 0
        with self._lock:
            for d in batch:
                if d.key in self._deliveries:
                    continue
                self._deliveries[d.key] = DeliveryRecord(delivery=d, updated_at=when)
                self._campaigns.setdefault(d.campaign_id, set()).add(d.key)
                self._by_member.setdefault(d.member_id, []).append(d.key)
                self._push_planned(d)
                new += 1
        return new

    def _pop_planned(self, slot: _Slot, limit: int) -> list[str]:
        """Remove and return up to ``limit`` planned keys of ``slot`` (smallest first)."""
        heap = self._planned.get(slot)
        out: list[str] = []
        seen: set[str] = set()
        while heap and len(out) < limit:
            key = heapq.heappop(heap)
            if key in seen:
                continue
            seen.add(key)
            if self._deliveries[key].status is DeliveryStatus.PLANNED:
                out.append(key)
        return out

    def _slots(self, campaign_id: str, channel: str | None) -> list[_Slot]:
        return [
            s for s in self._planned if s[0] == campaign_id and (channel is None or s[1] == channel)
        ]

    def claim(
        self,
        campaign_id: str,
        *,
        worker: str,
        limit: int,
        now: dt.datetime,
        channel: str | None = None,
    ) -> list[DeliveryRecord]:
        """Move up to ``limit`` planned deliveries (by key) to ``sending`` for ``worker``.

        Raises:
            UsageError: for a negative limit or a naive ``now``.
        """
        when = check_now(now)
        _check_limit(limit)
        out: list[DeliveryRecord] = []
        with self._lock:
            candidates: list[str] = []
            for slot in self._slots(campaign_id, channel):
                candidates += self._pop_planned(slot, limit)
            candidates.sort()
            for key in candidates[limit:]:  # not taken: back on their heaps
                self._push_planned(self._deliveries[key].delivery)
            for key in candidates[:limit]:
                rec = attrs.evolve(
                    self._deliveries[key],
                    status=DeliveryStatus.SENDING,
                    attempts=self._deliveries[key].attempts + 1,
                    worker=worker,
                    updated_at=when,
                )
                self._deliveries[key] = rec
                out.append(rec)
        return out

    def _set(
        self,
        key: str,
        new: DeliveryStatus,
        when: dt.datetime,
        reason: str | None = None,
        platform_id: str | None = None,
        worker: str | None = None,
    ) -> None:
        rec = self._deliveries[key]
        self._deliveries[key] = attrs.evolve(
            rec,
            status=new,
            reason=reason if reason is not None else rec.reason,
            platform_id=platform_id if platform_id is not None else rec.platform_id,
            worker=worker,
            updated_at=when,
        )
        if new is DeliveryStatus.PLANNED:
            self._push_planned(rec.delivery)

    def mark(
        self,
        key: str,
        status: DeliveryStatus,
        *,
        now: dt.datetime,
        reason: str | None = None,
        platform_id: str | None = None,
    ) -> None:
        """Move one delivery to ``status``.

        Raises:
            LedgerError: for an unknown key or a transition the state machine refuses.
            UsageError: for an unknown status or a naive ``now``.
        """
        when = check_now(now)
        new = check_delivery_status(status)
        with self._lock:
            rec = self._deliveries.get(key)
            if rec is None:
                raise LedgerError(f"unknown delivery {key!r}")
            check_transition(key, rec.status, new)
            worker = rec.worker if new is DeliveryStatus.SENDING else None
            self._set(key, new, when, reason, platform_id, worker)

    def stale(self, campaign_id: str, *, older_than: dt.datetime) -> list[DeliveryRecord]:
        """Deliveries left ``sending`` since before ``older_than``, by key.

        Raises:
            UsageError: for a naive ``older_than``.
        """
        cutoff = check_now(older_than, "older_than")
        with self._lock:
            recs = [self._deliveries[k] for k in sorted(self._campaigns.get(campaign_id, ()))]
        return [
            r
            for r in recs
            if r.status is DeliveryStatus.SENDING
            and r.updated_at is not None
            and r.updated_at < cutoff
        ]

    def deliveries(
        self, campaign_id: str, *, status: DeliveryStatus | None = None
    ) -> Iterator[DeliveryRecord]:
        """The campaign's deliveries (optionally of one status), by key.

        Raises:
            UsageError: for an unknown status.
        """
        wanted = None if status is None else check_delivery_status(status)
        with self._lock:
            recs = [self._deliveries[k] for k in sorted(self._campaigns.get(campaign_id, ()))]
        return iter([r for r in recs if wanted is None or r.status is wanted])

    def status_counts(self, campaign_id: str) -> Mapping[str, int]:
        """Number of deliveries per status value (every status present, zeros included)."""
        counts = {s.value: 0 for s in DeliveryStatus}
        with self._lock:
            for k in self._campaigns.get(campaign_id, ()):
                counts[self._deliveries[k].status.value] += 1
        return counts

    # ------------------------------------------------------------------ hand-off batches

    def planned_counts(self, campaign_id: str, *, channel: str) -> Mapping[str, int]:
        """Planned deliveries of ``channel`` per variant (variants with none left out)."""
        out: dict[str, int] = {}
        with self._lock:
            for slot in self._slots(campaign_id, channel):
                n = sum(
                    1
                    for k in set(self._planned[slot])
                    if self._deliveries[k].status is DeliveryStatus.PLANNED
                )
                if n:
                    out[slot[2]] = n
        return out

    def peek_planned(
        self, campaign_id: str, *, channel: str, variant: str, limit: int
    ) -> list[DeliveryRecord]:
        """Up to ``limit`` planned deliveries of one variant, by key (no state change).

        Raises:
            UsageError: for a negative limit.
        """
        _check_limit(limit)
        slot = (campaign_id, channel, variant)
        with self._lock:
            keys = self._pop_planned(slot, limit)
            for key in keys:
                heapq.heappush(self._planned[slot], key)
            return [self._deliveries[k] for k in keys]

    def skip(self, outcomes: Sequence[Outcome], *, now: dt.datetime) -> int:
        """``planned → skipped(reason)`` for the deliveries still planned; returns how many.

        Raises:
            UsageError: for a naive ``now``.
        """
        when = check_now(now)
        n = 0
        with self._lock:
            for o in outcomes:
                rec = self._deliveries.get(o.key)
                if rec is not None and rec.status is DeliveryStatus.PLANNED:
                    self._set(o.key, DeliveryStatus.SKIPPED, when, o.reason or "skipped")
                    n += 1
        return n

    def open_batch(
        self,
        campaign_id: str,
        *,
        channel: str,
        batch_id: str,
        keys: Sequence[str],
        request_key: str,
        worker: str,
        now: dt.datetime,
    ) -> LedgerBatch | None:
        """Write the batch and move every key ``planned → sending`` (all or none).

        Raises:
            UsageError: for an empty batch, a reused ``batch_id`` or a naive ``now``.
        """
        when = check_now(now)
        if not keys:
            raise UsageError("open_batch needs at least one key")
        with self._lock:
            if batch_id in self._batches:
                raise UsageError(f"batch id {batch_id!r} already used")
            for k in keys:
                rec = self._deliveries.get(k)
                if rec is None or rec.status is not DeliveryStatus.PLANNED:
                    return None
            for k in keys:
                rec = self._deliveries[k]
                self._deliveries[k] = attrs.evolve(
                    rec,
                    status=DeliveryStatus.SENDING,
                    attempts=rec.attempts + 1,
                    worker=batch_id,
                    updated_at=when,
                )
            batch = LedgerBatch(
                batch_id=batch_id,
                campaign_id=campaign_id,
                channel=channel,
                keys=tuple(keys),
                request_key=request_key,
                worker=worker,
                opened_at=when,
                updated_at=when,
            )
            self._batches[batch_id] = batch
            return batch

    def record_outcomes(
        self, batch_id: str, outcomes: Sequence[Outcome], *, now: dt.datetime, close: bool
    ) -> None:
        """Record outcomes of one batch at once (and close it when ``close``).

        Raises:
            LedgerError: for an unknown batch, a key outside it or a refused transition
                (then nothing is recorded).
            UsageError: for a naive ``now``.
        """
        when = check_now(now)
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                raise LedgerError(f"unknown batch {batch_id!r}")
            members = set(batch.keys)
            for o in outcomes:
                if o.key not in members:
                    raise LedgerError(f"delivery {o.key!r} is not in batch {batch_id!r}")
                rec = self._deliveries[o.key]
                if rec.status is not o.status:
                    check_transition(o.key, rec.status, o.status)
            for o in outcomes:
                rec = self._deliveries[o.key]
                if rec.status is o.status and o.status is not DeliveryStatus.SENDING:
                    continue
                keep = batch_id if o.status is DeliveryStatus.SENDING else None
                self._set(o.key, o.status, when, o.reason, o.platform_id, keep)
            self._batches[batch_id] = attrs.evolve(
                batch, updated_at=when, state=BATCH_CLOSED if close else BATCH_OPEN
            )

    def open_batches(
        self, campaign_id: str, *, channel: str, older_than: dt.datetime | None = None
    ) -> list[LedgerBatch]:
        """Open batches of the campaign's channel, oldest first.

        Raises:
            UsageError: for a naive ``older_than``.
        """
        cutoff = None if older_than is None else check_now(older_than, "older_than")
        with self._lock:
            found = [
                b
                for b in self._batches.values()
                if b.campaign_id == campaign_id
                and b.channel == channel
                and b.state == BATCH_OPEN
                and (cutoff is None or b.updated_at < cutoff)
            ]
        return sorted(found, key=lambda b: (b.opened_at, b.batch_id))

    def take_batch(
        self, batch_id: str, *, worker: str, now: dt.datetime, stale_before: dt.datetime
    ) -> LedgerBatch | None:
        """Take over an open batch whose holder has been silent since ``stale_before``.

        Raises:
            UsageError: for naive times.
        """
        when = check_now(now)
        cutoff = check_now(stale_before, "stale_before")
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None or batch.state != BATCH_OPEN or batch.updated_at >= cutoff:
                return None
            batch = attrs.evolve(batch, worker=worker, updated_at=when)
            self._batches[batch_id] = batch
            return batch

    def records(self, keys: Sequence[str]) -> list[DeliveryRecord]:
        """The deliveries with these keys, in order (unknown keys left out)."""
        with self._lock:
            return [self._deliveries[k] for k in keys if k in self._deliveries]

    def hold(self, scope: str, *, until: dt.datetime, now: dt.datetime) -> dt.datetime:
        """Hold calls of ``scope`` until ``until`` (an existing later hold wins).

        Raises:
            UsageError: for naive times.
        """
        end = check_now(until, "until")
        check_now(now)
        with self._lock:
            cur = self._holds.get(scope)
            if cur is None or cur < end:
                self._holds[scope] = end
            return self._holds[scope]

    def held_until(self, scope: str, *, now: dt.datetime) -> dt.datetime | None:
        """The hold of ``scope`` in force at ``now``, if any.

        Raises:
            UsageError: for a naive ``now``.
        """
        when = check_now(now)
        with self._lock:
            cur = self._holds.get(scope)
        return cur if cur is not None and cur > when else None

    def past_sends(
        self,
        member_ids: Iterable[str],
        *,
        since: dt.datetime,
        exclude_campaign: str | None = None,
        include_planned: bool = False,
    ) -> dict[str, list[PastSend]]:
        """Every campaign's sends to these members since ``since`` that were or may have
        been delivered (``sending``, ``sent``, ``unknown``, ``pending_confirmation``; also
        ``planned`` when ``include_planned``), for frequency caps and platform receive caps.
        The time of a send is the ledger's last update of the delivery.

        Raises:
            UsageError: for a naive ``since``.
        """
        start = check_now(since, "since")
        wanted = set(HANDED_STATUSES)
        if include_planned:
            wanted.add(DeliveryStatus.PLANNED)
        out: dict[str, list[PastSend]] = {}
        with self._lock:
            for mid in dict.fromkeys(member_ids):
                for key in self._by_member.get(mid, ()):
                    rec = self._deliveries[key]
                    d = rec.delivery
                    at = rec.updated_at
                    if (
                        rec.status not in wanted
                        or d.campaign_id == exclude_campaign
                        or at is None
                        or at < start
                    ):
                        continue
                    out.setdefault(mid, []).append(
                        PastSend(member_id=mid, channel=d.channel, at=at, campaign_id=d.campaign_id)
                    )
        return out

    def record_job_result(self, key: str, result: Mapping[str, Any], *, now: dt.datetime) -> bool:
        """Keep a platform job result once: ``False`` when ``key`` was already recorded.

        Raises:
            UsageError: for a naive ``now``.
        """
        check_now(now)
        with self._lock:
            if key in self._job_results:
                return False
            self._job_results[key] = dict(result)
            return True

    def job_results(self, keys: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        """The recorded job results among ``keys``."""
        with self._lock:
            return {k: dict(self._job_results[k]) for k in keys if k in self._job_results}
