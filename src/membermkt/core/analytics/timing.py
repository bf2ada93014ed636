"""Conversion by hour of day and weekday for any event pair (pure).

"Which hour converts best?" for follow → first purchase, send → read, scan → red-packet
claim…: every *start* event (or each member's first one) is one trial, converted when the
same member has a *goal* event in ``(start, start + within]``; trials are bucketed by the
start's local hour (0–23) or weekday (0 = Monday … 6 = Sunday) in ``tz`` (Beijing for
WeChat audiences).
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from collections.abc import Iterable

import attrs

from membermkt.core.events import Event
from membermkt.errors import UsageError

__all__ = ["TimeBucket", "conversion_by_time"]


@attrs.frozen(slots=True)
class TimeBucket:
    """One hour (0–23) or weekday (0–6): trials, conversions, rate (``None`` without
    trials)."""

    bucket: int
    starts: int
    conversions: int

    @property
    def rate(self) -> float | None:
        return self.conversions / self.starts if self.starts else None


def conversion_by_time(
    events: Iterable[Event],
    *,
    start: str,
    goal: str,
    within: dt.timedelta,
    tz: dt.tzinfo,
    by: str = "hour",
    first_only: bool = False,
) -> tuple[TimeBucket, ...]:
    """Conversion from ``start`` to ``goal`` events per local hour or weekday of the start.

    Args:
        events: events of any members, any order.
        start / goal: event types (may be equal only if you mean "a second one").
        within: the conversion window after each start (positive).
        tz: the time zone of the buckets.
        by: ``"hour"`` (24 buckets) or ``"weekday"`` (7, Monday = 0).
        first_only: count only each member's first start (e.g. follow → first purchase).

    Returns:
        Every bucket, in order, empty ones included.

    Raises:
        UsageError: for an unknown ``by`` or a non-positive window.
    """
    if by not in ("hour", "weekday"):
        raise UsageError(f"by must be 'hour' or 'weekday', got {by!r}")
    if within <= dt.timedelta(0):
        raise UsageError("the conversion window must be positive")
    starts: dict[str, list[dt.datetime]] = {}
    goals: dict[str, list[dt.datetime]] = {}
    for e in events:
        if e.type == start:
            starts.setdefault(e.member_id, []).append(e.at)
        if e.type == goal:
            goals.setdefault(e.member_id, []).append(e.at)
    n = 24 if by == "hour" else 7
    trials = [0] * n
    wins = [0] * n
    for member, times in starts.items():
        times.sort()
        if first_only:
            times = times[:1]
        member_goals = sorted(goals.get(member, ()))
        for t in times:
            local = t.astimezone(tz)
            b = local.hour if by == "hour" else local.weekday()
            trials[b] += 1
            i = bisect_right(member_goals, t)
            if i < len(member_goals) and member_goals[i] <= t + within:
                wins[b] += 1
    return tuple(TimeBucket(b, trials[b], wins[b]) for b in range(n))
