"""Ledger channels for journey side effects that are not messages: tags and coupon grants.

They go through the delivery ledger like messages, so each runs once per (journey, version,
member, step, entry) key under crashes and several workers.
"""

from __future__ import annotations

from collections.abc import Sequence

from membermkt.core.delivery import ChannelCapabilities, Delivery, SendOutcome, SendResult
from membermkt.core.membership.coupons import CouponStatus
from membermkt.core.ports import MemberStore
from membermkt.engine.coupons import CouponService
from membermkt.errors import UsageError

__all__ = ["MEMBER_ADDRESS", "CouponChannel", "TagChannel"]

MEMBER_ADDRESS = "member"
"""The ``address_kind`` of channels addressed by member id (no platform identity)."""


class TagChannel:
    """``journey.tag``: add or remove a member tag in the store (idempotent)."""

    name = "journey.tag"
    capabilities = ChannelCapabilities(
        max_batch_size=500, idempotent=True, address_kind=MEMBER_ADDRESS
    )

    def __init__(self, store: MemberStore) -> None:
        self.store = store

    def __repr__(self) -> str:
        return "TagChannel()"

    def send(self, batch: Sequence[Delivery]) -> list[SendResult]:
        out = []
        for d in batch:
            tag = d.payload.get("tag")
            if not isinstance(tag, str) or not tag:
                out.append(SendResult(key=d.key, outcome=SendOutcome.PERMANENT, reason="no_tag"))
                continue
            if d.payload.get("remove"):
                self.store.untag([d.member_id], tag)
            else:
                self.store.tag([d.member_id], tag)
            out.append(SendResult(key=d.key, outcome=SendOutcome.SENT))
        return out


class CouponChannel:
    """``journey.grant``: grant the coupon stock named by the step's ``benefit`` through a
    :class:`~membermkt.engine.coupons.CouponService` (the #15 ``CouponGateway`` port).

    The coupon request number is derived from the delivery key, so a retried or recovered
    delivery asks the coupon system for the *same* grant, which it de-duplicates.

    Args:
        service: the coupon service (its gateway's appid is the openid namespace).
        appid: the namespace of the openids the gateway grants to.
        name: the channel name steps use (default ``"journey.grant"``).
    """

    def __init__(self, service: CouponService, *, appid: str, name: str = "journey.grant") -> None:
        if not appid:
            raise UsageError("CouponChannel needs the appid of the openids it grants to")
        self.service = service
        self.name = name
        self.capabilities = ChannelCapabilities(
            max_batch_size=50, idempotent=True, address_kind="openid", address_namespace=appid
        )

    def __repr__(self) -> str:
        return f"CouponChannel({self.name!r})"

    def send(self, batch: Sequence[Delivery]) -> list[SendResult]:
        out = []
        for d in batch:
            stock = d.payload.get("benefit")
            if not isinstance(stock, str) or not stock:
                out.append(
                    SendResult(key=d.key, outcome=SendOutcome.PERMANENT, reason="no_benefit")
                )
                continue
            got = self.service.grant(d.member_id, d.address, stock_id=stock, reason=d.key)
            if got.status is CouponStatus.GRANTED:
                out.append(
                    SendResult(key=d.key, outcome=SendOutcome.SENT, platform_id=got.coupon_id)
                )
            elif got.status is CouponStatus.FAILED:
                out.append(
                    SendResult(
                        key=d.key,
                        outcome=SendOutcome.PERMANENT,
                        reason=f"coupon:{got.reason or 'failed'}",
                    )
                )
            else:  # UNKNOWN: the same request number is safe to send again
                out.append(
                    SendResult(key=d.key, outcome=SendOutcome.RETRYABLE, reason="coupon:unknown")
                )
        return out
