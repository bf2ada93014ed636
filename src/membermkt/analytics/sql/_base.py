"""The connection, dialect and as-of state helpers every SQL analytics query uses."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from membermkt.analytics.sql._json import _Json, to_us
from membermkt.core.analytics._common import UNKNOWN, check_as_of
from membermkt.errors import UsageError
from membermkt.stores.sql.compile import STATE_FIELDS, SqlCompiler, compiler_for
from membermkt.stores.sql.schema import Tables, mysql_binary_collation

SUPPORTED_DIALECTS: Final = frozenset({"sqlite", "postgresql", "mysql", "duckdb"})

SQLITE_SORT_THREADS: Final = 8
"""The most helper threads an SQLite analytics query lets its sorter use (SQLite's own
compile-time limit, ``SQLITE_MAX_WORKER_THREADS``, defaults to 8 as well)."""

_BY_COLUMNS: Final = frozenset(
    {"source", "gender", "city", "province", "country", "income_band", "tier"}
)


class _SqlBase:
    """Engine, tables and the helpers shared by the analyses of :class:`SqlAnalytics`."""

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
        self._json = _Json(
            self.dialect,
            self._e.c.props,
            binary_collation=(
                mysql_binary_collation(engine.dialect) if self.dialect == "mysql" else ""
            ),
        )
        self._stale_probes: dict[int, bool] = {}  # DuckDB snapshots only (_any_stale)

    def __repr__(self) -> str:
        return f"SqlAnalytics(dialect={self.dialect!r}, prefix={self.tables.prefix!r})"

    def _binary(self, col: Any) -> Any:
        """``col`` compared by code point, like Python strings (PostgreSQL and MariaDB
        collations are not)."""
        if self.dialect == "postgresql":
            return col.collate("C")
        return col

    @contextlib.contextmanager
    def _connect(self) -> Iterator[Connection]:
        """A connection for one analysis. On SQLite it lets the sorter use helper threads
        (``PRAGMA threads``, one per CPU up to :data:`SQLITE_SORT_THREADS`): the large
        ``ORDER BY``/``GROUP BY``/window sorts of the analytics then run in parallel (the
        window pass of paths at 1M members / 20M events took 56–65 s with them against
        78–90 s without, on two cores). SQLite uses them for large sorts only, so small
        queries are unaffected."""
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                threads = min(os.cpu_count() or 1, SQLITE_SORT_THREADS)
                conn.exec_driver_sql(f"PRAGMA threads = {threads}")
            yield conn

    def _rows(self, query: Any) -> list[Any]:
        with self._connect() as conn:
            return list(conn.execute(query))

    def _stream(self, query: Any) -> Iterator[Any]:
        with self._connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=10_000).execute(query)
            yield from result

    def _driver_stream(self, query: Any) -> Iterator[tuple[Any, ...]]:
        """The rows of ``query`` as the driver returns them (plain tuples, no SQLAlchemy
        result processing: 7 s of the 41 s of SQLite paths at 1M members) — only for
        queries whose columns need no conversion (integers, floats, strings)."""
        with self._connect() as conn:
            cursor = conn.execute(query).cursor
            while rows := cursor.fetchmany(10_000):
                yield from rows

    def _purchase_amount(self) -> Any:
        """A purchase event's ``amount_fen`` (0 when absent) from the events table's
        denormalised ``amount_fen`` column — the segment SQL's source for
        ``orders_total_fen`` too. For purchases it equals the JSON property: an ``Event``
        refuses a purchase whose ``amount_fen`` is not a non-negative int, and every writer
        (``append_events``, ``testing.bulk.load``, the migration that added the column) fills it
        from it. Reading the column instead of parsing the JSON: RFM's per-buyer
        aggregation on PostgreSQL at 1M members / 20M events 8.7 s → 2.2 s. Only for rows
        filtered to ``type = 'purchase'``."""
        return sa.func.coalesce(self._e.c.amount_fen, 0)

    def _period(self, as_of_us: int, since: dt.datetime | None) -> Any:
        cond = self._e.c.at <= as_of_us
        if since is not None:
            cond = sa.and_(cond, self._e.c.at > to_us(check_as_of(since, "since")))
        return cond

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
        if self.dialect == "duckdb" and not self._any_stale(as_of):
            # a DuckDB copy is a snapshot: when no member has an event later than as_of (a
            # report "as of now") every stored value is valid and the fold subqueries need
            # not be run at all. (On a live store a probe before the query could race with
            # ingestion, so the stores keep the per-member CASE.)
            return stored
        last = m.c.last_event_at
        fresh = sa.or_(last.is_(None), last <= to_us(as_of))
        # the dialect's own compiler: its event-type filters carry the SQLite guard
        # (``compile.type_in``) against SQLite 3.40's IN seek-scan returning later events
        compiler = SqlCompiler if self.dialect == "duckdb" else compiler_for(self.dialect)
        past = compiler(self.tables, as_of).as_of_value(field)
        return sa.case((fresh, stored), else_=past)

    def _any_stale(self, as_of: dt.datetime) -> bool:
        """Whether some member's stored state is newer than ``as_of`` (one probe of
        ``members.last_event_at``, remembered per ``as_of``: only asked of a snapshot)."""
        us = to_us(as_of)
        cache = self._stale_probes
        if us not in cache:
            m = self._m
            probe = sa.select(m.c.id).where(m.c.last_event_at > us).limit(1)
            cache[us] = bool(self._rows(probe))
        return cache[us]

    def _by(self, by: str | None, as_of: dt.datetime) -> Any:
        """The grouping column ``by`` (derived ones — ``source`` — as of ``as_of``)."""
        if by is None:
            return None
        if by not in _BY_COLUMNS:
            raise UsageError(f"SQL analytics group by one of {sorted(_BY_COLUMNS)}, not {by!r}")
        col = self._state(by, as_of) if by in STATE_FIELDS else self._m.c[by]
        return sa.func.coalesce(sa.func.nullif(col, ""), UNKNOWN)
