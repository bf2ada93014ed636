"""Attribution: acquisition source → members → followers → buyers → revenue, and campaign
conversions against a holdout.

A source is an acquisition ``source`` (a QR scene, a WeCom contact-way state — whatever the
follow/scan/contact event carried). A source is credited only with revenue after the member
arrived through it (first touch or last touch, optionally within a window); orders placed
before the arrival are not the source's doing. Everything counts the member's events at or
before ``as_of``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

from membermkt.core.analytics._common import (
    History,
    Table,
    check_as_of,
    group_label,
    matches_where,
    to_where,
)
from membermkt.core.events import ACQUISITION_TYPES, Event, source_version
from membermkt.errors import UsageError

__all__ = [
    "ATTRIBUTION_MODELS",
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
    #: Members with any purchase at or before ``as_of``, credited to a source or not. A
    #: member who bought only before arriving (or outside the window) is a buyer here but in
    #: no row's ``buyers``, so the total is kept apart rather than summed from the rows.
    #: ``None`` (results built by hand) falls back to the sum of the rows.
    buyers: int | None = None

    def row(self, source: str) -> AttributionRow | None:
        """The row of ``source`` (``"(unknown)"`` for members without one)."""
        return next((r for r in self.rows if r.source == source), None)

    def totals(self) -> AttributionRow:
        """All sources together; ``buyers`` counts every member who bought (see
        :attr:`buyers`), not only buyers credited to their own source."""
        return AttributionRow(
            source="(all)",
            members=sum(r.members for r in self.rows),
            followers=sum(r.followers for r in self.rows),
            buyers=sum(r.buyers for r in self.rows) if self.buyers is None else self.buyers,
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


ATTRIBUTION_MODELS: Final = ("first_touch", "last_touch")
"""How revenue is credited to acquisition sources (see :func:`attribution`)."""


def _touches(events: Iterable[Event], as_of: dt.datetime) -> list[tuple[Any, str]]:
    out = []
    for e in events:
        if e.type in ACQUISITION_TYPES and e.at <= as_of:
            src = e.properties.get("source")
            if isinstance(src, str) and src:
                out.append((source_version(e, src), src))
    out.sort()
    return out


def attribution(
    history: History,
    *,
    as_of: dt.datetime,
    model: str = "first_touch",
    window: dt.timedelta | None = None,
) -> AttributionResult:
    """Members, followers, buyers, orders and revenue per acquisition source.

    A source is credited only with purchases **at or after the member arrived through it**
    (and within ``window`` of that arrival, when given):

    * ``"first_touch"``: the member belongs to their first source (the earliest acquisition
      event with a ``source`` at or before ``as_of``) and it is credited with their
      purchases from that arrival on;
    * ``"last_touch"``: each purchase is credited to the latest touch at or before it; the
      member is counted under their latest source as of ``as_of``.

    Purchases no source is credited with (before any arrival, outside the window, or of
    members without a source) count in the ``"(unknown)"`` row's orders and revenue; that
    row's members and buyers are the members without a source.

    Raises:
        UsageError: for a bad ``as_of``, an unknown ``model`` or a non-positive ``window``.
    """
    as_of = check_as_of(as_of)
    if model not in ATTRIBUTION_MODELS:
        raise UsageError(f"unknown attribution model {model!r}; expected {ATTRIBUTION_MODELS}")
    if window is not None and (not isinstance(window, dt.timedelta) or window <= dt.timedelta(0)):
        raise UsageError(f"window must be a positive timedelta or None, got {window!r}")
    unknown = group_label(None)
    acc: dict[str, list[int]] = {}
    all_buyers = 0

    def row(label: str) -> list[int]:
        return acc.setdefault(label, [0, 0, 0, 0, 0])

    for _member, events in history:
        evs = [e for e in events if e.at <= as_of]
        touches = _touches(evs, as_of)
        followed = any(e.type == "follow" for e in evs)
        if touches:
            home = touches[0][1] if model == "first_touch" else touches[-1][1]
        else:
            home = unknown
        r = row(home)
        r[0] += 1
        r[1] += followed
        bought_home = False
        all_buyers += any(e.type == "purchase" for e in evs)
        for e in evs:
            if e.type != "purchase":
                continue
            amount = e.properties.get("amount_fen", 0)
            amount = amount if isinstance(amount, int) else 0
            credit = unknown
            candidates = touches[:1] if model == "first_touch" else touches
            for (at, _tie), src in reversed(candidates):
                if at <= e.at:
                    if window is None or e.at <= at + window:
                        credit = src
                    break
            c = row(credit)
            c[3] += 1
            c[4] += amount
            if credit == home:
                bought_home = True
        r[2] += bought_home
    return AttributionResult(
        as_of=as_of,
        rows=rows_sorted(
            AttributionRow(
                source=s, members=a[0], followers=a[1], buyers=a[2], orders=a[3], revenue_fen=a[4]
            )
            for s, a in acc.items()
        ),
        buyers=all_buyers,
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
