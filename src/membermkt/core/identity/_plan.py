"""Deterministic member ids and merge plans (which member survives when identities meet)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import attrs

from membermkt.core.identity._model import Identity

__all__ = ["IdentityMerge", "member_id_for", "merge_plan"]


@attrs.frozen(slots=True)
class IdentityMerge:
    """A decision that two members are one person.

    Attributes:
        keep: the surviving member id (the older / smaller id, deterministic).
        drop: the member id folded into ``keep``.
        because: the identity that proved it.
    """

    keep: str
    drop: str
    because: Identity


def merge_plan(
    owners: Iterable[tuple[Identity, str]], new_member_id: str
) -> tuple[str, tuple[IdentityMerge, ...]]:
    """Decide which member a set of identities belongs to.

    Args:
        owners: pairs (identity, member id) already known for the incoming identities.
        new_member_id: the id to use when no identity is known yet.

    Returns:
        The member id that owns all the identities and the merges needed (each existing
        member other than the survivor is merged into it). The survivor is the smallest
        existing member id, so the decision does not depend on arrival order.
    """
    seen: dict[str, Identity] = {}
    for identity, member_id in owners:
        seen.setdefault(member_id, identity)
    if not seen:
        return new_member_id, ()
    keep = min(seen)
    merges = tuple(
        IdentityMerge(keep=keep, drop=mid, because=ident)
        for mid, ident in sorted(seen.items())
        if mid != keep
    )
    return keep, merges


def member_id_for(identity: Identity) -> str:
    """The deterministic member id given to a person first seen through ``identity``.

    Deterministic so that two processes seeing the same new follower at once create the same
    member instead of two: ``"m" + first 24 hex chars of sha256(identity.token)``.
    """
    return "m" + hashlib.sha256(identity.token.encode()).hexdigest()[:24]
