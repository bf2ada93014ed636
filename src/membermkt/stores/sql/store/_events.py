"""The event log in SQL: append (de-duplicated, folded into member state) and read."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from membermkt.core.events import Event
from membermkt.errors import UsageError
from membermkt.stores._common import check_now
from membermkt.stores.sql import _rows as rows
from membermkt.stores.sql.compile import to_epoch_us
from membermkt.stores.sql.store._base import _chunks
from membermkt.stores.sql.store._bulk import _Bulk


class _EventsMixin(_Bulk):
    """Append and read events."""

    def append_events(self, events: Iterable[Event], *, batch_size: int = 5000) -> int:
        """Append events, de-duplicated by key, folding them into member state.

        Each batch is one transaction that locks its members' rows, so concurrent appenders
        (several processes) never lose or duplicate an event.

        Raises:
            UsageError: for a value that is not an Event or a member id too long.
            StoreUnavailable: when the database cannot be reached.
            StoreError: when the database fails.
        """
        seen: set[str] = set()
        batch: list[tuple[Event, tuple[Any, ...]]] = []
        for e in events:
            if not isinstance(e, Event):
                raise UsageError(f"append_events takes Event values, got {e!r}")
            key = e.key
            if key is not None:
                if key in seen:
                    continue
                seen.add(key)
            batch.append((e, rows.event_row(e)))
        total = 0
        for chunk in _chunks(batch, batch_size):
            total += self._write(lambda conn, chunk=chunk: self._append_chunk(conn, chunk))  # type: ignore[misc]
        return total

    def _append_chunk(
        self, conn: Connection, chunk: Sequence[tuple[Event, tuple[Any, ...]]]
    ) -> int:
        t = self.tables
        m = t.members
        mids = sorted({e.member_id for e, _ in chunk})
        state_cols = [m.c.id, *(m.c[c] for c in rows.STATE_COLS)]

        def lock(ids: Sequence[str]) -> dict[str, Any]:
            return {
                r["id"]: r
                for r in self._in(
                    conn,
                    lambda c: (
                        sa.select(*state_cols)
                        .where(m.c.id.in_(c))
                        .order_by(m.c.id)
                        .with_for_update()
                    ),
                    ids,
                )
            }

        stored = lock(mids)
        missing = [i for i in mids if i not in stored]
        if missing and self.dialect != "sqlite":
            # other writers may create the same members concurrently: insert-or-ignore the
            # bare rows, then lock them like the others
            self._insert_rows(conn, m, [rows.new_member_row(i) for i in missing], ignore=True)
            stored.update(lock(missing))
            missing = []
        ev = t.events
        existing = set(self._existing(conn, ev, "key", [e.key for e, _ in chunk if e.key]))
        new = [(e, row) for e, row in chunk if e.key is None or e.key not in existing]
        if not new:
            return 0
        self._insert_many(conn, ev, rows.EVENT_COLS, [row for _, row in new])
        per_member: dict[str, list[Event]] = defaultdict(list)
        for e, _ in new:
            per_member[e.member_id].append(e)
        updates = []
        created = []
        for mid, evs in per_member.items():
            folded = rows.fold_events(evs)
            if mid in stored:
                srow = rows.state_row(rows.state_from_row(stored[mid]).combine(folded))
                updates.append((*(srow[c] for c in rows.STATE_COLS), mid))
            else:
                # SQLite: this transaction is the only writer, the member is new
                created.append({**rows.new_member_row(mid), **rows.state_row(folded)})
        if created:
            self._insert_rows(conn, m, created)
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
            q = q.where(ev.c.type.in_(sorted(set(types))))
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
