"""Analytics on DuckDB: read a store's members and events once, then query a column store.

:class:`DuckDBAnalytics` copies the ``members`` and ``events`` tables of a
:class:`~membermkt.stores.sql.SqlStore` into an in-process DuckDB database and runs the
*same* query definitions as :class:`~membermkt.analytics.sql.SqlAnalytics` there (it is a
subclass: the JSON property extraction differs per dialect, and staff first-reply times are
found with window functions rather than streamed through the Python tracker), so results are
identical to the SQL and pure-Python paths (property-tested). Extra ``duckdb``
(``pip install "membermkt[duckdb]"``: DuckDB, its SQLAlchemy dialect and pandas).

The copy never loops over rows in Python: from PostgreSQL the tables stream through
``COPY ... TO STDOUT`` into DuckDB's CSV reader; from other databases they arrive in chunks
of ``chunk_rows`` as pandas data frames that DuckDB scans in bulk. The event properties the
analytics read (:data:`EXTRACTED_PROPERTIES`) are then parsed out of the JSON once, in one
parallel pass, so no query parses JSON again.

Example::

    from membermkt import analytics
    duck = analytics.DuckDBAnalytics.from_store(store)
    bundle = analytics.run_all(duck, as_of=now)     # every analysis on DuckDB
    duck.close()
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from membermkt.analytics._extras import MissingExtraError
from membermkt.analytics.sql import SqlAnalytics
from membermkt.analytics.sql._json import _Json, to_us
from membermkt.core import analytics as core
from membermkt.core.analytics._common import check_as_of
from membermkt.errors import UsageError
from membermkt.stores.sql.schema import Tables

__all__ = ["DEFAULT_CHUNK_ROWS", "EXTRACTED_PROPERTIES", "DuckDBAnalytics", "duckdb_type"]

DEFAULT_CHUNK_ROWS: Final = 200_000
"""Rows per chunk when copying from a database without ``COPY``."""

EXTRACTED_PROPERTIES: Final = (
    "amount_fen",
    "key",
    "url",
    "dwell_seconds",
    "staff",
    "direction",
    "by",
    "channel",
)
"""Event properties the analytics read, parsed out of the JSON once at copy time (their
JSON type and text go into two columns each); other properties are read from the JSON."""


def _type_col(name: str) -> str:
    return f"_mmkt_t_{name}"


def _text_col(name: str) -> str:
    return f"_mmkt_s_{name}"


class _ExtractedJson(_Json):
    """Reads :data:`EXTRACTED_PROPERTIES` from their pre-parsed columns."""

    def __init__(self, events: sa.Table) -> None:
        super().__init__("duckdb", events.c.props)
        self.events = events

    def _duck_type(self, name: str) -> Any:
        if name in EXTRACTED_PROPERTIES:
            return self.events.c[_type_col(name)]
        return super()._duck_type(name)

    def _duck_raw(self, name: str) -> Any:
        if name in EXTRACTED_PROPERTIES:
            return self.events.c[_text_col(name)]
        return super()._duck_raw(name)


def _extracted_events(events: sa.Table) -> sa.Table:
    """``events`` plus the pre-parsed property columns (a table in its own metadata)."""
    cols = [sa.Column(c.name, c.type) for c in events.columns]
    for name in EXTRACTED_PROPERTIES:
        cols.append(sa.Column(_type_col(name), sa.String()))
        cols.append(sa.Column(_text_col(name), sa.String()))
    return sa.Table(events.name, sa.MetaData(), *cols)


def _duckdb() -> Any:
    try:
        import duckdb
        import duckdb_engine  # noqa: F401  (registers the SQLAlchemy dialect)
    except ImportError as exc:
        raise MissingExtraError(exc.name or "duckdb", "duckdb") from exc
    return duckdb


def duckdb_type(column: sa.Column[Any]) -> str:
    """The DuckDB type a store column is copied into (integers stay ``BIGINT``, booleans
    ``BOOLEAN``, floats ``DOUBLE``, everything else ``VARCHAR``)."""
    t = column.type
    if isinstance(t, sa.Boolean):
        return "BOOLEAN"
    if isinstance(t, sa.Integer):
        return "BIGINT"
    if isinstance(t, sa.Float):
        return "DOUBLE"
    return "VARCHAR"


class DuckDBAnalytics(SqlAnalytics):
    """Analytics on an in-process DuckDB copy of a store's members and events.

    Build one with :meth:`from_store`; pass it anywhere :mod:`membermkt.analytics` takes a
    source. The copy is a snapshot: events appended to the store later are not seen.
    Segments (offer rules, campaign arms given as segments) are evaluated by the store the
    copy came from.

    Args:
        connection: a DuckDB connection whose tables are named like ``tables``.
        tables: the store's :class:`~membermkt.stores.sql.schema.Tables`.
        store: the store the copy came from (evaluates segments), if any.

    Raises:
        MissingExtraError: when DuckDB is not installed (extra ``duckdb``).
    """

    def __init__(self, connection: Any, tables: Tables, *, store: Any = None) -> None:
        _duckdb()
        from duckdb_engine import ConnectionWrapper

        self.connection = connection
        self.store = store
        self.timings: dict[str, float] = {}
        """Seconds spent by :meth:`from_store`: ``"copy"`` and ``"extract"``."""
        self._lock = threading.Lock()
        engine = sa.create_engine(
            "duckdb://",
            creator=lambda: ConnectionWrapper(connection.cursor()),
            poolclass=StaticPool,
        )
        super().__init__(engine, tables)
        self._e = _extracted_events(tables.events)
        self._json = _ExtractedJson(self._e)

    @classmethod
    def from_store(
        cls, store: Any, *, chunk_rows: int = DEFAULT_CHUNK_ROWS, threads: int | None = None
    ) -> DuckDBAnalytics:
        """Copy ``store``'s members and events into a new in-memory DuckDB database.

        Args:
            store: a :class:`~membermkt.stores.sql.SqlStore` (any dialect).
            chunk_rows: rows per chunk for databases read through pandas.
            threads: DuckDB worker threads (default: DuckDB's own, the CPU count).

        Raises:
            UsageError: when ``store`` is not a SQL store, or for a bad ``chunk_rows``.
            MissingExtraError: when DuckDB (extra ``duckdb``) is not installed.
        """
        duckdb = _duckdb()
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
            raise UsageError(f"chunk_rows must be a positive int, got {chunk_rows!r}")
        tables = getattr(store, "tables", None)
        engine = getattr(store, "engine", None) or getattr(store, "_engine", None)
        if not isinstance(tables, Tables) or not isinstance(engine, Engine):
            raise UsageError(
                f"DuckDB analytics copy from a SqlStore, got {type(store).__name__}; "
                "for an in-memory history use the pure analytics"
            )
        create = getattr(store, "create_schema", None)
        if callable(create):
            create()
        config: dict[str, Any] = {"integer_division": True}
        if threads is not None:
            config["threads"] = threads
        con = duckdb.connect(":memory:", config=config)
        timings: dict[str, float] = {}
        try:
            t0 = time.perf_counter()
            for table in (tables.members, tables.events):
                _create(con, table)
                if engine.dialect.name == "postgresql":
                    _copy_postgres(con, engine, table)
                else:
                    _copy_chunks(con, engine, table, chunk_rows)
            t1 = time.perf_counter()
            _extract(con, tables.events.name)
            timings = {"copy": t1 - t0, "extract": time.perf_counter() - t1}
        except BaseException:
            con.close()
            raise
        duck = cls(con, tables, store=store)
        duck.timings = timings
        return duck

    def __repr__(self) -> str:
        return f"DuckDBAnalytics(prefix={self.tables.prefix!r})"

    def _rows(self, query: Any) -> list[Any]:
        with self._lock:
            return super()._rows(query)

    def _stream(self, query: Any) -> Iterator[Any]:
        # DuckDB materialises results in its own memory; fetch them whole under the lock
        with self._lock:
            rows = super()._rows(query)
        yield from rows

    def staff_metrics(
        self, *, as_of: dt.datetime, since: dt.datetime | None = None
    ) -> core.StaffResult:
        """Staff metrics with the conversations reduced in DuckDB (#18).

        The SQL runner streams every WeCom conversation message into Python for the
        first-reply tracker; here window functions find the replies instead. In a
        (staff, member) conversation ordered by time (``"in"`` before ``"out"`` at the same
        instant), an ``out`` answers when some ``in`` came after the previous ``out``; its
        reply time runs from the first of those. Counts per staff and per day are
        ``GROUP BY``s; only the replies come back, one row each, and their seconds are
        summed in Python in the tracker's order, so the float totals are the same.
        """
        as_of = check_as_of(as_of)
        e = self._e
        now = to_us(as_of)
        staff, direction, conversation = self._staff_messages(now, since)
        msgs = (
            sa.select(
                staff.label("staff"),
                e.c.member_id.label("mid"),
                e.c.at.label("at"),
                direction.label("dir"),
            )
            .where(*conversation)
            .subquery("msgs")
        )
        counts_q = sa.select(msgs.c.staff, msgs.c.dir, sa.func.count()).group_by(
            msgs.c.staff, msgs.c.dir
        )
        day = sa.cast(sa.func.make_timestamp(msgs.c.at), sa.Date)
        days_q = sa.select(msgs.c.staff, day, sa.func.count()).group_by(msgs.c.staff, day)
        outs_before = sa.func.sum(sa.case((msgs.c.dir == "out", 1), else_=0)).over(
            partition_by=(msgs.c.staff, msgs.c.mid),
            order_by=(msgs.c.at, msgs.c.dir),
            rows=(None, -1),
        )
        numbered = sa.select(
            msgs.c.staff,
            msgs.c.mid,
            msgs.c.at,
            msgs.c.dir,
            sa.func.coalesce(outs_before, 0).label("grp"),
        ).subquery("numbered")
        first_in = (
            sa.select(
                numbered.c.staff,
                numbered.c.mid,
                numbered.c.grp,
                sa.func.min(numbered.c.at).label("first"),
            )
            .where(numbered.c.dir == "in")
            .group_by(numbered.c.staff, numbered.c.mid, numbered.c.grp)
            .subquery("first_in")
        )
        replies_q = (
            sa.select(numbered.c.staff, numbered.c.at - first_in.c.first)
            .select_from(
                numbered.join(
                    first_in,
                    sa.and_(
                        first_in.c.staff == numbered.c.staff,
                        first_in.c.mid == numbered.c.mid,
                        first_in.c.grp == numbered.c.grp,
                    ),
                )
            )
            .where(numbered.c.dir == "out")
            .order_by(numbered.c.staff, numbered.c.mid, numbered.c.at)
        )
        contacts_q = self._staff_contacts(staff, now, since)
        acc: dict[str, dict[str, Any]] = {}

        def of(name: str) -> dict[str, Any]:
            a = acc.get(name)
            if a is None:
                a = acc[name] = {
                    "in": 0,
                    "out": 0,
                    "days": {},
                    "replies": 0,
                    "total": 0.0,
                    "added": 0,
                    "lost_customer": 0,
                    "lost_staff": 0,
                }
            return a

        for name, d, n in self._rows(counts_q):
            of(name)[d] += int(n)
        for name, date, n in self._rows(days_q):
            of(name)["days"][date] = int(n)
        for name, us in self._rows(replies_q):
            a = of(name)
            a["replies"] += 1
            a["total"] += int(us) / 1_000_000  # timedelta.total_seconds() of the tracker
        for name, etype, how, n in self._rows(contacts_q):
            a = of(name)
            if etype == "contact_added":
                a["added"] += int(n)
            elif how == "staff":
                a["lost_staff"] += int(n)
            else:
                a["lost_customer"] += int(n)
        rows = tuple(
            core.StaffRow(
                staff=name,
                messages_in=a["in"],
                messages_out=a["out"],
                active_days=len(a["days"]),
                replies=a["replies"],
                reply_seconds_total=a["total"],
                customers_added=a["added"],
                lost_by_customer=a["lost_customer"],
                lost_by_staff=a["lost_staff"],
            )
            for name, a in sorted(acc.items())
        )
        daily = tuple(
            (name, d, n) for name, a in sorted(acc.items()) for d, n in sorted(a["days"].items())
        )
        lo = check_as_of(since, "since") if since is not None else None
        return core.StaffResult(since=lo, as_of=as_of, rows=rows, daily=daily)

    def count(self, table: str = "events") -> int:
        """Rows copied into ``table`` (``"members"`` or ``"events"``).

        Raises:
            UsageError: for another table name.
        """
        if table not in ("members", "events"):
            raise UsageError(f"table must be 'members' or 'events', got {table!r}")
        t = self.tables.members if table == "members" else self.tables.events
        return int(self._rows(sa.select(sa.func.count()).select_from(t))[0][0])

    def close(self) -> None:
        """Release the DuckDB database."""
        self.engine.dispose()
        self.connection.close()

    def __enter__(self) -> DuckDBAnalytics:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _create(con: Any, table: sa.Table) -> None:
    cols = ", ".join(f"{_quote(c.name)} {duckdb_type(c)}" for c in table.columns)
    con.execute(f"CREATE TABLE {_quote(table.name)} ({cols})")


def _extract(con: Any, events: str) -> None:
    """Add the :data:`EXTRACTED_PROPERTIES` columns to the copied events: each ``props`` is
    parsed once (``json_extract`` with a list of paths), in one parallel pass, instead of
    once per property per query."""
    paths = ", ".join(f"'$.\"{name}\"'" for name in EXTRACTED_PROPERTIES)
    parts = []
    for i, name in enumerate(EXTRACTED_PROPERTIES, start=1):
        parts.append(f"json_type(_mmkt_v[{i}]) AS {_quote(_type_col(name))}")
        parts.append(f"json_extract_string(_mmkt_v[{i}], '$') AS {_quote(_text_col(name))}")
    tmp = _quote(events + "_mmkt_tmp")
    con.execute(
        f"CREATE TABLE {tmp} AS SELECT * EXCLUDE (_mmkt_v), {', '.join(parts)} FROM "
        f"(SELECT *, json_extract(props, [{paths}]) AS _mmkt_v FROM {_quote(events)})"
    )
    con.execute(f"DROP TABLE {_quote(events)}")
    con.execute(f"ALTER TABLE {tmp} RENAME TO {_quote(events)}")


def _copy_postgres(con: Any, engine: Engine, table: sa.Table) -> None:
    """``COPY (SELECT ...) TO STDOUT`` into a temporary CSV file, read by DuckDB in bulk."""
    names = [c.name for c in table.columns]
    select = sa.select(*(table.c[n] for n in names))
    sql = str(select.compile(engine, compile_kwargs={"literal_binds": True}))
    types = {n: duckdb_type(table.c[n]) for n in names}
    fd, path = tempfile.mkstemp(prefix="membermkt-", suffix=".csv")
    try:
        with os.fdopen(fd, "wb") as out:
            raw = engine.raw_connection()
            try:
                cur = raw.cursor()
                with cur.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy:
                    for block in copy:
                        out.write(block)
            finally:
                raw.close()
        if os.path.getsize(path) == 0:
            return
        columns = "{" + ", ".join(f"'{n}': '{t}'" for n, t in types.items()) + "}"
        con.execute(
            f"INSERT INTO {_quote(table.name)} SELECT * FROM read_csv(?, header=false, "
            f"columns={columns}, auto_detect=false, quote='\"', escape='\"', nullstr='', "
            "allow_quoted_nulls=false, parallel=false)",
            [path],
        )
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _copy_chunks(con: Any, engine: Engine, table: sa.Table, chunk_rows: int) -> None:
    """Stream the table in chunks; each chunk becomes a column-wise data frame that DuckDB
    appends in bulk."""
    try:
        import pandas as pd
    except ImportError as exc:
        raise MissingExtraError("pandas", "duckdb") from exc
    names = [c.name for c in table.columns]
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=chunk_rows).execute(
            sa.select(*(table.c[n] for n in names))
        )
        for part in result.partitions(chunk_rows):
            chunk = pd.DataFrame.from_records(part, columns=names, coerce_float=False)
            con.register("_membermkt_chunk", chunk)
            try:
                con.execute(f"INSERT INTO {_quote(table.name)} SELECT * FROM _membermkt_chunk")
            finally:
                con.unregister("_membermkt_chunk")
