"""Hand-off batches and call holds in SQL (DESIGN §4.1): a batch row and its deliveries'
``planned → sending`` move are one transaction; a batch's outcomes are one transaction."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from membermkt.core.delivery import (
    BATCH_CLOSED,
    BATCH_OPEN,
    HANDED_STATUSES,
    DeliveryRecord,
    DeliveryStatus,
    LedgerBatch,
    Outcome,
    check_transition,
)
from membermkt.core.quotas import PastSend
from membermkt.errors import LedgerError, UsageError
from membermkt.stores._common import check_now
from membermkt.stores.sql import _rows as rows
from membermkt.stores.sql.compile import from_epoch_us, to_epoch_us
from membermkt.stores.sql.store._base import _chunks
from membermkt.stores.sql.store._bulk import _Bulk


def _batch(r: Mapping[Any, Any]) -> LedgerBatch:
    return LedgerBatch(
        batch_id=r["batch_id"],
        campaign_id=r["campaign_id"],
        channel=r["channel"],
        keys=tuple(json.loads(r["keys"])),
        request_key=r["request_key"],
        worker=r["worker"],
        opened_at=from_epoch_us(r["opened_at"]),
        updated_at=from_epoch_us(r["updated_at"]),
        state=r["state"],
    )


class _BatchesMixin(_Bulk):
    """The :class:`~membermkt.core.ports.BatchLedger` half of the SQL ledger."""

    _batch_tables_ready = False

    def _batch_tables(self, conn: Connection) -> None:
        if not self._batch_tables_ready:
            self.tables.delivery_batches.create(conn, checkfirst=True)
            self.tables.holds.create(conn, checkfirst=True)
            self.tables.job_results.create(conn, checkfirst=True)
            ix = next(
                (
                    i
                    for i in self.tables.deliveries.indexes
                    if str(i.name).endswith("ix_deliveries_member")
                ),
                None,
            )
            if ix is not None:
                ix.create(conn, checkfirst=True)
            self._batch_tables_ready = True

    def _btx(self, fn: Any) -> Any:
        def run(conn: Connection) -> Any:
            self._batch_tables(conn)
            return fn(conn)

        return self._write(run)

    def planned_counts(self, campaign_id: str, *, channel: str) -> Mapping[str, int]:
        """Planned deliveries of ``channel`` per variant (variants with none left out).

        Raises:
            StoreUnavailable: when the database cannot be reached.
        """
        t = self.tables.deliveries
        q = (
            sa.select(t.c.variant, sa.func.count())
            .where(
                t.c.campaign_id == campaign_id,
                t.c.status == DeliveryStatus.PLANNED.value,
                t.c.channel == channel,
            )
            .group_by(t.c.variant)
        )
        with self._tx() as conn:
            return {str(v): int(n) for v, n in conn.execute(q)}

    def peek_planned(
        self, campaign_id: str, *, channel: str, variant: str, limit: int
    ) -> list[DeliveryRecord]:
        """Up to ``limit`` planned deliveries of one variant, by key (no state change).

        Raises:
            UsageError: for a negative limit.
            StoreUnavailable: when the database cannot be reached.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise UsageError(f"limit must be a non-negative int, got {limit!r}")
        t = self.tables.deliveries
        q = (
            sa.select(t)
            .where(
                t.c.campaign_id == campaign_id,
                t.c.status == DeliveryStatus.PLANNED.value,
                t.c.channel == channel,
                t.c.variant == variant,
            )
            .order_by(t.c.key)
            .limit(limit)
        )
        with self._tx() as conn:
            return [rows.delivery_record(r) for r in conn.execute(q).mappings()]

    def skip(self, outcomes: Sequence[Outcome], *, now: dt.datetime) -> int:
        """``planned → skipped(reason)`` for the deliveries still planned; returns how many.

        Raises:
            UsageError: for a naive ``now``.
            StoreUnavailable: when the database cannot be reached.
        """
        when = to_epoch_us(check_now(now))
        t = self.tables.deliveries

        def run(conn: Connection) -> int:
            n = 0
            for o in outcomes:
                res = conn.execute(
                    sa.update(t)
                    .where(t.c.key == o.key, t.c.status == DeliveryStatus.PLANNED.value)
                    .values(
                        status=DeliveryStatus.SKIPPED.value,
                        reason=o.reason or "skipped",
                        updated_at=when,
                        worker=None,
                    )
                )
                n += int(res.rowcount or 0)
            return n

        return int(self._write(run)) if outcomes else 0

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
        """Write the batch row and move every key ``planned → sending`` in one transaction
        (all or none: ``None`` when another runner took any of them).

        On PostgreSQL and MySQL/MariaDB the rows are locked with ``FOR UPDATE SKIP LOCKED``,
        so concurrent runners never wait on each other.

        Raises:
            UsageError: for an empty batch or a naive ``now``.
            StoreUnavailable: when the database cannot be reached.
        """
        when = check_now(now)
        us = to_epoch_us(when)
        if not keys:
            raise UsageError("open_batch needs at least one key")
        t = self.tables.deliveries
        b = self.tables.delivery_batches
        wanted = list(dict.fromkeys(keys))

        def run(conn: Connection) -> LedgerBatch | None:
            got: set[str] = set()
            for chunk in _chunks(wanted, 900):
                q = sa.select(t.c.key).where(
                    t.c.key.in_(chunk), t.c.status == DeliveryStatus.PLANNED.value
                )
                if self.dialect != "sqlite":
                    q = q.with_for_update(skip_locked=True)
                got.update(conn.execute(q).scalars())
            if len(got) != len(wanted):
                return None
            for chunk in _chunks(wanted, 900):
                conn.execute(
                    sa.update(t)
                    .where(t.c.key.in_(chunk))
                    .values(
                        status=DeliveryStatus.SENDING.value,
                        attempts=t.c.attempts + 1,
                        worker=batch_id,
                        updated_at=us,
                    )
                )
            row = {
                "batch_id": batch_id,
                "campaign_id": campaign_id,
                "channel": channel,
                "keys": json.dumps(wanted),
                "request_key": request_key,
                "worker": worker,
                "opened_at": us,
                "updated_at": us,
                "state": BATCH_OPEN,
            }
            conn.execute(sa.insert(b), [row])
            return _batch(row)

        result: LedgerBatch | None = self._btx(run)
        return result

    def record_outcomes(
        self, batch_id: str, outcomes: Sequence[Outcome], *, now: dt.datetime, close: bool
    ) -> None:
        """Record outcomes of one batch in one transaction (and close it when ``close``).

        Raises:
            LedgerError: for an unknown batch, a key outside it or a refused transition
                (then nothing is recorded).
            UsageError: for a naive ``now``.
            StoreUnavailable: when the database cannot be reached.
        """
        us = to_epoch_us(check_now(now))
        t = self.tables.deliveries
        b = self.tables.delivery_batches

        def run(conn: Connection) -> None:
            r = (
                conn.execute(sa.select(b).where(b.c.batch_id == batch_id).with_for_update())
                .mappings()
                .first()
            )
            if r is None:
                raise LedgerError(f"unknown batch {batch_id!r}")
            members = set(json.loads(r["keys"]))
            current: dict[str, str] = {}
            keys = [o.key for o in outcomes]
            for chunk in _chunks(keys, 900):
                q = sa.select(t.c.key, t.c.status).where(t.c.key.in_(chunk))
                current.update((str(k), str(s)) for k, s in conn.execute(q))
            for o in outcomes:
                if o.key not in members or o.key not in current:
                    raise LedgerError(f"delivery {o.key!r} is not in batch {batch_id!r}")
                old = DeliveryStatus(current[o.key])
                if old is not o.status:
                    check_transition(o.key, old, o.status)
            groups: dict[tuple[str, str | None, str | None], list[str]] = {}
            for o in outcomes:
                if current[o.key] == o.status.value and o.status is not DeliveryStatus.SENDING:
                    continue
                groups.setdefault((o.status.value, o.reason, o.platform_id), []).append(o.key)
            for (status, reason, pid), ks in groups.items():
                values: dict[str, Any] = {"status": status, "updated_at": us}
                values["worker"] = batch_id if status == DeliveryStatus.SENDING.value else None
                if reason is not None:
                    values["reason"] = reason
                if pid is not None:
                    values["platform_id"] = pid
                for chunk in _chunks(ks, 900):
                    conn.execute(sa.update(t).where(t.c.key.in_(chunk)).values(**values))
            conn.execute(
                sa.update(b)
                .where(b.c.batch_id == batch_id)
                .values(updated_at=us, state=BATCH_CLOSED if close else BATCH_OPEN)
            )

        self._btx(run)

    def open_batches(
        self, campaign_id: str, *, channel: str, older_than: dt.datetime | None = None
    ) -> list[LedgerBatch]:
        """Open batches of the campaign's channel, oldest first.

        Raises:
            UsageError: for a naive ``older_than``.
            StoreUnavailable: when the database cannot be reached.
        """
        b = self.tables.delivery_batches
        q = sa.select(b).where(
            b.c.campaign_id == campaign_id, b.c.channel == channel, b.c.state == BATCH_OPEN
        )
        if older_than is not None:
            q = q.where(b.c.updated_at < to_epoch_us(check_now(older_than, "older_than")))
        q = q.order_by(b.c.opened_at, b.c.batch_id)

        def run(conn: Connection) -> list[LedgerBatch]:
            return [_batch(r) for r in conn.execute(q).mappings()]

        found: list[LedgerBatch] = self._btx(run)
        return found

    def take_batch(
        self, batch_id: str, *, worker: str, now: dt.datetime, stale_before: dt.datetime
    ) -> LedgerBatch | None:
        """Take over an open batch whose holder has been silent since ``stale_before``
        (a conditional update: one runner wins).

        Raises:
            UsageError: for naive times.
            StoreUnavailable: when the database cannot be reached.
        """
        us = to_epoch_us(check_now(now))
        cutoff = to_epoch_us(check_now(stale_before, "stale_before"))
        b = self.tables.delivery_batches

        def run(conn: Connection) -> LedgerBatch | None:
            res = conn.execute(
                sa.update(b)
                .where(b.c.batch_id == batch_id, b.c.state == BATCH_OPEN, b.c.updated_at < cutoff)
                .values(worker=worker, updated_at=us)
            )
            if not res.rowcount:
                return None
            r = conn.execute(sa.select(b).where(b.c.batch_id == batch_id)).mappings().first()
            return None if r is None else _batch(r)

        taken: LedgerBatch | None = self._btx(run)
        return taken

    def records(self, keys: Sequence[str]) -> list[DeliveryRecord]:
        """The deliveries with these keys, in order (unknown keys left out).

        Raises:
            StoreUnavailable: when the database cannot be reached.
        """
        t = self.tables.deliveries
        found: dict[str, DeliveryRecord] = {}
        with self._tx() as conn:
            for chunk in _chunks(list(keys), 900):
                for r in conn.execute(sa.select(t).where(t.c.key.in_(chunk))).mappings():
                    rec = rows.delivery_record(r)
                    found[rec.key] = rec
        return [found[k] for k in keys if k in found]

    def hold(self, scope: str, *, until: dt.datetime, now: dt.datetime) -> dt.datetime:
        """Hold calls of ``scope`` until ``until`` (an existing later hold wins), shared by
        every process on this database.

        Raises:
            UsageError: for naive times.
            StoreUnavailable: when the database cannot be reached.
        """
        end = to_epoch_us(check_now(until, "until"))
        check_now(now)
        h = self.tables.holds

        def run(conn: Connection) -> int:
            cur = conn.execute(
                sa.select(h.c.until_at).where(h.c.scope == scope).with_for_update()
            ).scalar()
            if cur is None:
                conn.execute(self._insert_ignore(h), [{"scope": scope, "until_at": end}])
                cur = conn.execute(sa.select(h.c.until_at).where(h.c.scope == scope)).scalar()
            if cur is None or int(cur) < end:
                conn.execute(sa.update(h).where(h.c.scope == scope).values(until_at=end))
                return end
            return int(cur)

        return from_epoch_us(int(self._btx(run)))

    def held_until(self, scope: str, *, now: dt.datetime) -> dt.datetime | None:
        """The hold of ``scope`` in force at ``now``, if any.

        Raises:
            UsageError: for a naive ``now``.
            StoreUnavailable: when the database cannot be reached.
        """
        when = to_epoch_us(check_now(now))
        h = self.tables.holds

        def run(conn: Connection) -> int | None:
            v = conn.execute(sa.select(h.c.until_at).where(h.c.scope == scope)).scalar()
            return None if v is None else int(v)

        cur = self._btx(run)
        return from_epoch_us(cur) if cur is not None and cur > when else None

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
        ``planned`` when ``include_planned``) — one query per 4,000 members.

        Raises:
            UsageError: for a naive ``since``.
            StoreUnavailable: when the database cannot be reached.
        """
        start = to_epoch_us(check_now(since, "since"))
        statuses = [s.value for s in HANDED_STATUSES]
        if include_planned:
            statuses.append(DeliveryStatus.PLANNED.value)
        t = self.tables.deliveries
        ids = list(dict.fromkeys(member_ids))
        out: dict[str, list[PastSend]] = {}

        q = self._quote
        ph1 = self._placeholder
        where = (
            f" AND {q('status')} IN ({', '.join([ph1] * len(statuses))})"
            f" AND {q('updated_at')} >= {ph1}"
        )
        tail: tuple[Any, ...] = (*statuses, start)
        if exclude_campaign is not None:
            where += f" AND {q('campaign_id')} <> {ph1}"
            tail = (*tail, exclude_campaign)
        head = (
            f"SELECT {q('member_id')}, {q('channel')}, {q('updated_at')}, {q('campaign_id')} "
            f"FROM {q(t.name)} WHERE {q('member_id')} IN "
        )

        def run(conn: Connection) -> None:
            self._index_lookups(conn)  # the ledger grows during a prepare: stale statistics
            # driver SQL: no statement compilation per chunk (prepare calls this per chunk)
            for chunk in _chunks(ids, 4000):
                ph = ", ".join([ph1] * len(chunk))
                got = self._fetch(conn, f"{head}({ph}){where}", (*chunk, *tail))
                for mid, channel, at, cid in got:
                    sends = out.get(mid)
                    if sends is None:
                        sends = out[mid] = []
                    sends.append(
                        PastSend(
                            member_id=mid, channel=channel, at=from_epoch_us(at), campaign_id=cid
                        )
                    )

        if ids:
            self._btx(run)
        return out

    def record_job_result(self, key: str, result: Mapping[str, Any], *, now: dt.datetime) -> bool:
        """Keep a platform job result (``MASSSENDJOBFINISH``, ...) once: ``False`` when
        ``key`` was already recorded (by any process) — callbacks are de-duplicated here.

        Raises:
            UsageError: for a naive ``now`` or a result that is not JSON-able.
            StoreUnavailable: when the database cannot be reached.
        """
        us = to_epoch_us(check_now(now))
        try:
            text = json.dumps(dict(result), sort_keys=True, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"job result {key!r} is not JSON-serialisable: {exc}") from exc
        j = self.tables.job_results

        def run(conn: Connection) -> bool:
            res = conn.execute(
                self._insert_ignore(j), [{"key": key, "result": text, "recorded_at": us}]
            )
            return bool(res.rowcount)

        return bool(self._btx(run))

    def job_results(self, keys: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        """The recorded job results among ``keys``.

        Raises:
            StoreUnavailable: when the database cannot be reached.
        """
        j = self.tables.job_results
        out: dict[str, Mapping[str, Any]] = {}

        def run(conn: Connection) -> None:
            for chunk in _chunks(list(keys), 900):
                for k, text in conn.execute(
                    sa.select(j.c.key, j.c.result).where(j.c.key.in_(chunk))
                ):
                    out[str(k)] = json.loads(text)

        if keys:
            self._btx(run)
        return out
