"""Statement helpers shared by the writing mixins of :class:`~membermkt.stores.sql.SqlStore`:
insert-or-ignore, chunked ``IN`` reads, and bulk inserts / upserts through the driver."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from membermkt.stores.sql.store._base import _IN_CHUNK, _Base, _chunks


class _Bulk(_Base):
    """Dialect-aware bulk statements over one connection."""

    def _insert_ignore(self, table: sa.Table) -> Any:
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table).on_conflict_do_nothing()
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing()
        return sa.insert(table).prefix_with("IGNORE")

    def _in(
        self, conn: Connection, stmt: Callable[[Sequence[Any]], Any], values: Sequence[Any]
    ) -> list[Any]:
        out: list[Any] = []
        for chunk in _chunks(values, _IN_CHUNK):
            out.extend(conn.execute(stmt(chunk)).mappings().all())
        return out

    def _quote(self, name: str) -> str:
        return str(self._engine.dialect.identifier_preparer.quote(name))

    def _existing(
        self, conn: Connection, table: sa.Table, col: str, values: Sequence[str]
    ) -> list[str]:
        """Which of ``values`` are in ``table.col`` (driver SQL, big IN lists)."""
        out: list[str] = []
        sql = (
            f"SELECT {self._quote(col)} FROM {self._quote(table.name)} WHERE {self._quote(col)} IN "
        )
        for chunk in _chunks(values, 4000):
            ph = ", ".join([self._placeholder] * len(chunk))
            out.extend(r[0] for r in conn.exec_driver_sql(f"{sql}({ph})", tuple(chunk)))
        return out

    def _rows_in(
        self,
        conn: Connection,
        table: str,
        cols: Sequence[str],
        col: str,
        values: Sequence[Any],
    ) -> list[Any]:
        """``SELECT cols FROM table WHERE col IN values`` as plain row tuples (driver SQL,
        4,000 values per statement: no SQLAlchemy compilation per call)."""
        q = self._quote
        head = f"SELECT {', '.join(q(c) for c in cols)} FROM {q(table)} WHERE {q(col)} IN "
        out: list[Any] = []
        for chunk in _chunks(values, 4000):
            ph = ", ".join([self._placeholder] * len(chunk))
            out.extend(self._fetch(conn, f"{head}({ph})", tuple(chunk)))
        return out

    def _fetch(self, conn: Connection, sql: str, params: Sequence[Any]) -> list[Any]:
        """Run a driver-level query and return the driver's own row tuples: SQLAlchemy runs
        the statement (its error handling and disconnect detection apply), the rows are
        read from the DB-API cursor without building a SQLAlchemy row object each (the
        read hot paths fetch thousands)."""
        result = conn.exec_driver_sql(sql, tuple(params))
        try:
            cursor = result.cursor
            assert cursor is not None
            return list(cursor.fetchall())
        finally:
            result.close()

    def _insert_many(
        self,
        conn: Connection,
        table: sa.Table,
        cols: Sequence[str],
        values: list[tuple[Any, ...]],
        *,
        ignore: bool = False,
    ) -> None:
        """Bulk insert through the driver (executemany; COPY on PostgreSQL)."""
        names = ", ".join(self._quote(c) for c in cols)
        if ignore:
            ph = ", ".join([self._placeholder] * len(cols))
            head, tail = "INSERT", ""
            if self.dialect == "sqlite":
                head = "INSERT OR IGNORE"
            elif self.dialect == "postgresql":
                tail = " ON CONFLICT DO NOTHING"
            else:
                head = "INSERT IGNORE"
            conn.exec_driver_sql(
                f"{head} INTO {self._quote(table.name)} ({names}) VALUES ({ph}){tail}", values
            )
            return
        if self.dialect == "postgresql":
            raw = conn.connection.driver_connection
            assert raw is not None
            with raw.cursor() as cur:
                copy_sql = f"COPY {self._quote(table.name)} ({names}) FROM STDIN"
                with cur.copy(copy_sql) as copy:
                    for v in values:
                        copy.write_row(v)
            return
        ph = ", ".join([self._placeholder] * len(cols))
        conn.exec_driver_sql(
            f"INSERT INTO {self._quote(table.name)} ({names}) VALUES ({ph})", values
        )

    @property
    def _placeholder(self) -> str:
        return "?" if self.dialect == "sqlite" else "%s"

    def _upsert_rows(
        self, conn: Connection, table: sa.Table, dict_rows: list[dict[str, Any]]
    ) -> None:
        """Insert rows or replace every non-key column of existing ones (one statement per
        row through the driver's executemany)."""
        if not dict_rows:
            return
        cols: list[str] = list(dict_rows[0])
        keys = {c.name for c in table.primary_key.columns}
        names = ", ".join(self._quote(c) for c in cols)
        ph = ", ".join([self._placeholder] * len(cols))
        head = f"INSERT INTO {self._quote(table.name)} ({names}) VALUES ({ph})"
        others = [c for c in cols if c not in keys]
        if self.dialect in ("mysql", "mariadb"):
            sets = ", ".join(f"{self._quote(c)} = VALUES({self._quote(c)})" for c in others)
            sql = f"{head} ON DUPLICATE KEY UPDATE {sets}"
        else:
            target = ", ".join(self._quote(c) for c in sorted(keys))
            sets = ", ".join(f"{self._quote(c)} = excluded.{self._quote(c)}" for c in others)
            sql = f"{head} ON CONFLICT ({target}) DO UPDATE SET {sets}"
        conn.exec_driver_sql(sql, [tuple(r[c] for c in cols) for r in dict_rows])

    def _insert_rows(
        self,
        conn: Connection,
        table: sa.Table,
        dict_rows: list[dict[str, Any]],
        *,
        ignore: bool = False,
    ) -> None:
        if dict_rows:
            cols: list[str] = list(dict_rows[0])
            self._insert_many(
                conn, table, cols, [tuple(r[c] for c in cols) for r in dict_rows], ignore=ignore
            )
