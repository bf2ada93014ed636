"""Compile a segment into a SQLAlchemy Core boolean expression over a store's tables.

The database evaluates the segment: no member is loaded into Python. Every leaf compiles
to an expression that is **never NULL** (a present-value guard, ``EXISTS``, or a ``COUNT``),
so :class:`~membermkt.core.segments.Not` compiles to plain ``NOT`` and keeps the two-valued
rule: a comparison on a missing value is false and its negation true.

* attribute comparisons on built-in fields → ``col IS NOT NULL AND col <op> :v``; ``age`` is
  rewritten with :func:`~membermkt.core.segments.expand_age` into birthday comparisons;
  times are bound as UTC epoch microseconds (``as_of`` is a parameter, never ``now()``);
* custom attributes → ``EXISTS`` over the attribute table, matching the value's type class
  (``"3"`` is not ``3``; ``True`` is not ``1``);
* tags → ``EXISTS`` over the tag table;
* ``did`` → a correlated ``EXISTS`` / ``COUNT(*)`` over the events table in the window
  ``(as_of - within, as_of]``, event properties matched per dialect on the JSON text;
* ``sample`` → ``((a * member_hash + b) % p) % 10000 < threshold`` on the stored hash.

:class:`SqlCompiler` holds the portable visits; :class:`SqliteCompiler`,
:class:`PostgresCompiler` and :class:`MySqlCompiler` override only what differs (string
matching and JSON property access). :func:`compiler_for` picks one for a dialect.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any, ClassVar

import sqlalchemy as sa

from membermkt.core.compiler import Compiler
from membermkt.core.events import ACQUISITION_TYPES, INTERACTION_TYPES
from membermkt.core.segments import (
    BUCKETS,
    FIELD_TYPES,
    HASH_PRIME,
    And,
    Cmp,
    Const,
    Did,
    FieldType,
    Not,
    Or,
    RelTime,
    Sample,
    Segment,
    Tags,
    _type_class,
    expand_age,
    salt_coefficients,
)
from membermkt.errors import SegmentError
from membermkt.stores.sql._fields import (
    _BINARY,
    _BOOL_FIELDS,
    _COLUMNS,
    _NOT_NULL,
    _TIME_FIELDS,
    EPOCH,
    STATE_FIELDS,
    Expr,
    _bind,
    from_epoch_us,
    to_epoch_us,
    type_in,
)
from membermkt.stores.sql.schema import Tables

__all__ = [
    "EPOCH",
    "STATE_FIELDS",
    "Expr",
    "MySqlCompiler",
    "PostgresCompiler",
    "SqlCompiler",
    "SqliteCompiler",
    "compile_segment",
    "compiler_for",
    "from_epoch_us",
    "to_epoch_us",
    "type_in",
]


class SqlCompiler(Compiler[Expr]):
    """Segment → SQLAlchemy boolean expression over ``tables.members`` (portable part).

    Args:
        tables: the store's tables.
        as_of: the evaluation time (timezone-aware).
    """

    backends: ClassVar[tuple[str, ...]] = ("sql",)

    def __init__(self, tables: Tables, as_of: dt.datetime) -> None:
        if not isinstance(as_of, dt.datetime) or as_of.utcoffset() is None:
            raise SegmentError(f"as_of must be a timezone-aware datetime, got {as_of!r}")
        self.t = tables
        self.m = tables.members
        self.as_of = as_of.astimezone(dt.UTC)
        self.as_of_date = as_of.date()
        self.as_of_us = to_epoch_us(self.as_of)

    # -- combinators ---------------------------------------------------------

    dialect: ClassVar[str] = "sql"
    """The SQLAlchemy dialect name this compiler writes for (``type_in`` reads it)."""

    def type_in(self, col: Any, values: Sequence[str]) -> Expr:
        """``col IN values`` as :func:`type_in` writes it for this dialect."""
        return type_in(col, values, self.dialect)

    def visit_const(self, node: Const, path: str) -> Expr:
        return sa.true() if node.value else sa.false()

    def visit_and(self, node: And, path: str) -> Expr:
        return sa.and_(
            *(self.process(p, self.child_path(path, i)) for i, p in enumerate(node.parts))
        )

    def visit_or(self, node: Or, path: str) -> Expr:
        return sa.or_(
            *(self.process(p, self.child_path(path, i)) for i, p in enumerate(node.parts))
        )

    def visit_not(self, node: Not, path: str) -> Expr:
        # every leaf is never NULL, so NOT is the complement
        return sa.not_(self.process(node.part, self.child_path(path)))

    # -- string matching (overridden per dialect) ----------------------------

    def contains(self, col: Any, text: str) -> Expr:
        """``text in col`` (case-sensitive; ``col`` is not NULL)."""
        out: Expr = col.contains(text, autoescape=True)
        return out

    def startswith(self, col: Any, text: str) -> Expr:
        """``col.startswith(text)`` (case-sensitive; ``col`` is not NULL)."""
        out: Expr = col.startswith(text, autoescape=True)
        return out

    # -- attribute comparisons -----------------------------------------------

    def _value(self, name: str, v: Any) -> Any:
        if isinstance(v, RelTime):
            v = v.resolve(self.as_of)
        if name in _TIME_FIELDS:
            return to_epoch_us(v)
        if name == "birthday":
            return v.toordinal()
        return v

    def visit_cmp(self, node: Cmp, path: str) -> Expr:
        if node.field == "age":
            return self.process(expand_age(node, self.as_of_date), path)
        if FIELD_TYPES.get(node.field, FieldType.CUSTOM) is FieldType.CUSTOM:
            return self._custom(node, path)
        col = self.m.c[_COLUMNS[node.field]]
        op = node.op
        values = [self._value(node.field, v) for v in node.values]
        stored = self._on_value(col, node.field, op, values, path)
        if node.field not in STATE_FIELDS:
            return stored
        # The stored state is a cache of the fold, valid when no event is later than as_of
        # ("fresh"; else "stale"). The leaf is (fresh AND stored) OR (stale AND past),
        # written in its equivalent conjunctive form
        #     (stored OR stale) AND (fresh OR past)
        # (expand it: the extra term stored AND past implies one of the two others), so
        # the planner sees the stored comparison at the top of the WHERE clause and can
        # combine its index with the few stale members (``ix_members_last_event``) in a
        # BitmapOr, and the as-of fold runs only for stale members. Every part is never
        # NULL, so NOT of the leaf stays its complement.
        last = self.m.c.last_event_at
        stale = sa.and_(last.is_not(None), last > self.as_of_us)
        fresh = sa.or_(last.is_(None), last <= self.as_of_us)
        past_values = [int(v) for v in values] if node.field in _BOOL_FIELDS else values
        folded = self.as_of_value(node.field)
        if op == "exists" or node.field in _NOT_NULL:
            past = self._on_value(folded, node.field, op, past_values, path)
        else:
            # COALESCE(cmp, FALSE) rather than "IS NOT NULL AND cmp": the fold subquery
            # appears (and runs) once
            past = sa.func.coalesce(
                self._compare(folded, op, past_values, path), sa.false(), type_=sa.Boolean
            )
        return sa.and_(sa.or_(stored, stale), sa.or_(fresh, past))

    def _on_value(self, value: Any, field: str, op: str, values: list[Any], path: str) -> Expr:
        present: Expr = sa.true() if field in _NOT_NULL else value.is_not(None)
        if op == "exists":
            return present
        return sa.and_(present, self._compare(value, op, values, path))

    def as_of_value(self, field: str) -> Any:
        """The derived ``field`` folded in SQL from the member's events at or before
        ``as_of`` (a correlated scalar subquery; NULL when missing; booleans as 1/0)."""
        e = self.t.events
        base = [e.c.member_id == self.m.c.id, e.c.at <= self.as_of_us]

        def scalar(expr: Any, *where: Any) -> Any:
            return sa.select(expr).where(*base, *where).correlate(self.m).scalar_subquery()

        purchase = e.c.type == "purchase"
        if field == "orders_count":
            return scalar(sa.func.count(), purchase)
        if field == "orders_total_fen":
            return sa.func.coalesce(scalar(sa.func.sum(e.c.amount_fen), purchase), 0)
        if field == "first_order_at":
            return scalar(sa.func.min(e.c.at), purchase)
        if field == "last_order_at":
            return scalar(sa.func.max(e.c.at), purchase)
        if field == "last_active_at":
            return scalar(
                sa.func.max(e.c.at),
                self.type_in(e.c.type, sorted(INTERACTION_TYPES)),
                sa.or_(e.c.outbound.is_(None), e.c.outbound == sa.false()),
            )
        if field == "wecom_contact":
            return self._contact_as_of()
        if field == "source":
            q = (
                sa.select(e.c.source)
                .where(
                    *base,
                    self.type_in(e.c.type, sorted(ACQUISITION_TYPES)),
                    e.c.source.is_not(None),
                )
                .where(e.c.source != "")
                .order_by(e.c.at, sa.func.coalesce(e.c.key, ""), e.c.source)
                .limit(1)
                .correlate(self.m)
            )
            return q.scalar_subquery()
        pair = ("follow", "unfollow")
        rank = sa.case((e.c.type == pair[1], 1), else_=0)
        latest = (
            sa.select(
                sa.case((e.c.type == pair[0], 1), else_=0)
                if field != "followed_at"
                else sa.case((e.c.type == pair[0], e.c.at), else_=None)
            )
            .where(*base, self.type_in(e.c.type, pair))
            .order_by(e.c.at.desc(), rank.desc(), sa.func.coalesce(e.c.key, "").desc())
            .limit(1)
            .correlate(self.m)
        )
        return latest.scalar_subquery()

    def _compare(self, col: Any, op: str, values: Sequence[Any], path: str) -> Expr:
        """``col <op> values`` for a non-NULL ``col`` and values of its type class."""
        if op in _BINARY:
            out: Expr = _BINARY[op](col, values[0])
            return out
        if op == "in":
            return col.in_(list(values))  # type: ignore[no-any-return]
        if op == "not_in":
            return col.not_in(list(values))  # type: ignore[no-any-return]
        if op == "between":
            return sa.and_(col >= values[0], col <= values[1])
        if op == "contains":
            return self.contains(col, values[0])
        if op == "startswith":
            return self.startswith(col, values[0])
        raise SegmentError(f"unknown comparison {op!r}", path)

    def _custom(self, node: Cmp, path: str) -> Expr:
        a = self.t.attrs
        base = [a.c.member_id == self.m.c.id, a.c.name == node.field]
        op = node.op
        if op == "exists":
            return self._exists(a, base)
        if op in ("in", "not_in"):
            by_class: dict[str, list[Any]] = {}
            for v in node.values:
                by_class.setdefault(_type_class(v), []).append(v)
            hit = sa.or_(*(self._class_cmp(cls, "in", vs, path) for cls, vs in by_class.items()))
            if op == "in":
                return self._exists(a, [*base, hit])
            kinds = sorted({k for cls in by_class for k in _KINDS[cls]})
            return self._exists(a, [*base, a.c.kind.in_(kinds), sa.not_(hit)])
        cls = _type_class(node.values[0])
        if op in ("contains", "startswith") and cls != "str":
            return sa.false()
        return self._exists(a, [*base, self._class_cmp(cls, op, list(node.values), path)])

    def _class_cmp(self, cls: str, op: str, values: Sequence[Any], path: str) -> Expr:
        """A comparison on attribute rows of one value type class (never NULL for rows of
        that class; FALSE for rows of another class)."""
        a = self.t.attrs
        if cls == "str":
            return sa.and_(a.c.kind == "s", self._compare(a.c.s, op, values, path))
        if cls == "bool":
            ints = [int(bool(v)) for v in values]
            return sa.and_(a.c.kind == "b", self._compare(a.c.i, op, ints, path))
        if cls == "number":
            return sa.or_(
                sa.and_(a.c.kind == "i", self._compare(a.c.i, op, values, path)),
                sa.and_(a.c.kind == "f", self._compare(a.c.n, op, values, path)),
            )
        raise SegmentError(f"custom attributes cannot be compared with {values!r}", path)

    def _exists(self, table: sa.Table, where: Sequence[Any]) -> Expr:
        return sa.exists().where(*where).correlate(self.m)

    # -- tags ----------------------------------------------------------------

    def visit_tags(self, node: Tags, path: str) -> Expr:
        t = self.t.tags
        if node.mode == "any":
            cond = t.c.tag == node.names[0] if len(node.names) == 1 else t.c.tag.in_(node.names)
            return self._exists(t, [t.c.member_id == self.m.c.id, cond])
        return sa.and_(
            *(self._exists(t, [t.c.member_id == self.m.c.id, t.c.tag == n]) for n in node.names)
        )

    # -- behaviour -----------------------------------------------------------

    def property_equals(self, props: Any, name: str, value: str | int | float | bool) -> Expr:
        """The JSON-text event property ``name`` equals ``value`` within its type class
        (dialect-specific; never NULL)."""
        raise SegmentError(f"{type(self).__name__} cannot match event properties")

    def property_string(self, props: Any, name: str) -> Any:
        """The string value of property ``name`` of ``props`` (NULL when absent or not a
        string), comparable byte-wise with another ``property_string``."""
        raise SegmentError(f"{type(self).__name__} cannot read event properties as strings")

    def visit_did(self, node: Did, path: str) -> Expr:
        e = self.t.events
        lo_n, hi_n = node.at_least, node.at_most
        if hi_n is None and lo_n == 0:
            return sa.true()
        if hi_n is not None and hi_n < lo_n:
            return sa.false()
        where: list[Any] = [
            e.c.member_id == self.m.c.id,
            e.c.type == node.event,
            e.c.at <= self.as_of_us,
        ]
        if node.within is not None:
            where.append(e.c.at > self.as_of_us - node.within * 1_000_000)
        for name, value in node.where:
            where.append(self.property_equals(e.c.props, name, value))
        if hi_n is None and lo_n == 1:
            return self._exists(e, where)
        n = (
            sa.select(sa.func.count())
            .select_from(e)
            .where(*where)
            .correlate(self.m)
            .scalar_subquery()
        )
        conds = []
        if lo_n > 0:
            conds.append(n >= lo_n)
        if hi_n is not None:
            conds.append(n <= hi_n)
        return sa.and_(*conds)

    def _contact_as_of(self) -> Any:
        """1 when some (staff, customer) relation is live at ``as_of`` (an add with no
        deletion by the same staff at or after it), 0 when contact events exist but none is
        live, NULL when there are none."""
        e = self.t.events
        a = e.alias("rel_add")
        d = e.alias("rel_del")
        deleted_later = sa.exists().where(
            d.c.member_id == a.c.member_id,
            d.c.type == "contact_deleted",
            d.c.staff == a.c.staff,
            d.c.at >= a.c.at,
            d.c.at <= self.as_of_us,
        )
        live = (
            sa.exists()
            .where(
                a.c.member_id == self.m.c.id,
                a.c.type == "contact_added",
                a.c.at <= self.as_of_us,
                sa.not_(deleted_later),
            )
            .correlate(self.m)
        )
        seen = (
            sa.exists()
            .where(
                e.c.member_id == self.m.c.id,
                self.type_in(e.c.type, ["contact_added", "contact_deleted"]),
                e.c.at <= self.as_of_us,
            )
            .correlate(self.m)
        )
        return sa.case((sa.not_(seen), None), (live, 1), else_=0)

    # -- sampling ------------------------------------------------------------

    def visit_sample(self, node: Sample, path: str) -> Expr:
        threshold = node.threshold
        if threshold <= 0:
            return sa.false()
        if threshold >= BUCKETS:
            return sa.true()
        a, b = salt_coefficients(node.salt)
        h = self.m.c.member_hash
        bucket = ((_bind(a, sa.BigInteger) * h + _bind(b, sa.BigInteger)) % HASH_PRIME) % BUCKETS
        return bucket < threshold  # type: ignore[no-any-return]


_KINDS: dict[str, tuple[str, ...]] = {"str": ("s",), "number": ("i", "f"), "bool": ("b",)}


def _json_path(name: str) -> str:
    # names match [A-Za-z_][A-Za-z0-9_.-]* (validated by Did), so quoting is safe
    return f'$."{name}"'


class SqliteCompiler(SqlCompiler):
    """SQLite: ``LIKE`` is case-insensitive there, so use ``instr``/``substr``; JSON1."""

    backends: ClassVar[tuple[str, ...]] = ("sql.sqlite", "sql")
    dialect: ClassVar[str] = "sqlite"

    def contains(self, col: Any, text: str) -> Expr:
        return sa.func.instr(col, sa.literal(text, sa.String)) > 0

    def startswith(self, col: Any, text: str) -> Expr:
        if not text:
            # every string starts with "", but a NULL col must stay NULL (not TRUE): the
            # as-of fold wraps comparisons in COALESCE(cmp, FALSE) to treat NULL as absent
            out: Expr = col.is_not(None)
            return out
        return sa.func.substr(col, 1, len(text)) == sa.literal(text, sa.String)

    def property_equals(self, props: Any, name: str, value: str | int | float | bool) -> Expr:
        path = _json_path(name)
        jtype = sa.func.json_type(props, path)
        if isinstance(value, bool):
            return jtype == ("true" if value else "false")
        got = sa.func.json_extract(props, path)
        if isinstance(value, str):
            return sa.and_(jtype == "text", got == sa.literal(value, sa.String))
        return sa.and_(jtype.in_(["integer", "real"]), got == value)

    def property_string(self, props: Any, name: str) -> Any:
        path = _json_path(name)
        return sa.case(
            (sa.func.json_type(props, path) == "text", sa.func.json_extract(props, path)),
            else_=sa.null(),
        )


class PostgresCompiler(SqlCompiler):
    """PostgreSQL: JSONB containment for event properties (numbers compare as numbers,
    ``true`` is not ``1``); columns use the ``"C"`` collation so ``LIKE`` is exact."""

    backends: ClassVar[tuple[str, ...]] = ("sql.postgresql", "sql")

    def property_equals(self, props: Any, name: str, value: str | int | float | bool) -> Expr:
        from sqlalchemy.dialects.postgresql import JSONB

        frag = sa.cast(sa.literal(json.dumps({name: value}), sa.Text), JSONB)
        return sa.cast(props, JSONB).op("@>")(frag)

    def property_string(self, props: Any, name: str) -> Any:
        from sqlalchemy.dialects.postgresql import JSONB

        doc = sa.cast(props, JSONB)
        return sa.case(
            (sa.func.jsonb_typeof(doc[name]) == "string", doc[name].astext),
            else_=sa.null(),
        )


class MySqlCompiler(SqlCompiler):
    """MySQL / MariaDB: binary no-pad collations make ``LIKE`` exact; event properties via
    ``JSON_TYPE``/``JSON_EXTRACT`` with byte-wise string comparison."""

    backends: ClassVar[tuple[str, ...]] = ("sql.mysql", "sql")

    def property_equals(self, props: Any, name: str, value: str | int | float | bool) -> Expr:
        path = _json_path(name)
        raw = sa.func.json_extract(props, path)
        jtype = sa.func.json_type(raw)
        present = raw.is_not(None)
        if isinstance(value, bool):
            return sa.and_(
                present,
                jtype == "BOOLEAN",
                sa.func.json_unquote(raw) == ("true" if value else "false"),
            )
        if isinstance(value, str):
            text = sa.func.json_unquote(raw)
            return sa.and_(
                present,
                jtype == "STRING",
                sa.cast(text, sa.LargeBinary)
                == sa.cast(sa.literal(value, sa.String), sa.LargeBinary),
            )
        return sa.and_(
            present,
            jtype.in_(["INTEGER", "DOUBLE", "UNSIGNED INTEGER", "DECIMAL"]),
            sa.func.json_unquote(raw).op("+")(0) == value,
        )

    def property_string(self, props: Any, name: str) -> Any:
        raw = sa.func.json_extract(props, _json_path(name))
        return sa.case(
            (
                sa.func.json_type(raw) == "STRING",
                sa.cast(sa.func.json_unquote(raw), sa.LargeBinary),
            ),
            else_=sa.null(),
        )


_BY_DIALECT: dict[str, type[SqlCompiler]] = {
    "sqlite": SqliteCompiler,
    "postgresql": PostgresCompiler,
    "mysql": MySqlCompiler,
    "mariadb": MySqlCompiler,
}


def compiler_for(dialect_name: str) -> type[SqlCompiler]:
    """The compiler class for a SQLAlchemy dialect name.

    Raises:
        SegmentError: for a dialect membermkt does not support.
    """
    try:
        return _BY_DIALECT[dialect_name]
    except KeyError:
        raise SegmentError(f"no segment compiler for SQL dialect {dialect_name!r}") from None


def compile_segment(
    segment: Segment, tables: Tables, as_of: dt.datetime, dialect_name: str
) -> Expr:
    """``segment`` as a boolean expression over ``tables.members`` for ``dialect_name``.

    Raises:
        SegmentError: for an invalid segment, a naive ``as_of`` or an unsupported dialect.
    """
    if not isinstance(segment, Segment):
        raise SegmentError(f"expected a segment, got {type(segment).__name__}")
    return compiler_for(dialect_name)(tables, as_of).process(segment)
