"""Identity links, merges with an audit trail, and splits for :class:`InMemoryStore`."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable

import attrs

from membermkt.core.events import Event, event_state
from membermkt.core.identity import Evidence, Identity, LinkOutcome, MergeRecord, link
from membermkt.core.members import Member, MemberState
from membermkt.errors import UsageError
from membermkt.stores._common import check_now, merge_member_values
from membermkt.stores._links import SplitSnapshot, decide, restore_keep, undone
from membermkt.stores._survivors import follow

__all__ = ["MemoryLinks"]


@attrs.frozen(slots=True)
class _Split:
    snapshot: SplitSnapshot
    keep_state: MemberState
    moved: frozenset[int]  # id() of the events moved from drop
    known: frozenset[int]  # id() of every event keep held right after the merge


class MemoryLinks:
    """The linking part of :class:`~membermkt.stores.memory.InMemoryStore`."""

    _lock: threading.RLock
    _members: dict[str, Member]
    _identities: dict[str, str]
    _events: dict[str, list[Event]]
    _event_keys: dict[str, str]

    def _init_links(self) -> None:
        self._merge_log: list[MergeRecord] = []
        self._splits: dict[str, _Split] = {}
        self._merged_into: dict[str, str] = {}  # drop -> keep, merges in force

    def survivors(self, member_ids: Iterable[str]) -> dict[str, str]:
        """Where merged-away members went: each id among ``member_ids`` that a merge in
        force (:meth:`link`, or an upsert with ``on_shared_identity="merge"``) dropped,
        mapped to the member that holds it now (chains of merges followed). Writes addressed
        to such ids land there (see :mod:`membermkt.stores._survivors`).

        Raises:
            UsageError: when ``member_ids`` is a single str.
        """
        if isinstance(member_ids, str):
            raise UsageError("member_ids must be a collection of ids, not a single str")
        with self._lock:
            return self._survivors(member_ids)

    def _person_ids(self, member_id: str) -> list[str]:
        """``member_id``'s survivor and every id merged into it (merges in force), sorted."""
        if not self._merged_into:
            return [member_id]
        survivor = self._survivors([member_id]).get(member_id, member_id)
        merged = self._survivors(self._merged_into)
        return sorted({survivor, *(d for d, k in merged.items() if k == survivor)})

    def _survivors(self, member_ids: Iterable[str]) -> dict[str, str]:
        into = self._merged_into
        if not into:
            return {}
        return follow(lambda ids: {i: into[i] for i in ids if i in into}, member_ids)

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
        :func:`membermkt.core.identity.check_link` for which evidence joins what).

        Deterministic and idempotent: a new member's id is the smaller
        :func:`~membermkt.core.identity.member_id_for` of ``a`` and ``b``; a merge keeps the
        smaller member id; a link already true changes nothing. A merge is
        recorded in :meth:`merges` and can be undone with :meth:`unmerge`.

        Raises:
            UsageError: on an invalid argument.
            IdentityConflict: when the rules refuse the link.
        """
        candidate = link(a, b, evidence, at, by=by, note=note)
        with self._lock:
            d = decide(
                candidate,
                lambda i: self._identities.get(i.token),
                lambda m: self._members[m].identities,
                lambda m: m in self._members,
            )
            if d.merge is not None:
                self._merge_recorded(d.merge)
            elif d.attach:
                m = self._members.get(d.member_id) or Member(d.member_id)
                self._members[d.member_id] = attrs.evolve(m, identities=(*m.identities, *d.attach))
                for i in d.attach:
                    self._identities[i.token] = d.member_id
            return d.outcome()

    def _remap(self, old: list[Event], new: list[Event]) -> None:
        # events are values re-created when they change member: keep every pending split's
        # references (by object identity) pointing at the current objects
        ids = {id(o): id(n) for o, n in zip(old, new, strict=True)}
        if not ids:
            return
        for key, sp in self._splits.items():
            self._splits[key] = attrs.evolve(
                sp,
                moved=frozenset(ids.get(i, i) for i in sp.moved),
                known=frozenset(ids.get(i, i) for i in sp.known),
            )

    def _merge_recorded(self, record: MergeRecord) -> None:
        k, d = self._members[record.keep], self._members[record.drop]
        old = self._events.pop(record.drop, [])
        moved = [e.with_member(record.keep) for e in old]
        self._remap(old, moved)
        kept = self._events.setdefault(record.keep, [])
        kept.extend(moved)
        for e in moved:
            if e.key is not None:
                self._event_keys[e.key] = record.keep
        for ident in d.identities:
            self._identities[ident.token] = record.keep
        self._splits[record.id] = _Split(
            SplitSnapshot(keep=k, drop=d),
            k.state,
            frozenset(id(e) for e in moved),
            frozenset(id(e) for e in kept),
        )
        del self._members[record.drop]
        self._members[record.keep] = merge_member_values(k, d, k.state.combine(d.state))
        self._merge_log.append(record)
        self._merged_into[record.drop] = record.keep

    def merges(self, member_id: str | None = None) -> list[MergeRecord]:
        """The merge audit trail (oldest first), optionally only merges whose ``keep`` or
        ``drop`` is ``member_id``; undone merges are included with ``undone_at`` set."""
        with self._lock:
            return [
                r for r in self._merge_log if member_id is None or member_id in (r.keep, r.drop)
            ]

    def unmerge(self, merge_id: str, *, at: dt.datetime, by: str) -> MergeRecord:
        """Split a merge made by :meth:`link`: the dropped member comes back with its
        identities (those the survivor still holds), profile, tags, attributes, consent and
        the events it brought; the survivor loses what it only had from it. Events recorded
        after the merge stay with the survivor — also those addressed to the dropped id while
        the merge was in force (they were recorded as the survivor's, see
        :meth:`survivors`); from the split on, writes to the dropped id stay with it. Later
        merges into the same survivor must be split first.

        Raises:
            UsageError: for an unknown or undone merge id, a later merge still in force on
                the survivor, or a naive ``at``.
        """
        when = check_now(at, "at")
        with self._lock:
            idx = next((n for n, r in enumerate(self._merge_log) if r.id == merge_id), None)
            if idx is None:
                raise UsageError(f"unknown merge {merge_id!r}")
            rec = self._merge_log[idx]
            if rec.undone_at is not None:
                raise UsageError(f"merge {merge_id!r} was already undone at {rec.undone_at}")
            later = [
                r.id
                for r in self._merge_log[idx + 1 :]
                if r.undone_at is None and rec.keep in (r.keep, r.drop)
            ]
            if later:
                raise UsageError(f"split the later merges of {rec.keep!r} first: {later}")
            if rec.drop in self._members:
                raise UsageError(f"cannot split {merge_id!r}: member {rec.drop!r} exists again")
            split = self._splits.pop(merge_id)
            current = self._members[rec.keep]
            back = tuple(
                i
                for i in split.snapshot.drop.identities
                if self._identities.get(i.token) == rec.keep
            )
            events = self._events.get(rec.keep, [])
            mine = [e for e in events if id(e) in split.moved]
            stays = [e for e in events if id(e) not in split.moved]
            later_state = split.keep_state
            for e in stays:
                if id(e) not in split.known:
                    later_state = later_state.combine(event_state(e))
            self._events[rec.keep] = stays
            returned = [e.with_member(rec.drop) for e in mine]
            self._remap(mine, returned)
            if returned:
                self._events[rec.drop] = returned
            for e in returned:
                if e.key is not None:
                    self._event_keys[e.key] = rec.drop
            keep = restore_keep(current, split.snapshot, back)
            self._members[rec.keep] = attrs.evolve(keep, state=later_state)
            self._members[rec.drop] = attrs.evolve(split.snapshot.drop, identities=back)
            for i in back:
                self._identities[i.token] = rec.drop
            done = undone(rec, when, by)
            self._merge_log[idx] = done
            self._merged_into.pop(rec.drop, None)
            return done
