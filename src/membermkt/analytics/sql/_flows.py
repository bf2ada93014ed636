"""Funnels, menu paths, attribution and campaign conversions in SQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from membermkt.analytics.sql._base import _SqlBase
from membermkt.analytics.sql._json import _where_all, to_us
from membermkt.core import analytics as core
from membermkt.core.analytics._common import UNKNOWN, check_as_of
from membermkt.core.analytics.attribution import rows_sorted
from membermkt.core.analytics.funnels import counts_from_reached
from membermkt.core.analytics.paths import fold_page_rows, path_result
from membermkt.errors import UsageError
from membermkt.stores.sql.compile import type_in


class _FlowsMixin(_SqlBase):
    """Funnels, paths, attribution and conversions (see :class:`SqlAnalytics`)."""

    # ------------------------------------------------------------------ funnels

    def funnel(
        self,
        funnel: core.Funnel,
        *,
        as_of: dt.datetime,
        since: dt.datetime | None = None,
        by: str | None = "source",
    ) -> core.FunnelResult:
        """Funnel counts: one ``GROUP BY`` per step joined on the previous step's time."""
        if not isinstance(funnel, core.Funnel):
            raise UsageError(f"expected a Funnel, got {funnel!r}")
        as_of = check_as_of(as_of)
        e = self._e
        now = to_us(as_of)
        steps: list[Any] = []
        for k, st in enumerate(funnel.steps):
            cond = [e.c.type == st.event, e.c.at <= now, _where_all(self._json, st.where)]
            if k == 0:
                if since is not None:
                    cond.append(e.c.at > to_us(check_as_of(since, "since")))
                q = sa.select(e.c.member_id.label("mid"), sa.func.min(e.c.at).label("t"))
            else:
                prev = steps[-1]
                cond.append(e.c.member_id == prev.c.mid)
                cond.append(e.c.at > prev.c.t if funnel.strict(k) else e.c.at >= prev.c.t)
                if st.within is not None:
                    cond.append(e.c.at <= prev.c.t + st.within * 1_000_000)
                q = sa.select(e.c.member_id.label("mid"), sa.func.min(e.c.at).label("t"))
                q = q.select_from(e.join(prev, e.c.member_id == prev.c.mid))
            steps.append(q.where(*cond).group_by(e.c.member_id).cte(f"step{k}"))
        first = steps[0]
        reached = sum(
            (sa.case((s.c.mid.is_not(None), 1), else_=0) for s in steps[1:]),
            start=sa.literal(1),
        )
        frm: Any = first
        for s in steps[1:]:
            frm = frm.outerjoin(s, s.c.mid == first.c.mid)
        group = self._by(by, as_of)
        if group is not None:
            frm = frm.outerjoin(self._m, self._m.c.id == first.c.mid)
            group = sa.func.coalesce(group, UNKNOWN)
        cols = [reached.label("k")] if group is None else [group.label("g"), reached.label("k")]
        q = sa.select(*cols, sa.func.count()).select_from(frm).group_by(*cols)
        n = len(funnel.steps)
        total: list[int] = []
        per: dict[str, list[int]] = {}
        for row in self._rows(q):
            if group is None:
                k, c = row
            else:
                g, k, c = row
                per.setdefault(g, []).extend([int(k)] * int(c))
            total.extend([int(k)] * int(c))
        return core.FunnelResult(
            steps=funnel.names,
            counts=counts_from_reached(n, total),
            by=by,
            groups=tuple((g, counts_from_reached(n, ks)) for g, ks in sorted(per.items())),
        )

    # ------------------------------------------------------------------ paths

    def _page_events(self, now: int, since: dt.datetime | None) -> Any:
        e = self._e
        key = self._json.text("key")
        url = self._json.text("url")
        # only menu clicks and views are selected; an empty or non-string key / url
        # gives NULL (NULLIF: each property is read once, not once per test and value)
        node: Any = sa.case(
            (e.c.type == "menu_click", sa.literal("menu:") + sa.func.nullif(key, "")),
            else_=sa.literal("page:") + sa.func.nullif(url, ""),
        )
        if self.dialect == "postgresql":
            node = node.collate("C")
        elif self.dialect == "mysql":
            # no-pad, like the store's text columns: "a" and "a " are two nodes
            node = node.collate(self._json.binary_collation)
        return (
            sa.select(
                e.c.member_id.label("mid"),
                e.c.at.label("at"),
                node.label("node"),
                self._json.number("dwell_seconds").label("dwell"),
            )
            .where(
                type_in(e.c.type, ["menu_click", "view"], self.dialect), self._period(now, since)
            )
            .subquery("pages")
        )

    def paths(
        self,
        *,
        as_of: dt.datetime,
        since: dt.datetime | None = None,
        config: core.PathConfig | None = None,
    ) -> core.PathResult:
        """Transitions, top paths and dwell counts in one window pass and one
        aggregation: ``LAG`` of the node and time (a lag counts only while every gap stays
        within the session gap), then a single ``GROUP BY (p_{k-1}, ..., p1, node, dwell)``
        whose rows are summed here into the three margins (a few ten thousand rows at 1M
        members). The page events are read once, without a materialised intermediate
        (which made PostgreSQL scan serially). On SQLite and MariaDB, whose window
        functions cost more than their sort, the page rows stream sorted by member, time
        and node instead and are folded as they come
        (:func:`membermkt.core.analytics.paths.fold_page_rows`).
        Both equal the pure-Python :func:`~membermkt.core.analytics.paths` (equivalence
        tests)."""
        cfg = config or core.PathConfig()
        as_of = check_as_of(as_of)
        pages = self._page_events(to_us(as_of), since)
        valid = sa.select(pages).where(pages.c.node.is_not(None)).subquery("valid")
        if self.dialect in ("sqlite", "mysql"):
            # their window functions cost more than their sort (SQLite at 1M members /
            # 20M events: 56 s against 25 s for the sorted stream; MariaDB at 100k / 2M:
            # 24.7 s against 9.8 s for the whole fold): the sorted rows are folded as they
            # stream, in one pass with bounded memory (MariaDB through a server-side cursor)
            ordered = sa.select(valid).order_by(valid.c.mid, valid.c.at, valid.c.node)
            rows = (
                self._driver_stream(ordered) if self.dialect == "sqlite" else self._stream(ordered)
            )
            return fold_page_rows(rows, config=cfg)
        k = cfg.path_length
        window: dict[str, Any] = {
            "partition_by": valid.c.mid,
            "order_by": (valid.c.at, valid.c.node),
        }
        lagged = sa.select(
            valid.c.node,
            valid.c.dwell,
            valid.c.at.label("t0"),
            *(sa.func.lag(valid.c.node, i).over(**window).label(f"n{i}") for i in range(1, k)),
            *(sa.func.lag(valid.c.at, i).over(**window).label(f"t{i}") for i in range(1, k)),
        ).subquery("lagged")
        gap = cfg.session_gap * 1_000_000
        lags = []
        for i in range(1, k):
            # the i-th predecessor counts when no gap between it and this event is too long
            same_session = sa.and_(
                *(lagged.c[f"t{j - 1}"] - lagged.c[f"t{j}"] <= gap for j in range(1, i + 1))
            )
            lags.append(sa.case((same_session, lagged.c[f"n{i}"]), else_=sa.null()).label(f"p{i}"))
        # a negative dwell is not counted (NULL), as in the pure path
        dwell_col = sa.case((lagged.c.dwell >= 0, lagged.c.dwell), else_=sa.null())
        seq = sa.select(lagged.c.node, dwell_col.label("dwell"), *lags).subquery("seq")
        # one row per (p_{k-1}, ..., p1, node, dwell): transitions are its (p1, node)
        # margin where p1 is present, paths the rows whose deepest lag is present, dwell
        # counts the (node, dwell) margin where dwell is present
        group = [*(seq.c[f"p{i}"] for i in range(k - 1, 0, -1)), seq.c.node, seq.c.dwell]
        query = sa.select(*group, sa.func.count()).group_by(*group)
        transitions: dict[tuple[str, str], int] = {}
        grams: dict[tuple[str, ...], int] = {}
        dwell: dict[str, dict[float, int]] = {}
        for *nodes, d, n in self._rows(query):
            n = int(n)
            node = nodes[-1]
            if d is not None:
                per = dwell.setdefault(node, {})
                per[d] = per.get(d, 0) + n
            if nodes[-2] is not None:
                pair = (nodes[-2], node)
                transitions[pair] = transitions.get(pair, 0) + n
                if nodes[0] is not None:
                    path = tuple(nodes)
                    grams[path] = grams.get(path, 0) + n
        return path_result(
            config=cfg, transitions=transitions, path_counts=grams, dwell_values=dwell
        )

    # ------------------------------------------------------------------ attribution

    def attribution(
        self, *, as_of: dt.datetime, window: dt.timedelta | None = None
    ) -> core.AttributionResult:
        """First-touch attribution (see :func:`membermkt.core.analytics.attribution`): a
        source is credited only with purchases at or after the member's first touch (within
        ``window`` of it, when given); other purchases count in ``"(unknown)"``."""
        as_of = check_as_of(as_of)
        e, m = self._e, self._m
        as_us = to_us(as_of)
        amount = self._purchase_amount()  # only summed for purchases (is_buy)
        is_buy = e.c.type == "purchase"
        has_src = sa.and_(
            m.c.source.is_not(None),
            m.c.source != "",
            m.c.source_at.is_not(None),
            m.c.source_at <= as_us,
        )
        credited = sa.and_(is_buy, has_src, e.c.at >= m.c.source_at)
        if window is not None:
            credited = sa.and_(
                credited, e.c.at <= m.c.source_at + window // dt.timedelta(microseconds=1)
            )
        per = (
            sa.select(
                e.c.member_id.label("mid"),
                sa.func.max(sa.case((e.c.type == "follow", 1), else_=0)).label("followed"),
                sa.func.sum(sa.case((credited, 1), else_=0)).label("orders"),
                sa.func.sum(sa.case((credited, amount), else_=0)).label("revenue"),
                sa.func.sum(sa.case((is_buy, 1), else_=0)).label("all_orders"),
                sa.func.sum(sa.case((is_buy, amount), else_=0)).label("all_revenue"),
            )
            .select_from(e.join(m, m.c.id == e.c.member_id))
            # SQLite: ``+type`` (``compile.type_in``): with the statistics of a large table
            # SQLite 3.40 seeks each type in the (member_id, type, at) index per member and
            # returned purchases past ``at <= as_of`` (found by the equivalence fuzz test)
            .where(type_in(e.c.type, ["follow", "purchase"], self.dialect), e.c.at <= as_us)
            .group_by(e.c.member_id)
            .subquery("per")
        )
        src = sa.case((has_src, m.c.source), else_=UNKNOWN).label("src")
        all_orders = sa.func.coalesce(per.c.all_orders, 0)
        all_revenue = sa.func.coalesce(per.c.all_revenue, 0)
        orders = sa.case((has_src, sa.func.coalesce(per.c.orders, 0)), else_=all_orders)
        revenue = sa.case((has_src, sa.func.coalesce(per.c.revenue, 0)), else_=all_revenue)
        q = (
            sa.select(
                src,
                sa.func.count(),
                sa.func.sum(sa.func.coalesce(per.c.followed, 0)),
                sa.func.sum(sa.case((orders > 0, 1), else_=0)),
                sa.func.sum(orders),
                sa.func.sum(revenue),
                sa.func.sum(all_orders - orders),
                sa.func.sum(all_revenue - revenue),
                sa.func.sum(sa.case((all_orders > 0, 1), else_=0)),
            )
            .select_from(m.outerjoin(per, per.c.mid == m.c.id))
            .group_by(src)
        )
        acc: dict[str, list[int]] = {}
        all_buyers = 0
        for s_, n, f, b, o, r, uo, ur, ab in self._rows(q):
            all_buyers += int(ab or 0)
            a = acc.setdefault(str(s_), [0, 0, 0, 0, 0])
            a[0] += int(n)
            a[1] += int(f or 0)
            a[2] += int(b or 0)
            a[3] += int(o or 0)
            a[4] += int(r or 0)
            if int(uo or 0):
                u = acc.setdefault(UNKNOWN, [0, 0, 0, 0, 0])
                u[3] += int(uo)
                u[4] += int(ur or 0)
        rows = [
            core.AttributionRow(
                source=k, members=v[0], followers=v[1], buyers=v[2], orders=v[3], revenue_fen=v[4]
            )
            for k, v in acc.items()
        ]
        return core.AttributionResult(as_of=as_of, rows=rows_sorted(rows), buyers=all_buyers)

    def conversions(
        self,
        *,
        start: dt.datetime,
        end: dt.datetime,
        event: str = "purchase",
        where: Mapping[str, object] | None = None,
    ) -> dict[str, int]:
        """Member id → revenue (fen) of members with a matching event in ``(start, end]``."""
        e = self._e
        flt = core.FunnelStep(name="c", event=event, where=where or ()).where
        amount = (
            self._purchase_amount()
            if event == "purchase"
            else sa.func.coalesce(self._json.number("amount_fen", integer=True), 0)
        )
        q = (
            sa.select(e.c.member_id, sa.func.sum(amount))
            .where(
                e.c.type == event,
                e.c.at > to_us(check_as_of(start, "start")),
                e.c.at <= to_us(check_as_of(end, "end")),
                _where_all(self._json, flt),
            )
            .group_by(e.c.member_id)
        )
        return {mid: int(r or 0) for mid, r in self._stream(q)}
