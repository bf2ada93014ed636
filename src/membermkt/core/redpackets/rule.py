"""The red-packet rule: who may claim how much, when, how often, through which product."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import attrs

from membermkt.core.redpackets._base import _ALNUM_RE, _ID_RE, _positive
from membermkt.core.redpackets.amounts import AmountStrategy
from membermkt.core.redpackets.products import WECHATPAY_V2_REDPACK, PayoutProduct
from membermkt.errors import UsageError

if TYPE_CHECKING:
    from membermkt.core.segments import Segment


def _check_rule_id(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise UsageError(f"RedPacketRule.id must be 1-40 chars of [0-9A-Za-z_.-], got {value!r}")


def _check_mch_id(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or not _ALNUM_RE.match(value) or len(value) > 10:
        raise UsageError(
            "RedPacketRule.mch_id must be the merchant id, 1-10 chars of [0-9a-zA-Z] "
            f"(a v2 mch_billno is mch_id + yyyymmdd + 10 digits, at most 28 chars), got {value!r}"
        )


def _check_aware(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None and (not isinstance(value, dt.datetime) or value.utcoffset() is None):
        raise UsageError(
            f"RedPacketRule.{attribute.name} must be a timezone-aware datetime, got {value!r}"
        )


def _optional_limit(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise UsageError(
            f"RedPacketRule.{attribute.name} must be None or a positive int, got {value!r}"
        )


@attrs.frozen(slots=True, kw_only=True)
class RedPacketRule:
    """Who may claim how much, when, how often, paid through which product.

    Args:
        id: the rule id, 1–40 chars of ``[0-9A-Za-z_.-]`` (used in budget keys and bill
            numbers: never reuse an id for a different campaign).
        mch_id: the WeChat Pay merchant id (the prefix of v2 bill numbers).
        amount: an :class:`AmountStrategy`.
        total_budget_fen: the most money this rule may ever pay out.
        daily_budget_fen: the most per (Beijing) day, or ``None``.
        max_packets: the most packets ever granted, or ``None``.
        eligibility: a :class:`~membermkt.core.segments.Segment` the member must be in at
            claim time, or ``None`` for everyone.
        starts_at / ends_at: the claim window ``[starts_at, ends_at)``; ``None`` = open.
        per_member_limit: packets per member (default 1).
        per_phone_limit: packets per phone number (digest), or ``None`` for no limit.
        per_order_limit: packets per order id, or ``None`` for no limit.
        require_purchase: the claim's phone and/or order id must match a ``purchase`` event.
        purchase_within: how recent that purchase must be, or ``None`` for any time.
        product: the :class:`PayoutProduct` (its bounds and per-user daily limits apply).

    Raises:
        UsageError: on any invalid field, or when the amount strategy can leave the product's
            bounds or exceed the budget.
    """

    id: str = attrs.field(validator=_check_rule_id)
    mch_id: str = attrs.field(validator=_check_mch_id)
    amount: AmountStrategy
    total_budget_fen: int = attrs.field(validator=_positive)
    daily_budget_fen: int | None = attrs.field(default=None, validator=_optional_limit)
    max_packets: int | None = attrs.field(default=None, validator=_optional_limit)
    eligibility: Segment | None = None
    starts_at: dt.datetime | None = attrs.field(default=None, validator=_check_aware)
    ends_at: dt.datetime | None = attrs.field(default=None, validator=_check_aware)
    per_member_limit: int = attrs.field(default=1, validator=_positive)
    per_phone_limit: int | None = attrs.field(default=1, validator=_optional_limit)
    per_order_limit: int | None = attrs.field(default=1, validator=_optional_limit)
    require_purchase: bool = False
    purchase_within: dt.timedelta | None = None
    product: PayoutProduct = WECHATPAY_V2_REDPACK

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.amount, AmountStrategy):
            raise UsageError(f"RedPacketRule.amount must be an AmountStrategy, got {self.amount!r}")
        lo, hi = self.amount.bounds
        if lo < self.product.min_fen or hi > self.product.max_fen:
            raise UsageError(
                f"rule {self.id!r}: amounts {lo}..{hi} fen leave the bounds of "
                f"{self.product.name} ({self.product.min_fen}..{self.product.max_fen} fen)"
            )
        if lo > self.total_budget_fen:
            raise UsageError(
                f"rule {self.id!r}: the smallest packet ({lo} fen) exceeds the total budget "
                f"({self.total_budget_fen} fen)"
            )
        if (
            self.starts_at is not None
            and self.ends_at is not None
            and self.starts_at >= self.ends_at
        ):
            raise UsageError(f"rule {self.id!r}: starts_at must be before ends_at")
        if self.purchase_within is not None and self.purchase_within <= dt.timedelta(0):
            raise UsageError(f"rule {self.id!r}: purchase_within must be positive")
