"""Cohorts: retention by follow week or month.

A member's cohort is the period (ISO week starting Monday, or calendar month, in UTC) of their
first ``follow`` event at or before ``as_of``. They are *retained* in the period ``k`` periods
later when they had any interaction event (see
:data:`membermkt.core.events.INTERACTION_TYPES`) in it. Offset 0 always counts the cohort's
own follows, so it equals the cohort size. Offsets run up to the period containing
``as_of`` (at most ``max_periods`` of them): the familiar triangle.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

import attrs

from membermkt.core.analytics._common import History, Table, check_as_of
from membermkt.core.events import INTERACTION_TYPES
from membermkt.errors import UsageError

__all__ = ["PERIODS", "CohortResult", "CohortRow", "cohort_result", "cohorts", "period_start"]

PERIODS: Final = ("week", "month")


def _check_period(period: object) -> str:
    if period not in PERIODS:
        raise UsageError(f"cohort period must be 'week' or 'month', got {period!r}")
    assert isinstance(period, str)
    return period


def period_start(at: dt.datetime, period: str) -> dt.date:
    """The first day (UTC) of the week (Monday) or month containing ``at``."""
    d = at.astimezone(dt.UTC).date()
    if period == "week":
        return d - dt.timedelta(days=d.weekday())
    return d.replace(day=1)


def period_offset(start: dt.date, later: dt.date, period: str) -> int:
    """Whole periods from ``start`` to ``later`` (both period starts)."""
    if period == "week":
        return (later - start).days // 7
    return (later.year - start.year) * 12 + later.month - start.month


@attrs.frozen(slots=True, kw_only=True)
class CohortRow:
    """One cohort: its first day, size, and members retained at each offset."""

    start: dt.date
    size: int
    retained: tuple[int, ...]

    def rates(self) -> tuple[float, ...]:
        """Retention rates per offset."""
        return tuple(r / self.size for r in self.retained) if self.size else ()


@attrs.frozen(slots=True, kw_only=True)
class CohortResult:
    """The retention triangle.

    Attributes:
        period: ``"week"`` or ``"month"``.
        as_of: the evaluation time.
        rows: cohorts, oldest first.
    """

    period: str
    as_of: dt.datetime
    rows: tuple[CohortRow, ...]

    def matrix(self) -> tuple[tuple[float | None, ...], ...]:
        """Retention rates as a rectangle (``None`` where the offset is in the future)."""
        width = max((len(r.retained) for r in self.rows), default=0)
        return tuple(tuple(r.rates()) + (None,) * (width - len(r.retained)) for r in self.rows)

    def table(self) -> Table:
        """One row per (cohort, offset)."""
        rows: list[tuple[Any, ...]] = []
        for r in self.rows:
            for k, (n, rate) in enumerate(zip(r.retained, r.rates(), strict=True)):
                rows.append((r.start, r.size, k, n, rate))
        return Table(
            ("cohort", "size", "offset", "retained", "rate"),
            tuple(rows),
            title=f"Retention by follow {self.period}",
        )

    def _repr_html_(self) -> str:
        import html

        width = max((len(r.retained) for r in self.rows), default=0)
        head = "".join(f"<th>+{k}</th>" for k in range(width))
        body = "".join(
            f"<tr><td>{r.start}</td><td>{r.size}</td>"
            + "".join(f"<td>{x:.0%}</td>" for x in r.rates())
            + "<td></td>" * (width - len(r.retained))
            + "</tr>"
            for r in self.rows
        )
        return (
            f"<p><b>Cohorts</b> by follow {html.escape(self.period)}</p>"
            f'<table class="membermkt"><thead><tr><th>cohort</th><th>size</th>{head}</tr>'
            f"</thead><tbody>{body}</tbody></table>"
        )


def cohort_result(
    *,
    period: str,
    as_of: dt.datetime,
    max_periods: int,
    sizes: Mapping[dt.date, int],
    retained: Mapping[tuple[dt.date, int], int],
) -> CohortResult:
    """Assemble the triangle from cohort sizes and ``(cohort, offset) → members`` counts."""
    as_of = check_as_of(as_of)
    last = period_start(as_of, period)
    rows = []
    for start in sorted(sizes):
        width = min(max_periods, period_offset(start, last, period) + 1)
        rows.append(
            CohortRow(
                start=start,
                size=sizes[start],
                retained=tuple(retained.get((start, k), 0) for k in range(width)),
            )
        )
    return CohortResult(period=period, as_of=as_of, rows=tuple(rows))


def cohorts(
    history: History, *, as_of: dt.datetime, period: str = "week", max_periods: int = 12
) -> CohortResult:
    """Retention by follow week or month.

    Raises:
        UsageError: for a bad period, ``max_periods`` or ``as_of``.
    """
    as_of = check_as_of(as_of)
    period = _check_period(period)
    if isinstance(max_periods, bool) or not isinstance(max_periods, int) or max_periods < 1:
        raise UsageError(f"max_periods must be a positive int, got {max_periods!r}")
    sizes: dict[dt.date, int] = {}
    retained: dict[tuple[dt.date, int], int] = {}
    for _member, events in history:
        first = min(
            (e.at_utc for e in events if e.type == "follow" and e.at <= as_of), default=None
        )
        if first is None:
            continue
        start = period_start(first, period)
        sizes[start] = sizes.get(start, 0) + 1
        offsets = {
            period_offset(start, period_start(e.at, period), period)
            for e in events
            if e.type in INTERACTION_TYPES and e.at <= as_of and e.at >= first
        }
        for k in offsets:
            if 0 <= k < max_periods:
                retained[(start, k)] = retained.get((start, k), 0) + 1
    return cohort_result(
        period=period, as_of=as_of, max_periods=max_periods, sizes=sizes, retained=retained
    )
