"""Store-backed analytics in SQL: the database does the GROUP BYs and window functions.

:class:`SqlAnalytics` runs every analysis of :mod:`membermkt.core.analytics` against the
tables of a :class:`~membermkt.stores.sql.SqlStore` (schema in
:mod:`membermkt.stores.sql.schema`: instants are BIGINT microseconds, event properties a
JSON text column) and returns exactly what the pure functions return on the same data
(property-tested on SQLite, and on PostgreSQL when ``MEMBERMKT_TEST_POSTGRES_URL`` is set).

No query brings the event log into Python: aggregations come back as one row per member
(RFM, streamed), per group or per (node, node) pair. The one exception is the staff
first-reply time, which streams the WeCom *conversation* messages in (staff, member, time)
order through a constant-memory tracker.

Supported dialects: SQLite (JSON1), PostgreSQL, MySQL/MariaDB (``JSON_VALUE``; tested on
MariaDB) and DuckDB (:mod:`membermkt.analytics.duck`). Other dialects make
:func:`membermkt.analytics.sql_runner` return ``None`` and the generic (port-based) runner is
used instead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from membermkt.analytics.sql._base import SUPPORTED_DIALECTS, _SqlBase
from membermkt.analytics.sql._flows import _FlowsMixin
from membermkt.analytics.sql._json import (
    MONDAY_US,
    US_PER_DAY,
    US_PER_WEEK,
    _month_bounds,
    _month_start,
    _week_start,
    from_us,
    to_us,
)
from membermkt.core import analytics as core
from membermkt.core.analytics._common import check_as_of
from membermkt.core.analytics.activity import DEFAULT_WINDOWS
from membermkt.core.analytics.cohorts import _check_period, cohort_result
from membermkt.core.analytics.rfm import DEFAULT_RFM_GROUPS, _check_bins, _check_groups, group_for
from membermkt.core.analytics.staff import staff_rows
from membermkt.core.events import INTERACTION_TYPES
from membermkt.errors import UsageError
from membermkt.stores.sql.compile import type_in

__all__ = ["SUPPORTED_DIALECTS", "SqlAnalytics"]

_MASK_BITS = 62
"""Periods per cohort bit mask (``1 << 62`` still fits a BIGINT: masks and their bounds do)."""


def _clamp(x: Any, hi: int) -> Any:
    """``x`` clamped to ``[0, hi]`` (a CASE: no GREATEST/LEAST or scalar MAX across
    dialects)."""
    return sa.case((x < 0, 0), (x > hi, hi), else_=x)


def _bisect_case(col: Any, bounds: list[tuple[int, int]]) -> Any:
    """The index of the last ``(index, start)`` of ``bounds`` (ascending) with
    ``start <= col`` as nested CASEs (a binary search: depth log2 of the months, not one
    comparison per month), NULL before the first."""
    if len(bounds) == 1:
        ((i, b),) = bounds
        return sa.case((col >= b, i), else_=sa.null())
    mid = len(bounds) // 2
    return sa.case(
        (col >= bounds[mid][1], _bisect_case(col, bounds[mid:])),
        else_=_bisect_case(col, bounds[:mid]),
    )


class SqlAnalytics(_FlowsMixin, _SqlBase):
    """Analytics computed by the database behind a SQL store.

    Args:
        engine: the store's SQLAlchemy engine.
        tables: the store's :class:`~membermkt.stores.sql.schema.Tables`.

    Raises:
        UsageError: for an unsupported dialect (see :data:`SUPPORTED_DIALECTS`).
    """

    # ------------------------------------------------------------------ RFM

    def rfm(
        self,
        *,
        as_of: dt.datetime,
        bins: int = 5,
        groups: Sequence[core.RFMGroup] = DEFAULT_RFM_GROUPS,
    ) -> core.RFMResult:
        """RFM scores (positions computed in SQL with ``ROW_NUMBER() OVER``); see
        :func:`membermkt.core.analytics.rfm`."""
        as_of = check_as_of(as_of)
        bins = _check_bins(bins)
        rules = _check_groups(groups)
        e = self._e
        as_of_us = to_us(as_of)
        amount = self._purchase_amount()
        per = (
            sa.select(
                e.c.member_id.label("mid"),
                sa.func.max(e.c.at).label("last"),
                sa.func.count().label("n"),
                sa.func.sum(amount).label("tot"),
            )
            .where(e.c.type == "purchase", e.c.at <= as_of_us)
            .group_by(e.c.member_id)
            .subquery("per")
        )
        mid = self._binary(per.c.mid)
        # position in a total order; ties broken by the other dimensions, then the id
        q = sa.select(
            per.c.mid,
            per.c.last,
            per.c.n,
            per.c.tot,
            sa.func.row_number().over(order_by=(per.c.last, per.c.n, per.c.tot, mid)),
            sa.func.row_number().over(order_by=(per.c.n, per.c.tot, per.c.last, mid)),
            sa.func.row_number().over(order_by=(per.c.tot, per.c.n, per.c.last, mid)),
            sa.func.count().over(),
        ).order_by(mid)
        scores = []
        for mid_, last, n, tot, rr, fr, mr, total in self._stream(q):
            r = 1 + (bins * (rr - 1)) // total
            f = 1 + (bins * (fr - 1)) // total
            m = 1 + (bins * (mr - 1)) // total
            scores.append(
                core.RFMScore(
                    member_id=mid_,
                    recency_days=(as_of_us - int(last)) // US_PER_DAY,
                    frequency=int(n),
                    monetary_fen=int(tot),
                    r=r,
                    f=f,
                    m=m,
                    group=group_for(r, f, m, bins, rules),
                )
            )
        return core.RFMResult(as_of=as_of, bins=bins, scores=tuple(scores), groups=rules)

    def activity_counts(
        self,
        *,
        as_of: dt.datetime,
        windows: core.ActivityWindows = DEFAULT_WINDOWS,
        by: str | None = None,
    ) -> core.ActivityResult:
        """Activity classes counted with one ``GROUP BY`` over the members' state as of
        ``as_of`` (``last_active_at``, ``subscribed``, ``wecom_contact`` and a ``source``
        grouping are folded from the events up to ``as_of`` for members with later
        events)."""
        as_of = check_as_of(as_of)
        now = to_us(as_of)
        group = self._by(by, as_of)
        state_cols = [
            self._state("last_active_at", as_of).label("last"),
            self._state("subscribed", as_of).label("sub"),
            self._state("wecom_contact", as_of).label("con"),
        ]
        if group is not None:
            state_cols.append(group.label("g"))
        # materialised once: each derived column may be a correlated subquery
        st = sa.select(*state_cols).select_from(self._m).cte("state_as_of")
        if self.dialect in ("postgresql", "sqlite", "duckdb"):  # MariaDB has no MATERIALIZED
            st = st.prefix_with("MATERIALIZED")
        last, sub, con = st.c.last, st.c.sub, st.c.con
        # churned when every channel the member had is lost (#14: WeCom relations count)
        lost = sa.and_(
            sa.or_(sub == 0, con == 0),
            sa.or_(sub.is_(None), sub == 0),
            sa.or_(con.is_(None), con == 0),
        )
        cls = sa.case(
            (lost, 3),
            (last.is_(None), 3),
            (last >= now - windows.active_days * US_PER_DAY, 0),
            (last >= now - windows.dormant_days * US_PER_DAY, 1),
            (last >= now - windows.churn_days * US_PER_DAY, 2),
            else_=3,
        ).label("cls")
        cols = [cls, sa.func.count()] if group is None else [st.c.g, cls, sa.func.count()]
        q = sa.select(*cols).select_from(st).group_by(*cols[:-1])
        total = [0, 0, 0, 0]
        per: dict[str, list[int]] = {}
        for row in self._rows(q):
            if group is None:
                c, n = row
            else:
                g, c, n = row
                per.setdefault(g, [0, 0, 0, 0])[c] += n
            total[c] += n
        return core.ActivityResult(
            as_of=as_of,
            windows=windows,
            counts=tuple(total),
            by=by,
            groups=tuple((g, tuple(c)) for g, c in sorted(per.items())),
        )

    # ------------------------------------------------------------------ cohorts

    def cohorts(
        self, *, as_of: dt.datetime, period: str = "week", max_periods: int = 12
    ) -> core.CohortResult:
        """Retention triangle in one pass over the events in member order (the
        ``(member_id, type, at)`` index): per member, the first follow and the periods with
        an interaction as bit masks (``1 << (period - first period with a follow)``,
        ``SUM(DISTINCT ...)`` on SQLite, ``BIT_OR`` elsewhere, 62 periods per mask); then
        per member only the bits of its cohort's offsets ``0 .. max_periods - 1`` are kept
        and the members are counted per (cohort, masks), decoded here. No distinct pass
        over (member, period) pairs and no join."""
        as_of = check_as_of(as_of)
        period = _check_period(period)
        if isinstance(max_periods, bool) or not isinstance(max_periods, int) or max_periods < 1:
            raise UsageError(f"max_periods must be a positive int, got {max_periods!r}")
        e = self._e
        now = to_us(as_of)
        lo_q = sa.select(sa.func.min(e.c.at)).where(e.c.type == "follow", e.c.at <= now)
        lo = self._rows(lo_q)[0][0]
        if lo is None:
            return cohort_result(
                period=period, as_of=as_of, max_periods=max_periods, sizes={}, retained={}
            )
        if period == "week":
            base = (int(lo) - MONDAY_US) // US_PER_WEEK
            periods = (now - MONDAY_US) // US_PER_WEEK - base + 1

            def index(col: Any) -> Any:
                return (col - MONDAY_US) // US_PER_WEEK

            def start_us(i: int) -> int:
                return MONDAY_US + i * US_PER_WEEK

        else:
            bounds = _month_bounds(from_us(lo), as_of)
            base, periods = bounds[0][0], len(bounds)

            def index(col: Any) -> Any:
                return _bisect_case(col, bounds)

            def start_us(i: int) -> int:
                return to_us(dt.datetime.combine(_month_start(i), dt.time(), dt.UTC))

        # p: the event's period counted from the first period with a follow (0 .. periods-1)
        p = index(e.c.at) - base
        if self.dialect in ("postgresql", "duckdb"):  # bigint << integer (DuckDB: // is FLOOR)
            p = sa.cast(p, sa.Integer)
        one = sa.cast(sa.literal(1), sa.BigInteger)
        chunks = range(0, periods, _MASK_BITS)
        bit_cols = []
        for j in chunks:
            # the chunk's periods as a time range: p (a CASE per month) is computed once
            in_chunk = [e.c.at >= start_us(base + j)]
            if j + _MASK_BITS < periods:
                in_chunk.append(e.c.at < start_us(base + j + _MASK_BITS))
            bit = sa.case((sa.and_(*in_chunk), one.op("<<")(p - j)))
            ors = sa.func.sum(sa.distinct(bit)) if self.dialect == "sqlite" else sa.func.bit_or(bit)
            bit_cols.append(sa.cast(ors, sa.BigInteger).label(f"a{j}"))
        first_at = sa.func.min(sa.case((e.c.type == "follow", e.c.at)))
        agg = (
            sa.select(first_at.label("first"), *bit_cols)
            .where(
                # SQLite: ``+type`` (``compile.type_in``) — SQLite 3.40 returns rows past
                # ``at <= ?`` when it seeks each type in the (member_id, type, at) index
                type_in(e.c.type, sorted(INTERACTION_TYPES), self.dialect),
                e.c.at <= now,
            )
            .group_by(e.c.member_id)
            .subquery("agg")
        )
        # the cohort from the aggregate's column, not from the aggregate: SQLite would
        # compute a MIN per reference (positional parameters make the copies differ)
        per = (
            sa.select(index(agg.c.first).label("c"), *(agg.c[f"a{j}"] for j in chunks))
            .where(agg.c.first.is_not(None))
            .subquery("per_member")
        )
        # keep the bits of offsets 0 .. max_periods - 1 of the member's own cohort
        width = min(max_periods, periods)  # no offset reaches past the period of as_of
        rel = per.c.c - base
        if self.dialect in ("postgresql", "duckdb"):
            rel = sa.cast(rel, sa.Integer)
        kept = []
        for j in chunks:
            lo_bit, hi_bit = _clamp(rel - j, _MASK_BITS), _clamp(rel - j + width, _MASK_BITS)
            window = one.op("<<")(hi_bit) - one.op("<<")(lo_bit)
            kept.append(per.c[f"a{j}"].op("&")(window).label(f"k{j}"))
        keys = [per.c.c, *kept]
        q = sa.select(*keys, sa.func.count()).where(per.c.c.is_not(None)).group_by(per.c.c, *kept)
        start_of = _week_start if period == "week" else _month_start
        sizes: dict[dt.date, int] = {}
        retained: dict[tuple[dt.date, int], int] = {}
        for c, *masks, n in self._rows(q):
            start = start_of(int(c))
            n = int(n)
            sizes[start] = sizes.get(start, 0) + n
            for j, m in zip(chunks, masks, strict=True):
                m = int(m or 0)
                k = j - (int(c) - base)  # the offset of bit 0 of this chunk
                while m:
                    if m & 1:
                        retained[(start, k)] = retained.get((start, k), 0) + n
                    m >>= 1
                    k += 1
        return cohort_result(
            period=period, as_of=as_of, max_periods=max_periods, sizes=sizes, retained=retained
        )

    # ------------------------------------------------------------------ staff

    def _staff_messages(
        self, now: int, since: dt.datetime | None
    ) -> tuple[Any, Any, tuple[Any, ...]]:
        """The ``staff`` and ``direction`` columns and the conditions of the WeCom
        conversation messages (``in`` / ``out``) of the period."""
        e = self._e
        staff = self._json.text("staff")
        direction = self._json.text("direction")
        where = (
            e.c.type == "message",
            self._json.equals("channel", "wecom"),
            staff != "",
            direction.in_(["in", "out"]),
            self._period(now, since),
        )
        return staff, direction, where

    def _staff_contacts(self, staff: Any, now: int, since: dt.datetime | None) -> Any:
        """Contacts added / deleted per staff member, event type and ``by``, in the period."""
        e = self._e
        by = self._json.text("by")
        return (
            sa.select(staff, e.c.type, by, sa.func.count())
            .where(
                type_in(e.c.type, ["contact_added", "contact_deleted"], self.dialect),
                staff != "",
                self._period(now, since),
            )
            .group_by(staff, e.c.type, by)
        )

    def staff_metrics(
        self, *, as_of: dt.datetime, since: dt.datetime | None = None
    ) -> core.StaffResult:
        """Staff metrics: contacts with a GROUP BY, conversations streamed in order."""
        as_of = check_as_of(as_of)
        e = self._e
        now = to_us(as_of)
        staff, direction, conversation = self._staff_messages(now, since)
        msgs_q = (
            sa.select(staff.label("staff"), e.c.member_id, e.c.at, direction.label("dir"))
            .where(*conversation)
            .order_by(staff, e.c.member_id, e.c.at, direction)
        )
        contacts_q = self._staff_contacts(staff, now, since)
        contacts = [(s, t, b, int(n)) for s, t, b, n in self._rows(contacts_q)]
        messages = ((s, mid, from_us(at), d) for s, mid, at, d in self._stream(msgs_q))
        rows, daily = staff_rows(messages=messages, contacts=contacts)
        lo = check_as_of(since, "since") if since is not None else None
        return core.StaffResult(since=lo, as_of=as_of, rows=rows, daily=daily)
