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
    _month_start_us,
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

__all__ = ["SUPPORTED_DIALECTS", "SqlAnalytics"]

_MASK_BITS = 62
"""Offsets per cohort bit mask (``1 << 61`` is the highest bit: sums stay in a BIGINT)."""


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
        amount = sa.func.coalesce(self._json.number("amount_fen", integer=True), 0)
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
        """Retention triangle: first follow per member (materialised once, with its cohort
        period and the end of its last counted period), then per member the set of offsets
        with an interaction event as a bit mask (``SUM(DISTINCT 1 << offset)``, one
        correlated lookup of the member's events in the ``(member_id, type, at)`` index,
        limited to ``[first follow, end]``), counted per (cohort, masks). No distinct pass
        over (member, period) pairs: the masks are decoded here, one row per distinct
        (cohort, masks)."""
        as_of = check_as_of(as_of)
        period = _check_period(period)
        if isinstance(max_periods, bool) or not isinstance(max_periods, int) or max_periods < 1:
            raise UsageError(f"max_periods must be a positive int, got {max_periods!r}")
        e = self._e
        now = to_us(as_of)
        follows = (
            sa.select(e.c.member_id.label("mid"), sa.func.min(e.c.at).label("first"))
            .where(e.c.type == "follow", e.c.at <= now)
            .group_by(e.c.member_id)
            .subquery("follows")
        )
        lo = self._rows(sa.select(sa.func.min(e.c.at)).where(e.c.type == "follow", e.c.at <= now))
        if lo[0][0] is None:
            return cohort_result(
                period=period, as_of=as_of, max_periods=max_periods, sizes={}, retained={}
            )
        lo_dt = from_us(lo[0][0])
        if period == "week":

            def index(col: Any) -> Any:
                return (col - MONDAY_US) // US_PER_WEEK

            # no offset reaches past the period of as_of
            width = min(max_periods, (now - MONDAY_US) // US_PER_WEEK - index(lo[0][0]) + 1)

            def stop(c: Any) -> Any:
                return MONDAY_US + (c + width) * US_PER_WEEK

        else:
            bounds = _month_bounds(lo_dt, as_of)
            width = min(max_periods, len(bounds))

            def index(col: Any) -> Any:
                return sa.case(*((col >= b, i) for i, b in reversed(bounds)), else_=-1_000_000)

            def stop(c: Any) -> Any:
                return sa.case(*((c == i, _month_start_us(i + width)) for i, _ in bounds))

        ff = sa.select(follows.c.mid, follows.c.first, index(follows.c.first).label("c")).subquery(
            "ff"
        )
        first = sa.select(ff, stop(ff.c.c).label("stop")).cte("first_follow")
        if self.dialect in ("postgresql", "sqlite", "duckdb"):  # MariaDB has no MATERIALIZED
            first = first.prefix_with("MATERIALIZED")
        ev = e.alias("ev")
        offset = index(ev.c.at) - first.c.c
        if self.dialect == "postgresql":  # bigint << integer
            offset = sa.cast(offset, sa.Integer)
        masks = []
        for j in range(0, width, _MASK_BITS):
            in_chunk = sa.and_(offset >= j, offset < j + _MASK_BITS)
            one = sa.cast(sa.literal(1), sa.BigInteger)
            bit = sa.case((in_chunk, one.op("<<")(offset - j)))
            masks.append(
                sa.select(sa.func.sum(sa.distinct(bit)))
                .where(
                    ev.c.member_id == first.c.mid,
                    ev.c.type.in_(sorted(INTERACTION_TYPES)),
                    ev.c.at >= first.c.first,
                    ev.c.at <= now,
                    ev.c.at < first.c.stop,
                )
                .scalar_subquery()
                .label(f"m{j // _MASK_BITS}")
            )
        per = sa.select(first.c.c, *masks).cte("per_member")
        if self.dialect in ("postgresql", "sqlite", "duckdb"):
            per = per.prefix_with("MATERIALIZED")
        keys = [per.c.c, *(per.c[f"m{j}"] for j in range(len(masks)))]
        q = sa.select(*keys, sa.func.count()).group_by(*keys)
        start_of = _week_start if period == "week" else _month_start
        sizes: dict[dt.date, int] = {}
        retained: dict[tuple[dt.date, int], int] = {}
        for c, *bits, n in self._rows(q):
            start = start_of(int(c))
            n = int(n)
            sizes[start] = sizes.get(start, 0) + n
            for j, m in enumerate(bits):
                m = int(m or 0)
                k = j * _MASK_BITS
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
                e.c.type.in_(["contact_added", "contact_deleted"]),
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
