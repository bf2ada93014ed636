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
from membermkt.core.events import Event
from membermkt.core.members import Member
from membermkt.core.segments import (
    FIELD_TYPES,
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


class PredicateCompiler(Compiler[Predicate]):
    """Segment → ``predicate(member, events)``, for one ``as_of``."""

    backends: ClassVar[tuple[str, ...]] = ("python",)

    def __init__(self, as_of: dt.datetime) -> None:
        if not isinstance(as_of, dt.datetime) or as_of.utcoffset() is None:
            raise SegmentError(f"as_of must be a timezone-aware datetime, got {as_of!r}")
        self.as_of = as_of.astimezone(dt.UTC)
        self.as_of_date = as_of.date()

    # -- combinators ---------------------------------------------------------

    def visit_const(self, node: Const, path: str) -> Predicate:
        value = node.value
        return lambda m, e: value

    def visit_and(self, node: And, path: str) -> Predicate:
        parts = tuple(self.process(p, self.child_path(path, i)) for i, p in enumerate(node.parts))
        if len(parts) == 2:
            a, b = parts
            return lambda m, e: a(m, e) and b(m, e)
        if len(parts) == 3:
            a, b, c = parts
            return lambda m, e: a(m, e) and b(m, e) and c(m, e)
        return lambda m, e: all(p(m, e) for p in parts)

    def visit_or(self, node: Or, path: str) -> Predicate:
        parts = tuple(self.process(p, self.child_path(path, i)) for i, p in enumerate(node.parts))
        if len(parts) == 2:
            a, b = parts
            return lambda m, e: a(m, e) or b(m, e)
        return lambda m, e: any(p(m, e) for p in parts)

    def visit_not(self, node: Not, path: str) -> Predicate:
        inner = self.process(node.part, self.child_path(path))
        return lambda m, e: not inner(m, e)

    # -- leaves --------------------------------------------------------------

    def _resolve(self, v: Any) -> Any:
        if isinstance(v, RelTime):
            return v.resolve(self.as_of)
        return v

    def visit_cmp(self, node: Cmp, path: str) -> Predicate:
        if node.field == "age":
            return self.process(expand_age(node, self.as_of_date), path)
        get = field_getter(node.field)
        ftype = FIELD_TYPES.get(node.field, FieldType.CUSTOM)
        op = node.op
        values = tuple(self._resolve(v) for v in node.values)
        if op == "exists":
            return lambda m, e: get(m) is not None
        if ftype is FieldType.CUSTOM:
            return self._custom_cmp(get, op, values)
        # built-in fields: value types are guaranteed by validation; only None is missing
        if op == "eq":
            (v,) = values
            return lambda m, e: (x := get(m)) is not None and x == v
        if op == "ne":
            (v,) = values
            return lambda m, e: (x := get(m)) is not None and x != v
        if op in _ORDER:
            (v,) = values
            f = _ORDER[op]
            return lambda m, e: (x := get(m)) is not None and f(x, v)
        if op == "in":
            s = frozenset(values)
            return lambda m, e: (x := get(m)) is not None and x in s
        if op == "not_in":
            s = frozenset(values)
            return lambda m, e: (x := get(m)) is not None and x not in s
        if op == "between":
            lo, hi = values
            return lambda m, e: (x := get(m)) is not None and lo <= x <= hi
        if op == "contains":
            (v,) = values
            return lambda m, e: (x := get(m)) is not None and v in x
        if op == "startswith":
            (v,) = values
            return lambda m, e: (x := get(m)) is not None and x.startswith(v)
        raise SegmentError(f"unknown comparison {op!r}", path)

    def _custom_cmp(self, get: _Getter, op: str, values: tuple[Any, ...]) -> Predicate:
        # custom attributes may hold any scalar: compare only within one type class
        classes = tuple(_type_class(v) for v in values)

        def same(x: Any, i: int = 0) -> bool:
            return x is not None and _type_class(x) == classes[i]

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

    def visit_tags(self, node: Tags, path: str) -> Predicate:
        names = frozenset(node.names)
        if node.mode == "any":
            if len(names) == 1:
                (only,) = names
                return lambda m, e: only in m.tags
            return lambda m, e: not names.isdisjoint(m.tags)
        return lambda m, e: names <= m.tags

    def visit_did(self, node: Did, path: str) -> Predicate:
        etype = node.event
        upper = self.as_of
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

        if hi_n is None:
            if lo_n == 0:
                return lambda m, e: True

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

    def visit_sample(self, node: Sample, path: str) -> Predicate:
        a, b = salt_coefficients(node.salt)
        threshold = node.threshold
        from membermkt.core.segments import BUCKETS, HASH_PRIME

        return lambda m, e: ((a * member_hash(m.id) + b) % HASH_PRIME) % BUCKETS < threshold


def compile_predicate(segment: Segment, as_of: dt.datetime) -> Predicate:
    """Compile ``segment`` once into ``predicate(member, events) -> bool`` as of ``as_of``.

    ``events`` are the member's events (any order; those after ``as_of`` are ignored).
    ``age`` is computed on ``as_of``'s calendar date in its own time zone.

    Raises:
        SegmentError: for an invalid segment or a node kind no compiler handles.
    """
    if not isinstance(segment, Segment):
        raise SegmentError(f"expected a segment, got {type(segment).__name__}")
    return PredicateCompiler(as_of).process(segment)
