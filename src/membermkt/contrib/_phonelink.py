"""Linking a typed or verified phone to the visitor's member through ``store.link``."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from membermkt.core.identity import Evidence, Identity, LinkOutcome
from membermkt.core.ports import IdentityLinks
from membermkt.engine.redpackets import RedPacketStore
from membermkt.errors import IdentityConflict

__all__ = ["PhoneFormStore", "PhoneLinkConflict", "link_phone"]


class PhoneFormStore(RedPacketStore, IdentityLinks, Protocol):
    """What the page needs from storage: the red-packet store plus identity links
    (``InMemoryStore``, ``SqlStore``)."""


class PhoneLinkConflict(IdentityConflict):
    """The phone number is already linked to another member (and the evidence at hand may
    not merge them)."""


def link_phone(
    store: PhoneFormStore,
    visitor: Identity,
    phone: Identity,
    *,
    evidence: Evidence | str,
    at: dt.datetime,
    by: str = "phoneform",
) -> LinkOutcome:
    """Link ``phone`` to the member holding ``visitor`` through ``store.link``.

    With ``Evidence.VERIFIED_PHONE`` a member already holding the phone (an imported buyer)
    is merged with the visitor's member; with ``Evidence.CLAIMED`` (a typed, unverified
    number) the phone is only attached when nobody holds it.

    Returns:
        The :class:`~membermkt.core.identity.LinkOutcome` (``member_id`` is the member
        holding both afterwards — the survivor of a merge).

    Raises:
        PhoneLinkConflict: when the rules refuse the link (the phone is another member's
            and the evidence may not merge, or the two members cannot be one person).
        PhoneKeyRequired: when the store may not keep this phone identity.
    """
    try:
        return store.link(visitor, phone, evidence, at, by=by)
    except PhoneLinkConflict:
        raise
    except IdentityConflict as exc:
        raise PhoneLinkConflict(str(exc), members=exc.members) from None
