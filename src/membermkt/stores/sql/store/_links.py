"""Identity links, the merge audit trail and splits in SQL (the linking part of
``SqlStore``). A link — resolve, decide, attach or merge, record — is one transaction."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from membermkt.core.identity import (
    Evidence,
    Identity,
    Link,
    LinkOutcome,
    MergeRecord,
    link,
)
from membermkt.core.members import Member
from membermkt.errors import StoreError, UsageError
from membermkt.stores._common import check_now
from membermkt.stores._links import SplitSnapshot, decide, restore_keep
from membermkt.stores.sql import _rows as rows
from membermkt.stores.sql.compile import from_epoch_us, to_epoch_us
from membermkt.stores.sql.store._base import _IN_CHUNK, _chunks
from membermkt.stores.sql.store._members import _MembersMixin

_MAX_REDECIDE = 8
"""Times a link is decided again after a concurrent merge changed its members."""


def _member_json(m: Member) -> dict[str, Any]:
    return {
        "row": rows.member_row(m),
        "tags": sorted(m.tags),
        "attrs": rows.attribute_rows(m),
        "tokens": [i.token for i in m.identities],
    }


def _member_back(d: dict[str, Any]) -> Member:
    return rows.member_from_rows(d["row"], d["tags"], d["attrs"], d["tokens"])


class _LinksMixin(_MembersMixin):
    """Link identities, list merges, split them."""

    def link(
        self,
        a: Identity,
        b: Identity,
        evidence: Evidence | str,
        at: dt.datetime,
        *,
        by: str = "",
        note: str = "",
    ) -> LinkOutcome:
        """Record that ``a`` and ``b`` are one person (see
        :meth:`membermkt.stores.memory.InMemoryStore.link`); one transaction.

        Raises:
            UsageError: on an invalid argument.
            IdentityConflict: when the rules refuse the link.
            PhoneKeyRequired: for a phone identity outside the store's phone key ring.
            StoreUnavailable: when the database cannot be reached.
        """
        candidate = link(a, b, evidence, at, by=by, note=note)
        self._phone_policy.check((candidate.a, candidate.b))
        return self._write(lambda conn: self._link(conn, candidate))

    def _owner(self, conn: Connection, identity: Identity) -> str | None:
        t = self.tables.identities
        got = conn.execute(sa.select(t.c.member_id).where(t.c.token == identity.token)).scalar()
        return None if got is None else str(got)

    def _held(self, conn: Connection, member_id: str) -> list[Identity]:
        t = self.tables.identities
        q = sa.select(t.c.token).where(t.c.member_id == member_id).order_by(t.c.token)
        return [Identity.from_token(x) for x in conn.execute(q).scalars()]

    def _link(self, conn: Connection, candidate: Link) -> LinkOutcome:
        t = self.tables
        for _ in range(_MAX_REDECIDE):
            d = decide(
                candidate,
                lambda i: self._owner(conn, i),
                lambda mid: self._held(conn, mid),
                lambda mid: (
                    conn.execute(sa.select(t.members.c.id).where(t.members.c.id == mid)).scalar()
                    is not None
                ),
            )
            if d.create:
                self._insert_rows(conn, t.members, [rows.new_member_row(d.member_id)])
            if d.attach:
                self._insert_rows(
                    conn,
                    t.identities,
                    [{"token": i.token, "member_id": d.member_id} for i in d.attach],
                )
            if d.merge is not None and not self._merge_recorded(conn, d.merge, candidate):
                # a concurrent link merged one of the two first (it held the row locks we
                # waited for): decide again on what it committed — usually nothing to do
                continue
            return d.outcome()
        raise StoreError(
            f"link {candidate.a.kind.value}/{candidate.b.kind.value}: concurrent merges kept "
            f"changing its members ({_MAX_REDECIDE} attempts); retry"
        )

    def _merge_recorded(self, conn: Connection, rec: MergeRecord, candidate: Link | None) -> bool:
        """Lock both members and record the merge; ``False`` (nothing written) when, once
        the locks are held, the two members or the owners of the link's identities are no
        longer those the merge was decided on (a concurrent merge committed meanwhile).
        ``candidate=None``: only the two members are checked (the caller re-checks owners
        under the locks itself)."""
        t = self.tables
        m = t.members
        locked = conn.execute(
            sa.select(m.c.id)
            .where(m.c.id.in_([rec.keep, rec.drop]))
            .order_by(m.c.id)
            .with_for_update()
        ).all()
        if len(locked) != 2:
            return False
        if candidate is not None:
            owners = {self._owner(conn, i) for i in candidate.pair}
            if owners != {rec.keep, rec.drop}:
                return False
        loaded = self._load_members(conn, [rec.keep, rec.drop])
        ev = t.events
        max_seq = conn.execute(sa.select(sa.func.max(ev.c.seq))).scalar() or 0
        moved = sorted(
            conn.execute(sa.select(ev.c.seq).where(ev.c.member_id == rec.drop)).scalars()
        )
        snapshot = {
            "keep": _member_json(loaded[rec.keep]),
            "drop": _member_json(loaded[rec.drop]),
            "max_seq": int(max_seq),
            "moved": [int(x) for x in moved],
        }
        self._merge(conn, rec.keep, rec.drop)
        nxt = (conn.execute(sa.select(sa.func.max(t.merges.c.seq))).scalar() or 0) + 1
        a, b = rec.link.pair
        conn.execute(
            sa.insert(t.merges).values(
                id=rec.id,
                seq=nxt,
                keep_id=rec.keep,
                drop_id=rec.drop,
                a=a.token,
                b=b.token,
                evidence=rec.link.evidence.value,
                at=to_epoch_us(rec.link.at),
                by=rec.link.by,
                note=rec.link.note,
                identities=rows.dumps([i.token for i in rec.identities]),
                snapshot=rows.dumps(snapshot),
            )
        )
        return True

    @staticmethod
    def _record(r: Any) -> MergeRecord:
        return MergeRecord(
            id=r["id"],
            keep=r["keep_id"],
            drop=r["drop_id"],
            link=Link(
                Identity.from_token(r["a"]),
                Identity.from_token(r["b"]),
                Evidence(r["evidence"]),
                from_epoch_us(int(r["at"])),
                r["by"],
                r["note"],
            ),
            identities=tuple(Identity.from_token(x) for x in json.loads(r["identities"])),
            undone_at=None if r["undone_at"] is None else from_epoch_us(int(r["undone_at"])),
            undone_by=r["undone_by"] or "",
        )

    def merges(self, member_id: str | None = None) -> list[MergeRecord]:
        """The merge audit trail, oldest first (see
        :meth:`membermkt.stores.memory.InMemoryStore.merges`).

        Raises:
            StoreUnavailable: when the database cannot be reached.
        """
        g = self.tables.merges
        q = sa.select(g).order_by(g.c.seq)
        if member_id is not None:
            q = q.where(sa.or_(g.c.keep_id == member_id, g.c.drop_id == member_id))
        with self._tx() as conn:
            return [self._record(r) for r in conn.execute(q).mappings()]

    def unmerge(self, merge_id: str, *, at: dt.datetime, by: str) -> MergeRecord:
        """Split a merge (see :meth:`membermkt.stores.memory.InMemoryStore.unmerge`); one
        transaction.

        Raises:
            UsageError: for an unknown or undone merge id, a later merge still in force on
                the survivor, or a naive ``at``.
            StoreUnavailable: when the database cannot be reached.
        """
        when = check_now(at, "at")
        return self._write(lambda conn: self._unmerge(conn, merge_id, when, by))

    def _unmerge(self, conn: Connection, merge_id: str, at: dt.datetime, by: str) -> MergeRecord:
        t = self.tables
        g = t.merges
        row = conn.execute(sa.select(g).where(g.c.id == merge_id)).mappings().first()
        if row is None:
            raise UsageError(f"unknown merge {merge_id!r}")
        rec = self._record(row)
        if rec.undone_at is not None:
            raise UsageError(f"merge {merge_id!r} was already undone at {rec.undone_at}")
        later = list(
            conn.execute(
                sa.select(g.c.id).where(
                    g.c.seq > row["seq"],
                    g.c.undone_at.is_(None),
                    sa.or_(g.c.keep_id == rec.keep, g.c.drop_id == rec.keep),
                )
            ).scalars()
        )
        if later:
            raise UsageError(f"split the later merges of {rec.keep!r} first: {sorted(later)}")
        m = t.members
        conn.execute(sa.select(m.c.id).where(m.c.id == rec.keep).with_for_update()).all()
        if conn.execute(sa.select(m.c.id).where(m.c.id == rec.drop)).scalar() is not None:
            raise UsageError(f"cannot split {merge_id!r}: member {rec.drop!r} exists again")
        snap = json.loads(row["snapshot"])
        before = SplitSnapshot(keep=_member_back(snap["keep"]), drop=_member_back(snap["drop"]))
        current = self._load_members(conn, [rec.keep])[rec.keep]
        held = set(current.identities)
        back = tuple(i for i in before.drop.identities if i in held)
        ev = t.events
        moved: Sequence[int] = snap["moved"]
        for c in _chunks(list(moved), _IN_CHUNK):
            conn.execute(
                sa.update(ev)
                .where(ev.c.seq.in_(c), ev.c.member_id == rec.keep)
                .values(member_id=rec.drop)
            )
        later_events = [
            rows.event_from_row(r)
            for r in conn.execute(
                sa.select(ev).where(ev.c.member_id == rec.keep, ev.c.seq > snap["max_seq"])
            ).mappings()
        ]
        keep = restore_keep(current, before, back)
        keep = attrs.evolve(keep, state=before.keep.state.combine(rows.fold_events(later_events)))
        drop = attrs.evolve(before.drop, identities=back)
        for table in (t.tags, t.attrs):
            conn.execute(sa.delete(table).where(table.c.member_id == rec.keep))
        conn.execute(
            sa.update(m)
            .where(m.c.id == rec.keep)
            .values(
                **{c: v for c, v in rows.member_row(keep).items() if c not in ("id", "member_hash")}
            )
        )
        self._insert_rows(conn, m, [rows.member_row(drop)])
        self._insert_rows(conn, t.tags, rows.tag_rows(keep) + rows.tag_rows(drop))
        self._insert_rows(conn, t.attrs, rows.attribute_rows(keep) + rows.attribute_rows(drop))
        tokens = [i.token for i in back]
        for tc in _chunks(tokens, _IN_CHUNK):
            conn.execute(
                sa.update(t.identities)
                .where(t.identities.c.token.in_(tc))
                .values(member_id=rec.drop)
            )
        conn.execute(
            sa.update(g).where(g.c.id == merge_id).values(undone_at=to_epoch_us(at), undone_by=by)
        )
        return attrs.evolve(rec, undone_at=at, undone_by=by)
