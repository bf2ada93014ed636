"""The event log in SQL: append (de-duplicated, folded into member state) and read."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from membermkt.core.events import Event
from membermkt.errors import UsageError
from membermkt.stores._common import check_now
from membermkt.stores.sql import _rows as rows
from membermkt.stores.sql.compile import to_epoch_us, type_in
from membermkt.stores.sql.store._base import _chunks
from membermkt.stores.sql.store._survivors import _SurvivorsMixin


class _EventsMixin(_SurvivorsMixin):
    """Append and read events."""

    def append_events(self, events: Iterable[Event], *, batch_size: int = 5000) -> int:
        """Append events, de-duplicated by key, folding them into member state.

        Each batch is one transaction that locks its members' rows, so concurrent appenders
        (several processes) never lose or duplicate an event. An event addressed to a member
        merged away by :meth:`link` is recorded as the survivor's (one batched lookup of the
        batch's member ids, see :meth:`survivors`). An unknown member id creates the member.

        Raises:
            UsageError: for a value that is not an Event or a member id too long.
            StoreUnavailable: when the database cannot be reached.
            StoreError: when the database fails.
        """
        seen: set[str] = set()
        mark = seen.add
        batch: list[tuple[Event, tuple[Any, ...]]] = []
        push = batch.append
        row_of = rows.event_row
        for e in events:
            if not isinstance(e, Event):
                raise UsageError(f"append_events takes Event values, got {e!r}")
            key = e.key
            if key is not None:
                if key in seen:
                    continue
                mark(key)
            push((e, row_of(e)))
        total = 0
        for chunk in _chunks(batch, batch_size):
            total += self._write(
                lambda conn, chunk=chunk: self._append_to_survivors(conn, chunk)  # type: ignore[misc]
            )
        return total

    def _lock_states(self, conn: Connection, ids: Sequence[str]) -> dict[str, tuple[Any, ...]]:
        """The stored state columns (``STATE_COLS`` order) of the members among ``ids``,
        their rows locked (``FOR UPDATE`` in id order) off SQLite."""
        q = self._quote
        cols = ", ".join(q(c) for c in ("id", *rows.STATE_COLS))
        head = f"SELECT {cols} FROM {q(self.tables.members.name)} WHERE {q('id')} IN "
        tail = f" ORDER BY {q('id')}" + ("" if self.dialect == "sqlite" else " FOR UPDATE")
        out: dict[str, tuple[Any, ...]] = {}
        for chunk in _chunks(ids, 4000):
            ph = ", ".join([self._placeholder] * len(chunk))
            for r in self._fetch(conn, f"{head}({ph}){tail}", tuple(chunk)):
                out[r[0]] = tuple(r[1:])
        return out

    def _insert_new_events(
        self, conn: Connection, chunk: Sequence[tuple[Event, tuple[Any, ...]]]
    ) -> Sequence[tuple[Event, tuple[Any, ...]]]:
        """Insert the events of ``chunk`` whose key is not stored yet; returns them."""
        ev = self.tables.events
        if self.dialect == "sqlite":
            # the only writer: insert-or-ignore and count the rows it added; only when some
            # keys were already stored, read back which rows are new (rowids after the last)
            q = self._quote
            last = conn.exec_driver_sql(f"SELECT max({q('seq')}) FROM {q(ev.name)}").scalar()
            raw = conn.connection.driver_connection
            before = int(raw.total_changes)  # type: ignore[union-attr]
            self._insert_many(conn, ev, rows.EVENT_COLS, [row for _, row in chunk], ignore=True)
            added = int(raw.total_changes) - before  # type: ignore[union-attr]
            if added == len(chunk):
                return chunk
            if added == 0:
                return []
            fresh = {
                r[0]
                for r in conn.exec_driver_sql(
                    f"SELECT {q('key')} FROM {q(ev.name)} WHERE {q('seq')} > ?", (last or 0,)
                )
            }
            return [p for p in chunk if p[1][0] is None or p[1][0] in fresh]
        keys = [row[0] for _, row in chunk if row[0] is not None]
        existing = set(self._existing(conn, ev, "key", keys)) if keys else set()
        new = [p for p in chunk if p[1][0] not in existing] if existing else chunk
        if new:
            self._insert_many(conn, ev, rows.EVENT_COLS, [row for _, row in new])
        return new

    def _append_chunk(
        self, conn: Connection, chunk: Sequence[tuple[Event, tuple[Any, ...]]]
    ) -> int:
        """Insert the new events of ``chunk`` — ``(event, rows.event_row(event))`` pairs with
        distinct keys — and fold them into their members' state, in ``conn``'s transaction;
        returns how many were new."""
        t = self.tables
        m = t.members
        mids = sorted({row[1] for _, row in chunk})
        stored = self._lock_states(conn, mids)
        if len(stored) < len(mids) and self.dialect != "sqlite":
            # other writers may create the same members concurrently: insert-or-ignore the
            # bare rows, then lock them like the others
            missing = [i for i in mids if i not in stored]
            bare = [rows.new_member_values(i) for i in missing]
            self._insert_many(conn, m, rows.MEMBER_COLS, bare, ignore=True)
            stored.update(self._lock_states(conn, missing))
        new = self._insert_new_events(conn, chunk)
        if not new:
            return 0
        per_member: dict[str, list[tuple[Event, tuple[Any, ...]]]] = {}
        for p in new:
            mid = p[1][1]
            got = per_member.get(mid)
            if got is None:
                per_member[mid] = [p]
            else:
                got.append(p)
        updates: list[tuple[Any, ...]] = []
        created: list[tuple[Any, ...]] = []
        empty = rows.EMPTY_STATE_VALUES
        for mid, items in per_member.items():
            old = stored.get(mid)
            if old is None or old == empty:
                # a member no event has touched yet (new, or its bare row): its state is the
                # fold of these events alone, computed on the rows
                values = rows.fold_state_values(items)
            else:
                before = rows.state_from_row(dict(zip(rows.STATE_COLS, old, strict=True)))
                srow = rows.state_row(before.combine(rows.fold_events([e for e, _ in items])))
                values = tuple(srow[c] for c in rows.STATE_COLS)
            if old is None:
                # SQLite: this transaction is the only writer, the member is new
                created.append(rows.new_member_values(mid, values))
            else:
                updates.append((*values, mid))
        if created:
            self._insert_many(conn, m, rows.MEMBER_COLS, created)
        if updates:
            sets = ", ".join(f"{self._quote(c)} = {self._placeholder}" for c in rows.STATE_COLS)
            conn.exec_driver_sql(
                f"UPDATE {self._quote(m.name)} SET {sets} WHERE {self._quote('id')} = "
                f"{self._placeholder}",
                updates,
            )
        return len(new)

    def events_for(
        self,
        member_id: str,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        types: Iterable[str] | None = None,
    ) -> list[Event]:
        """A member's events with ``since < at <= until``, by time.

        Raises:
            UsageError: for a naive bound.
            StoreUnavailable: when the database cannot be reached.
        """
        ev = self.tables.events
        q = sa.select(ev).where(ev.c.member_id == member_id)
        if since is not None:
            q = q.where(ev.c.at > to_epoch_us(check_now(since, "since")))
        if until is not None:
            q = q.where(ev.c.at <= to_epoch_us(check_now(until, "until")))
        if types is not None:
            q = q.where(type_in(ev.c.type, sorted(set(types)), self.dialect))
        q = q.order_by(ev.c.at, sa.func.coalesce(ev.c.key, ""), ev.c.seq)
        with self._tx() as conn:
            return [rows.event_from_row(r) for r in conn.execute(q).mappings()]

    def iter_events(self, *, batch_size: int = 10_000) -> Iterator[Event]:
        """Every stored event, in storage order (for export).

        Raises:
            StoreUnavailable: when the database cannot be reached.
        """
        ev = self.tables.events
        last = None
        while True:
            q = sa.select(ev).order_by(ev.c.seq).limit(batch_size)
            if last is not None:
                q = q.where(ev.c.seq > last)
            with self._tx() as conn:
                found = list(conn.execute(q).mappings())
            for r in found:
                yield rows.event_from_row(r)
            if len(found) < batch_size:
                return
            last = found[-1]["seq"]
