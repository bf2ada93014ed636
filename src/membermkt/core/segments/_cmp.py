"""Attribute comparisons: the :class:`Cmp` leaf, operand checks and the :func:`attr` builder."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from typing import ClassVar

import attrs

from membermkt.core.segments._fields import (
    _NAME_RE,
    CMP_OPS,
    ORDER_OPS,
    STR_OPS,
    FieldType,
    RelTime,
    Value,
    _type_class,
    field_type,
)
from membermkt.core.segments._nodes import Segment
from membermkt.errors import SegmentError


def _norm_value(name: str, ftype: FieldType, op: str, v: object, where: str) -> Value:
    """Validate one operand for ``name`` and normalise it (datetimes to UTC)."""
    if isinstance(v, dt.datetime):
        if v.utcoffset() is None:
            raise SegmentError(f"{name}: datetimes must be timezone-aware, got {v!r}", where)
        v = v.astimezone(dt.UTC)
    if isinstance(v, float) and not math.isfinite(v):
        raise SegmentError(f"{name}: number must be finite, got {v!r}", where)
    if ftype is FieldType.CUSTOM:
        if not isinstance(v, str | int | float | bool):
            raise SegmentError(
                f"custom attribute {name!r} compares with str, int, float or bool, got {v!r}",
                where,
            )
        return v
    cls = _type_class(v)
    ok = {
        FieldType.STR: cls == "str",
        FieldType.INT: cls == "number" and (isinstance(v, int) or name != "age"),
        FieldType.NUMBER: cls == "number",
        FieldType.BOOL: cls == "bool",
        FieldType.DATE: cls == "date",
        FieldType.DATETIME: cls == "datetime",
    }[ftype]
    if not ok:
        raise SegmentError(f"field {name!r} holds {ftype.value} values, got {v!r}", where)
    if name == "gender" and v not in ("male", "female"):
        raise SegmentError(f"gender is 'male' or 'female', got {v!r}", where)
    assert isinstance(v, str | int | float | bool | dt.date | RelTime)
    return v


@attrs.frozen(slots=True)
class Cmp(Segment):
    """An attribute comparison leaf.

    Attributes:
        field: a profile field, derived field or custom attribute name.
        op: one of ``eq ne lt le gt ge in not_in between exists contains startswith``.
        values: the operands: one for the binary ops, the set for ``in``/``not_in``
            (sorted, deduplicated), ``(low, high)`` for ``between`` (inclusive), none for
            ``exists``.
    """

    field: str
    op: str
    values: tuple[Value, ...] = ()
    kind: ClassVar[str] = "cmp"

    def __attrs_post_init__(self) -> None:
        validate_cmp(self.field, self.op, self.values)

    @property
    def value(self) -> Value:
        """The single operand of a binary comparison."""
        return self.values[0]


def validate_cmp(name: str, op: str, values: tuple[Value, ...], where: str = "$") -> None:
    """Check a comparison's field name, operator and operands.

    Raises:
        SegmentError: naming what was wrong.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise SegmentError(f"invalid field name {name!r}", where)
    if op not in CMP_OPS:
        raise SegmentError(f"unknown comparison {op!r} (expected one of {CMP_OPS})", where)
    ftype = field_type(name)
    if op == "exists":
        if values:
            raise SegmentError("exists takes no value", where)
        return
    if op in STR_OPS and ftype not in (FieldType.STR, FieldType.CUSTOM):
        raise SegmentError(f"{op} needs a text field; {name!r} holds {ftype.value}", where)
    if op in ORDER_OPS and ftype is FieldType.BOOL:
        raise SegmentError(f"{op} is not defined on the yes/no field {name!r}", where)
    if op in ("in", "not_in"):
        if not values:
            raise SegmentError(f"{op} needs at least one value", where)
    elif op == "between":
        if len(values) != 2:
            raise SegmentError("between needs exactly two values (low, high)", where)
        if _type_class(values[0]) != _type_class(values[1]):
            raise SegmentError("between needs two values of the same type", where)
    elif len(values) != 1:
        raise SegmentError(f"{op} needs exactly one value", where)
    for v in values:
        _norm_value(name, ftype, op, v, where)
        if op in STR_OPS and not isinstance(v, str):
            raise SegmentError(f"{op} needs a text value, got {v!r}", where)
        if isinstance(v, RelTime) and ftype is not FieldType.DATETIME:
            raise SegmentError(f"relative times only compare with time fields, not {name}", where)


def _make_cmp(name: str, op: str, values: Iterable[object]) -> Cmp:
    ftype = field_type(name)
    vals = [_norm_value(name, ftype, op, v, "$") for v in values]
    if op in ("in", "not_in"):
        # dedupe by (type class, value): 1, 1.0 and True are not the same operand here
        unique = {(_type_class(v), v): v for v in vals}
        vals = sorted(unique.values(), key=_sort_key)
    return Cmp(name, op, tuple(vals))


def _sort_key(v: object) -> tuple[str, str]:
    return (_type_class(v), repr(v))


class Field:
    """Builds comparisons on one field: ``attr("city") == "Shanghai"``.

    Comparison operators return segments (not booleans). Methods: :meth:`isin`,
    :meth:`not_in`, :meth:`between` (inclusive), :meth:`exists`, :meth:`contains`,
    :meth:`startswith`.
    """

    __slots__ = ("name",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise SegmentError(
                f"invalid field name {name!r}: letters, digits, _ . - (max 64, not first digit)"
            )
        self.name = name

    def __repr__(self) -> str:
        return f"attr({self.name!r})"

    def __eq__(self, value: object) -> Cmp:  # type: ignore[override]
        return _make_cmp(self.name, "eq", [value])

    def __ne__(self, value: object) -> Cmp:  # type: ignore[override]
        return _make_cmp(self.name, "ne", [value])

    def __lt__(self, value: object) -> Cmp:
        return _make_cmp(self.name, "lt", [value])

    def __le__(self, value: object) -> Cmp:
        return _make_cmp(self.name, "le", [value])

    def __gt__(self, value: object) -> Cmp:
        return _make_cmp(self.name, "gt", [value])

    def __ge__(self, value: object) -> Cmp:
        return _make_cmp(self.name, "ge", [value])

    def isin(self, values: Iterable[object]) -> Cmp:
        """The value is one of ``values``."""
        if isinstance(values, str):
            raise SegmentError("isin takes a collection of values, not a single str")
        return _make_cmp(self.name, "in", values)

    def not_in(self, values: Iterable[object]) -> Cmp:
        """The value is present and none of ``values`` (missing → false)."""
        if isinstance(values, str):
            raise SegmentError("not_in takes a collection of values, not a single str")
        return _make_cmp(self.name, "not_in", values)

    def between(self, low: object, high: object) -> Cmp:
        """``low <= value <= high``."""
        return _make_cmp(self.name, "between", [low, high])

    def exists(self) -> Cmp:
        """The value is present."""
        return _make_cmp(self.name, "exists", [])

    def contains(self, text: str) -> Cmp:
        """The text value contains ``text`` (case-sensitive)."""
        return _make_cmp(self.name, "contains", [text])

    def startswith(self, text: str) -> Cmp:
        """The text value starts with ``text`` (case-sensitive)."""
        return _make_cmp(self.name, "startswith", [text])


def attr(name: str) -> Field:
    """A field to compare: a :class:`~membermkt.core.members.Profile` field, a derived field
    (``age``, ``subscribed``, ``followed_at``, ``source``, ``last_active_at``,
    ``orders_count``, ``orders_total_fen``, ``first_order_at``, ``last_order_at``,
    ``wecom_contact``) or a custom attribute name.

    Raises:
        SegmentError: for an invalid name; comparisons raise it for values of the wrong type.
    """
    return Field(name)
