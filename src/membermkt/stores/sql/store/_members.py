"""Members, their identities and tags in SQL (the ``MemberStore`` part of ``SqlStore``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from membermkt.core.identity import Identity
from membermkt.core.members import Member
from membermkt.errors import UsageError
from membermkt.stores._common import EMPTY_STATE, check_members, merge_member_values
from membermkt.stores.sql import _rows as rows
from membermkt.stores.sql.store._base import _IN_CHUNK, _chunks
from membermkt.stores.sql.store._bulk import _Bulk


class _MembersMixin(_Bulk):
    """Upsert, read, resolve, merge and tag members."""

    def _load_members(self, conn: Connection, ids: Sequence[str]) -> dict[str, Member]:
        t = self.tables
        if not ids:
            return {}
        found = self._in(conn, lambda c: sa.select(t.members).where(t.members.c.id.in_(c)), ids)
        if not found:
            return {}
        have = [r["id"] for r in found]
        tags: dict[str, list[str]] = defaultdict(list)
        for r in self._in(conn, lambda c: sa.select(t.tags).where(t.tags.c.member_id.in_(c)), have):
            tags[r["member_id"]].append(r["tag"])
        attrs: dict[str, list[Any]] = defaultdict(list)
        for r in self._in(
            conn, lambda c: sa.select(t.attrs).where(t.attrs.c.member_id.in_(c)), have
        ):
            attrs[r["member_id"]].append(r)
        toks: dict[str, list[str]] = defaultdict(list)
        for r in self._in(
            conn, lambda c: sa.select(t.identities).where(t.identities.c.member_id.in_(c)), have
        ):
            toks[r["member_id"]].append(r["token"])
        return {
            r["id"]: rows.member_from_rows(r, tags[r["id"]], attrs[r["id"]], toks[r["id"]])
            for r in found
        }

    def upsert_members(self, members: Iterable[Member]) -> int:
        """Insert or replace members by id (see :meth:`MemberStore.upsert_members`).

        The stored state is kept when the given member's state is empty; an identity listed
        by the member moves to it from any other member.

        Raises:
            UsageError: for a value that is not a Member, one the attribute schema refuses,
                or text too long for its column.
            PhoneKeyRequired: for a phone identity outside the store's phone key ring (see
                :class:`SqlStore`); nothing is written.
            StoreUnavailable: when the database cannot be reached.
            StoreError: when the database fails.
        """
        batch = check_members(members)
        prepared = []
        for m in batch:
            self._schema.check_member(m)
            self._phone_policy.check(m.identities)
            prepared.append(
                (
                    m,
                    rows.member_row(m),
                    rows.tag_rows(m),
                    rows.attribute_rows(m),
                    rows.identity_rows(m),
                )
            )
        for chunk in _chunks(prepared, 2000):
            self._write(lambda conn, chunk=chunk: self._upsert_chunk(conn, chunk))  # type: ignore[misc]
        return len(batch)

    def _upsert_chunk(self, conn: Connection, chunk: Sequence[Any]) -> None:
        t = self.tables
        m = t.members
        ids = [item[0].id for item in chunk]
        keep_state = [item[0].id for item in chunk if item[0].state == EMPTY_STATE]
        stored: dict[str, dict[str, Any]] = {}
        if keep_state:
            state_cols = [m.c.id, *(m.c[c] for c in rows.STATE_COLS)]
            for r in self._in(
                conn,
                lambda c: sa.select(*state_cols).where(m.c.id.in_(c)).with_for_update(),
                keep_state,
            ):
                stored[r["id"]] = {c: r[c] for c in rows.STATE_COLS}
        member_rows, tag_rows, attr_rows, ident_rows = [], [], [], []
        for member, row, tags, attrs, idents in chunk:
            if member.id in stored:
                row = {**row, **stored[member.id]}
            member_rows.append(row)
            tag_rows.extend(tags)
            attr_rows.extend(attrs)
            ident_rows.extend(idents)
        for c in _chunks(ids, _IN_CHUNK):
            conn.execute(sa.delete(t.tags).where(t.tags.c.member_id.in_(c)))
            conn.execute(sa.delete(t.attrs).where(t.attrs.c.member_id.in_(c)))
            conn.execute(sa.delete(t.identities).where(t.identities.c.member_id.in_(c)))
        tokens = [r["token"] for r in ident_rows]
        for c in _chunks(tokens, _IN_CHUNK):
            conn.execute(sa.delete(t.identities).where(t.identities.c.token.in_(c)))
        # the same identity listed twice in one batch: the later member wins
        ident_rows = list({r["token"]: r for r in ident_rows}.values())
        self._upsert_rows(conn, m, member_rows)
        for table, dict_rows in (
            (t.tags, tag_rows),
            (t.attrs, attr_rows),
            (t.identities, ident_rows),
        ):
            self._insert_rows(conn, table, dict_rows)

    def get_member(self, member_id: str) -> Member | None:
        """The member with that id, or ``None``.

        Raises:
            StoreUnavailable: when the database cannot be reached.
            StoreError: when the database fails.
        """
        with self._tx() as conn:
            return self._load_members(conn, [member_id]).get(member_id)

    def get_members(self, member_ids: Iterable[str]) -> dict[str, Member]:
        """The known members among ``member_ids``, by id (one round trip per ~900 ids).

        Raises:
            StoreUnavailable: when the database cannot be reached.
            StoreError: when the database fails.
        """
        ids = sorted(set(member_ids))
        with self._tx() as conn:
            return self._load_members(conn, ids)

    def iter_members(self, *, batch_size: int = 1000) -> Iterator[Member]:
        """Every member, by id (read in batches; for export).

        Raises:
            StoreUnavailable: when the database cannot be reached.
            StoreError: when the database fails.
        """
        m = self.tables.members
        last: str | None = None
        while True:
            q = sa.select(m.c.id).order_by(m.c.id).limit(batch_size)
            if last is not None:
                q = q.where(m.c.id > last)
            with self._tx() as conn:
                ids = list(conn.execute(q).scalars())
                loaded = self._load_members(conn, ids)
            for i in ids:
                if i in loaded:
                    yield loaded[i]
            if len(ids) < batch_size:
                return
            last = ids[-1]

    def resolve(self, identity: Identity) -> str | None:
        """The member id owning ``identity``, or ``None``.

        Raises:
            UsageError: when ``identity`` is not an Identity.
            StoreUnavailable: when the database cannot be reached.
        """
        if not isinstance(identity, Identity):
            raise UsageError(f"resolve takes an Identity, got {identity!r}")
        t = self.tables.identities
        with self._tx() as conn:
            got = conn.execute(sa.select(t.c.member_id).where(t.c.token == identity.token)).scalar()
            return None if got is None else str(got)

    def merge_members(self, keep: str, drop: str) -> None:
        """Fold member ``drop`` into ``keep`` (see :meth:`MemberStore.merge_members`).

        Raises:
            UsageError: when ``keep == drop`` or either member is unknown.
            StoreUnavailable: when the database cannot be reached.
        """
        if keep == drop:
            raise UsageError(f"cannot merge member {keep!r} into itself")
        self._write(lambda conn: self._merge(conn, keep, drop))

    def _merge(self, conn: Connection, keep: str, drop: str) -> None:
        t = self.tables
        m = t.members
        conn.execute(
            sa.select(m.c.id)
            .where(m.c.id.in_(sorted([keep, drop])))
            .order_by(m.c.id)
            .with_for_update()
        ).all()
        loaded = self._load_members(conn, [keep, drop])
        k, d = loaded.get(keep), loaded.get(drop)
        if k is None or d is None:
            raise UsageError(f"cannot merge: unknown member {keep if k is None else drop!r}")
        merged = merge_member_values(k, d, k.state.combine(d.state))
        conn.execute(
            sa.update(m)
            .where(m.c.id == keep)
            .values(
                **{
                    c: v
                    for c, v in rows.member_row(merged).items()
                    if c not in ("id", "member_hash")
                }
            )
        )
        conn.execute(
            sa.update(t.identities).where(t.identities.c.member_id == drop).values(member_id=keep)
        )
        new_tags = [{"member_id": keep, "tag": x} for x in sorted(d.tags - k.tags)]
        if new_tags:
            conn.execute(sa.insert(t.tags), new_tags)
        new_attrs = [
            {**r, "member_id": keep}
            for r in rows.attribute_rows(d)
            if r["name"] not in k.attributes
        ]
        if new_attrs:
            conn.execute(sa.insert(t.attrs), new_attrs)
        conn.execute(sa.update(t.events).where(t.events.c.member_id == drop).values(member_id=keep))
        for table in (t.tags, t.attrs):
            conn.execute(sa.delete(table).where(table.c.member_id == drop))
        conn.execute(sa.delete(m).where(m.c.id == drop))

    def tag(self, member_ids: Iterable[str], tag: str) -> int:
        """Add ``tag`` to the known members among ``member_ids``; returns how many changed.

        Raises:
            UsageError: for an empty or too long tag.
            StoreUnavailable: when the database cannot be reached.
        """
        ids = self._tag_args(member_ids, tag)
        t = self.tables

        def run(conn: Connection) -> int:
            known = {
                r["id"]
                for r in self._in(
                    conn, lambda c: sa.select(t.members.c.id).where(t.members.c.id.in_(c)), ids
                )
            }
            have = {
                r["member_id"]
                for r in self._in(
                    conn,
                    lambda c: sa.select(t.tags.c.member_id).where(
                        t.tags.c.tag == tag, t.tags.c.member_id.in_(c)
                    ),
                    ids,
                )
            }
            todo = sorted(known - have)
            if todo:
                conn.execute(
                    self._insert_ignore(t.tags), [{"member_id": i, "tag": tag} for i in todo]
                )
            return len(todo)

        return self._write(run)

    def untag(self, member_ids: Iterable[str], tag: str) -> int:
        """Remove ``tag`` from members; returns how many changed.

        Raises:
            UsageError: for an empty or too long tag.
            StoreUnavailable: when the database cannot be reached.
        """
        ids = self._tag_args(member_ids, tag)
        t = self.tables.tags

        def run(conn: Connection) -> int:
            n = 0
            for c in _chunks(ids, _IN_CHUNK):
                n += conn.execute(sa.delete(t).where(t.c.tag == tag, t.c.member_id.in_(c))).rowcount
            return n

        return self._write(run)

    @staticmethod
    def _tag_args(member_ids: Iterable[str], tag: str) -> list[str]:
        if not isinstance(tag, str) or not tag:
            raise UsageError(f"tag must be a non-empty str, got {tag!r}")
        rows.check_text("tag", tag)
        if isinstance(member_ids, str):
            raise UsageError("member_ids must be a collection of ids, not a single str")
        return sorted(set(member_ids))
