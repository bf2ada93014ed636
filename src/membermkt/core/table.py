"""Members stored column-wise, and segments compiled into one loop over the columns.

:func:`~membermkt.core.evaluate.compile_predicate` answers "is this member in the segment"
for one :class:`~membermkt.core.members.Member` at a time; every answer pays a call and the
attribute chains of the object model (``m.profile.city``, ``m.state.last_active_at``).
For many members at once, a :class:`MemberTable` holds one list per field (built lazily,
on the first segment that reads it) and, per event type, each member's event times
sorted; :meth:`MemberTable.indices` runs a generated loop over just the columns the segment
reads — what a hand-written loop over plain tuples does. ``did(...)`` without property
filters counts a window with two ``bisect`` calls.

>>> import datetime as dt
>>> from membermkt import Member, Profile
>>> from membermkt.segments import attr
>>> table = MemberTable([(Member("m1", Profile(city="Hangzhou")), []), (Member("m2"), [])])
>>> table.select(attr("city") == "Hangzhou", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
['m1']

The answers are those of ``compile_predicate`` on the same members and events (property
tested): members whose stored state is stale for ``as_of`` (an event later than ``as_of``
was folded), custom attributes, ``did`` with property filters and plugin leaves are
evaluated by the per-member predicate inside the same loop.

The table is a snapshot: it keeps references to the members and event sequences it was
built from and never re-reads them.
"""

from __future__ import annotations

import bisect
import datetime as dt
import operator
from collections.abc import Callable, Iterable, Sequence
from itertools import compress, repeat
from typing import Any

from membermkt.core.evaluate import (
    STATE_FIELDS,
    Predicate,
    PredicateCompiler,
    compile_predicate,
    field_getter,
)
from membermkt.core.events import Event
from membermkt.core.members import Member
from membermkt.core.segments import FIELD_TYPES, And, Cmp, Did, FieldType, RelTime, Segment
from membermkt.errors import SegmentError, UsageError

__all__ = ["MemberTable", "TableScan", "compile_table"]

TableScan = Callable[["MemberTable"], list[int]]
"""``scan(table) -> row indices`` of the members in the segment, ascending."""


class MemberTable:
    """Members with their events, column-wise, for evaluating segments over all of them.

    Args:
        rows: ``(member, events)`` pairs (events in any order, as for
            :func:`~membermkt.core.evaluate.compile_predicate`).

    Raises:
        UsageError: when a row is not a ``(Member, events)`` pair.
    """

    __slots__ = ("_columns", "_events", "_latest", "_members", "_times")

    def __init__(self, rows: Iterable[tuple[Member, Sequence[Event]]]) -> None:
        members: list[Member] = []
        events: list[Sequence[Event]] = []
        for row in rows:
            try:
                m, evs = row
            except (TypeError, ValueError):
                raise UsageError(
                    f"a MemberTable row is a (member, events) pair, got {row!r}"
                ) from None
            if not isinstance(m, Member):
                raise UsageError(f"a MemberTable row starts with a Member, got {m!r}")
            members.append(m)
            events.append(evs)
        self._members = members
        self._events = events
        self._columns: dict[str, list[Any]] = {}
        self._times: dict[str, list[tuple[dt.datetime, ...]]] = {}
        self._latest: tuple[dt.datetime | None] | None = None

    def __len__(self) -> int:
        return len(self._members)

    @property
    def members(self) -> Sequence[Member]:
        """The members, in row order."""
        return self._members

    @property
    def events(self) -> Sequence[Sequence[Event]]:
        """Each member's events, in row order."""
        return self._events

    def column(self, name: str) -> list[Any]:
        """The stored values of a built-in field (``"id"``, ``"tags"``, ``"last_event_at"``
        or a field of :data:`~membermkt.core.segments.FIELD_TYPES` but ``age``), one per row.

        Raises:
            SegmentError: for ``age`` (it depends on ``as_of``).
        """
        col = self._columns.get(name)
        if col is None:
            if name == "id":
                col = [m.id for m in self._members]
            elif name == "tags":
                col = [m.tags for m in self._members]
            elif name == "last_event_at":
                col = [m.state.last_event_at for m in self._members]
            else:
                get = field_getter(name)
                col = [get(m) for m in self._members]
            self._columns[name] = col
        return col

    def latest_event_at(self) -> dt.datetime | None:
        """The latest ``last_event_at`` of any member (``None`` when no member has one):
        for an ``as_of`` at or after it every member's stored state is fresh."""
        if self._latest is None:
            known = [t for t in self.column("last_event_at") if t is not None]
            self._latest = (max(known) if known else None,)
        return self._latest[0]

    def times(self, event_type: str) -> list[tuple[dt.datetime, ...]]:
        """Per row, the times of the member's events of ``event_type``, sorted."""
        col = self._times.get(event_type)
        if col is None:
            col = [tuple(sorted(e.at for e in evs if e.type == event_type)) for evs in self._events]
            self._times[event_type] = col
        return col

    def indices(self, segment: Segment, as_of: dt.datetime) -> list[int]:
        """Row indices (ascending) of the members in ``segment`` as of ``as_of``.

        Raises:
            SegmentError: for an invalid segment or a naive ``as_of``.
        """
        return compile_table(segment, as_of)(self)

    def select(self, segment: Segment, as_of: dt.datetime) -> list[str]:
        """Ids of the members in ``segment`` as of ``as_of``, in row order.

        Raises:
            SegmentError: for an invalid segment or a naive ``as_of``.
        """
        ids = self.column("id")
        return [ids[i] for i in self.indices(segment, as_of)]

    def count(self, segment: Segment, as_of: dt.datetime) -> int:
        """How many members are in ``segment`` as of ``as_of``.

        Raises:
            SegmentError: for an invalid segment or a naive ``as_of``.
        """
        return len(self.indices(segment, as_of))


class TableCompiler(PredicateCompiler):
    """Segment → a scan of a :class:`MemberTable` (see :func:`compile_table`).

    Two stages. **Filters**: the top-level conjuncts that are an equality or ``in`` on a
    built-in field select row indices column by column in C (``compress`` over ``map``),
    without a Python-level step per row. **Loop**: the rest of the segment is one generated
    expression — :class:`~membermkt.core.evaluate.PredicateCompiler`'s, with column lookups
    ``column[i]`` in place of attribute chains — run over the remaining rows. What has no
    column (custom attributes, ``did`` with property filters, plugin leaves) is a closure
    called on the row's member and events.

    A derived field (``last_active_at``, ``orders_count``, ...) is read from its stored
    column only when the table has no member whose stored state is stale for ``as_of``;
    otherwise the loop tests each row and evaluates the stale ones with
    :func:`~membermkt.core.evaluate.compile_predicate` (which refolds their events).
    """

    def __init__(self, as_of: dt.datetime) -> None:
        super().__init__(as_of)
        self.fields: dict[str, str] = {}  # column name -> local
        self.event_types: dict[str, str] = {}  # event type -> local

    def _local(self, name: str) -> str:
        local = self.fields.get(name)
        if local is None:
            local = self.fields[name] = f"_c{len(self.fields)}"
        return f"{local}[_i]"

    def call(self, fn: Predicate) -> str:
        return f"{self.bind(fn)}(_M[_i], _E[_i])"

    def field_expr(self, name: str) -> str:
        super().field_expr(name)  # records reads_state
        return self._local(name)

    def tags_expr(self) -> str:
        return self._local("tags")

    def id_expr(self) -> str:
        return self._local("id")

    def visit_did(self, node: Did, path: str) -> str:
        lo_n, hi_n = node.at_least, node.at_most
        if node.where or (hi_n is None and lo_n == 0):
            return super().visit_did(node, path)
        local = self.event_types.get(node.event)
        if local is None:
            local = self.event_types[node.event] = f"_d{len(self.event_types)}"
        br = self.bind(bisect.bisect_right)
        n = f"{br}({local}[_i], {self.bind(self.as_of)})"
        if node.within is not None:
            lower = self.as_of - dt.timedelta(seconds=node.within)
            n = f"{n} - {br}({local}[_i], {self.bind(lower)})"
        if hi_n is None:
            return f"({n} >= {lo_n})"
        return f"({lo_n} <= {n} <= {hi_n})"

    def build_scan(self, segment: Segment) -> TableScan:
        """Compile ``segment`` into ``scan(table) -> row indices``."""
        parts = list(segment.parts) if isinstance(segment, And) else [segment]
        as_of = self.as_of
        fresh = self._plan(parts, with_state_filters=True)
        if not _reads_state(segment, as_of):
            return fresh
        stale: list[TableScan] = []  # compiled on first need

        def scan(table: MemberTable) -> list[int]:
            latest = table.latest_event_at()
            if latest is None or latest <= as_of:
                return fresh(table)
            if not stale:
                stale.append(
                    TableCompiler(as_of)._plan(
                        parts, with_state_filters=False, slow=compile_predicate(segment, as_of)
                    )
                )
            return stale[0](table)

        return scan

    def _plan(
        self,
        parts: list[Segment],
        *,
        with_state_filters: bool,
        slow: Predicate | None = None,
    ) -> TableScan:
        filters: list[tuple[str, str, Any]] = []
        rest: list[Segment] = []
        for part in parts:
            spec = _filter_spec(part, self.as_of, state=with_state_filters)
            if spec is None:
                rest.append(part)
            else:
                filters.append(spec)
        loop = self._loop(rest, slow) if rest else None

        def scan(table: MemberTable) -> list[int]:
            rows: Iterable[int] = range(len(table))
            picked: list[int] | None = None
            for field, op, value in filters:
                col = table.column(field)
                values: Iterable[Any] = col if picked is None else map(col.__getitem__, picked)
                if op == "eq":
                    flags: Iterable[Any] = map(operator.eq, repeat(value), values)
                else:
                    flags = map(value.__contains__, values)
                picked = list(compress(rows if picked is None else picked, flags))
            if loop is None:
                return list(rows) if picked is None else picked
            return loop(table, rows if picked is None else picked)

        return scan

    def _loop(
        self, parts: list[Segment], slow: Predicate | None
    ) -> Callable[[MemberTable, Iterable[int]], list[int]]:
        expr = self.process(parts[0] if len(parts) == 1 else And(parts))
        fields = list(self.fields.items())
        if slow is not None:
            fields.append(("last_event_at", "_le"))
        types = list(self.event_types.items())
        names = [local for _, local in fields] + [local for _, local in types]
        # the bound constants become fast locals (keyword defaults)
        consts = "".join(f", {k}={k}" for k in self.namespace)
        args = ", ".join(["_M", "_E", "_rows", *names])
        head = f"def _scan({args}, *{consts}):" if consts else f"def _scan({args}):"
        lines = [head, "    _out = []", "    _add = _out.append", "    for _i in _rows:"]
        if {"m", "e"} & set(compile(expr, "<segment>", "eval").co_names):
            # a plugin's expression over the member ``m`` and its events ``e``
            lines += ["        m = _M[_i]", "        e = _E[_i]"]
        if slow is not None:
            lines += [
                "        if (_l := _le[_i]) is not None and _l > _as_of:",
                "            if _slow(_M[_i], _E[_i]):",
                "                _add(_i)",
                f"        elif {expr}:",
                "            _add(_i)",
            ]
        else:
            lines += [f"        if {expr}:", "            _add(_i)"]
        lines.append("    return _out")
        builtins = {"bool": bool}
        scope: dict[str, Any] = {"__builtins__": builtins, **self.namespace, "_as_of": self.as_of}
        if slow is not None:
            scope["_slow"] = slow
        exec(compile("\n".join(lines), "<membermkt segment table>", "exec"), scope)
        fn = scope["_scan"]
        field_names = [name for name, _ in fields]
        type_names = [t for t, _ in types]

        def loop(table: MemberTable, rows: Iterable[int]) -> list[int]:
            cols = [table.column(f) for f in field_names] + [table.times(t) for t in type_names]
            out: list[int] = fn(table.members, table.events, rows, *cols)
            return out

        return loop


def _filter_spec(part: Segment, as_of: dt.datetime, *, state: bool) -> tuple[str, str, Any] | None:
    """``(field, "eq" | "in", value or frozenset)`` when ``part`` is an equality or ``in``
    on a stored built-in column (derived fields only when ``state``), else None.

    The semantics are the predicate's: ``value == x`` and ``x in frozenset(values)`` (a
    missing value is ``None``, never equal to an operand, never in the set).
    """
    if not isinstance(part, Cmp) or part.op not in ("eq", "in"):
        return None
    if FIELD_TYPES.get(part.field, FieldType.CUSTOM) is FieldType.CUSTOM or part.field == "age":
        return None
    if part.field in STATE_FIELDS and not state:
        return None
    values = [
        v.resolve(as_of.astimezone(dt.UTC)) if isinstance(v, RelTime) else v for v in part.values
    ]
    if part.op == "eq":
        return (part.field, "eq", values[0])
    return (part.field, "in", frozenset(values))


def _reads_state(segment: Segment, as_of: dt.datetime) -> bool:
    probe = PredicateCompiler(as_of)
    probe.process(segment)
    return probe.reads_state


def compile_table(segment: Segment, as_of: dt.datetime) -> TableScan:
    """Compile ``segment`` once into ``scan(table) -> row indices`` as of ``as_of``.

    Raises:
        SegmentError: for an invalid segment, a naive ``as_of`` or a node kind no compiler
            handles.
    """
    if not isinstance(segment, Segment):
        raise SegmentError(f"expected a segment, got {type(segment).__name__}")
    return TableCompiler(as_of).build_scan(segment)
