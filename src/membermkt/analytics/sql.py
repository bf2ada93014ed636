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
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from membermkt.core import analytics as core
from membermkt.core.analytics._common import UNKNOWN, check_as_of
from membermkt.core.analytics.activity import DEFAULT_WINDOWS
from membermkt.core.analytics.attribution import rows_sorted
from membermkt.core.analytics.cohorts import _check_period, cohort_result
from membermkt.core.analytics.funnels import counts_from_reached
from membermkt.core.analytics.paths import path_result
from membermkt.core.analytics.rfm import DEFAULT_RFM_GROUPS, _check_bins, _check_groups, group_for
from membermkt.core.analytics.staff import staff_rows
from membermkt.core.events import INTERACTION_TYPES
from membermkt.errors import UsageError
from membermkt.stores.sql.compile import STATE_FIELDS, SqlCompiler
from membermkt.stores.sql.schema import Tables

__all__ = ["SUPPORTED_DIALECTS", "SqlAnalytics"]

SUPPORTED_DIALECTS: Final = frozenset({"sqlite", "postgresql", "mysql", "duckdb"})

EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US: Final = dt.timedelta(microseconds=1)
US_PER_DAY: Final = 86_400_000_000
US_PER_WEEK: Final = 7 * US_PER_DAY
MONDAY_US: Final = 4 * US_PER_DAY
"""1970-01-05, the first Monday after the epoch, in microseconds."""

_BY_COLUMNS: Final = frozenset(
    {"source", "gender", "city", "province", "country", "income_band", "tier"}
)


def to_us(when: dt.datetime) -> int:
    """An aware datetime as microseconds since the epoch."""
    return (when - EPOCH) // _US


def from_us(us: int) -> dt.datetime:
    """Microseconds since the epoch as an aware UTC datetime."""
    return EPOCH + dt.timedelta(microseconds=int(us))


class _Json:
    """Typed extraction of event properties from the JSON text column, per dialect."""

    def __init__(self, dialect: str, props: Any) -> None:
        self.dialect = dialect
        self.props = props

    def _pg(self) -> Any:
        from sqlalchemy.dialects.postgresql import JSONB

        return sa.cast(self.props, JSONB)

    def _duck_type(self, name: str) -> ColumnElement[Any]:
        return sa.func.json_type(self.props, f'$."{name}"')

    def _duck_raw(self, name: str) -> ColumnElement[Any]:
        return sa.func.json_extract_string(self.props, f'$."{name}"')

    def _my_type(self, name: str) -> ColumnElement[Any]:
        return sa.func.json_type(sa.func.json_extract(self.props, f'$."{name}"'))

    def _my_value(self, name: str) -> ColumnElement[Any]:
        return sa.func.json_value(self.props, f'$."{name}"')

    def text(self, name: str) -> ColumnElement[Any]:
        """The property when it is a JSON string, else NULL (byte-order collation)."""
        if self.dialect == "mysql":
            return sa.case(
                (self._my_type(name) == "STRING", self._my_value(name).collate("utf8mb4_bin")),
                else_=sa.null(),
            )
        if self.dialect == "duckdb":
            return sa.case(
                (
                    self._duck_type(name) == "VARCHAR",
                    self._duck_raw(name),
                ),
                else_=sa.null(),
            )
        if self.dialect == "sqlite":
            path = f'$."{name}"'
            return sa.case(
                (
                    sa.func.json_type(self.props, path) == "text",
                    sa.func.json_extract(self.props, path),
                ),
                else_=sa.null(),
            )
        j = self._pg()
        return sa.case(
            (sa.func.jsonb_typeof(j[name]) == "string", j[name].astext),
            else_=sa.null(),
        ).collate("C")

    def number(self, name: str, *, integer: bool = False) -> ColumnElement[Any]:
        """The property when it is a JSON number, else NULL."""
        if self.dialect == "mysql":
            my_kinds = ["INTEGER"] if integer else ["INTEGER", "DOUBLE"]
            my_raw = self._my_value(name)
            value = sa.cast(my_raw, sa.BigInteger()) if integer else _my_double(my_raw)
            return sa.case((self._my_type(name).in_(my_kinds), value), else_=sa.null())
        if self.dialect == "duckdb":
            kinds = _DUCK_INTS if integer else (*_DUCK_INTS, "DOUBLE")
            raw = self._duck_raw(name)
            kind: Any = sa.BigInteger() if integer else sa.Double()
            return sa.case((self._duck_type(name).in_(kinds), sa.cast(raw, kind)), else_=sa.null())
        if self.dialect == "sqlite":
            path = f'$."{name}"'
            return sa.case(
                (
                    sa.func.json_type(self.props, path).in_(["integer", "real"]),
                    sa.func.json_extract(self.props, path),
                ),
                else_=sa.null(),
            )
        j = self._pg()
        target: Any = sa.BigInteger() if integer else sa.Float(precision=53)
        return sa.case(
            (sa.func.jsonb_typeof(j[name]) == "number", sa.cast(j[name].astext, target)),
            else_=sa.null(),
        )

    def equals(self, name: str, value: str | int | float | bool) -> ColumnElement[bool]:
        """The property equals ``value`` (same type class, like the segment ``did``)."""
        if self.dialect == "mysql":
            jtype = self._my_type(name)
            raw = self._my_value(name)
            if isinstance(value, bool):
                return sa.and_(jtype == "BOOLEAN", raw == ("true" if value else "false"))
            if isinstance(value, str):
                return sa.and_(
                    jtype == "STRING",
                    raw.collate("utf8mb4_bin") == sa.literal(value, sa.String),
                )
            return sa.and_(
                jtype.in_(["INTEGER", "DOUBLE"]),
                _my_double(raw) == sa.literal(float(value), sa.Float()),
            )
        if self.dialect == "duckdb":
            jtype = self._duck_type(name)
            raw = self._duck_raw(name)
            if isinstance(value, bool):
                return sa.and_(jtype == "BOOLEAN", raw == ("true" if value else "false"))
            if isinstance(value, str):
                return sa.and_(jtype == "VARCHAR", raw == sa.literal(value, sa.String))
            return sa.and_(
                jtype.in_((*_DUCK_INTS, "DOUBLE")),
                sa.cast(raw, sa.Double()) == sa.literal(float(value), sa.Double()),
            )
        if self.dialect == "sqlite":
            path = f'$."{name}"'
            jtype = sa.func.json_type(self.props, path)
            if isinstance(value, bool):
                return jtype == ("true" if value else "false")
            got = sa.func.json_extract(self.props, path)
            if isinstance(value, str):
                return sa.and_(jtype == "text", got == sa.literal(value, sa.String))
            return sa.and_(jtype.in_(["integer", "real"]), got == value)
        import json

        from sqlalchemy.dialects.postgresql import JSONB

        frag = sa.cast(sa.literal(json.dumps({name: value}), sa.Text), JSONB)
        return self._pg().op("@>")(frag)  # type: ignore[no-any-return]


def _my_double(raw: ColumnElement[Any]) -> ColumnElement[Any]:
    """A MariaDB text value as DOUBLE (``0e0 + x``: MariaDB has no ``CAST AS FLOAT(53)``)."""
    return sa.literal_column("0e0", sa.Float()) + sa.type_coerce(raw, sa.Float())


_DUCK_INTS: Final = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UBIGINT", "HUGEINT")
"""DuckDB ``json_type`` names of JSON integers."""


def _where_all(json: _Json, where: Sequence[tuple[str, str | int | float | bool]]) -> Any:
    return sa.and_(sa.true(), *(json.equals(k, v) for k, v in where))


class SqlAnalytics:
    """Analytics computed by the database behind a SQL store.

    Args:
        engine: the store's SQLAlchemy engine.
        tables: the store's :class:`~membermkt.stores.sql.schema.Tables`.

    Raises:
        UsageError: for an unsupported dialect (see :data:`SUPPORTED_DIALECTS`).
    """

    def __init__(self, engine: Engine, tables: Tables) -> None:
        if engine.dialect.name not in SUPPORTED_DIALECTS:
            raise UsageError(
                f"SQL analytics support {sorted(SUPPORTED_DIALECTS)}, not {engine.dialect.name}"
            )
        self.engine = engine
        self.tables = tables
        self.dialect = engine.dialect.name
        self._e = tables.events
        self._m = tables.members
        self._json = _Json(self.dialect, self._e.c.props)

    def __repr__(self) -> str:
        return f"SqlAnalytics(dialect={self.dialect!r}, prefix={self.tables.prefix!r})"

    def _binary(self, col: Any) -> Any:
        """``col`` compared by code point, like Python strings (PostgreSQL and MariaDB
        collations are not)."""
        if self.dialect == "postgresql":
            return col.collate("C")
        return col

    def _rows(self, query: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def _stream(self, query: Any) -> Iterator[Any]:
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=10_000).execute(query)
            yield from result

    def _period(self, as_of_us: int, since: dt.datetime | None) -> Any:
        cond = self._e.c.at <= as_of_us
        if since is not None:
            cond = sa.and_(cond, self._e.c.at > to_us(check_as_of(since, "since")))
        return cond

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

    # ------------------------------------------------------------------ activity

    def _state(self, field: str, as_of: dt.datetime) -> Any:
        """The derived member ``field`` as of ``as_of``: the stored column where the stored
        state is still valid (no event of the member later than ``as_of``), else the fold of
        the member's events at or before ``as_of`` done in SQL — the store's segment SQL
        (:meth:`~membermkt.stores.sql.compile.SqlCompiler.as_of_value`), so analytics and
        segments agree. Booleans come back as 1/0/NULL."""
        m = self._m
        stored: Any = m.c[field]
        if field in ("subscribed", "wecom_contact"):
            stored = sa.case((stored == sa.true(), 1), (stored == sa.false(), 0), else_=sa.null())
        last = m.c.last_event_at
        fresh = sa.or_(last.is_(None), last <= to_us(as_of))
        past = SqlCompiler(self.tables, as_of).as_of_value(field)
        return sa.case((fresh, stored), else_=past)

    def _by(self, by: str | None, as_of: dt.datetime) -> Any:
        """The grouping column ``by`` (derived ones — ``source`` — as of ``as_of``)."""
        if by is None:
            return None
        if by not in _BY_COLUMNS:
            raise UsageError(f"SQL analytics group by one of {sorted(_BY_COLUMNS)}, not {by!r}")
        col = self._state(by, as_of) if by in STATE_FIELDS else self._m.c[by]
        return sa.func.coalesce(sa.func.nullif(col, ""), UNKNOWN)

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
        node: Any = sa.case(
            (sa.and_(e.c.type == "menu_click", key != ""), sa.literal("menu:") + key),
            (sa.and_(e.c.type == "view", url != ""), sa.literal("page:") + url),
            else_=sa.null(),
        )
        if self.dialect == "postgresql":
            node = node.collate("C")
        elif self.dialect == "mysql":
            node = node.collate("utf8mb4_bin")
        return (
            sa.select(
                e.c.member_id.label("mid"),
                e.c.at.label("at"),
                node.label("node"),
                self._json.number("dwell_seconds").label("dwell"),
            )
            .where(e.c.type.in_(["menu_click", "view"]), self._period(now, since))
            .subquery("pages")
        )

    def paths(
        self,
        *,
        as_of: dt.datetime,
        since: dt.datetime | None = None,
        config: core.PathConfig | None = None,
    ) -> core.PathResult:
        """Transitions and top paths with one window pass (``LAG`` of the node and time,
        a lag counting only while every gap stays within the session gap), dwell
        distributions with ``GROUP BY node, dwell``."""
        cfg = config or core.PathConfig()
        as_of = check_as_of(as_of)
        pages = self._page_events(to_us(as_of), since)
        # materialised once: the node and dwell expressions parse JSON, and a flattened
        # subquery would parse it again for every reference in the window functions
        valid = sa.select(pages).where(pages.c.node.is_not(None)).cte("valid")
        if self.dialect in ("postgresql", "sqlite", "duckdb"):  # MariaDB has no MATERIALIZED
            valid = valid.prefix_with("MATERIALIZED")
        k = cfg.path_length
        window: dict[str, Any] = {
            "partition_by": valid.c.mid,
            "order_by": (valid.c.at, valid.c.node),
        }
        lagged = sa.select(
            valid.c.node,
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
        seq = sa.select(lagged.c.node, *lags).subquery("seq")
        # one pass: every (p_{k-1}, ..., p1, node) with at least a predecessor; transitions
        # are the (p1, node) margins, paths the rows whose deepest lag is present
        path_cols = [seq.c[f"p{i}"] for i in range(k - 1, 0, -1)] + [seq.c.node]
        runs_q = (
            sa.select(*path_cols, sa.func.count()).where(seq.c.p1.is_not(None)).group_by(*path_cols)
        )
        dwell_q = (
            sa.select(valid.c.node, valid.c.dwell, sa.func.count())
            .where(valid.c.dwell.is_not(None), valid.c.dwell >= 0)
            .group_by(valid.c.node, valid.c.dwell)
        )
        transitions: dict[tuple[str, str], int] = {}
        grams: dict[tuple[str, ...], int] = {}
        for row in self._rows(runs_q):
            *nodes, n = row
            pair = (nodes[-2], nodes[-1])
            transitions[pair] = transitions.get(pair, 0) + int(n)
            if nodes[0] is not None:
                grams[tuple(nodes)] = int(n)
        dwell: dict[str, dict[float, int]] = {}
        for node, d, n in self._rows(dwell_q):
            dwell.setdefault(node, {})[d] = int(n)
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
        amount = sa.func.coalesce(self._json.number("amount_fen", integer=True), 0)
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
            .where(e.c.type.in_(["follow", "purchase"]), e.c.at <= as_us)
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
        amount = sa.func.coalesce(self._json.number("amount_fen", integer=True), 0)
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

    # ------------------------------------------------------------------ cohorts

    def cohorts(
        self, *, as_of: dt.datetime, period: str = "week", max_periods: int = 12
    ) -> core.CohortResult:
        """Retention triangle: first follow per member, then distinct (member, period) of
        interaction events, counted per (cohort, offset)."""
        as_of = check_as_of(as_of)
        period = _check_period(period)
        if isinstance(max_periods, bool) or not isinstance(max_periods, int) or max_periods < 1:
            raise UsageError(f"max_periods must be a positive int, got {max_periods!r}")
        e = self._e
        now = to_us(as_of)
        first = (
            sa.select(e.c.member_id.label("mid"), sa.func.min(e.c.at).label("first"))
            .where(e.c.type == "follow", e.c.at <= now)
            .group_by(e.c.member_id)
            .cte("first_follow")
        )
        if period == "week":

            def index(col: Any) -> Any:
                return (col - MONDAY_US) // US_PER_WEEK

        else:
            lo = self._rows(sa.select(sa.func.min(first.c.first)))[0][0]
            bounds = _month_bounds(from_us(lo) if lo is not None else as_of, as_of)

            def index(col: Any) -> Any:
                return sa.case(*((col >= b, i) for i, b in reversed(bounds)), else_=-1_000_000)

        cohort = index(first.c.first).label("cohort")
        sizes_q = sa.select(cohort, sa.func.count()).group_by(cohort)
        act = (
            sa.select(first.c.mid, index(first.c.first).label("c"), index(e.c.at).label("p"))
            .select_from(e.join(first, e.c.member_id == first.c.mid))
            .where(e.c.type.in_(sorted(INTERACTION_TYPES)), e.c.at <= now)
            .distinct()
            .subquery("act")
        )
        offset = (act.c.p - act.c.c).label("off")
        ret_q = (
            sa.select(act.c.c, offset, sa.func.count())
            .where(offset >= 0, offset < max_periods)
            .group_by(act.c.c, offset)
        )
        start_of = _week_start if period == "week" else _month_start
        sizes = {start_of(int(c)): int(n) for c, n in self._rows(sizes_q)}
        retained = {(start_of(int(c)), int(k)): int(n) for c, k, n in self._rows(ret_q)}
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


def _month_bounds(lo: dt.datetime, hi: dt.datetime) -> list[tuple[int, int]]:
    """(month index, first instant in µs) for every month from ``lo``'s to ``hi``'s."""
    y, m = lo.year, lo.month
    out = []
    while (y, m) <= (hi.year, hi.month):
        out.append((y * 12 + m - 1, to_us(dt.datetime(y, m, 1, tzinfo=dt.UTC))))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def _week_start(index: int) -> dt.date:
    return dt.date(1970, 1, 5) + dt.timedelta(weeks=index)


def _month_start(index: int) -> dt.date:
    return dt.date(index // 12, index % 12 + 1, 1)
