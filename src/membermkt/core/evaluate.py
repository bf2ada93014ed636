"""Compile a segment into a Python predicate (a closure built once, no per-member tree walk).

>>> import datetime as dt
>>> from membermkt import Member, Profile
>>> from membermkt.segments import attr
>>> p = compile_predicate(attr("city") == "Hangzhou", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
>>> p(Member("m1", Profile(city="Hangzhou")), [])
True
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from membermkt.core.compiler import Compiler
from membermkt.core.events import Event, state_as_of
from membermkt.core.members import Member, MemberState
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
    member_hash,
    salt_coefficients,
)
from membermkt.errors import SegmentError

__all__ = ["Predicate", "PredicateCompiler", "compile_predicate", "field_getter"]

Predicate = Callable[[Member, Sequence[Event]], bool]
"""``predicate(member, events) -> bool``; events may be in any order."""

_Getter = Callable[[Member], Any]

_GETTERS: dict[str, _Getter] = {
    "gender": lambda m: m.profile.gender,
    "city": lambda m: m.profile.city,
    "province": lambda m: m.profile.province,
    "country": lambda m: m.profile.country,
    "birthday": lambda m: m.profile.birthday,
    "income_band": lambda m: m.profile.income_band,
    "tier": lambda m: m.profile.tier,
    "subscribed": lambda m: m.state.subscribed,
    "followed_at": lambda m: m.state.followed_at,
    "source": lambda m: m.state.source,
    "last_active_at": lambda m: m.state.last_active_at,
    "orders_count": lambda m: m.state.purchases.count,
    "orders_total_fen": lambda m: m.state.purchases.total_fen,
    "first_order_at": lambda m: m.state.purchases.first_at,
    "last_order_at": lambda m: m.state.purchases.last_at,
    "wecom_contact": lambda m: m.state.wecom_contact,
}


def field_getter(name: str) -> _Getter:
    """``member -> value or None`` for a built-in field or custom attribute (not ``age``)."""
    getter = _GETTERS.get(name)
    if getter is not None:
        return getter
    if name == "age":
        raise SegmentError("age depends on as_of; compile it with expand_age")

    def custom(m: Member) -> Any:
        return m.attributes.get(name)

    return custom


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


# expressions reading built-in fields of ``m`` (the generated code's member argument)
_FIELD_EXPR: dict[str, str] = {
    "gender": "m.profile.gender",
    "city": "m.profile.city",
    "province": "m.profile.province",
    "country": "m.profile.country",
    "birthday": "m.profile.birthday",
    "income_band": "m.profile.income_band",
    "tier": "m.profile.tier",
    "subscribed": "m.state.subscribed",
    "followed_at": "m.state.followed_at",
    "source": "m.state.source",
    "last_active_at": "m.state.last_active_at",
    "orders_count": "m.state.purchases.count",
    "orders_total_fen": "m.state.purchases.total_fen",
    "first_order_at": "m.state.purchases.first_at",
    "last_order_at": "m.state.purchases.last_at",
    "wecom_contact": "m.state.wecom_contact",
}

STATE_FIELDS = frozenset(
    {
        "subscribed",
        "followed_at",
        "source",
        "last_active_at",
        "orders_count",
        "orders_total_fen",
        "first_order_at",
        "last_order_at",
        "wecom_contact",
    }
)
"""Fields derived from events (evaluated on the member as of ``as_of``)."""

_PY_OPS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


class PredicateCompiler(Compiler[str]):
    """Segment → ``predicate(member, events)``, for one ``as_of``.

    The tree is compiled once into a single Python expression over ``m`` (the member) and
    ``e`` (its events); every operand is bound as a named constant in the expression's
    namespace (values are never formatted into the source), so evaluation costs about what
    a hand-written ``if`` chain costs. Behaviour leaves and custom-attribute comparisons
    are closures called from the expression.
    """

    backends: ClassVar[tuple[str, ...]] = ("python",)

    def __init__(self, as_of: dt.datetime) -> None:
        if not isinstance(as_of, dt.datetime) or as_of.utcoffset() is None:
            raise SegmentError(f"as_of must be a timezone-aware datetime, got {as_of!r}")
        self.as_of = as_of.astimezone(dt.UTC)
        self.as_of_date = as_of.date()
        self.namespace: dict[str, Any] = {}
        self._n = 0
        self.reads_state = False
        self.reads_profile = False

    def bind(self, value: Any) -> str:
        """Bind ``value`` as a constant of the generated code; returns its name."""
        name = f"_k{self._n}"
        self._n += 1
        self.namespace[name] = value
        return name

    def temp(self) -> str:
        """A fresh local name for an assignment expression."""
        self._n += 1
        return f"_t{self._n}"

    def call(self, fn: Predicate) -> str:
        """An expression calling a closure ``fn(m, e)``."""
        return f"{self.bind(fn)}(m, e)"

    def field_expr(self, name: str) -> str:
        """An expression reading the built-in field ``name`` (not ``age``)."""
        if name in STATE_FIELDS:
            self.reads_state = True
        x = _FIELD_EXPR[name]
        # the generated function reads m.profile / m.state once, into locals
        if x.startswith("m.profile."):
            self.reads_profile = True
            return "_p." + x.removeprefix("m.profile.")
        # the state as of as_of, looked up on the first state field the member reaches
        return "(_s or (_s := _state(m, e)))." + x.removeprefix("m.state.")

    def tags_expr(self) -> str:
        """An expression reading the member's tags (a frozenset)."""
        return "m.tags"

    def id_expr(self) -> str:
        """An expression reading the member's id."""
        return "m.id"

    def process(self, node: Segment, path: str = "$") -> str:
        out: Any = super().process(node, path)
        if callable(out):  # a plugin's @compiles function returned a closure
            return self.call(out)
        if not isinstance(out, str):
            raise SegmentError(f"python backend got {type(out).__name__} for {node.kind}", path)
        return out

    def build(self, segment: Segment) -> Predicate:
        """Compile ``segment`` and return the predicate.

        A field derived from events is read from the member's state as of ``as_of``
        (:func:`~membermkt.core.events.state_as_of`): its stored state when no folded event
        is later than ``as_of``, else the fold of its events up to ``as_of``. That state is
        looked up once per member, when the first such clause is reached. Closures (``did``,
        custom attributes, plugin leaves) receive the member as given and its events.
        """
        expr = self.process(segment)
        lines = ["def _pred(m, e):"]
        scope: dict[str, Any] = {"__builtins__": {"bool": bool}, **self.namespace}
        if self.reads_state:
            # ``_s``: None until a state field is read, then the member's state as of as_of
            # (a MemberState is always truthy). Members rejected by profile fields never
            # touch their state (a cache miss per member at scale).
            lines.append("    _s = None")
            scope["_state"] = _state_getter(self.as_of)
        if self.reads_profile:
            lines.append("    _p = m.profile")
        lines.append(f"    return bool({expr})")
        return self._function(lines, scope)

    @staticmethod
    def _function(lines: list[str], scope: dict[str, Any]) -> Predicate:
        exec(compile("\n".join(lines), "<membermkt segment>", "exec"), scope)
        out: Predicate = scope["_pred"]
        return out

    # -- combinators ---------------------------------------------------------

    def visit_const(self, node: Const, path: str) -> str:
        return "True" if node.value else "False"

    def visit_and(self, node: And, path: str) -> str:
        parts = [self.process(p, self.child_path(path, i)) for i, p in enumerate(node.parts)]
        return "(" + " and ".join(parts) + ")"

    def visit_or(self, node: Or, path: str) -> str:
        parts = [self.process(p, self.child_path(path, i)) for i, p in enumerate(node.parts)]
        return "(" + " or ".join(parts) + ")"

    def visit_not(self, node: Not, path: str) -> str:
        return f"(not {self.process(node.part, self.child_path(path))})"

    # -- leaves --------------------------------------------------------------

    def _resolve(self, v: Any) -> Any:
        if isinstance(v, RelTime):
            return v.resolve(self.as_of)
        return v

    def visit_cmp(self, node: Cmp, path: str) -> str:
        if node.field == "age":
            return self.process(expand_age(node, self.as_of_date), path)
        op = node.op
        values = tuple(self._resolve(v) for v in node.values)
        ftype = FIELD_TYPES.get(node.field, FieldType.CUSTOM)
        if ftype is FieldType.CUSTOM:
            get = field_getter(node.field)
            return self.call(self._custom_cmp(get, op, values))
        x = self.field_expr(node.field)
        if x.isidentifier():  # a local already (no attribute chain to evaluate twice)
            t = x
            present = f"({x} is not None"
        else:
            t = self.temp()
            present = f"(({t} := {x}) is not None"
        if op == "exists":
            return f"({x} is not None)"
        if op == "eq":
            # the operand is never None, so a missing value compares unequal by itself
            return f"({x} == {self.bind(values[0])})"
        if op in _PY_OPS:
            return f"{present} and {t} {_PY_OPS[op]} {self.bind(values[0])})"
        if op == "in":
            return f"({x} in {self.bind(frozenset(values))})"
        if op == "not_in":
            return f"{present} and {t} not in {self.bind(frozenset(values))})"
        if op == "between":
            lo, hi = values
            return f"{present} and {self.bind(lo)} <= {t} <= {self.bind(hi)})"
        if op == "contains":
            return f"{present} and {self.bind(values[0])} in {t})"
        if op == "startswith":
            return f"{present} and {t}.startswith({self.bind(values[0])}))"
        raise SegmentError(f"unknown comparison {op!r}", path)

    def _custom_cmp(self, get: _Getter, op: str, values: tuple[Any, ...]) -> Predicate:
        # custom attributes may hold any scalar: compare only within one type class
        classes = tuple(_type_class(v) for v in values)

        def same(x: Any, i: int = 0) -> bool:
            return x is not None and _type_class(x) == classes[i]

        if op == "exists":
            return lambda m, e: get(m) is not None
        if op == "eq":
            (v,) = values
            return lambda m, e: same(x := get(m)) and x == v
        if op == "ne":
            (v,) = values
            return lambda m, e: same(x := get(m)) and x != v
        if op in _ORDER:
            (v,) = values
            f = _ORDER[op]
            return lambda m, e: same(x := get(m)) and f(x, v)
        if op in ("in", "not_in"):
            pairs = frozenset(zip(classes, values, strict=True))
            present = frozenset(classes)

            def member_of(x: Any) -> bool:
                return (_type_class(x), x) in pairs

            if op == "in":
                return lambda m, e: (x := get(m)) is not None and member_of(x)
            # not_in: present, of a comparable class, and not one of the values
            return lambda m, e: (
                (x := get(m)) is not None and _type_class(x) in present and not member_of(x)
            )
        if op == "between":
            lo, hi = values
            return lambda m, e: same(x := get(m)) and lo <= x <= hi
        if op == "contains":
            (v,) = values
            return lambda m, e: isinstance(x := get(m), str) and v in x
        if op == "startswith":
            (v,) = values
            return lambda m, e: isinstance(x := get(m), str) and x.startswith(v)
        raise SegmentError(f"unknown comparison {op!r}")

    def visit_tags(self, node: Tags, path: str) -> str:
        names = frozenset(node.names)
        if node.mode == "any":
            if len(names) == 1:
                (only,) = names
                return f"({self.bind(only)} in {self.tags_expr()})"
            return f"(not {self.bind(names)}.isdisjoint({self.tags_expr()}))"
        return f"({self.bind(names)} <= {self.tags_expr()})"

    def visit_did(self, node: Did, path: str) -> str:
        return self.call(_did_closure(node, self.as_of))

    def visit_sample(self, node: Sample, path: str) -> str:
        a, b = salt_coefficients(node.salt)
        h = self.bind(member_hash)
        return (
            f"((({self.bind(a)} * {h}({self.id_expr()}) + {self.bind(b)}) % {HASH_PRIME})"
            f" % {BUCKETS}"
            f" < {self.bind(node.threshold)})"
        )


def _state_getter(as_of: dt.datetime) -> Callable[[Member, Sequence[Event]], MemberState]:
    """``state(member, events)``: the stored state when no folded event is later than
    ``as_of``, else the fold of the events up to ``as_of``."""

    def state(m: Member, e: Sequence[Event]) -> MemberState:
        s = m.state
        last = s.last_event_at
        if last is not None and last > as_of:
            return state_as_of(m, e, as_of).state
        return s

    return state


def _did_closure(node: Did, as_of: dt.datetime) -> Predicate:
    etype = node.event
    upper = as_of
    lower = None if node.within is None else upper - dt.timedelta(seconds=node.within)
    where = tuple((k, v, _type_class(v)) for k, v in node.where)
    lo_n = node.at_least
    hi_n = node.at_most

    def matches(ev: Event) -> bool:
        if ev.type != etype:
            return False
        at = ev.at
        if at > upper or (lower is not None and at <= lower):
            return False
        props = ev.properties
        for k, v, cls in where:
            x = props.get(k)
            if x is None or _type_class(x) != cls or x != v:
                return False
        return True

    if hi_n is None and lo_n == 0:
        return lambda m, e: True
    if not where:
        return _did_plain(etype, lower, upper, lo_n, hi_n)
    if hi_n is None:

        def at_least(m: Member, events: Sequence[Event]) -> bool:
            n = 0
            for ev in events:
                if matches(ev):
                    n += 1
                    if n >= lo_n:
                        return True
            return False

        return at_least

    def bounded(m: Member, events: Sequence[Event]) -> bool:
        n = 0
        for ev in events:
            if matches(ev):
                n += 1
                if n > hi_n:
                    return False
        return n >= lo_n

    return bounded


def _did_plain(
    etype: str, lower: dt.datetime | None, upper: dt.datetime, lo_n: int, hi_n: int | None
) -> Predicate:
    """``did`` without property filters: the window test inlined in the loop."""
    if lower is None:
        lower = dt.datetime.min.replace(tzinfo=dt.UTC)  # every aware instant is later
    lo, hi = lower, upper
    if hi_n is None:

        def at_least(m: Member, events: Sequence[Event]) -> bool:
            n = 0
            for ev in events:
                if ev.type == etype and lo < ev.at <= hi:
                    n += 1
                    if n >= lo_n:
                        return True
            return False

        return at_least
    most = hi_n

    def bounded(m: Member, events: Sequence[Event]) -> bool:
        n = 0
        for ev in events:
            if ev.type == etype and lo < ev.at <= hi:
                n += 1
                if n > most:
                    return False
        return n >= lo_n

    return bounded


def compile_predicate(segment: Segment, as_of: dt.datetime) -> Predicate:
    """Compile ``segment`` once into ``predicate(member, events) -> bool`` as of ``as_of``.

    ``events`` are the member's events (any order; those after ``as_of`` are ignored).
    ``age`` is computed on ``as_of``'s calendar date in its own time zone.

    Raises:
        SegmentError: for an invalid segment or a node kind no compiler handles.
    """
    if not isinstance(segment, Segment):
        raise SegmentError(f"expected a segment, got {type(segment).__name__}")
    return PredicateCompiler(as_of).build(segment)
