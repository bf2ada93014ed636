"""Store-side identity linking shared by the stores: the decision (pure) and the split plan.

A store's ``link(a, b, evidence, at)`` resolves the owners of ``a`` and ``b`` and asks
:func:`decide` what to do; a merge keeps what a later ``unmerge`` needs to restore both
members (:class:`SplitSnapshot`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import attrs

from membermkt.core.identity import Identity, Link, LinkOutcome, MergeRecord, member_id_for
from membermkt.core.identity._graph import IdentityGraph, singular_clash
from membermkt.core.members import Consent, Member, MemberState, Profile
from membermkt.errors import IdentityConflict

__all__ = ["Decision", "SplitSnapshot", "decide", "restore_keep"]


@attrs.frozen(slots=True, kw_only=True)
class Decision:
    """What to do for a link: attach identities to ``member_id`` (creating it when
    ``create``), or merge (``merge`` set), or nothing."""

    member_id: str
    attach: tuple[Identity, ...] = ()
    create: bool = False
    merge: MergeRecord | None = None

    def outcome(self) -> LinkOutcome:
        """The :class:`LinkOutcome` reported to the caller."""
        return LinkOutcome(
            member_id=self.member_id, attached=self.attach, merge=self.merge, created=self.create
        )


def decide(
    candidate: Link,
    owner: Callable[[Identity], str | None],
    identities: Callable[[str], Sequence[Identity]],
    exists: Callable[[str], bool],
) -> Decision:
    """Decide a (checked) link against a store's current owners.

    Raises:
        IdentityConflict: when the rules refuse it.
    """
    a, b = candidate.pair
    oa, ob = owner(a), owner(b)
    if oa is None and ob is None:
        mid = min(member_id_for(a), member_id_for(b))
        if exists(mid):
            _no_clash(mid, identities(mid), (a, b))
            return Decision(member_id=mid, attach=(a, b))
        return Decision(member_id=mid, attach=(a, b), create=True)
    if oa is None or ob is None:
        holder, missing = (ob, a) if oa is None else (oa, b)
        assert holder is not None
        _no_clash(holder, identities(holder), (missing,))
        return Decision(member_id=holder, attach=(missing,))
    if oa == ob:
        return Decision(member_id=oa)
    record = IdentityGraph.plan_merge(candidate, oa, identities(oa), ob, identities(ob))
    return Decision(member_id=record.keep, merge=record)


def _no_clash(member_id: str, held: Sequence[Identity], new: Sequence[Identity]) -> None:
    clash = singular_clash(held, new)
    if clash is not None:
        raise IdentityConflict(
            f"member {member_id!r} already holds another {clash.kind.value} identity in "
            f"namespace {clash.namespace!r}; refusing to attach {clash.token!r}",
            members=(member_id,),
        )


@attrs.frozen(slots=True, kw_only=True)
class SplitSnapshot:
    """What a split needs: both members as they were just before the merge."""

    keep: Member
    drop: Member


def restore_keep(current: Member, snap: SplitSnapshot, back: Sequence[Identity]) -> Member:
    """The surviving member after a split: identities given back removed, tags, attributes
    and profile fields it only had from ``drop`` removed, its consent restored when unchanged
    since the merge. Its ``state`` is left to the caller (a refold)."""
    before, drop = snap.keep, snap.drop
    gone_tags = drop.tags - before.tags
    gone_attrs = set(drop.attributes) - set(before.attributes)
    profile = {}
    for f in attrs.fields(Profile):
        now = getattr(current.profile, f.name)
        took = getattr(before.profile, f.name) is None and now == getattr(drop.profile, f.name)
        profile[f.name] = None if took else now
    merged_consent = Consent(
        marketing=before.consent.marketing and drop.consent.marketing,
        opted_out_channels=before.consent.opted_out_channels | drop.consent.opted_out_channels,
    )
    consent = before.consent if current.consent == merged_consent else current.consent
    return Member(
        current.id,
        Profile(**profile),
        current.tags - gone_tags,
        {k: v for k, v in current.attributes.items() if k not in gone_attrs},
        tuple(i for i in current.identities if i not in back),
        state=MemberState(),
        consent=consent,
    )


def undone(record: MergeRecord, at: dt.datetime, by: str) -> MergeRecord:
    """``record`` marked undone."""
    return attrs.evolve(record, undone_at=at, undone_by=by)
