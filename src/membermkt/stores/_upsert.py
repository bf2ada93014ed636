"""What ``upsert_members`` does with an identity another member holds (shared by the stores).

An identity belongs to one member, and an upsert never moves it silently. The policy
argument ``on_shared_identity`` decides:

``"report"`` (default)
    refuse: :class:`~membermkt.errors.IdentityConflict` naming the identity and both members;
    nothing of the call is written.
``"merge"``
    the member is written without the shared identities, then merged with each holder (the
    smaller member id survives, as for :meth:`link`); each merge is an ``operator`` link by
    ``by`` at ``at``, recorded in the merge audit trail (``merges()``) and undone with
    ``unmerge()``. A merge the rules refuse (two different identities of a kind a person holds
    once, such as two unionids) raises :class:`~membermkt.errors.IdentityConflict` and nothing
    of the call is written.

"Another member" is the stored holder, or a member listed earlier in the same call.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence

from membermkt.core.identity import Evidence, Identity, Link
from membermkt.core.identity._graph import IdentityGraph, MergeRecord
from membermkt.core.members import Member
from membermkt.errors import IdentityConflict, UsageError
from membermkt.stores._common import check_now

__all__ = ["SHARED_IDENTITY_POLICIES", "UpsertPolicy", "find_shared"]

SHARED_IDENTITY_POLICIES = ("report", "merge")


class UpsertPolicy:
    """A checked ``on_shared_identity`` policy with its ``at`` and ``by``.

    Raises:
        UsageError: for an unknown policy, ``"merge"`` without a timezone-aware ``at``, or a
            ``by`` that is not a short str.
    """

    def __init__(self, policy: str, at: dt.datetime | None, by: str) -> None:
        if policy not in SHARED_IDENTITY_POLICIES:
            raise UsageError(
                f"on_shared_identity must be one of {SHARED_IDENTITY_POLICIES}, got {policy!r}"
            )
        if policy == "merge" and at is None:
            raise UsageError("on_shared_identity='merge' needs at= (the time of the merges)")
        if not isinstance(by, str) or not by or len(by) > 128:
            raise UsageError(f"by must be a non-empty str of at most 128 characters, got {by!r}")
        self.merge = policy == "merge"
        self.at = None if at is None else check_now(at, "at")
        self.by = by

    def conflict(self, identity: Identity, holder: str, member_id: str) -> IdentityConflict:
        """The error of ``"report"``."""
        return IdentityConflict(
            f"identity {identity.token!r} belongs to member {holder!r}; not moved to "
            f"{member_id!r} (upsert with on_shared_identity='merge' to merge them)",
            members=(holder, member_id),
        )

    def plan(
        self,
        identity: Identity,
        own: Sequence[Identity],
        current: str,
        current_ids: Iterable[Identity],
        holder: str,
        holder_ids: Iterable[Identity],
    ) -> MergeRecord:
        """The merge of ``current`` (the upserted member, or what it merged into) and the
        ``holder`` of ``identity``.

        Raises:
            IdentityConflict: when the rules refuse the merge (a singular clash).
        """
        assert self.at is not None
        # The link: the shared identity and the member's own first identity (when it lists
        # only shared ones, the identity itself: "both members list it").
        other = own[0] if own else identity
        note = f"upsert_members listed {identity.token} for {current}, held by {holder}"
        link = Link(identity, other, Evidence.OPERATOR, self.at, self.by, note[:128])
        return IdentityGraph.plan_merge(link, current, current_ids, holder, holder_ids)


def find_shared(
    batch: Sequence[Member], owner: Callable[[Identity], str | None]
) -> list[tuple[Member, Identity, str]]:
    """``(member, identity, holder)`` for each identity a member of ``batch`` lists that
    another member holds (``owner``) or an earlier member of the batch lists."""
    listed: dict[str, str] = {}
    out = []
    for m in batch:
        for i in m.identities:
            holder = listed.get(i.token) or owner(i)
            if holder is not None and holder != m.id:
                out.append((m, i, holder))
            listed.setdefault(i.token, m.id)
    return out
