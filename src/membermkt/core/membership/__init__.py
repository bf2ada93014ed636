"""The member programme, pure: joining, qualification, tiers, points, entitlements, coupons.

Everything here is a pure function of a member's events as of a time (no I/O, no clock).
"""

from membermkt.core.membership.coupons import (
    COUPON_RULE_PREFIX,
    CouponGrant,
    CouponResult,
    CouponStatus,
    coupon_request_no,
    coupon_rule_id,
)

__all__ = [
    "COUPON_RULE_PREFIX",
    "CouponGrant",
    "CouponResult",
    "CouponStatus",
    "coupon_request_no",
    "coupon_rule_id",
]
