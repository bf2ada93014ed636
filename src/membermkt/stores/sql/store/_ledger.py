"""The delivery ledger in SQL: plan, claim, mark, stale, deliveries and status counts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from membermkt.core.delivery import Delivery, DeliveryRecord, DeliveryStatus, check_transition
from membermkt.errors import LedgerError, UsageError
from membermkt.stores._common import check_delivery_status, check_now
from membermkt.stores.sql import _rows as rows
from membermkt.stores.sql.compile import to_epoch_us
from membermkt.stores.sql.schema import ID_LEN, TEXT_LEN, TOKEN_LEN
from membermkt.stores.sql.store._base import _PAGE, _chunks
from membermkt.stores.sql.store._bulk import _Bulk

_PLAN_COLUMNS = (
    "key",
    "campaign_id",
    "member_id",
    "channel",
    "address",
    "variant",
    "payload",
    "status",
    "attempts",
    "reason",
    "platform_id",
    "updated_at",
    "worker",
)
"""Columns of a newly planned delivery row, in the order of ``record_plan``'s tuples."""


class _LedgerMixin(_Bulk):
    """Deliveries and their state machine."""

    def record_plan(self, deliveries: Iterable[Delivery], *, now: dt.datetime) -> int:
        """Insert deliveries as ``planned`` unless their key exists; returns how many new.

        Raises:
            UsageError: for a value that is not a Delivery, a naive ``now``, or a payload
                that is not JSON-serialisable.
            StoreUnavailable: when the database cannot be reached.
        """
        when = to_epoch_us(check_now(now))
        # one plain tuple per new key; the payload JSON is encoded once per payload object
        # (a static variant shares one between its members)
        batch: dict[str, tuple[Any, ...]] = {}
        encoded: dict[int, tuple[Any, str]] = {}
        planned = DeliveryStatus.PLANNED.value
        for d in deliveries:
            if not isinstance(d, Delivery):
                raise UsageError(f"record_plan takes Delivery values, got {d!r}")
            if d.key in batch:
                continue
            if (
                len(d.member_id) > ID_LEN
                or len(d.address) > TOKEN_LEN
                or max(len(d.key), len(d.campaign_id), len(d.channel), len(d.variant)) > TEXT_LEN
            ):
                for name, value, limit in (
                    ("key", d.key, TEXT_LEN),
                    ("campaign_id", d.campaign_id, TEXT_LEN),
                    ("channel", d.channel, TEXT_LEN),
                    ("variant", d.variant, TEXT_LEN),
                    ("member_id", d.member_id, ID_LEN),
                    ("address", d.address, TOKEN_LEN),
                ):
                    rows.check_text(f"Delivery.{name}", value, limit)
            hit = encoded.get(id(d.payload))
            if hit is None:
                try:
                    text = rows.dumps(d.payload.to_dict())
                except (TypeError, ValueError) as exc:
                    raise UsageError(
                        f"delivery {d.key!r}: payload is not JSON-serialisable: {exc}"
                    ) from exc
                # keep the payload alive so its id is not reused within this call
                hit = encoded[id(d.payload)] = (d.payload, text)
            batch[d.key] = (
                d.key,
                d.campaign_id,
                d.member_id,
                d.channel,
                d.address,
                d.variant,
                hit[1],
                planned,
                0,
                None,
                None,
                when,
                None,
            )
        t = self.tables.deliveries
        items = list(batch.values())

        def run(conn: Connection) -> int:
            if self.dialect == "sqlite":
                # one writer at a time: INSERT OR IGNORE and count the rows it changed
                raw = conn.connection.driver_connection
                before = int(raw.total_changes)  # type: ignore[union-attr]
                for chunk in _chunks(items, 1000):
                    self._insert_many(conn, t, _PLAN_COLUMNS, list(chunk), ignore=True)
                return int(raw.total_changes) - before  # type: ignore[union-attr]
            if self.dialect == "postgresql":
                return self._plan_insert_returning(conn, t, items)
            new = 0
            for chunk in _chunks(items, 1000):
                have = set(self._existing(conn, t, "key", [r[0] for r in chunk]))
                todo = [r for r in chunk if r[0] not in have] if have else list(chunk)
                if todo:
                    # driver-level executemany (a concurrent prepare may insert the same key)
                    self._insert_many(conn, t, _PLAN_COLUMNS, todo, ignore=True)
                new += len(todo)
            return new

        # one transaction per call: callers pass O(batch) deliveries (prepare: one chunk)
        return self._write(run) if items else 0

    def _plan_insert_returning(
        self, conn: Connection, t: sa.Table, items: list[tuple[Any, ...]]
    ) -> int:
        """PostgreSQL: insert planned rows with ``ON CONFLICT (key) DO NOTHING RETURNING``,
        1,000 rows a statement, and count the rows returned — the rows really inserted.

        A ``SELECT key ... WHERE key IN (1,000 keys)`` before the insert (the other
        backends' way) degrades to a sequential scan per chunk when the ledger's statistics
        are stale — a new ledger taking its first large campaign, faster than autovacuum
        analyses it: PostgreSQL then checks every row against the 1,000-key list, 1–5 s a
        chunk at 150k rows (found by ``benchmarks/scale_postgres.py --prepare all``). The
        conflict check of an insert always goes through the primary key's index.
        """
        q = self._quote
        cols = ", ".join(q(c) for c in _PLAN_COLUMNS)
        row = "(" + ", ".join(["%s"] * len(_PLAN_COLUMNS)) + ")"
        head = f"INSERT INTO {q(t.name)} ({cols}) VALUES "
        tail = f" ON CONFLICT ({q('key')}) DO NOTHING RETURNING 1"
        sql: dict[int, str] = {}
        new = 0
        for chunk in _chunks(items, 1000):
            n = len(chunk)
            if n not in sql:
                sql[n] = head + ", ".join([row] * n) + tail
            params = tuple(v for r in chunk for v in r)
            new += len(conn.exec_driver_sql(sql[n], params).fetchall())
        return new

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

        On PostgreSQL and MySQL/MariaDB the rows are picked with ``FOR UPDATE SKIP LOCKED``,
        so concurrent workers never block on or share a delivery; on SQLite the claim is a
        single-writer transaction.

        Raises:
            UsageError: for a negative limit or a naive ``now``.
            StoreUnavailable: when the database cannot be reached.
        """
        when = to_epoch_us(check_now(now))
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise UsageError(f"claim limit must be a non-negative int, got {limit!r}")
        if limit == 0:
            return []
        t = self.tables.deliveries

        def run(conn: Connection) -> list[DeliveryRecord]:
            q = sa.select(t.c.key).where(
                t.c.campaign_id == campaign_id, t.c.status == DeliveryStatus.PLANNED.value
            )
            if channel is not None:
                q = q.where(t.c.channel == channel)
            q = q.order_by(t.c.key).limit(limit)
            if self.dialect != "sqlite":
                q = q.with_for_update(skip_locked=True)
            keys = list(conn.execute(q).scalars())
            if not keys:
                return []
            conn.execute(
                sa.update(t)
                .where(t.c.key.in_(keys))
                .values(
                    status=DeliveryStatus.SENDING.value,
                    attempts=t.c.attempts + 1,
                    worker=worker,
                    updated_at=when,
                )
            )
            got = conn.execute(sa.select(t).where(t.c.key.in_(keys)).order_by(t.c.key))
            return [rows.delivery_record(r) for r in got.mappings()]

        return self._write(run)

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
            StoreUnavailable: when the database cannot be reached.
        """
        when = to_epoch_us(check_now(now))
        new = check_delivery_status(status)
        t = self.tables.deliveries

        def run(conn: Connection) -> None:
            r = conn.execute(
                sa.select(t.c.status, t.c.worker).where(t.c.key == key).with_for_update()
            ).first()
            if r is None:
                raise LedgerError(f"unknown delivery {key!r}")
            check_transition(key, DeliveryStatus(r.status), new)
            values: dict[str, Any] = {"status": new.value, "updated_at": when}
            if new is not DeliveryStatus.SENDING:
                values["worker"] = None
            if reason is not None:
                values["reason"] = reason
            if platform_id is not None:
                values["platform_id"] = platform_id
            conn.execute(sa.update(t).where(t.c.key == key).values(**values))

        self._write(run)

    def stale(self, campaign_id: str, *, older_than: dt.datetime) -> list[DeliveryRecord]:
        """Deliveries left ``sending`` since before ``older_than``, by key.

        Raises:
            UsageError: for a naive ``older_than``.
            StoreUnavailable: when the database cannot be reached.
        """
        cutoff = to_epoch_us(check_now(older_than, "older_than"))
        t = self.tables.deliveries
        q = (
            sa.select(t)
            .where(
                t.c.campaign_id == campaign_id,
                t.c.status == DeliveryStatus.SENDING.value,
                t.c.updated_at < cutoff,
            )
            .order_by(t.c.key)
        )
        with self._tx() as conn:
            return [rows.delivery_record(r) for r in conn.execute(q).mappings()]

    def deliveries(
        self, campaign_id: str, *, status: DeliveryStatus | None = None
    ) -> Iterator[DeliveryRecord]:
        """The campaign's deliveries (optionally of one status), by key, read in pages.

        Raises:
            UsageError: for an unknown status.
            StoreUnavailable: when the database cannot be reached.
        """
        wanted = None if status is None else check_delivery_status(status)
        self._ensure_schema()
        return self._delivery_pages(campaign_id, wanted)

    def _delivery_pages(
        self, campaign_id: str, wanted: DeliveryStatus | None
    ) -> Iterator[DeliveryRecord]:
        t = self.tables.deliveries
        last: str | None = None
        while True:
            q = sa.select(t).where(t.c.campaign_id == campaign_id)
            if wanted is not None:
                q = q.where(t.c.status == wanted.value)
            if last is not None:
                q = q.where(t.c.key > last)
            q = q.order_by(t.c.key).limit(_PAGE)
            with self._tx() as conn:
                found = [rows.delivery_record(r) for r in conn.execute(q).mappings()]
            yield from found
            if len(found) < _PAGE:
                return
            last = found[-1].key

    def status_counts(self, campaign_id: str) -> Mapping[str, int]:
        """Number of deliveries per status value (every status present, zeros included).

        Raises:
            StoreUnavailable: when the database cannot be reached.
        """
        t = self.tables.deliveries
        counts = {s.value: 0 for s in DeliveryStatus}
        q = (
            sa.select(t.c.status, sa.func.count())
            .where(t.c.campaign_id == campaign_id)
            .group_by(t.c.status)
        )
        with self._tx() as conn:
            for status, n in conn.execute(q):
                counts[str(status)] = int(n)
        return counts
