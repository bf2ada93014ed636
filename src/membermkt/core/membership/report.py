"""The members' report, pure: members by tier over time, tier migrations (a Sankey-like
from → to table), entitlement usage, coupon redemption with attributed revenue, and
first-member cohorts. Every number is a fold of events as of a time; rendering (text, SVG)
is in :mod:`membermkt.analytics.members`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import attrs

from membermkt.core.events import Event
from membermkt.core.membership.entitlements import entitlements_as_of
from membermkt.core.membership.joining import membership_as_of
from membermkt.core.membership.qualification import CohortRow, first_member_cohorts
from membermkt.core.membership.tiers import tier_as_of

__all__ = [
    "NO_TIER",
    "CouponRow",
    "EntitlementRow",
    "MembersReport",
    "TierMigrations",
    "coupon_rows",
    "entitlement_rows",
    "members_by_tier",
    "members_report",
    "tier_migrations",
]

NO_TIER = "(none)"
"""The tier label of a non-member / a member without a tier."""

COUPON_GRANTED = "coupon_granted"
COUPON_USED = "coupon_used"


def _tier(events: Sequence[Event], at: dt.datetime) -> str:
    if not membership_as_of(events, at).is_member:
        return NO_TIER
    return tier_as_of(events, at) or NO_TIER


def members_by_tier(
    histories: Mapping[str, Sequence[Event]], dates: Sequence[dt.datetime]
) -> list[tuple[dt.datetime, dict[str, int]]]:
    """For each date, how many members are in each tier (non-members are left out)."""
    out = []
    for at in dates:
        counts: dict[str, int] = {}
        for events in histories.values():
            if membership_as_of(events, at).is_member:
                t = tier_as_of(events, at) or NO_TIER
                counts[t] = counts.get(t, 0) + 1
        out.append((at, dict(sorted(counts.items()))))
    return out


@attrs.frozen(slots=True, kw_only=True)
class TierMigrations:
    """How members moved between tiers from ``start`` to ``end``.

    Attributes:
        start / end: the two times compared.
        counts: ``(from tier, to tier) -> members`` (``(none)`` for not a member / no tier).
    """

    start: dt.datetime
    end: dt.datetime
    counts: Mapping[tuple[str, str], int]

    def tiers(self, order: Sequence[str] = ()) -> list[str]:
        """Every tier named, in ``order`` first, then alphabetically, ``(none)`` first."""
        seen = {t for pair in self.counts for t in pair}
        head = [NO_TIER] if NO_TIER in seen else []
        listed = [t for t in order if t in seen and t != NO_TIER]
        rest = sorted(seen - set(listed) - {NO_TIER})
        return head + listed + rest

    def rows(self, order: Sequence[str] = ()) -> list[tuple[str, str, int]]:
        """``(from, to, members)`` rows, biggest flows first (the Sankey's links)."""
        rank = {t: i for i, t in enumerate(self.tiers(order))}
        return sorted(
            ((a, b, n) for (a, b), n in self.counts.items() if n),
            key=lambda r: (-r[2], rank[r[0]], rank[r[1]]),
        )

    def matrix(self, order: Sequence[str] = ()) -> tuple[list[str], list[list[int]]]:
        """The tiers and the from × to grid of members."""
        names = self.tiers(order)
        return names, [[self.counts.get((a, b), 0) for b in names] for a in names]

    @property
    def upgrades(self) -> int:
        """Members who moved to a different tier and were members at the start."""
        return sum(n for (a, b), n in self.counts.items() if a != b and NO_TIER not in (a, b))


def tier_migrations(
    histories: Mapping[str, Sequence[Event]], start: dt.datetime, end: dt.datetime
) -> TierMigrations:
    """Each member's tier at ``start`` and at ``end`` (members who were neither are left
    out)."""
    counts: dict[tuple[str, str], int] = {}
    for events in histories.values():
        a, b = _tier(events, start), _tier(events, end)
        if a == NO_TIER and b == NO_TIER:
            continue
        counts[(a, b)] = counts.get((a, b), 0) + 1
    return TierMigrations(start=start, end=end, counts=dict(sorted(counts.items())))


@attrs.frozen(slots=True, kw_only=True)
class EntitlementRow:
    """Usage of one benefit: granted, redeemed, expired unused, still open."""

    benefit: str
    granted: int
    redeemed: int
    expired: int
    open: int

    @property
    def usage(self) -> float:
        """``redeemed / granted``."""
        return self.redeemed / self.granted if self.granted else 0.0


def entitlement_rows(
    histories: Mapping[str, Sequence[Event]], as_of: dt.datetime
) -> list[EntitlementRow]:
    """Entitlement usage per benefit as of ``as_of``."""
    acc: dict[str, list[int]] = {}
    for events in histories.values():
        for ent in entitlements_as_of(events, as_of):
            row = acc.setdefault(ent.benefit, [0, 0, 0, 0])
            row[0] += 1
            if ent.redeemed_at is not None:
                row[1] += 1
            elif ent.expires_at <= as_of:
                row[2] += 1
            else:
                row[3] += 1
    return [
        EntitlementRow(benefit=b, granted=r[0], redeemed=r[1], expired=r[2], open=r[3])
        for b, r in sorted(acc.items())
    ]


@attrs.frozen(slots=True, kw_only=True)
class CouponRow:
    """One coupon stock: granted, used, and the revenue of the purchases that used them."""

    stock_id: str
    granted: int
    used: int
    revenue_fen: int
    discount_fen: int

    @property
    def redemption(self) -> float:
        """``used / granted``."""
        return self.used / self.granted if self.granted else 0.0


def coupon_rows(
    histories: Mapping[str, Sequence[Event]],
    as_of: dt.datetime,
    *,
    window: dt.timedelta = dt.timedelta(days=1),
) -> list[CouponRow]:
    """Coupon redemption per stock, and attributed revenue: the purchase whose
    ``transaction_id`` equals the use's, else the member's first purchase within ``window``
    after the use (each purchase attributed to at most one coupon)."""
    acc: dict[str, list[int]] = {}
    for events in histories.values():
        mine = sorted((e for e in events if e.at <= as_of), key=lambda e: (e.at, e.key or ""))
        purchases = [e for e in mine if e.type == "purchase"]
        taken: set[int] = set()
        for e in mine:
            stock = e.properties.get("stock_id")
            if not isinstance(stock, str):
                continue
            row = acc.setdefault(stock, [0, 0, 0, 0])
            if e.type == COUPON_GRANTED:
                row[0] += 1
            elif e.type == COUPON_USED:
                row[1] += 1
                value = e.properties.get("value_fen", 0)
                row[3] += value if isinstance(value, int) and not isinstance(value, bool) else 0
                tx = e.properties.get("transaction_id")
                match = next(
                    (
                        i
                        for i, p in enumerate(purchases)
                        if i not in taken and tx and p.properties.get("transaction_id") == tx
                    ),
                    None,
                )
                if match is None:
                    match = next(
                        (
                            i
                            for i, p in enumerate(purchases)
                            if i not in taken and e.at <= p.at <= e.at + window
                        ),
                        None,
                    )
                if match is not None:
                    taken.add(match)
                    amount = purchases[match].properties.get("amount_fen", 0)
                    row[2] += amount if isinstance(amount, int) else 0
    return [
        CouponRow(stock_id=s, granted=r[0], used=r[1], revenue_fen=r[2], discount_fen=r[3])
        for s, r in sorted(acc.items())
    ]


@attrs.frozen(slots=True, kw_only=True)
class MembersReport:
    """Everything the members' report shows."""

    as_of: dt.datetime
    by_tier: tuple[tuple[dt.datetime, Mapping[str, int]], ...]
    migrations: TierMigrations
    entitlements: tuple[EntitlementRow, ...]
    coupons: tuple[CouponRow, ...]
    cohorts: tuple[CohortRow, ...]
    tier_order: tuple[str, ...] = ()


def members_report(
    histories: Mapping[str, Sequence[Event]],
    *,
    dates: Sequence[dt.datetime],
    migration: tuple[dt.datetime, dt.datetime],
    cohort: tuple[dt.datetime, dt.datetime],
    as_of: dt.datetime,
    tier_order: Sequence[str] = (),
) -> MembersReport:
    """Build the members' report from every member's events (pure)."""
    return MembersReport(
        as_of=as_of,
        by_tier=tuple(members_by_tier(histories, dates)),
        migrations=tier_migrations(histories, *migration),
        entitlements=tuple(entitlement_rows(histories, as_of)),
        coupons=tuple(coupon_rows(histories, as_of)),
        cohorts=tuple(
            first_member_cohorts(
                histories, joined_from=cohort[0], joined_until=cohort[1], as_of=as_of
            )
        ),
        tier_order=tuple(tier_order),
    )
