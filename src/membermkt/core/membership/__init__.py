"""The member programme, pure: joining, qualification, tiers, points, entitlements, coupons.

Everything here is a pure function of a member's events as of a time (no I/O, no clock):

* :mod:`.joining` — ``member_joined`` / ``member_left`` events (channel, form, consent,
  gift) and :func:`membership_as_of` (``is_member``, ``joined_at``, ``join_source``);
* :mod:`.leaves` — the ``latest`` segment leaf and :func:`is_member`, :func:`joined_via`,
  :func:`joined_within`, :func:`tier_is`, :func:`has_unused_entitlement` (Python and SQL);
* :mod:`.qualification` — :class:`Qualification` (target + weighted signals, ``why()``),
  invitations, first-member cohorts;
* :mod:`.tiers` — :class:`TierProgram` (immediate upgrades, downgrades at reviews after
  grace, overrides) emitting ``tier_changed``;
* :mod:`.points` — :class:`PointsProgram` (earning rules, expiry, never double-earned,
  never negative);
* :mod:`.entitlements` — the privilege :class:`Catalogue`, grants and exactly-once
  redemptions;
* :mod:`.coupons` — coupon grants for a :class:`~membermkt.core.ports.CouponGateway`;
* :mod:`.report` — members by tier over time, tier migrations, entitlement usage, coupons.
"""

from membermkt.core.membership.coupons import (
    COUPON_RULE_PREFIX,
    CouponGrant,
    CouponResult,
    CouponStatus,
    coupon_request_no,
    coupon_rule_id,
)
from membermkt.core.membership.entitlements import (
    BENEFIT_KINDS,
    Benefit,
    Catalogue,
    Entitlement,
    entitlements_as_of,
    grant_event,
    redeem_event,
)
from membermkt.core.membership.joining import (
    CONSENT_FIELDS,
    JoinOffer,
    Membership,
    joined_event,
    left_event,
    membership_as_of,
)
from membermkt.core.membership.leaves import (
    ENTITLEMENT_GRANTED,
    ENTITLEMENT_REDEEMED,
    MEMBER_JOINED,
    MEMBER_LEFT,
    TIER_CHANGED,
    Latest,
    has_unused_entitlement,
    is_member,
    joined_via,
    joined_within,
    latest,
    non_member_repeat_buyers,
    tier_is,
)
from membermkt.core.membership.points import (
    POINTS_REDEEMED,
    EarnRule,
    PointsLedger,
    PointsProgram,
)
from membermkt.core.membership.points import redeem_event as redeem_points_event
from membermkt.core.membership.qualification import (
    INVITED,
    Assessment,
    CohortRow,
    Qualification,
    Signal,
    check_invited,
    first_member_cohorts,
    invite,
)
from membermkt.core.membership.report import (
    NO_TIER,
    CouponRow,
    EntitlementRow,
    MembersReport,
    TierMigrations,
    coupon_rows,
    entitlement_rows,
    members_by_tier,
    members_report,
    tier_migrations,
)
from membermkt.core.membership.tiers import (
    METRICS,
    TIER_OVERRIDE,
    Tier,
    TierProgram,
    override_event,
    tier_as_of,
)

__all__ = [
    "BENEFIT_KINDS",
    "CONSENT_FIELDS",
    "COUPON_RULE_PREFIX",
    "ENTITLEMENT_GRANTED",
    "ENTITLEMENT_REDEEMED",
    "INVITED",
    "MEMBER_JOINED",
    "MEMBER_LEFT",
    "METRICS",
    "NO_TIER",
    "POINTS_REDEEMED",
    "TIER_CHANGED",
    "TIER_OVERRIDE",
    "Assessment",
    "Benefit",
    "Catalogue",
    "CohortRow",
    "CouponGrant",
    "CouponResult",
    "CouponRow",
    "CouponStatus",
    "EarnRule",
    "Entitlement",
    "EntitlementRow",
    "JoinOffer",
    "Latest",
    "MembersReport",
    "Membership",
    "PointsLedger",
    "PointsProgram",
    "Qualification",
    "Signal",
    "Tier",
    "TierMigrations",
    "TierProgram",
    "check_invited",
    "coupon_request_no",
    "coupon_rows",
    "coupon_rule_id",
    "entitlement_rows",
    "entitlements_as_of",
    "first_member_cohorts",
    "grant_event",
    "has_unused_entitlement",
    "invite",
    "is_member",
    "joined_event",
    "joined_via",
    "joined_within",
    "latest",
    "left_event",
    "members_by_tier",
    "members_report",
    "membership_as_of",
    "non_member_repeat_buyers",
    "override_event",
    "redeem_event",
    "redeem_points_event",
    "tier_as_of",
    "tier_is",
    "tier_migrations",
]
