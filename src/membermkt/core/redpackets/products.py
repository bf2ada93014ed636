"""Payout products (v2 red packet, v3 transfer) with the platform's amount and per-user bounds."""

from __future__ import annotations

from typing import Final

import attrs

from membermkt.errors import UsageError


@attrs.frozen(slots=True, kw_only=True)
class PayoutProduct:
    """A way to move money to a member, with the platform's bounds.

    Attributes:
        name: ``"wechatpay.v2.redpack"`` or ``"wechatpay.v3.transfer"`` (also the
            ``PayoutGateway.product`` of the adapter that pays it).
        bill_format: ``"v2"`` (``mch_billno``) or ``"v3"`` (``out_bill_no``).
        min_fen / max_fen: the amount bounds of one payout, in fen.
        per_user_daily_count / per_user_daily_fen: how many payouts / how much money one
            receiver may get per (Beijing) day from this merchant; ``None`` when the
            platform states no such limit.
    """

    name: str
    bill_format: str = attrs.field(validator=attrs.validators.in_(("v2", "v3")))
    min_fen: int
    max_fen: int
    per_user_daily_count: int | None = None
    per_user_daily_fen: int | None = None

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.min_fen <= self.max_fen:
            raise UsageError(
                f"PayoutProduct {self.name!r}: need 1 <= min_fen <= max_fen, "
                f"got {self.min_fen}..{self.max_fen}"
            )


WECHATPAY_V2_REDPACK: Final = PayoutProduct(
    name="wechatpay.v2.redpack",
    bill_format="v2",
    # Reference §4.2 (current doc): default 1–200 CNY per packet (adjustable in the merchant
    # console; below 1 or above 200 CNY needs a scene_id), ≤ 10 packets and ≤ 1000 CNY per
    # user per day. Use attrs.evolve() for a merchant with other limits.
    min_fen=100,
    max_fen=20_000,
    per_user_daily_count=10,
    per_user_daily_fen=100_000,
)
"""v2 cash red packet (``sendredpack``) with the platform's default limits."""

WECHATPAY_V3_TRANSFER: Final = PayoutProduct(
    name="wechatpay.v3.transfer",
    bill_format="v3",
    # Reference §4.6: user_name (encrypted real name) is required from 2,000 CNY; this
    # product stays below that. The minimum transfer amount is not in our reference
    # (unconfirmed), so 1 fen is the floor here; set your console's value with evolve().
    min_fen=1,
    max_fen=199_999,
)
"""v3 merchant transfer (``/v3/fund-app/mch-transfer/transfer-bills``)."""
