"""Time and JSON helpers shared by the SQL analytics queries: instants as BIGINT
microseconds, event properties read per dialect (SQLite JSON1, PostgreSQL, MariaDB
``JSON_VALUE``, DuckDB)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US: Final = dt.timedelta(microseconds=1)
US_PER_DAY: Final = 86_400_000_000
US_PER_WEEK: Final = 7 * US_PER_DAY
MONDAY_US: Final = 4 * US_PER_DAY
"""1970-01-05, the first Monday after the epoch, in microseconds."""


def to_us(when: dt.datetime) -> int:
    """An aware datetime as microseconds since the epoch."""
    return (when - EPOCH) // _US


def from_us(us: int) -> dt.datetime:
    """Microseconds since the epoch as an aware UTC datetime."""
    return EPOCH + dt.timedelta(microseconds=int(us))


class _Json:
    """Typed extraction of event properties from the JSON text column, per dialect."""

    def __init__(self, dialect: str, props: Any, *, binary_collation: str = "") -> None:
        self.dialect = dialect
        self.props = props
        # MySQL/MariaDB: the store's no-pad binary collation
        # (``schema.mysql_binary_collation``), so "a" and "a " stay two values
        self.binary_collation = binary_collation

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
                (
                    self._my_type(name) == "STRING",
                    self._my_value(name).collate(self.binary_collation),
                ),
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
                    raw.collate(self.binary_collation) == sa.literal(value, sa.String),
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
