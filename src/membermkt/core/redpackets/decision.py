"""The pure decision :func:`decide`: may this claim be paid, how much, under which bill?"""

from __future__ import annotations

import datetime as dt
import random
from typing import Final

from membermkt.core.events import Event
from membermkt.core.identity import IdentityKind
from membermkt.core.members import Member
from membermkt.core.redpackets.billing import bill_no, budget_keys
from membermkt.core.redpackets.claims import Claim, ClaimState
from membermkt.core.redpackets.outcomes import Deny, DenyReason, Grant, Reservation
from membermkt.core.redpackets.rule import RedPacketRule
from membermkt.errors import UsageError


def _verified_purchase(
    rule: RedPacketRule, claim: Claim, state: ClaimState, as_of: dt.datetime
) -> Event | None:
    since = as_of - rule.purchase_within if rule.purchase_within is not None else None
    for event in sorted(state.purchases, key=lambda e: (e.at_utc, e.key or "")):
        if event.type != "purchase" or event.at_utc > as_of:
            continue
        if since is not None and event.at_utc <= since:
            continue
        props = event.properties
        if claim.order_id is not None and props.get("order_id") != claim.order_id:
            continue
        if claim.phone_digest is not None and not (
            event.member_id in state.phone_owner_ids
            or props.get("phone_digest") == claim.phone_digest
        ):
            continue
        return event
    return None


def _eligible(rule: RedPacketRule, member: Member, state: ClaimState, as_of: dt.datetime) -> bool:
    if rule.eligibility is None:
        return True
    from membermkt.core.evaluate import compile_predicate

    return bool(compile_predicate(rule.eligibility, as_of)(member, state.events))


def decide(
    rule: RedPacketRule,
    member: Member,
    claim: Claim,
    state: ClaimState,
    as_of: dt.datetime,
    rng: random.Random,
) -> Grant | Deny:
    """Decide one claim. Pure: the same inputs (and ``rng`` state) give the same answer.

    Checks, in order: time window, eligibility segment, purchase proof, per-member / phone /
    order limits, packet cap, amount (strategy), total and daily budgets, platform per-user
    daily limits. A :class:`Grant` never exceeds any limit *as seen in* ``state``; the
    engine's atomic reservation of :attr:`Grant.reservations` makes that hold under
    concurrent claims too.

    Raises:
        UsageError: when ``as_of`` is naive or the claim is for another member.
    """
    if not isinstance(as_of, dt.datetime) or as_of.utcoffset() is None:
        raise UsageError(f"decide: as_of must be a timezone-aware datetime, got {as_of!r}")
    if claim.member_id != member.id:
        raise UsageError(f"decide: claim of member {claim.member_id!r} for member {member.id!r}")
    if rule.starts_at is not None and as_of < rule.starts_at:
        return Deny(reason=DenyReason.NOT_STARTED)
    if rule.ends_at is not None and as_of >= rule.ends_at:
        return Deny(reason=DenyReason.ENDED)
    if not _eligible(rule, member, state, as_of):
        return Deny(reason=DenyReason.NOT_ELIGIBLE)

    order_id = claim.order_id
    if rule.require_purchase:
        if claim.phone_digest is None and claim.order_id is None:
            return Deny(reason=DenyReason.NO_PROOF)
        purchase = _verified_purchase(rule, claim, state, as_of)
        if purchase is None:
            return Deny(reason=DenyReason.NO_PURCHASE)
        found = purchase.properties.get("order_id")
        if order_id is None and isinstance(found, str) and found:
            order_id = found

    if state.member_claims >= rule.per_member_limit:
        return Deny(reason=DenyReason.MEMBER_LIMIT)
    if (
        rule.per_phone_limit is not None
        and claim.phone_digest is not None
        and state.phone_claims >= rule.per_phone_limit
    ):
        return Deny(reason=DenyReason.PHONE_LIMIT)
    if (
        rule.per_order_limit is not None
        and order_id is not None
        and state.order_claims >= rule.per_order_limit
    ):
        return Deny(reason=DenyReason.ORDER_LIMIT)
    if rule.max_packets is not None and state.granted_count >= rule.max_packets:
        return Deny(reason=DenyReason.PACKETS_EXHAUSTED)

    amount = rule.amount.draw(rng, granted_count=state.granted_count, granted_fen=state.granted_fen)
    if amount is None:
        return Deny(reason=DenyReason.PACKETS_EXHAUSTED, detail="the split is fully granted")
    if state.granted_fen + amount > rule.total_budget_fen:
        return Deny(reason=DenyReason.BUDGET_EXHAUSTED)
    if rule.daily_budget_fen is not None and state.day_granted_fen + amount > rule.daily_budget_fen:
        return Deny(reason=DenyReason.DAILY_BUDGET_EXHAUSTED)
    product = rule.product
    if product.per_user_daily_count is not None and (
        state.user_day_count + 1 > product.per_user_daily_count
    ):
        return Deny(reason=DenyReason.PLATFORM_USER_LIMIT, detail="daily packet count")
    if product.per_user_daily_fen is not None and (
        state.user_day_fen + amount > product.per_user_daily_fen
    ):
        return Deny(reason=DenyReason.PLATFORM_USER_LIMIT, detail="daily amount")

    keys = budget_keys(
        rule,
        as_of=as_of,
        member_id=member.id,
        phone_digest=claim.phone_digest,
        order_id=order_id,
        address=claim.address,
    )
    reservations = [
        Reservation(keys["total"], amount, rule.total_budget_fen),
        Reservation(keys["member"], 1, rule.per_member_limit),
    ]
    if rule.daily_budget_fen is not None:
        reservations.append(Reservation(keys["day"], amount, rule.daily_budget_fen))
    if rule.max_packets is not None:
        reservations.append(Reservation(keys["packets"], 1, rule.max_packets))
    if rule.per_phone_limit is not None and "phone" in keys:
        reservations.append(Reservation(keys["phone"], 1, rule.per_phone_limit))
    if rule.per_order_limit is not None and "order" in keys:
        reservations.append(Reservation(keys["order"], 1, rule.per_order_limit))
    if product.per_user_daily_count is not None:
        reservations.append(Reservation(keys["user_day_count"], 1, product.per_user_daily_count))
    if product.per_user_daily_fen is not None:
        reservations.append(Reservation(keys["user_day_fen"], amount, product.per_user_daily_fen))

    sequence = state.member_attempts + 1
    return Grant(
        amount_fen=amount,
        bill_no=bill_no(rule, member.id, sequence, as_of, salt=state.bill_salt),
        sequence=sequence,
        order_id=order_id,
        reservations=tuple(reservations),
    )


REDPACKET_CHANNEL: Final = "redpacket"
"""The channel name a member opts out of red packets with (``Consent.opted_out_channels``)."""

_PAYABLE_KINDS: Final = frozenset({IdentityKind.OPENID, IdentityKind.MINIPROGRAM_OPENID})


def policy_denial(member: Member, address: str) -> DenyReason | None:
    """Why ``member`` may not be paid at ``address`` now, or ``None``.

    Checked when a claim is decided and again before a parked or unsent payout is paid:
    consent (``marketing=False`` or an opt-out of :data:`REDPACKET_CHANNEL` → ``no_consent``)
    and ownership (the address must be one of the member's openids →
    ``address_not_member``).
    """
    if not member.consent.allows(REDPACKET_CHANNEL):
        return DenyReason.NO_CONSENT
    if not any(i.kind in _PAYABLE_KINDS and i.value == address for i in member.identities):
        return DenyReason.ADDRESS_NOT_MEMBER
    return None
