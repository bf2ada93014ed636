"""``InMemoryStore``: the whole :class:`~membermkt.core.ports.Store` in Python dicts.

For notebooks, tests and small shops. Thread-safe (one re-entrant lock around every
operation). Segments are evaluated with :func:`~membermkt.core.evaluate.compile_predicate`,
the reference semantics every other backend is tested against.
"""

from __future__ import annotations

import datetime as dt
import heapq
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

import attrs

from membermkt.core.evaluate import compile_predicate
from membermkt.core.events import Event, event_state
from membermkt.core.identity import Identity
from membermkt.core.members import Member
from membermkt.core.ports import BudgetState
from membermkt.core.segments import Segment
from membermkt.errors import UsageError
from membermkt.security.phones import PhoneProtector
from membermkt.stores._common import (
    EMPTY_STATE,
    AttributeSchema,
    check_as_of,
    check_items,
    check_limit,
    check_members,
    check_now,
    check_sample_args,
    merge_member_values,
    sample_coefficients,
    sample_rank,
)
from membermkt.stores._memory_ingest import MemoryIngest
from membermkt.stores._memory_ledger import _MemoryLedger
from membermkt.stores._memory_links import MemoryLinks
from membermkt.stores._memory_payouts import _MemoryPayouts
from membermkt.stores._survivors import redirect_events, redirect_members
from membermkt.stores._upsert import UpsertPolicy, find_shared
from membermkt.stores.export_sql import SqlExport

__all__ = ["InMemoryStore"]

_EMPTY: Final[tuple[Event, ...]] = ()


def _event_order(e: Event) -> tuple[dt.datetime, str]:
    return (e.at_utc, e.key or "")


class InMemoryStore(MemoryIngest, MemoryLinks, _MemoryPayouts, _MemoryLedger, SqlExport):
    """Members, events, tags, the delivery ledger, budgets and payout intents in memory.

    Implements :class:`membermkt.core.ports.Store`.

    Args:
        attributes: optional declared custom attributes, name → ``str``/``int``/``float``/
            ``bool``; segments comparing them with values of another type raise
            :class:`~membermkt.errors.SegmentError`, members holding such values raise
            :class:`~membermkt.errors.UsageError`.
        strict: with declared ``attributes``, also refuse undeclared custom attribute names
            (in segments and in members).
        phones: a phone key ring (:class:`~membermkt.security.phones.PhoneProtector`) kept
            as :attr:`phones` for the flows that index, encrypt or decrypt numbers. Unlike
            ``SqlStore``, this store keeps any phone identity (keyed or not): nothing of it
            outlives the process (see ``docs/security.md``).

    Raises:
        UsageError: for an invalid attribute declaration.

    Example:
        >>> import datetime as dt
        >>> from membermkt import Member, Profile
        >>> from membermkt.segments import attr
        >>> store = InMemoryStore()
        >>> store.upsert_members([Member("m1", Profile(city="Hangzhou"))])
        1
        >>> list(store.select(attr("city") == "Hangzhou", dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
        ['m1']
    """

    def __init__(
        self,
        *,
        attributes: Mapping[str, type] | None = None,
        strict: bool = False,
        phones: PhoneProtector | None = None,
    ) -> None:
        self.phones = phones
        self._schema = AttributeSchema.build(attributes, strict)
        self._lock = threading.RLock()
        self._members: dict[str, Member] = {}
        self._identities: dict[str, str] = {}  # identity token -> member id
        self._events: dict[str, list[Event]] = {}  # member id -> events
        self._event_keys: dict[str, str] = {}  # event key -> member id
        self._init_ledger()
        self._budgets: dict[str, BudgetState] = {}
        self._init_payouts()
        self._init_links()

    def __repr__(self) -> str:
        return f"InMemoryStore(members={len(self._members)})"

    # ------------------------------------------------------------------ members

    def upsert_members(
        self,
        members: Iterable[Member],
        *,
        on_shared_identity: str = "report",
        at: dt.datetime | None = None,
        by: str = "upsert_members",
    ) -> int:
        """Insert or replace members by id (see :meth:`MemberStore.upsert_members`).

        The stored state is kept when the given member's state is empty (a fresh
        ``Member(...)``); a non-empty state replaces it. An identity another member holds is
        never moved: ``on_shared_identity="report"`` refuses the call, ``"merge"`` merges
        the two members (an ``operator`` link by ``by`` at ``at``, listed by
        :meth:`merges`); see :mod:`membermkt.stores._upsert`. A member addressed to an id
        merged away by :meth:`link` is folded into the survivor instead of re-creating it
        (see :mod:`membermkt.stores._survivors`). All or nothing.

        Raises:
            UsageError: for a value that is not a Member, one the attribute schema refuses,
                an unknown policy, or ``"merge"`` without ``at``.
            IdentityConflict: with ``"report"``, when a member lists an identity another
                member holds (or lists earlier in the call); with ``"merge"``, when the
                rules refuse a merge.
        """
        batch = check_members(members)
        policy = UpsertPolicy(on_shared_identity, at, by)
        for m in batch:
            self._schema.check_member(m)
        with self._lock:
            batch = self._upsert_to_survivors(batch)
            shared = find_shared(batch, lambda i: self._identities.get(i.token))
            if not shared:
                for m in batch:
                    self._put_member(m, m.identities)
                return len(batch)
            if not policy.merge:
                m, ident, holder = shared[0]
                raise policy.conflict(ident, holder, m.id)
            saved = self._save()
            try:
                for m in batch:
                    self._upsert_merging(m, policy)
            except BaseException:
                self._restore(saved)
                raise
            return len(batch)

    def _upsert_to_survivors(self, batch: list[Member]) -> list[Member]:
        """Members addressed to merged-away ids, folded into their survivors (#14)."""
        return redirect_members(batch, self._survivors(m.id for m in batch), self._members.get)

    def _put_member(self, m: Member, identities: Sequence[Identity]) -> None:
        old = self._members.get(m.id)
        if old is not None:
            for ident in old.identities:
                if self._identities.get(ident.token) == m.id:
                    del self._identities[ident.token]
            if m.state == EMPTY_STATE:
                m = attrs.evolve(m, state=old.state)
        if tuple(identities) != m.identities:
            m = attrs.evolve(m, identities=tuple(identities))
        for ident in identities:
            self._identities[ident.token] = m.id
        self._members[m.id] = m

    def _upsert_merging(self, m: Member, policy: UpsertPolicy) -> None:
        held = [
            i
            for i in m.identities
            if (o := self._identities.get(i.token)) is not None and o != m.id
        ]
        own = [i for i in m.identities if i not in held]
        self._put_member(m, own)
        current = m.id
        for ident in held:
            holder = self._identities.get(ident.token)
            if holder == current:
                continue
            if holder is None:  # released by an earlier member of this call
                cur = self._members[current]
                self._members[current] = attrs.evolve(cur, identities=(*cur.identities, ident))
                self._identities[ident.token] = current
                continue
            record = policy.plan(
                ident,
                own,
                current,
                self._members[current].identities,
                holder,
                self._members[holder].identities,
            )
            self._merge_recorded(record)
            current = record.keep

    def _save(self) -> tuple[Any, ...]:
        return (
            dict(self._members),
            dict(self._identities),
            {k: list(v) for k, v in self._events.items()},
            dict(self._event_keys),
            list(self._merge_log),
            dict(self._splits),
            dict(self._merged_into),
        )

    def _restore(self, saved: tuple[Any, ...]) -> None:
        (
            self._members,
            self._identities,
            self._events,
            self._event_keys,
            self._merge_log,
            self._splits,
            self._merged_into,
        ) = saved

    def get_member(self, member_id: str) -> Member | None:
        """The member with that id, or ``None``."""
        with self._lock:
            return self._members.get(member_id)

    def get_members(self, member_ids: Iterable[str]) -> dict[str, Member]:
        """The known members among ``member_ids``, by id."""
        with self._lock:
            return {i: self._members[i] for i in sorted(set(member_ids)) if i in self._members}

    def iter_members(self) -> Iterator[Member]:
        """Every member, by id (a snapshot; for export)."""
        with self._lock:
            snapshot = [self._members[k] for k in sorted(self._members)]
        return iter(snapshot)

    def iter_events(self) -> Iterator[Event]:
        """Every stored event, by member id then time (a snapshot; for export)."""
        with self._lock:
            snapshot = [sorted(self._events[k], key=_event_order) for k in sorted(self._events)]
        return (e for evs in snapshot for e in evs)

    def resolve(self, identity: Identity) -> str | None:
        """The member id owning ``identity``, or ``None``.

        Raises:
            UsageError: when ``identity`` is not an Identity.
        """
        if not isinstance(identity, Identity):
            raise UsageError(f"resolve takes an Identity, got {identity!r}")
        with self._lock:
            return self._identities.get(identity.token)

    def merge_members(self, keep: str, drop: str) -> None:
        """Fold member ``drop`` into ``keep`` (see :meth:`MemberStore.merge_members`).

        Raises:
            UsageError: when ``keep == drop`` or either member is unknown.
        """
        if keep == drop:
            raise UsageError(f"cannot merge member {keep!r} into itself")
        with self._lock:
            k = self._members.get(keep)
            d = self._members.get(drop)
            if k is None or d is None:
                raise UsageError(f"cannot merge: unknown member {keep if k is None else drop!r}")
            merged = merge_member_values(k, d, k.state.combine(d.state))
            for ident in d.identities:
                self._identities[ident.token] = keep
            moved = [e.with_member(keep) for e in self._events.pop(drop, [])]
            if moved:
                self._events.setdefault(keep, []).extend(moved)
                for e in moved:
                    if e.key is not None:
                        self._event_keys[e.key] = keep
            del self._members[drop]
            self._members[keep] = merged

    def tag(self, member_ids: Iterable[str], tag: str) -> int:
        """Add ``tag`` to the known members among ``member_ids`` (a merged-away id: to its
        survivor, see :meth:`survivors`); returns how many changed.

        Raises:
            UsageError: for an empty or non-str tag.
        """
        return self._retag(member_ids, tag, add=True)

    def untag(self, member_ids: Iterable[str], tag: str) -> int:
        """Remove ``tag`` from members; returns how many changed.

        Raises:
            UsageError: for an empty or non-str tag.
        """
        return self._retag(member_ids, tag, add=False)

    def _retag(self, member_ids: Iterable[str], tag: str, *, add: bool) -> int:
        if not isinstance(tag, str) or not tag:
            raise UsageError(f"tag must be a non-empty str, got {tag!r}")
        if isinstance(member_ids, str):
            raise UsageError("member_ids must be a collection of ids, not a single str")
        changed = 0
        with self._lock:
            ids = set(member_ids)
            survivors = self._survivors(ids)
            for mid in {survivors.get(i, i) for i in ids}:
                m = self._members.get(mid)
                if m is None or (tag in m.tags) == add:
                    continue
                self._members[mid] = m.with_tags(tag) if add else m.with_tags(remove=(tag,))
                changed += 1
        return changed

    # ------------------------------------------------------------------ events

    def append_events(self, events: Iterable[Event]) -> int:
        """Append events, de-duplicated by key, folding them into member state.

        An event addressed to a member merged away by :meth:`link` is recorded as the
        survivor's (see :meth:`survivors`); an unknown member id creates the member.

        Raises:
            UsageError: for a value that is not an Event.
        """
        batch = list(events)
        for e in batch:
            if not isinstance(e, Event):
                raise UsageError(f"append_events takes Event values, got {e!r}")
        new = 0
        with self._lock:
            batch = self._events_to_survivors(batch)
            for e in batch:
                if e.key is not None:
                    if e.key in self._event_keys:
                        continue
                    self._event_keys[e.key] = e.member_id
                m = self._members.get(e.member_id)
                if m is None:
                    m = Member(e.member_id)
                self._members[e.member_id] = attrs.evolve(m, state=m.state.combine(event_state(e)))
                self._events.setdefault(e.member_id, []).append(e)
                new += 1
        return new

    def _events_to_survivors(self, batch: list[Event]) -> list[Event]:
        """Events of merged-away members, re-addressed to their survivors (#14)."""
        if not self._merged_into:
            return batch
        return redirect_events(batch, self._survivors({e.member_id for e in batch}))

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
        """
        lo = None if since is None else check_now(since, "since")
        hi = None if until is None else check_now(until, "until")
        wanted = None if types is None else frozenset(types)
        with self._lock:
            evs = list(self._events.get(member_id, _EMPTY))
        out = [
            e
            for e in evs
            if (lo is None or e.at > lo)
            and (hi is None or e.at <= hi)
            and (wanted is None or e.type in wanted)
        ]
        out.sort(key=_event_order)
        return out

    # ------------------------------------------------------------------ segments

    def _matching(self, segment: Segment, as_of: dt.datetime) -> list[str]:
        self._schema.check_segment(segment)
        when = check_as_of(as_of)
        pred = compile_predicate(segment, when)
        with self._lock:
            return sorted(
                mid for mid, m in self._members.items() if pred(m, self._events.get(mid, _EMPTY))
            )

    def select(self, segment: Segment, as_of: dt.datetime) -> Iterator[str]:
        """Member ids in the segment as of ``as_of``, sorted by id.

        Raises:
            SegmentError: for an invalid segment or one the attribute schema refuses.
            UsageError: for a naive ``as_of``.
        """
        return iter(self._matching(segment, as_of))

    def count(self, segment: Segment, as_of: dt.datetime) -> int:
        """How many members are in the segment as of ``as_of``.

        Raises:
            SegmentError: for an invalid segment or one the attribute schema refuses.
            UsageError: for a naive ``as_of``.
        """
        return len(self._matching(segment, as_of))

    def sample(
        self, segment: Segment, as_of: dt.datetime, n: int, seed: int | str = 0
    ) -> list[str]:
        """Up to ``n`` member ids of the segment, a deterministic pseudo-random choice for
        ``seed`` (the same in every store), sorted by id.

        Raises:
            SegmentError: for an invalid segment.
            UsageError: for a negative ``n`` or a bad seed.
        """
        size, salt = check_sample_args(n, seed)
        a, b = sample_coefficients(salt)
        ids = self._matching(segment, as_of)
        chosen = heapq.nsmallest(size, ids, key=lambda i: sample_rank(i, a, b))
        return sorted(chosen)

    # ------------------------------------------------------------------ budgets

    def ensure_budget(self, key: str, *, limit: int) -> None:
        """Create the budget row if absent (an existing row keeps its limit).

        Raises:
            UsageError: for an empty key or a negative limit.
        """
        if not isinstance(key, str) or not key:
            raise UsageError(f"budget key must be a non-empty str, got {key!r}")
        lim = check_limit(limit)
        with self._lock:
            self._budgets.setdefault(key, BudgetState(key=key, limit=lim))

    def _known(self, wanted: Mapping[str, int]) -> None:
        for key in wanted:
            if key not in self._budgets:
                raise UsageError(f"unknown budget {key!r}; create it with ensure_budget")

    def reserve(self, items: Sequence[tuple[str, int]]) -> bool:
        """Reserve every ``(key, amount)`` or none.

        Returns:
            ``False`` (and nothing reserved) when any budget would exceed its limit.

        Raises:
            UsageError: for an unknown budget or a malformed item.
        """
        wanted = check_items(items)
        with self._lock:
            self._known(wanted)
            for key, amount in wanted.items():
                if self._budgets[key].remaining < amount:
                    return False
            for key, amount in wanted.items():
                b = self._budgets[key]
                self._budgets[key] = attrs.evolve(b, reserved=b.reserved + amount)
        return True

    def release(self, items: Sequence[tuple[str, int]]) -> None:
        """Give reserved amounts back.

        Raises:
            UsageError: for an unknown budget or more than is reserved.
        """
        self._move(items, settle=False)

    def settle(self, items: Sequence[tuple[str, int]]) -> None:
        """Turn reserved amounts into spent.

        Raises:
            UsageError: for an unknown budget or more than is reserved.
        """
        self._move(items, settle=True)

    def _move(self, items: Sequence[tuple[str, int]], *, settle: bool) -> None:
        wanted = check_items(items)
        with self._lock:
            self._known(wanted)
            for key, amount in wanted.items():
                if self._budgets[key].reserved < amount:
                    raise UsageError(
                        f"budget {key!r}: cannot {'settle' if settle else 'release'} {amount}, "
                        f"only {self._budgets[key].reserved} reserved"
                    )
            for key, amount in wanted.items():
                b = self._budgets[key]
                self._budgets[key] = attrs.evolve(
                    b, reserved=b.reserved - amount, spent=b.spent + (amount if settle else 0)
                )

    def budget(self, key: str) -> BudgetState | None:
        """The budget row, or ``None``."""
        with self._lock:
            return self._budgets.get(key)
