"""The identity graph: which member holds which identities, merges and splits.

:class:`IdentityGraph` is the pure reference model of what a store does on
``store.link(...)`` / ``store.unmerge(...)``: deterministic (the survivor of a merge is the
smaller member id; a new member takes the smaller :func:`member_id_for` of the two) and
idempotent (a link already true changes nothing).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping

import attrs

from membermkt.core.identity._links import Link, check_link
from membermkt.core.identity._model import SINGULAR_KINDS, Identity
from membermkt.core.identity._plan import member_id_for
from membermkt.errors import IdentityConflict, UsageError

__all__ = ["IdentityGraph", "LinkOutcome", "MergeRecord", "merge_id", "singular_clash"]


@attrs.frozen(slots=True, kw_only=True)
class MergeRecord:
    """One merge in the audit trail.

    Attributes:
        id: deterministic id of the merge (from the members and the link).
        keep: the surviving member id.
        drop: the member folded into ``keep``.
        link: the :class:`Link` that caused it (evidence, time, who).
        identities: the identities ``drop`` held at the merge (restored to it by a split).
        undone_at / undone_by: when and by whom the merge was split (``None``: in force).
    """

    id: str
    keep: str
    drop: str
    link: Link
    identities: tuple[Identity, ...]
    undone_at: dt.datetime | None = None
    undone_by: str = ""


@attrs.frozen(slots=True, kw_only=True)
class LinkOutcome:
    """What a link did.

    Attributes:
        member_id: the member holding both identities afterwards.
        attached: identities newly attached to it (without a merge).
        merge: the merge it caused, if any.
        created: whether the member was created by this link.
    """

    member_id: str
    attached: tuple[Identity, ...] = ()
    merge: MergeRecord | None = None
    created: bool = False

    @property
    def changed(self) -> bool:
        """Whether the link changed anything (``False``: it was already true)."""
        return bool(self.attached or self.merge or self.created)


def merge_id(keep: str, drop: str, link: Link) -> str:
    """The deterministic id of the merge of ``drop`` into ``keep`` caused by ``link``."""
    a, b = link.pair
    raw = "|".join((keep, drop, a.token, b.token, link.evidence.value, link.at.isoformat()))
    return "g" + hashlib.sha256(raw.encode()).hexdigest()[:24]


def singular_clash(left: Iterable[Identity], right: Iterable[Identity]) -> Identity | None:
    """An identity of ``right`` that clashes with ``left``: the same singular kind and
    namespace (see :data:`SINGULAR_KINDS`) with a different value; ``None`` when none does."""
    held = {(i.kind, i.namespace): i for i in left if i.kind in SINGULAR_KINDS}
    for i in right:
        other = held.get((i.kind, i.namespace))
        if other is not None and other != i:
            return i
    return None


class IdentityGraph:
    """Members and their identities, with links, merges and splits (pure, in memory).

    Args:
        members: optional initial members, member id → identities.

    Raises:
        IdentityConflict: when two initial members list the same identity.
    """

    def __init__(self, members: Mapping[str, Iterable[Identity]] | None = None) -> None:
        self._owner: dict[Identity, str] = {}
        self._held: dict[str, set[Identity]] = {}
        self._merges: list[MergeRecord] = []
        for mid, idents in sorted((members or {}).items()):
            self.add(mid, idents)

    def add(self, member_id: str, identities: Iterable[Identity]) -> None:
        """Register ``member_id`` with ``identities`` (never moves an identity).

        Raises:
            IdentityConflict: when another member holds one of them, or the member would
                hold two different identities of a singular kind.
        """
        new = list(identities)
        for i in new:
            owner = self._owner.get(i)
            if owner is not None and owner != member_id:
                raise IdentityConflict(
                    f"{i.token!r} belongs to member {owner!r}, not {member_id!r}",
                    members=(owner, member_id),
                )
        held = self._held.setdefault(member_id, set())
        clash = singular_clash(held, new) or singular_clash(new, new)
        if clash is not None:
            raise IdentityConflict(
                f"member {member_id!r} would hold two {clash.kind.value} identities "
                f"in namespace {clash.namespace!r}",
                members=(member_id,),
            )
        for i in new:
            self._owner[i] = member_id
            held.add(i)

    def owner(self, identity: Identity) -> str | None:
        """The member holding ``identity``, or ``None``."""
        return self._owner.get(identity)

    def members(self) -> dict[str, frozenset[Identity]]:
        """Member id → identities, for every member."""
        return {m: frozenset(s) for m, s in sorted(self._held.items())}

    def merges(self) -> tuple[MergeRecord, ...]:
        """The audit trail: every merge in order, including undone ones."""
        return tuple(self._merges)

    def link(self, candidate: Link) -> LinkOutcome:
        """Apply a link (see :func:`~membermkt.core.identity.check_link` for the rules).

        Raises:
            IdentityConflict: when the rules refuse it (including a ``claimed`` link between
                two members, or a merge that would join two singular identities).
        """
        check_link(candidate)
        a, b = candidate.pair
        oa, ob = self._owner.get(a), self._owner.get(b)
        if oa is None and ob is None:
            mid = min(member_id_for(a), member_id_for(b))
            created = mid not in self._held
            self.add(mid, (a, b))
            return LinkOutcome(member_id=mid, attached=(a, b), created=created)
        if oa is None or ob is None:
            holder, missing = (ob, a) if oa is None else (oa, b)
            assert holder is not None
            self.add(holder, (missing,))
            return LinkOutcome(member_id=holder, attached=(missing,))
        if oa == ob:
            return LinkOutcome(member_id=oa)
        record = self.plan_merge(candidate, oa, self._held[oa], ob, self._held[ob])
        for i in record.identities:
            self._owner[i] = record.keep
        self._held[record.keep] |= self._held.pop(record.drop)
        self._merges.append(record)
        return LinkOutcome(member_id=record.keep, merge=record)

    @staticmethod
    def plan_merge(
        candidate: Link,
        first: str,
        first_ids: Iterable[Identity],
        second: str,
        second_ids: Iterable[Identity],
    ) -> MergeRecord:
        """The merge two members need for ``candidate`` (the smaller id survives).

        Raises:
            IdentityConflict: for ``claimed`` evidence or a singular clash.
        """
        if not candidate.evidence.merges:
            raise IdentityConflict(
                f"{candidate.a.token!r} and {candidate.b.token!r} belong to members "
                f"{first!r} and {second!r}; evidence {candidate.evidence.value!r} cannot "
                "merge members",
                members=tuple(sorted((first, second))),
            )
        left, right = tuple(first_ids), tuple(second_ids)
        clash = singular_clash(left, right)
        if clash is not None:
            raise IdentityConflict(
                f"members {first!r} and {second!r} hold different {clash.kind.value} "
                f"identities in namespace {clash.namespace!r}: they are two people",
                members=tuple(sorted((first, second))),
            )
        keep, drop = sorted((first, second))
        drop_ids = right if drop == second else left
        return MergeRecord(
            id=merge_id(keep, drop, candidate),
            keep=keep,
            drop=drop,
            link=candidate,
            identities=tuple(sorted(drop_ids, key=lambda i: i.token)),
        )

    def unmerge(self, merge_id: str, *, at: dt.datetime, by: str) -> MergeRecord:
        """Split a merge: ``drop`` gets back the identities it had (those ``keep`` still
        holds); identities attached later stay with ``keep``.

        Returns:
            The updated record (with ``undone_at``/``undone_by``).

        Raises:
            UsageError: for an unknown or already undone merge id, or when ``drop`` exists
                again (re-created since).
        """
        n = next((k for k, r in enumerate(self._merges) if r.id == merge_id), None)
        if n is None:
            raise UsageError(f"unknown merge {merge_id!r}")
        rec = self._merges[n]
        if rec.undone_at is not None:
            raise UsageError(f"merge {merge_id!r} was already undone at {rec.undone_at}")
        if rec.drop in self._held:
            raise UsageError(f"cannot split {merge_id!r}: member {rec.drop!r} exists again")
        back = {i for i in rec.identities if self._owner.get(i) == rec.keep}
        self._held[rec.keep] -= back
        self._held[rec.drop] = back
        for i in back:
            self._owner[i] = rec.drop
        done = attrs.evolve(rec, undone_at=at, undone_by=by)
        self._merges[n] = done
        return done
