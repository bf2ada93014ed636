"""Fission (group) red packets, pure: the payout product and who-brought-whom.

A fission red packet (``sendgroupredpack``, reference §4.2) is sent to one *seed* member;
it holds ``total_num`` ≥ 3 shares split at random (``amt_type=ALL_RAND``); the seed opens
one and shares the packet, and friends open the rest. The money leaves the merchant once —
the whole group amount is one payout under one ``mch_billno`` — so the red-packet service's
budget reservation, payout intent and query-before-resend guarantees apply unchanged with
:func:`group_redpack_product`. Who opened a share comes from ``gethbinfo``'s ``hblist``;
:func:`fission_events` turns it into ``fission_claim`` events attributed to the sharer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

import attrs

from membermkt.core.events import Event
from membermkt.core.redpackets.products import PayoutProduct
from membermkt.errors import UsageError

__all__ = [
    "FISSION_CLAIM",
    "GROUP_MAX_NUM",
    "GROUP_MIN_NUM",
    "GROUP_REDPACK",
    "FissionShare",
    "fission_events",
    "group_redpack_product",
    "referrals",
]

GROUP_REDPACK = "wechatpay.v2.groupredpack"
"""The product name (and the fission gateway's ``product``)."""
GROUP_MIN_NUM = 3
"""``total_num`` of a group packet is at least 3 (reference §4.2)."""
GROUP_MAX_NUM = 20
"""Upper bound of ``total_num`` (reference §4.2: **unconfirmed**)."""
FISSION_CLAIM = "fission_claim"
"""The event type of a share opened by someone other than the seed."""


def group_redpack_product(total_num: int) -> PayoutProduct:
    """The payout product of a group packet of ``total_num`` shares.

    The bounds apply to the group's total: each share averages 1–200 CNY (older rules: each
    share 1–1000 CNY and the average 1–200 CNY — a conflict in the reference), so the total
    is ``100 × n .. 20,000 × n`` fen. The platform's per-user daily limits for group packets
    are not stated (none applied).

    Raises:
        UsageError: for ``total_num`` outside 3..20.
    """
    if isinstance(total_num, bool) or not GROUP_MIN_NUM <= total_num <= GROUP_MAX_NUM:
        raise UsageError(
            f"a fission red packet has {GROUP_MIN_NUM}..{GROUP_MAX_NUM} shares, got {total_num}"
        )
    return PayoutProduct(
        name=GROUP_REDPACK,
        bill_format="v2",
        min_fen=100 * total_num,
        max_fen=20_000 * total_num,
    )


@attrs.frozen(slots=True, kw_only=True)
class FissionShare:
    """One opened share (an ``hblist`` entry)."""

    openid: str
    amount_fen: int
    received_at: dt.datetime | None = None


def fission_events(
    *,
    bill_no: str,
    sharer_member_id: str,
    seed_openid: str,
    shares: Iterable[FissionShare],
    member_of: Mapping[str, str],
    at: dt.datetime,
) -> list[Event]:
    """``fission_claim`` events for the shares opened by others than the seed.

    Each event belongs to the member who opened the share and carries ``referrer`` (the
    sharer's member id), ``bill_no`` and ``amount_fen``; its key (``fission:<bill>:<openid>``)
    makes repeated polling idempotent. The time is the share's own receive time when the
    platform gives one, else ``at``.

    Raises:
        UsageError: when an opener has no member id in ``member_of``.
    """
    out: list[Event] = []
    for s in shares:
        if s.openid == seed_openid:
            continue
        member = member_of.get(s.openid)
        if member is None:
            raise UsageError(f"no member for fission opener {s.openid!r}")
        out.append(
            Event(
                member,
                FISSION_CLAIM,
                s.received_at or at,
                {"referrer": sharer_member_id, "bill_no": bill_no, "amount_fen": s.amount_fen},
                key=f"fission:{bill_no}:{s.openid}",
            )
        )
    return out


def referrals(events: Iterable[Event]) -> dict[str, tuple[str, ...]]:
    """Sharer member id → the members their packets brought (sorted, distinct)."""
    brought: dict[str, set[str]] = {}
    for e in events:
        if e.type == FISSION_CLAIM:
            ref = e.properties.get("referrer")
            if isinstance(ref, str) and ref != e.member_id:
                brought.setdefault(ref, set()).add(e.member_id)
    return {k: tuple(sorted(v)) for k, v in sorted(brought.items())}
