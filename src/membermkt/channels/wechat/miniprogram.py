"""Link a mini-program user into the identity graph (store I/O; see
:mod:`membermkt.channels.wechat.api.miniprogram` for the calls).

The mini-program openid is its own identity kind (``Identity.miniprogram_openid``); it
joins the member behind the same person's official-account openid through the
**unionid** (``Evidence.UNIONID``) and through a phone number WeChat has verified
(``Evidence.VERIFIED_PHONE``). Both kinds of evidence may merge two existing members, with
the store's audit trail (``store.merges()``), so "a member who uses the mini program is a
stranger" no more.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from membermkt.channels.wechat.api.miniprogram import MiniProgramSession, PhoneInfo
from membermkt.core.identity import Evidence, Identity, LinkOutcome, member_id_for
from membermkt.core.members import Member

__all__ = ["link_miniprogram_user"]


class _LinkingStore(Protocol):
    def resolve(self, identity: Identity) -> str | None: ...

    def upsert_members(self, members: list[Member]) -> int: ...

    def link(
        self, a: Identity, b: Identity, evidence: Evidence | str, at: dt.datetime
    ) -> LinkOutcome: ...


def link_miniprogram_user(
    store: _LinkingStore,
    appid: str,
    session: MiniProgramSession,
    *,
    at: dt.datetime,
    phone: PhoneInfo | None = None,
    phone_key: str = "",
) -> str:
    """The member id of a mini-program user, after linking what the platform gave.

    The verified phone becomes the store's keyed blind index when the store has a phone
    key ring (``store.phones``: ``SqlStore`` refuses phone identities without one), else
    a plain digest under ``phone_key``.

    Returns the member holding the mini-program openid afterwards (created when new).

    Raises:
        UsageError: for a phone number that does not normalise.
        IdentityConflict: when the store's rules refuse a link.
    """
    mp = Identity.miniprogram_openid(appid, session.openid)
    member = store.resolve(mp)
    if session.unionid:
        member = store.link(mp, Identity.unionid(session.unionid), Evidence.UNIONID, at).member_id
    if phone is not None and phone.phone_number:
        number = phone.phone_number
        if phone.country_code and not number.startswith("+"):
            number = "+" + phone.country_code + phone.pure_phone_number
        phones = getattr(store, "phones", None)
        ph = (
            phones.identity(number) if phones is not None else Identity.phone(number, key=phone_key)
        )
        member = store.link(mp, ph, Evidence.VERIFIED_PHONE, at).member_id
    if member is None:
        member = member_id_for(mp)
        store.upsert_members([Member(member, identities=(mp,))])
    return member
