"""Journey progress in SQL tables next to a :class:`~membermkt.stores.sql.SqlStore`.

Two tables, named with the store's prefix: ``<prefix>jy_progress`` (one row per journey and
member: version epochs, ``due_at`` — the durable timer, scanned by due time — and a revision
counter) and ``<prefix>jy_entries`` (one row per entry, for reports). They are created on
first use (``CREATE TABLE IF NOT EXISTS`` semantics) and dropped by :meth:`drop_tables`.

On PostgreSQL and MySQL/MariaDB, due rows are claimed with ``SELECT ... FOR UPDATE SKIP
LOCKED`` inside the transaction that writes the result back: a worker that dies loses its
claim with its connection, and no two workers hold one member. On SQLite the claim and the
write-back are two transactions; a wake that lands in between is kept (revision check).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from membermkt.core.journeys import EntryState
from membermkt.engine.journeys._progress import (
    EntryRow,
    Epoch,
    MemberProgress,
    Process,
    epochs_from_json,
    epochs_to_json,
)
from membermkt.errors import UsageError

if TYPE_CHECKING:
    from membermkt.stores.sql import SqlStore

__all__ = ["SqlJourneyProgress"]

_CHUNK = 500
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _us(v: dt.datetime | None) -> int | None:
    if v is None:
        return None
    return (v - _EPOCH) // dt.timedelta(microseconds=1)


def _dt(v: int | None) -> dt.datetime | None:
    return None if v is None else _EPOCH + dt.timedelta(microseconds=v)


class SqlJourneyProgress:
    """:class:`~membermkt.engine.journeys.JourneyProgress` in the database of ``store``.

    Args:
        store: the ``SqlStore`` whose engine, transactions and table prefix are used.
    """

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        p = store.tables.prefix
        md = sa.MetaData()
        text = sa.String(191)
        self.progress = sa.Table(
            f"{p}jy_progress",
            md,
            sa.Column("journey_id", text, primary_key=True),
            sa.Column("member_id", text, primary_key=True),
            sa.Column("epochs", sa.Text, nullable=False),
            sa.Column("due_at", sa.BigInteger),
            sa.Column("rev", sa.BigInteger, nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Index(f"{p}ix_jy_progress_due", "due_at"),
        )
        self.entries_t = sa.Table(
            f"{p}jy_entries",
            md,
            sa.Column("journey_id", text, primary_key=True),
            sa.Column("member_id", text, primary_key=True),
            sa.Column("entry", sa.Integer, primary_key=True),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("variant", text, nullable=False),
            sa.Column("holdout", sa.Boolean, nullable=False),
            sa.Column("status", sa.String(32), nullable=False),
            sa.Column("step", text, nullable=False),
            sa.Column("entered_at", sa.BigInteger, nullable=False),
            sa.Column("due_at", sa.BigInteger),
            sa.Column("ended_at", sa.BigInteger),
            sa.Column("reason", text),
        )
        self.metadata = md
        self._ready = False
        self._lock = threading.Lock()
        self._locking = store.dialect in ("postgresql", "mysql", "mariadb")

    def __repr__(self) -> str:
        return f"<SqlJourneyProgress {self.store.tables.prefix}jy_*>"

    # ------------------------------------------------------------------ schema

    def _ensure(self) -> None:
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return

            def create(conn: Connection) -> None:
                if self.store.dialect == "postgresql":
                    conn.execute(
                        sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                        {"k": f"membermkt-jy:{self.store.tables.prefix}"},
                    )
                self.metadata.create_all(conn, checkfirst=True)

            self.store._write(create)
            self._ready = True

    def drop_tables(self) -> None:
        """Drop the two journey tables (tests, teardown)."""

        def drop(conn: Connection) -> None:
            self.metadata.drop_all(conn, checkfirst=True)

        self.store._write(drop)
        self._ready = False

    # ------------------------------------------------------------------ rows

    def wake(
        self, journey_id: str, member_ids: Iterable[str], *, at: dt.datetime, version: int
    ) -> int:
        self._ensure()
        ids = sorted(set(member_ids))
        at_us = _us(at)
        first = epochs_to_json([Epoch(version=version)])
        t = self.progress
        total = 0
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]

            def run(conn: Connection, chunk: list[str] = chunk) -> int:
                have = set(
                    conn.execute(
                        sa.select(t.c.member_id).where(
                            t.c.journey_id == journey_id, t.c.member_id.in_(chunk)
                        )
                    ).scalars()
                )
                new = [m for m in chunk if m not in have]
                if new:
                    conn.execute(
                        sa.insert(t),
                        [
                            {
                                "journey_id": journey_id,
                                "member_id": m,
                                "epochs": first,
                                "due_at": at_us,
                                "rev": 0,
                                "attempts": 0,
                            }
                            for m in new
                        ],
                    )
                n = len(new)
                old = [m for m in chunk if m in have]
                if old:
                    res = conn.execute(
                        sa.update(t)
                        .where(
                            t.c.journey_id == journey_id,
                            t.c.member_id.in_(old),
                            sa.or_(t.c.due_at.is_(None), t.c.due_at > at_us),
                        )
                        .values(due_at=at_us, rev=t.c.rev + 1)
                    )
                    n += res.rowcount
                return n

            total += self.store._write(run)
        return total

    def _row(self, r: Any) -> MemberProgress:
        return MemberProgress(
            journey_id=r.journey_id,
            member_id=r.member_id,
            epochs=epochs_from_json(r.epochs),
            due_at=_dt(r.due_at),
            attempts=r.attempts,
        )

    def _write_back(
        self,
        conn: Connection,
        results: list[tuple[MemberProgress, list[EntryRow]]],
        revs: dict[tuple[str, str], int],
    ) -> None:
        t, e = self.progress, self.entries_t
        for row, entries in results:
            pk = (t.c.journey_id == row.journey_id, t.c.member_id == row.member_id)
            rev = revs[(row.journey_id, row.member_id)]
            due = _us(row.due_at)
            conn.execute(
                sa.update(t)
                .where(*pk)
                .values(
                    epochs=epochs_to_json(row.epochs),
                    attempts=row.attempts,
                    # a wake that landed while we worked keeps the row due
                    due_at=sa.case((t.c.rev == rev, due), else_=t.c.due_at),
                )
            )
            conn.execute(
                sa.delete(e).where(e.c.journey_id == row.journey_id, e.c.member_id == row.member_id)
            )
            if entries:
                conn.execute(
                    sa.insert(e),
                    [
                        {
                            "journey_id": x.journey_id,
                            "member_id": x.member_id,
                            "entry": x.state.entry,
                            "version": x.version,
                            "variant": x.state.variant,
                            "holdout": x.state.holdout,
                            "status": x.state.status,
                            "step": x.state.step,
                            "entered_at": _us(x.state.entered_at),
                            "due_at": _us(x.state.due_at),
                            "ended_at": _us(x.state.ended_at),
                            "reason": x.state.reason,
                        }
                        for x in entries
                    ],
                )

    def process_due(
        self, now: dt.datetime, limit: int, fn: Process, *, journey_id: str | None = None
    ) -> int:
        if limit < 1:
            raise UsageError(f"limit must be >= 1, got {limit}")
        self._ensure()
        t = self.progress
        q = sa.select(t).where(t.c.due_at <= _us(now))
        if journey_id is not None:
            q = q.where(t.c.journey_id == journey_id)
        q = q.order_by(t.c.due_at).limit(limit)
        if self._locking:
            q = q.with_for_update(skip_locked=True)

            def locked(conn: Connection) -> int:
                raw = list(conn.execute(q))
                if not raw:
                    return 0
                revs = {(r.journey_id, r.member_id): r.rev for r in raw}
                self._write_back(conn, fn([self._row(r) for r in raw]), revs)
                return len(raw)

            return self.store._write(locked)
        with self.store._tx() as conn:
            raw = list(conn.execute(q))
        if not raw:
            return 0
        revs = {(r.journey_id, r.member_id): r.rev for r in raw}
        results = fn([self._row(r) for r in raw])
        self.store._write(lambda conn: self._write_back(conn, results, revs))
        return len(raw)

    def get(self, journey_id: str, member_id: str) -> MemberProgress | None:
        self._ensure()
        t = self.progress
        with self.store._tx() as conn:
            r = conn.execute(
                sa.select(t).where(t.c.journey_id == journey_id, t.c.member_id == member_id)
            ).first()
        return None if r is None else self._row(r)

    def entries(self, journey_id: str) -> Iterator[EntryRow]:
        self._ensure()
        e = self.entries_t
        with self.store._tx() as conn:
            rows = list(
                conn.execute(
                    sa.select(e)
                    .where(e.c.journey_id == journey_id)
                    .order_by(e.c.member_id, e.c.entry)
                )
            )
        for r in rows:
            entered = _dt(r.entered_at)
            assert entered is not None
            yield EntryRow(
                journey_id=r.journey_id,
                member_id=r.member_id,
                version=r.version,
                state=EntryState(
                    entry=r.entry,
                    entered_at=entered,
                    variant=r.variant,
                    holdout=bool(r.holdout),
                    status=r.status,
                    step=r.step,
                    due_at=_dt(r.due_at),
                    ended_at=_dt(r.ended_at),
                    reason=r.reason,
                ),
            )

    def due_count(self, now: dt.datetime, *, journey_id: str | None = None) -> int:
        self._ensure()
        t = self.progress
        q = sa.select(sa.func.count()).select_from(t).where(t.c.due_at <= _us(now))
        if journey_id is not None:
            q = q.where(t.c.journey_id == journey_id)
        with self.store._tx() as conn:
            return int(conn.execute(q).scalar_one())
