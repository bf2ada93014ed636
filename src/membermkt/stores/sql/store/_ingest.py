"""One push as one transaction in SQL: resolve the sender, create it when new, append its
events (the ``ingest_push`` part of ``SqlStore``).

A known follower (the common case) costs three statements: resolve and lock its member row
(one join), insert-or-ignore the event on its unique key, update the folded state. A first
push takes the general path (attach the identity, create the member, append)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from membermkt.core.events import Event
from membermkt.core.identity import Identity, member_id_for
from membermkt.core.identity._graph import singular_clash
from membermkt.core.ports import IngestResult
from membermkt.errors import IdentityConflict, UsageError
from membermkt.stores._memory_ingest import check_push_events
from membermkt.stores.sql import _rows as rows
from membermkt.stores.sql.schema import TOKEN_LEN
from membermkt.stores.sql.store._events import _EventsMixin


class _IngestMixin(_EventsMixin):
    """``ingest_push``: resolve + create + append in one transaction."""

    def ingest_push(
        self, identity: Identity, make_events: Callable[[str], Iterable[Event]]
    ) -> IngestResult:
        """Resolve ``identity`` (attaching it to a new member when nobody holds it) and
        append the events ``make_events(member_id)`` builds — one transaction, so a failure
        part-way leaves nothing written (see
        :meth:`membermkt.core.ports.PushIngest.ingest_push`). Two processes ingesting the
        first push of one identity at once both end on the one member: the loser's
        transaction is retried and finds the identity held.

        Raises:
            UsageError: for a value that is not an Identity, or bad events.
            IdentityConflict: when the new member id holds another identity of the kind.
            PhoneKeyRequired: for a phone identity outside the store's phone key ring.
            StoreUnavailable: when the database cannot be reached.
            StoreError: when the database fails.
        """
        if not isinstance(identity, Identity):
            raise UsageError(f"ingest_push takes an Identity, got {identity!r}")
        rows.check_text("identity", identity.token, TOKEN_LEN)
        self._phone_policy.check((identity,))
        return self._write(lambda conn: self._ingest(conn, identity, make_events))

    def _ingest(
        self,
        conn: Connection,
        identity: Identity,
        make_events: Callable[[str], Iterable[Event]],
    ) -> IngestResult:
        t = self.tables
        ids = t.identities
        m = t.members
        # the common case, a known follower: resolve and lock its row in one statement
        stmts = self._ingest_statements()
        known = conn.execute(stmts.known, {"tok": identity.token}).mappings().first()
        if known is not None:
            return self._ingest_known(conn, known, make_events)
        got = conn.execute(sa.select(ids.c.member_id).where(ids.c.token == identity.token)).scalar()
        attached = got is None
        member_id = member_id_for(identity) if got is None else str(got)
        events = check_push_events(make_events(member_id), member_id)
        created = False
        if attached:
            exists = conn.execute(sa.select(m.c.id).where(m.c.id == member_id)).scalar()
            if exists is None:
                # ignore: a concurrent first push may insert the same member; the identity
                # row below (primary key) then decides, and the loser is retried
                self._insert_rows(conn, m, [rows.new_member_row(member_id)], ignore=True)
                created = True
            else:
                held = [
                    Identity.from_token(x)
                    for x in conn.execute(
                        sa.select(ids.c.token).where(ids.c.member_id == member_id)
                    ).scalars()
                ]
                if singular_clash(held, (identity,)) is not None:
                    raise IdentityConflict(
                        f"member {member_id!r} holds another {identity.kind.value} identity "
                        f"in namespace {identity.namespace!r}; not attaching {identity.token!r}",
                        members=(member_id,),
                    )
            # a plain INSERT (not the bulk path): a concurrent first push of this identity
            # makes it fail with an IntegrityError, which _write retries — and the retry
            # finds the identity held
            conn.execute(sa.insert(ids).values(token=identity.token, member_id=member_id))
        seen: set[str] = set()
        batch = []
        for e in events:
            if e.key is not None:
                if e.key in seen:
                    continue
                seen.add(e.key)
            batch.append((e, rows.event_row(e)))
        new = self._append_chunk(conn, batch) if batch else 0
        return IngestResult(
            member_id=member_id, events=events, new=new, attached=attached, created=created
        )

    def _ingest_known(
        self,
        conn: Connection,
        stored: Any,
        make_events: Callable[[str], Iterable[Event]],
    ) -> IngestResult:
        """A push of a member whose row is locked: insert-or-ignore each event on its key
        (the unique index de-duplicates), fold the new ones into the stored state."""
        stmts = self._ingest_statements()
        member_id = str(stored["id"])
        events = check_push_events(make_events(member_id), member_id)
        new: list[Event] = []
        seen: set[str] = set()
        for e in events:
            if e.key is not None:
                if e.key in seen:
                    continue
                seen.add(e.key)
            values = dict(zip(rows.EVENT_COLS, rows.event_row(e), strict=True))
            stmt = stmts.insert if e.key is None else stmts.insert_new
            got = conn.execute(stmt, values)
            # psycopg reports rowcount -1 for an insert that returns: ask for the row back
            if (got.first() is not None) if stmts.returning else got.rowcount == 1:
                new.append(e)
        if new:
            state = rows.state_row(rows.state_from_row(stored).combine(rows.fold_events(new)))
            params = {f"s_{c}": state[c] for c in rows.STATE_COLS}
            conn.execute(stmts.update, {**params, "mid": member_id})
        return IngestResult(member_id=member_id, events=events, new=len(new))

    def _ingest_statements(self) -> _Statements:
        """The statements of the known-follower path, built once per store."""
        got: _Statements | None = getattr(self, "_ingest_stmts", None)
        if got is not None:
            return got
        t = self.tables
        ids, m, ev = t.identities, t.members, t.events
        returning = self.dialect == "postgresql"
        insert_new = self._insert_ignore(ev)
        if returning:
            insert_new = insert_new.returning(ev.c.seq)
        got = _Statements(
            known=sa.select(m.c.id, *(m.c[c] for c in rows.STATE_COLS))
            .select_from(ids.join(m, m.c.id == ids.c.member_id))
            .where(ids.c.token == sa.bindparam("tok"))
            .with_for_update(),
            insert=sa.insert(ev).returning(ev.c.seq) if returning else sa.insert(ev),
            insert_new=insert_new,
            update=sa.update(m)
            .where(m.c.id == sa.bindparam("mid"))
            .values({c: sa.bindparam(f"s_{c}") for c in rows.STATE_COLS}),
            returning=returning,
        )
        self._ingest_stmts = got
        return got


@attrs.frozen(slots=True)
class _Statements:
    known: Any
    insert: Any
    insert_new: Any
    update: Any
    returning: bool
