"""Where merged-away members went, in SQL: the merges in force of the audit trail (the
redirect of writes addressed to them, #14; see :mod:`membermkt.stores._survivors`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from membermkt.core.events import Event
from membermkt.errors import UsageError
from membermkt.stores._survivors import follow, redirect_events
from membermkt.stores.sql import _rows as rows
from membermkt.stores.sql.store._base import _IN_CHUNK, _chunks
from membermkt.stores.sql.store._bulk import _Bulk


class _SurvivorsMixin(_Bulk):
    """Map merged-away member ids to their survivors (one indexed query per call, after a
    probe for any merge in force)."""

    def survivors(self, member_ids: Iterable[str]) -> dict[str, str]:
        """Where merged-away members went (see
        :meth:`membermkt.stores.memory.InMemoryStore.survivors`).

        Raises:
            UsageError: when ``member_ids`` is a single str.
            StoreUnavailable: when the database cannot be reached.
        """
        if isinstance(member_ids, str):
            raise UsageError("member_ids must be a collection of ids, not a single str")
        ids = list(member_ids)
        with self._tx() as conn:
            return self._survivors(conn, ids)

    def _survivors(self, conn: Connection, member_ids: Iterable[str]) -> dict[str, str]:
        """``{merged-away id: survivor}`` for ``member_ids``, in ``conn``'s transaction."""
        q = self._quote
        g = self.tables.merges
        head = (
            f"SELECT {q('drop_id')}, {q('keep_id')} FROM {q(g.name)} "
            f"WHERE {q('undone_at')} IS NULL AND {q('drop_id')} IN "
        )

        if not self._any_merge(conn):
            return {}

        def lookup(ids: Sequence[str]) -> dict[str, str]:
            out: dict[str, str] = {}
            for chunk in _chunks(ids, _IN_CHUNK):
                ph = ", ".join([self._placeholder] * len(chunk))
                for r in self._fetch(conn, f"{head}({ph})", tuple(chunk)):
                    out[str(r[0])] = str(r[1])
            return out

        return follow(lookup, member_ids)

    def _any_merge(self, conn: Connection) -> bool:
        """Whether any merge is in force: a store without (most appends of most shops) pays
        this one tiny query instead of the lookups."""
        q = self._quote
        probe = f"SELECT 1 FROM {q(self.tables.merges.name)} WHERE {q('undone_at')} IS NULL LIMIT 1"
        return bool(self._fetch(conn, probe, ()))

    def _person_ids(self, conn: Connection, member_id: str) -> list[str]:
        """The ids of one person: ``member_id``'s survivor and every id merged into it by
        merges in force (chains followed), sorted."""
        if not self._any_merge(conn):
            return [member_id]
        survivor = self._survivors(conn, [member_id]).get(member_id, member_id)
        q = self._quote
        head = (
            f"SELECT {q('drop_id')} FROM {q(self.tables.merges.name)} "
            f"WHERE {q('undone_at')} IS NULL AND {q('keep_id')} IN "
        )
        found, frontier = {survivor}, [survivor]
        for _ in range(64):  # chains are as long as repeated merges (a guard)
            if not frontier:
                break
            got: set[str] = set()
            for chunk in _chunks(frontier, _IN_CHUNK):
                ph = ", ".join([self._placeholder] * len(chunk))
                got.update(str(r[0]) for r in self._fetch(conn, f"{head}({ph})", tuple(chunk)))
            frontier = sorted(got - found)
            found.update(frontier)
        return sorted(found)

    def _chunk_to_survivors(
        self, conn: Connection, chunk: Sequence[tuple[Event, tuple[Any, ...]]]
    ) -> Sequence[tuple[Event, tuple[Any, ...]]]:
        """``(event, row)`` pairs of an append, those of merged-away members re-addressed to
        their survivors (one batched lookup for the chunk's member ids)."""
        survivors = self._survivors(conn, {row[1] for _, row in chunk})
        if not survivors:
            return chunk
        moved = redirect_events([e for e, _ in chunk], survivors)
        return [
            p if e is p[0] else (e, rows.event_row(e)) for p, e in zip(chunk, moved, strict=True)
        ]

    def _ids_to_survivors(self, conn: Connection, ids: Sequence[str]) -> list[str]:
        """``ids`` (sorted, distinct) with merged-away ones replaced by their survivors."""
        survivors = self._survivors(conn, ids)
        if not survivors:
            return list(ids)
        return sorted({survivors.get(i, i) for i in ids})

    def _append_to_survivors(
        self, conn: Connection, chunk: Sequence[tuple[Event, tuple[Any, ...]]]
    ) -> int:
        """``_append_chunk`` of ``chunk`` re-addressed to survivors, in ``conn``'s
        transaction. Off SQLite (where writers do not wait for each other's BEGIN) a merge
        can commit between the lookup and the row locks of the append, which then re-creates
        the dropped id: looked up again once the append holds its rows, such a member is
        folded into its survivor in the same transaction."""
        chunk = self._chunk_to_survivors(conn, chunk)
        new = self._append_chunk(conn, chunk)
        if self.dialect != "sqlite":
            self._fold_recreated(conn, {row[1] for _, row in chunk})
        return new

    def _fold_recreated(self, conn: Connection, member_ids: Iterable[str]) -> None:
        """Fold members among ``member_ids`` that a merge in force dropped (so re-created
        since, by a write that raced the merge) into their survivors."""
        for dropped, survivor in sorted(self._survivors(conn, member_ids).items()):
            self._merge(conn, survivor, dropped)

    if TYPE_CHECKING:

        def _append_chunk(
            self, conn: Connection, chunk: Sequence[tuple[Event, tuple[Any, ...]]]
        ) -> int: ...  # _EventsMixin's

        def _merge(self, conn: Connection, keep: str, drop: str) -> None: ...  # _MembersMixin's
