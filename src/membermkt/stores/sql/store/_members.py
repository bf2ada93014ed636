"""Members, their identities and tags in SQL (the ``MemberStore`` part of ``SqlStore``)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from attrs import evolve
from sqlalchemy.engine import Connection

from membermkt.core.identity import Identity, Link
from membermkt.core.identity._graph import MergeRecord
from membermkt.core.members import Member
from membermkt.errors import StoreError, UsageError
from membermkt.stores._common import EMPTY_STATE, check_members, merge_member_values
from membermkt.stores._survivors import redirect_members
from membermkt.stores._upsert import UpsertPolicy, find_shared
from membermkt.stores.sql import _rows as rows
from membermkt.stores.sql._member_rows import MEMBER_READ_COLS, member_from_values
from membermkt.stores.sql.store._base import _IN_CHUNK, _chunks
from membermkt.stores.sql.store._survivors import _SurvivorsMixin

_UPSERT_CHUNK = 2000
"""Members per upsert transaction."""


class _MembersMixin(_SurvivorsMixin):
    """Upsert, read, resolve, merge and tag members."""

    if TYPE_CHECKING:

        def _merge_recorded(  # in _LinksMixin
            self, conn: Connection, rec: MergeRecord, candidate: Link | None
        ) -> bool: ...

    def _load_members(self, conn: Connection, ids: Sequence[str]) -> dict[str, Member]:
        """The stored members among ``ids`` (four driver-level queries per ~4,000 ids:
        members, tags, attributes, identities; no per-member query)."""
        t = self.tables
        if not ids:
            return {}
        found = self._rows_in(conn, t.members.name, MEMBER_READ_COLS, "id", ids)
        if not found:
            return {}
        have = [r[0] for r in found]
        tags: dict[str, list[str]] = defaultdict(list)
        for mid, tag in self._rows_in(conn, t.tags.name, ("member_id", "tag"), "member_id", have):
            tags[mid].append(tag)
        attrs: dict[str, list[Any]] = defaultdict(list)
        for r in self._rows_in(
            conn, t.attrs.name, ("member_id", "name", "kind", "s", "i", "n"), "member_id", have
        ):
            attrs[r[0]].append(r[1:])
        toks: dict[str, list[str]] = defaultdict(list)
        for mid, token in self._rows_in(
            conn, t.identities.name, ("member_id", "token"), "member_id", have
        ):
            toks[mid].append(token)
        none: tuple[Any, ...] = ()
        return {
            r[0]: member_from_values(
                r, tags.get(r[0], none), attrs.get(r[0], none), toks.get(r[0], none)
            )
            for r in found
        }

    def upsert_members(
        self,
        members: Iterable[Member],
        *,
        on_shared_identity: str = "report",
        at: dt.datetime | None = None,
        by: str = "upsert_members",
    ) -> int:
        """Insert or replace members by id (see :meth:`MemberStore.upsert_members`).

        The stored state is kept when the given member's state is empty. An identity another
        member holds is never moved: ``on_shared_identity="report"`` refuses the call,
        ``"merge"`` merges the two members (an ``operator`` link by ``by`` at ``at``, listed
        by :meth:`merges`); see :mod:`membermkt.stores._upsert`. Written in transactions of
        2,000 members; shared identities are looked for before anything is written, and
        again inside each transaction (a concurrent writer can still make a later chunk
        fail, leaving the earlier ones written). A member addressed to an id merged away by
        :meth:`link` is folded into the survivor instead of re-creating it (see
        :mod:`membermkt.stores._survivors`).

        Raises:
            UsageError: for a value that is not a Member, one the attribute schema refuses,
                text too long for its column, an unknown policy, or ``"merge"`` without
                ``at``.
            IdentityConflict: with ``"report"``, when a member lists an identity another
                member holds (or lists earlier in the call); with ``"merge"``, when the
                rules refuse a merge.
            PhoneKeyRequired: for a phone identity outside the store's phone key ring (see
                :class:`SqlStore`); nothing is written.
            StoreUnavailable: when the database cannot be reached.
            StoreError: when the database fails.
        """
        batch = check_members(members)
        policy = UpsertPolicy(on_shared_identity, at, by)
        prepared = []
        for m in batch:
            self._schema.check_member(m)
            self._phone_policy.check(m.identities)
            prepared.append(self._prepared(m))
        tokens = sorted({i.token for m in batch for i in m.identities})
        if tokens and not policy.merge and len(prepared) > _UPSERT_CHUNK:
            # several transactions: refuse before the first one writes (one chunk checks
            # inside its own transaction)
            with self._tx() as conn:
                owners = self._owners(conn, tokens)
                survivors = self._survivors(conn, [m.id for m in batch])
            addressed = [evolve(m, id=survivors.get(m.id, m.id)) for m in batch]
            shared = find_shared(addressed, lambda i: owners.get(i.token))
            if shared:
                m, ident, holder = shared[0]
                raise policy.conflict(ident, holder, m.id)
        for chunk in _chunks(prepared, _UPSERT_CHUNK):
            self._write(lambda conn, chunk=chunk: self._upsert_chunk(conn, chunk, policy))  # type: ignore[misc]
        return len(batch)

    @staticmethod
    def _prepared(m: Member) -> tuple[Any, ...]:
        return (
            m,
            rows.member_row(m),
            rows.tag_rows(m),
            rows.attribute_rows(m),
            rows.identity_rows(m),
        )

    def _chunk_members_to_survivors(self, conn: Connection, chunk: Sequence[Any]) -> Sequence[Any]:
        """Prepared members of an upsert chunk, those addressed to merged-away ids folded
        into their survivors (#14; one batched lookup, in the chunk's transaction)."""
        survivors = self._survivors(conn, [item[0].id for item in chunk])
        if not survivors:
            return chunk
        stored = self._load_members(conn, sorted(set(survivors.values())))
        given = {id(item[0]): item for item in chunk}
        members = redirect_members([item[0] for item in chunk], survivors, stored.get)
        return [given.get(id(m)) or self._prepared(m) for m in members]

    def _owners(self, conn: Connection, tokens: Sequence[str]) -> dict[str, str]:
        t = self.tables.identities
        return {
            r["token"]: r["member_id"]
            for r in self._in(
                conn, lambda c: sa.select(t.c.token, t.c.member_id).where(t.c.token.in_(c)), tokens
            )
        }

    def _upsert_chunk(self, conn: Connection, chunk: Sequence[Any], policy: UpsertPolicy) -> None:
        chunk = self._chunk_members_to_survivors(conn, chunk)
        t = self.tables
        m = t.members
        ids = [item[0].id for item in chunk]
        tokens = sorted({r["token"] for item in chunk for r in item[4]})
        owners = self._owners(conn, tokens) if tokens else {}
        shared = find_shared([item[0] for item in chunk], lambda i: owners.get(i.token))
        if shared and not policy.merge:
            member, ident, holder = shared[0]
            raise policy.conflict(ident, holder, member.id)
        strip = {(member.id, ident.token) for member, ident, _ in shared}
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
        member_rows, tag_rows, attr_rows = [], [], []
        ident_rows: list[dict[str, Any]] = []
        for member, row, tags, attrs, idents in chunk:
            if member.id in stored:
                row = {**row, **stored[member.id]}
            member_rows.append(row)
            tag_rows.extend(tags)
            attr_rows.extend(attrs)
            ident_rows.extend(r for r in idents if (member.id, r["token"]) not in strip)
        ident_rows = list({r["token"]: r for r in ident_rows}.values())
        # the member rows first (in id order): their row locks make a concurrent upsert of
        # the same member wait for this one to commit, so its deletes then see (and
        # replace) the tags, attributes and identities written here instead of inserting
        # next to them (a duplicate key on PostgreSQL, #14)
        self._upsert_rows(conn, m, sorted(member_rows, key=lambda r: r["id"]))
        for c in _chunks(ids, _IN_CHUNK):
            conn.execute(sa.delete(t.tags).where(t.tags.c.member_id.in_(c)))
            conn.execute(sa.delete(t.attrs).where(t.attrs.c.member_id.in_(c)))
            conn.execute(sa.delete(t.identities).where(t.identities.c.member_id.in_(c)))
        for table, dict_rows in (
            (t.tags, tag_rows),
            (t.attrs, attr_rows),
            (t.identities, ident_rows),
        ):
            self._insert_rows(conn, table, dict_rows)
        if shared:
            self._merge_shared(conn, shared, policy)

    def _merge_shared(
        self,
        conn: Connection,
        shared: Sequence[tuple[Member, Identity, str]],
        policy: UpsertPolicy,
    ) -> None:
        t = self.tables
        strip = {(member.id, ident.token) for member, ident, _ in shared}
        current: dict[str, str] = {}  # upserted member id -> the member it is part of now
        for member, ident, _ in shared:
            cur = current.get(member.id, member.id)
            holder = self._owners(conn, [ident.token]).get(ident.token)
            if holder == cur:
                continue
            if holder is None:  # released by another member of this call
                self._insert_rows(conn, t.identities, [{"token": ident.token, "member_id": cur}])
                continue
            # lock both rows, then decide on what is committed under the locks
            conn.execute(
                sa.select(t.members.c.id)
                .where(t.members.c.id.in_(sorted((cur, holder))))
                .order_by(t.members.c.id)
                .with_for_update()
            ).all()
            if self._owners(conn, [ident.token]).get(ident.token) != holder:
                raise StoreError(
                    f"upsert_members: {ident.token!r} changed hands during the merge "
                    "(a concurrent merge); retry"
                )
            own = [i for i in member.identities if (member.id, i.token) not in strip]
            record = policy.plan(
                ident,
                own,
                cur,
                self._identities_of(conn, cur),
                holder,
                self._identities_of(conn, holder),
            )
            if not self._merge_recorded(conn, record, None):
                raise StoreError(
                    f"upsert_members: member {cur!r} or {holder!r} changed during the merge "
                    "(a concurrent merge); retry"
                )
            current[member.id] = record.keep
            for k, v in list(current.items()):
                if v == record.drop:
                    current[k] = record.keep

    def _identities_of(self, conn: Connection, member_id: str) -> list[Identity]:
        t = self.tables.identities
        q = sa.select(t.c.token).where(t.c.member_id == member_id).order_by(t.c.token)
        return [Identity.from_token(x) for x in conn.execute(q).scalars()]

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
            self._index_lookups(conn)
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
                self._index_lookups(conn)
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
        """Add ``tag`` to the known members among ``member_ids`` (a merged-away id: to its
        survivor, see :meth:`survivors`); returns how many changed.

        Raises:
            UsageError: for an empty or too long tag.
            StoreUnavailable: when the database cannot be reached.
        """
        given = self._tag_args(member_ids, tag)
        t = self.tables

        def run(conn: Connection) -> int:
            ids = self._ids_to_survivors(conn, given)
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
        given = self._tag_args(member_ids, tag)
        t = self.tables.tags

        def run(conn: Connection) -> int:
            n = 0
            ids = self._ids_to_survivors(conn, given)
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
