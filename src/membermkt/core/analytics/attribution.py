"""Attribution: acquisition source → members → followers → buyers → revenue, and campaign
conversions against a holdout.

The source is the member's first-touch acquisition ``source`` (a QR scene, a WeCom
contact-way state, a platform tag — whatever the follow/scan/contact event carried), see
:class:`membermkt.core.members.MemberState`. Followers, buyers, orders and revenue count the
member's events at or before ``as_of``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from membermkt.core.analytics._common import (
    History,
    Table,
    check_as_of,
    group_label,
    matches_where,
    to_where,
)
from membermkt.errors import UsageError

__all__ = [
    "ArmStats",
    "AttributionResult",
    "AttributionRow",
    "LiftResult",
    "attribution",
    "campaign_lift",
    "lift_from_conversions",
]


@attrs.frozen(slots=True, kw_only=True)
class AttributionRow:
    """One acquisition source's numbers."""

    source: str
    members: int
    followers: int
    buyers: int
    orders: int
    revenue_fen: int

    @property
    def buyer_rate(self) -> float | None:
        """Buyers per member of this source."""
        return self.buyers / self.members if self.members else None

    @property
    def revenue_per_member_fen(self) -> float | None:
        """Revenue per member of this source (fen)."""
        return self.revenue_fen / self.members if self.members else None


@attrs.frozen(slots=True, kw_only=True)
class AttributionResult:
    """Per-source numbers, sorted by revenue (descending), then source."""

    as_of: dt.datetime
    rows: tuple[AttributionRow, ...]

    def row(self, source: str) -> AttributionRow | None:
        """The row of ``source`` (``"(unknown)"`` for members without one)."""
        return next((r for r in self.rows if r.source == source), None)

    def totals(self) -> AttributionRow:
        """All sources together."""
        return AttributionRow(
            source="(all)",
            members=sum(r.members for r in self.rows),
            followers=sum(r.followers for r in self.rows),
            buyers=sum(r.buyers for r in self.rows),
            orders=sum(r.orders for r in self.rows),
            revenue_fen=sum(r.revenue_fen for r in self.rows),
        )

    def table(self) -> Table:
        """One row per source, then the total."""
        return Table(
            ("source", "members", "followers", "buyers", "orders", "revenue_fen", "buyer_rate"),
            tuple(
                (r.source, r.members, r.followers, r.buyers, r.orders, r.revenue_fen, r.buyer_rate)
                for r in (*self.rows, self.totals())
            ),
            title="Attribution by acquisition source",
        )

    def _repr_html_(self) -> str:
        return f"<p><b>Attribution</b> as of {self.as_of:%Y-%m-%d}</p>" + self.table().to_html()


def rows_sorted(rows: Iterable[AttributionRow]) -> tuple[AttributionRow, ...]:
    """Rows in result order: revenue descending, then source."""
    return tuple(sorted(rows, key=lambda r: (-r.revenue_fen, r.source)))


def attribution(history: History, *, as_of: dt.datetime) -> AttributionResult:
    """Members, followers, buyers, orders and revenue per acquisition source.

    Raises:
        UsageError: for a bad ``as_of``.
    """
    as_of = check_as_of(as_of)
    acc: dict[str, list[int]] = {}
    for member, events in history:
        followed = False
        orders = 0
        revenue = 0
        for e in events:
            if e.at > as_of:
                continue
            if e.type == "follow":
                followed = True
            elif e.type == "purchase":
                orders += 1
                amount = e.properties.get("amount_fen", 0)
                revenue += amount if isinstance(amount, int) else 0
        a = acc.setdefault(group_label(member.state.source), [0, 0, 0, 0, 0])
        a[0] += 1
        a[1] += followed
        a[2] += orders > 0
        a[3] += orders
        a[4] += revenue
    return AttributionResult(
        as_of=as_of,
        rows=rows_sorted(
            AttributionRow(
                source=s, members=a[0], followers=a[1], buyers=a[2], orders=a[3], revenue_fen=a[4]
            )
            for s, a in acc.items()
        ),
    )


@attrs.frozen(slots=True, kw_only=True)
class ArmStats:
    """One arm of a campaign (targeted members or holdout)."""

    members: int
    converted: int
    revenue_fen: int

    @property
    def rate(self) -> float | None:
        """Conversion rate (``None`` for an empty arm)."""
        return self.converted / self.members if self.members else None

    @property
    def revenue_per_member_fen(self) -> float | None:
        """Revenue per member (fen)."""
        return self.revenue_fen / self.members if self.members else None


@attrs.frozen(slots=True, kw_only=True)
class LiftResult:
    """Campaign conversions against the holdout.

    Attributes:
        treatment / holdout: the two arms.
        start / end: the conversion window ``(start, end]``.
    """

    treatment: ArmStats
    holdout: ArmStats
    start: dt.datetime
    end: dt.datetime

    @property
    def uplift(self) -> float | None:
        """Absolute uplift: treatment rate − holdout rate."""
        t, h = self.treatment.rate, self.holdout.rate
        return None if t is None or h is None else t - h

    @property
    def relative_uplift(self) -> float | None:
        """Treatment rate / holdout rate − 1 (``None`` when the holdout never converted)."""
        t, h = self.treatment.rate, self.holdout.rate
        return None if t is None or not h else t / h - 1

    @property
    def incremental_revenue_fen(self) -> float | None:
        """(Revenue per treated member − per holdout member) × treated members."""
        t, h = self.treatment.revenue_per_member_fen, self.holdout.revenue_per_member_fen
        return None if t is None or h is None else (t - h) * self.treatment.members

    def table(self) -> Table:
        """One row per arm."""
        rows: list[tuple[Any, ...]] = [
            ("treatment", a.members, a.converted, a.rate, a.revenue_fen)
            if name == "t"
            else ("holdout", a.members, a.converted, a.rate, a.revenue_fen)
            for name, a in (("t", self.treatment), ("h", self.holdout))
        ]
        return Table(
            ("arm", "members", "converted", "rate", "revenue_fen"), tuple(rows), title="Lift"
        )

    def _repr_html_(self) -> str:
        up = "n/a" if self.uplift is None else f"{self.uplift:+.2%}"
        return f"<p><b>Campaign lift</b>: uplift {up}</p>" + self.table().to_html()


def lift_from_conversions(
    *,
    treatment: Iterable[str],
    holdout: Iterable[str],
    conversions: Mapping[str, int],
    start: dt.datetime,
    end: dt.datetime,
) -> LiftResult:
    """Lift from member ids and ``conversions`` (member id → revenue in fen of every member
    who converted).

    Raises:
        UsageError: when a member is in both arms, or the window is empty.
    """
    start, end = check_as_of(start, "start"), check_as_of(end, "end")
    if end <= start:
        raise UsageError(f"conversion window is empty: start {start} must be before end {end}")
    t = frozenset(treatment)
    h = frozenset(holdout)
    both = t & h
    if both:
        raise UsageError(f"{len(both)} members are in both the treatment and the holdout")

    def arm(ids: frozenset[str]) -> ArmStats:
        conv = [conversions[i] for i in ids if i in conversions]
        return ArmStats(members=len(ids), converted=len(conv), revenue_fen=sum(conv))

    return LiftResult(treatment=arm(t), holdout=arm(h), start=start, end=end)


def campaign_lift(
    history: History,
    *,
    treatment: Iterable[str],
    holdout: Iterable[str],
    start: dt.datetime,
    end: dt.datetime,
    event: str = "purchase",
    where: Mapping[str, object] | None = None,
) -> LiftResult:
    """Conversions (at least one ``event`` matching ``where`` in ``(start, end]``) and the
    revenue of those events, treatment against holdout.

    Raises:
        UsageError: see :func:`lift_from_conversions`.
    """
    start_u, end_u = check_as_of(start, "start"), check_as_of(end, "end")
    flt = to_where(where)
    conv: dict[str, int] = {}
    for member, events in history:
        for e in events:
            if e.type == event and start_u < e.at <= end_u and matches_where(e, flt):
                amount = e.properties.get("amount_fen", 0)
                conv[member.id] = conv.get(member.id, 0) + (
                    amount if isinstance(amount, int) and not isinstance(amount, bool) else 0
                )
    return lift_from_conversions(
        treatment=treatment, holdout=holdout, conversions=conv, start=start_u, end=end_u
    )
