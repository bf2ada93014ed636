"""Writes addressed to a merged-away member land on the member it was merged into (#14).

After ``store.link(...)`` (or ``upsert_members(..., on_shared_identity="merge")``) merges
member ``drop`` into ``keep``, the outside world keeps using ``drop``'s id: the next
marketplace export lists the buyer as ``tmall-42`` again. Every member-id keyed write of
the built-in stores first maps such ids to their *survivor* — ``keep``, or what ``keep``
was merged into later (chains are followed) — so the write lands on the one member instead
of re-creating ``drop`` as a second member:

* ``append_events``: the event is stored as the survivor's (its ``member_id`` rewritten)
  and folded into the survivor's state; de-duplication by key is unchanged.
* ``upsert_members``: the given member is folded into the survivor the way the merge
  folded ``drop`` (:func:`fold_into`): identities and tags are added, profile fields and
  attributes the survivor lacks are filled in, consent can only get stricter; the
  survivor's own values and its folded state are kept. To change those, upsert the
  survivor's id.
* ``tag`` / ``untag``: applied to the survivor.

Only merges in force count: after ``unmerge`` the dropped id is its own member again and
writes to it stay there. Events that arrived for the dropped id while it was merged were
recorded as the survivor's and stay with the survivor after the split (like every event
recorded after the merge: a split returns only the events the dropped member brought into
the merge).

Reads do not redirect: ``get_member``, ``events_for`` and the like answer for the id asked,
and a merged-away id is no member (``None`` / no events). :meth:`survivors` on the stores
says where such ids went.

``merge_members`` (the protocol's bare merge, without an audit trail) records nothing to
redirect by; use ``link`` for merges the world may keep addressing by the old id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import attrs

from membermkt.core.events import Event
from membermkt.core.members import Member, MemberState
from membermkt.stores._common import merge_member_values

__all__ = ["fold_into", "follow", "redirect_events", "redirect_members"]

_MAX_CHAIN = 64
"""Longest chain of merges followed (a guard: chains are as long as repeated merges)."""


def follow(
    lookup: Callable[[Sequence[str]], Mapping[str, str]], ids: Iterable[str]
) -> dict[str, str]:
    """Map each merged-away id among ``ids`` to its current survivor.

    Args:
        lookup: the in-force merges for some ids, ``drop -> keep`` (one batched query on a
            SQL store); called once, plus once per further link of a chain.
        ids: member ids.

    Returns:
        ``{merged-away id: survivor}``; ids that were not merged away are absent.
    """
    direct: dict[str, str] = {}
    todo = sorted(set(ids))
    for _ in range(_MAX_CHAIN):
        if not todo:
            break
        found = {d: k for d, k in lookup(todo).items() if d not in direct}
        direct.update(found)
        todo = sorted({k for k in found.values() if k not in direct})
    out: dict[str, str] = {}
    for start in direct:
        cur, seen = start, {start}
        while cur in direct and direct[cur] not in seen:
            cur = direct[cur]
            seen.add(cur)
        out[start] = cur
    return out


def redirect_events(events: Sequence[Event], survivors: Mapping[str, str]) -> list[Event]:
    """``events`` with the member id of every merged-away member replaced by its survivor."""
    if not survivors:
        return list(events)
    return [e if (s := survivors.get(e.member_id)) is None else e.with_member(s) for e in events]


def fold_into(survivor: Member, given: Member, *, keep_state: bool = False) -> Member:
    """``given`` (addressed to a merged-away id) folded into ``survivor`` as a merge folds
    the dropped member: identities and tags added, profile fields and attributes the
    survivor lacks filled in, the stricter consent. The state is the survivor's with
    ``keep_state``, else left to the store (empty: the stored, folded state is kept)."""
    return merge_member_values(survivor, given, survivor.state if keep_state else MemberState())


def redirect_members(
    batch: Sequence[Member],
    survivors: Mapping[str, str],
    current: Callable[[str], Member | None],
) -> list[Member]:
    """``batch`` (one member per id) with members addressed to merged-away ids folded into
    their survivors (:func:`fold_into`; ``current`` reads a stored survivor). In call order:
    a later member of the same id replaces an earlier one, as in a plain upsert."""
    if not survivors:
        return list(batch)
    out: dict[str, Member] = {}
    for m in batch:
        s = survivors.get(m.id)
        if s is None:
            out[m.id] = m
            continue
        given = out.get(s)
        if given is not None:  # the survivor itself is upserted earlier in the call
            out[s] = fold_into(given, m, keep_state=True)
            continue
        stored = current(s)
        out[s] = fold_into(stored, m) if stored is not None else attrs.evolve(m, id=s)
    return list(out.values())
