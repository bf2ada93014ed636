"""Fission red packets in the engine: pay the group through the red-packet service (same
budget/intent ledger), then record who opened the shares, attributed to the sharer.

Use :class:`~membermkt.engine.redpackets.RedPacketService` with a
:class:`~membermkt.payouts.wechatpay.gateway.fission.WeChatPayFissionGateway` and a rule
whose product is :func:`~membermkt.core.redpackets.fission.group_redpack_product`; the
service reserves the group's total, writes the payout intent and pays once per member
(``per_member_limit``) exactly as for a single packet. Then poll
:func:`record_fission_claims` (idempotent: event keys) to store ``fission_claim`` events.
The async twins: :class:`~membermkt.engine.redpackets.AsyncRedPacketService` with an
:class:`~membermkt.payouts.wechatpay.gateway.fission.AsyncWeChatPayFissionGateway`, then
:func:`arecord_fission_claims`.
"""

from __future__ import annotations

import datetime as dt

import attrs

from membermkt.core.events import Event
from membermkt.core.identity import Identity, member_id_for
from membermkt.core.members import Member
from membermkt.core.redpackets.fission import FissionShare, fission_events
from membermkt.engine.redpackets._base import RedPacketStore
from membermkt.errors import UsageError
from membermkt.payouts.wechatpay.gateway.fission import (
    AsyncWeChatPayFissionGateway,
    WeChatPayFissionGateway,
)

__all__ = ["FissionRecord", "arecord_fission_claims", "record_fission_claims"]


@attrs.frozen(slots=True, kw_only=True)
class FissionRecord:
    """What one poll found: every share event and how many were new."""

    events: tuple[Event, ...]
    new: int
    new_members: tuple[str, ...]


def _intent(store: RedPacketStore, bill_no: str) -> tuple[str, str]:
    intent = next((i for i in store.intents() if i.bill_no == bill_no), None)
    if intent is None:
        raise UsageError(f"no payout intent {bill_no!r}")
    return intent.member_id, intent.address


def _record(
    store: RedPacketStore,
    *,
    appid: str,
    bill_no: str,
    sharer: str,
    seed_openid: str,
    shares: tuple[FissionShare, ...],
    now: dt.datetime,
) -> FissionRecord:
    member_of: dict[str, str] = {}
    created: list[str] = []
    for s in shares:
        if s.openid == seed_openid:
            continue
        ident = Identity.openid(appid, s.openid)
        mid = store.resolve(ident)
        if mid is None:
            mid = member_id_for(ident)
            store.upsert_members([Member(mid, identities=(ident,))])
            created.append(mid)
        member_of[s.openid] = mid
    events = fission_events(
        bill_no=bill_no,
        sharer_member_id=sharer,
        seed_openid=seed_openid,
        shares=shares,
        member_of=member_of,
        at=now,
    )
    new = store.append_events(events) if events else 0
    return FissionRecord(events=tuple(events), new=new, new_members=tuple(created))


def record_fission_claims(
    store: RedPacketStore,
    gateway: WeChatPayFissionGateway,
    *,
    bill_no: str,
    now: dt.datetime,
) -> FissionRecord:
    """Read the hblist of ``bill_no`` and store a ``fission_claim`` per share opened by
    someone other than the seed, attributed to the seed's member (the sharer). Openers who
    are not members yet become members (by openid under the paying appid): who brought whom.

    Raises:
        UsageError: when ``bill_no`` is not a payout intent of this store, or the seed's
            member is unknown.
    """
    sharer, seed_openid = _intent(store, bill_no)
    shares = gateway.shares(bill_no)
    return _record(
        store,
        appid=gateway.config.wxappid,
        bill_no=bill_no,
        sharer=sharer,
        seed_openid=seed_openid,
        shares=shares,
        now=now,
    )


async def arecord_fission_claims(
    store: RedPacketStore,
    gateway: AsyncWeChatPayFissionGateway,
    *,
    bill_no: str,
    now: dt.datetime,
) -> FissionRecord:
    """The async twin of :func:`record_fission_claims` (the store calls are sync; the same
    event keys make polls idempotent).

    Raises:
        UsageError: when ``bill_no`` is not a payout intent of this store, or the seed's
            member is unknown.
    """
    sharer, seed_openid = _intent(store, bill_no)
    shares = await gateway.shares(bill_no)
    return _record(
        store,
        appid=gateway.config.wxappid,
        bill_no=bill_no,
        sharer=sharer,
        seed_openid=seed_openid,
        shares=shares,
        now=now,
    )
