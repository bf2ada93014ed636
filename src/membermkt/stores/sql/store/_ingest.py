"""One push as one transaction in SQL: resolve the sender, create it when new, append its
events (the ``ingest_push`` part of ``SqlStore``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

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
        got = conn.execute(sa.select(ids.c.member_id).where(ids.c.token == identity.token)).scalar()
        attached = got is None
        member_id = member_id_for(identity) if got is None else str(got)
        events = check_push_events(make_events(member_id), member_id)
        created = False
        if attached:
            m = t.members
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
