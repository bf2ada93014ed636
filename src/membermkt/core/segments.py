"""The segment algebra: immutable expression trees over a member and their history.

A segment is evaluated *as of* a point in time. Leaves:

* :class:`Cmp` — an attribute comparison (``eq ne lt le gt ge in not_in between exists
  contains startswith``) on a profile field, a derived field or a custom attribute;
* :class:`Tags` — tag membership (any / all of some tags; "none of" is ``~any``);
* :class:`Did` — "did event E (with these properties) at least N / at most M times within
  the last D" — counting events in ``(as_of - within, as_of]``;
* :class:`Sample` — deterministic hash sampling (holdouts);
* :data:`TRUE` / :data:`FALSE`.

Combinators :class:`And`, :class:`Or`, :class:`Not` (built with ``&``, ``|``, ``~``).

**Missing values**: a comparison on a missing attribute is false and its negation is true.
The same holds for values of another type than the comparison's (a custom attribute holding
``"3"`` is not ``== 3``). Every backend agrees on this (property-tested).

The JSON form (``to_json``/``from_json``) is versioned and human-editable; ``from_json``
raises only :class:`~membermkt.errors.SegmentError`, naming the JSON path of the bad node.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar, Final, TypeAlias

import attrs

from membermkt.core.members import DERIVED_FIELDS, PROFILE_FIELDS
from membermkt.errors import SegmentError

__all__ = [
    "FALSE",
    "FIELD_TYPES",
    "JSON_VERSION",
    "TRUE",
    "And",
    "Cmp",
    "Const",
    "Did",
    "Field",
    "FieldType",
    "Not",
    "Or",
    "RelTime",
    "Sample",
    "Segment",
    "Tags",
    "age_threshold_birthday",
    "ago",
    "all_tags",
    "any_tag",
    "attr",
    "completed_years",
    "did",
    "expand_age",
    "field_type",
    "from_json",
    "member_hash",
    "no_tags",
    "sample",
    "sample_bucket",
    "shift_years",
    "tag",
    "walk",
]

JSON_VERSION: Final = 1
MAX_DEPTH: Final = 64
"""Deepest nesting accepted (by constructors and by ``from_json``)."""


class FieldType(enum.StrEnum):
    """Value types of segment fields."""

    STR = "str"
    INT = "int"
    NUMBER = "number"
    BOOL = "bool"
    DATE = "date"
    DATETIME = "datetime"
    CUSTOM = "custom"
    """A custom attribute: str, int, float or bool; comparisons require the same type."""


FIELD_TYPES: Final[Mapping[str, FieldType]] = {
    "gender": FieldType.STR,
    "city": FieldType.STR,
    "province": FieldType.STR,
    "country": FieldType.STR,
    "birthday": FieldType.DATE,
    "income_band": FieldType.STR,
    "tier": FieldType.STR,
    "age": FieldType.INT,
    "subscribed": FieldType.BOOL,
    "followed_at": FieldType.DATETIME,
    "source": FieldType.STR,
    "last_active_at": FieldType.DATETIME,
    "orders_count": FieldType.INT,
    "orders_total_fen": FieldType.INT,
    "first_order_at": FieldType.DATETIME,
    "last_order_at": FieldType.DATETIME,
    "wecom_contact": FieldType.BOOL,
}
"""Types of the built-in fields (profile + derived). Any other name is a custom attribute."""

assert set(FIELD_TYPES) == set(PROFILE_FIELDS) | set(DERIVED_FIELDS)

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
_EVENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")

CMP_OPS: Final = (
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "in",
    "not_in",
    "between",
    "exists",
    "contains",
    "startswith",
)
ORDER_OPS: Final = frozenset({"lt", "le", "gt", "ge", "between"})
STR_OPS: Final = frozenset({"contains", "startswith"})


def field_type(name: str) -> FieldType:
    """The type of field ``name`` (built-in fields have fixed types; others are custom)."""
    return FIELD_TYPES.get(name, FieldType.CUSTOM)


# --------------------------------------------------------------------------- values


@attrs.frozen(slots=True)
class RelTime:
    """A time relative to the evaluation time: ``as_of - seconds``."""

    seconds: int

    def __attrs_post_init__(self) -> None:
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, int):
            raise SegmentError(f"relative time needs whole seconds, got {self.seconds!r}")
        if not 0 <= self.seconds <= 100 * 366 * 86400:
            raise SegmentError(f"relative time out of range (0..100 years): {self.seconds}s")

    def resolve(self, as_of: dt.datetime) -> dt.datetime:
        """The absolute time ``as_of - seconds`` (in UTC)."""
        return as_of.astimezone(dt.UTC) - dt.timedelta(seconds=self.seconds)


def ago(*, days: int = 0, hours: int = 0, minutes: int = 0, seconds: int = 0) -> RelTime:
    """A time relative to the evaluation time, e.g. ``attr("last_active_at") >= ago(days=30)``."""
    return RelTime(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


Value: TypeAlias = str | int | float | bool | dt.date | dt.datetime | RelTime
"""A comparison operand."""


def _type_class(v: object) -> str:
    """Comparable classes: values compare only within one class (bool is not a number)."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "str"
    if isinstance(v, dt.datetime):
        return "datetime"
    if isinstance(v, dt.date):
        return "date"
    if isinstance(v, RelTime):
        return "datetime"
    return "?"


# --------------------------------------------------------------------------- nodes


class Segment:
    """Base of every segment node. Nodes are frozen attrs classes; combine them with
    ``&``, ``|`` and ``~``."""

    __slots__ = ()
    kind: ClassVar[str] = ""

    def __and__(self, other: Segment) -> Segment:
        return And.of(self, _check_segment(other))

    def __rand__(self, other: Segment) -> Segment:
        return And.of(_check_segment(other), self)

    def __or__(self, other: Segment) -> Segment:
        return Or.of(self, _check_segment(other))

    def __ror__(self, other: Segment) -> Segment:
        return Or.of(_check_segment(other), self)

    def __invert__(self) -> Segment:
        return Not.of(self)

    def __bool__(self) -> bool:
        raise SegmentError(
            "a segment has no truth value; combine segments with &, |, ~ (not and/or/not)"
        )

    def children(self) -> tuple[Segment, ...]:
        """Direct sub-segments (empty for leaves)."""
        return ()

    def to_json(self) -> dict[str, Any]:
        """The versioned JSON form: a dict with ``"version": 1`` at the root."""
        from membermkt.core.segjson import node_to_json

        out = {"version": JSON_VERSION}
        out.update(node_to_json(self))
        return out

    @staticmethod
    def from_json(obj: object) -> Segment:
        """Parse the JSON form (a dict, or a JSON string).

        Raises:
            SegmentError: naming the JSON path of the bad node and what was expected.
        """
        from membermkt.core.segjson import segment_from_json

        return segment_from_json(obj)

    def simplify(self) -> Segment:
        """An equivalent, normalised segment (see :func:`membermkt.core.simplify.simplify`)."""
        from membermkt.core.simplify import simplify

        return simplify(self)

    def depth(self) -> int:
        """Nesting depth (a leaf is 1)."""
        kids = self.children()
        return 1 + max((k.depth() for k in kids), default=0)


def _check_segment(obj: object) -> Segment:
    if not isinstance(obj, Segment):
        raise SegmentError(f"expected a segment, got {type(obj).__name__}: {obj!r}")
    return obj


@attrs.frozen(slots=True, repr=False)
class Const(Segment):
    """The constant segments :data:`TRUE` (everyone) and :data:`FALSE` (no one)."""

    value: bool
    kind: ClassVar[str] = "const"

    def __repr__(self) -> str:
        return "TRUE" if self.value else "FALSE"


TRUE: Final = Const(True)
FALSE: Final = Const(False)


def _to_parts(parts: Iterable[Segment]) -> tuple[Segment, ...]:
    out = tuple(parts)
    for p in out:
        _check_segment(p)
    return out


@attrs.frozen(slots=True)
class And(Segment):
    """All parts hold. Build with ``a & b`` or :meth:`And.of` (which flattens and folds)."""

    parts: tuple[Segment, ...] = attrs.field(converter=_to_parts)
    kind: ClassVar[str] = "and"

    def children(self) -> tuple[Segment, ...]:
        return self.parts

    @classmethod
    def of(cls, *parts: Segment) -> Segment:
        """Flatten nested ``And``s and fold constants (never changes meaning)."""
        return _flat(cls, parts, unit=TRUE, zero=FALSE)


@attrs.frozen(slots=True)
class Or(Segment):
    """Any part holds. Build with ``a | b`` or :meth:`Or.of` (which flattens and folds)."""

    parts: tuple[Segment, ...] = attrs.field(converter=_to_parts)
    kind: ClassVar[str] = "or"

    def children(self) -> tuple[Segment, ...]:
        return self.parts

    @classmethod
    def of(cls, *parts: Segment) -> Segment:
        """Flatten nested ``Or``s and fold constants (never changes meaning)."""
        return _flat(cls, parts, unit=FALSE, zero=TRUE)


def _flat(
    cls: type[And] | type[Or], parts: tuple[Segment, ...], *, unit: Const, zero: Const
) -> Segment:
    # shared by And.of / Or.of: splice nested same-kind nodes, drop the unit, stop at zero
    flat: list[Segment] = []
    for p in parts:
        _check_segment(p)
        if isinstance(p, cls):
            flat.extend(p.parts)
        elif p == zero:
            return zero
        elif p != unit:
            flat.append(p)
    if not flat:
        return unit
    if len(flat) == 1:
        return flat[0]
    return _depth_checked(cls(tuple(flat)))


@attrs.frozen(slots=True)
class Not(Segment):
    """The complement: exactly the members the part does not select."""

    part: Segment = attrs.field(validator=lambda _i, _a, v: _check_segment(v))
    kind: ClassVar[str] = "not"

    def children(self) -> tuple[Segment, ...]:
        return (self.part,)

    @classmethod
    def of(cls, part: Segment) -> Segment:
        """Negate, folding constants and double negation (never changes meaning)."""
        _check_segment(part)
        if isinstance(part, Const):
            return FALSE if part.value else TRUE
        if isinstance(part, Not):
            return part.part
        return _depth_checked(cls(part))


def _depth_checked(node: Segment) -> Segment:
    if node.depth() > MAX_DEPTH:
        raise SegmentError(f"segment nested deeper than {MAX_DEPTH} levels")
    return node


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


def _to_tag_names(value: Iterable[str]) -> tuple[str, ...]:
    names = sorted(set(value))
    if not names:
        raise SegmentError("tag membership needs at least one tag")
    for n in names:
        if not isinstance(n, str) or not n:
            raise SegmentError(f"tag names are non-empty str, got {n!r}")
    return tuple(names)


@attrs.frozen(slots=True)
class Tags(Segment):
    """Tag membership: the member has any (``mode="any"``) or all (``"all"``) of ``names``."""

    mode: str
    names: tuple[str, ...] = attrs.field(converter=_to_tag_names)
    kind: ClassVar[str] = "tags"

    def __attrs_post_init__(self) -> None:
        if self.mode not in ("any", "all"):
            raise SegmentError(f"tag mode is 'any' or 'all', got {self.mode!r}")


def tag(name: str) -> Segment:
    """Members with tag ``name``."""
    return Tags("any", (name,))


def any_tag(*names: str) -> Segment:
    """Members with at least one of ``names``."""
    return Tags("any", names)


def all_tags(*names: str) -> Segment:
    """Members with every one of ``names``."""
    return Tags("all", names)


def no_tags(*names: str) -> Segment:
    """Members with none of ``names``."""
    return Not.of(Tags("any", names))


def _to_where(
    value: Mapping[str, object] | Iterable[tuple[str, object]] | None,
) -> tuple[tuple[str, str | int | float | bool], ...]:
    if value is None:
        return ()
    items = list(value.items()) if isinstance(value, Mapping) else list(value)
    out: dict[str, str | int | float | bool] = {}
    for item in items:
        if not isinstance(item, tuple) or len(item) != 2:
            raise SegmentError(f"did(where=...) items are (property, value) pairs, got {item!r}")
        k, v = item
        if not isinstance(k, str) or not _NAME_RE.match(k):
            raise SegmentError(f"invalid event property name {k!r}")
        if not isinstance(v, str | int | float | bool) or (
            isinstance(v, float) and not math.isfinite(v)
        ):
            raise SegmentError(f"did(where={{{k!r}: ...}}) needs a str/int/float/bool, got {v!r}")
        out[k] = v
    return tuple(sorted(out.items()))


@attrs.frozen(slots=True)
class Did(Segment):
    """Behaviour: the member's events of ``event`` type whose properties equal every
    ``where`` item, in the window ``(as_of - within, as_of]`` (no lower bound when
    ``within`` is ``None``), number at least ``at_least`` and at most ``at_most``."""

    event: str
    where: tuple[tuple[str, str | int | float | bool], ...] = attrs.field(
        default=(), converter=_to_where
    )
    at_least: int = 1
    at_most: int | None = None
    within: int | None = None
    """Window length in seconds."""
    kind: ClassVar[str] = "did"

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.event, str) or not _EVENT_RE.match(self.event):
            raise SegmentError(f"invalid event type {self.event!r}")
        for name, v in (("at_least", self.at_least), ("at_most", self.at_most)):
            if v is None and name == "at_most":
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise SegmentError(f"did({name}=...) must be a non-negative int, got {v!r}")
        if self.within is not None and (
            isinstance(self.within, bool) or not isinstance(self.within, int) or self.within <= 0
        ):
            raise SegmentError(f"did(within=...) must be a positive duration, got {self.within!r}")


def did(
    event_type: str,
    *,
    where: Mapping[str, object] | None = None,
    at_least: int = 1,
    at_most: int | None = None,
    within: dt.timedelta | None = None,
) -> Did:
    """Members who did ``event_type`` (with properties equal to ``where``) at least
    ``at_least`` and at most ``at_most`` times in ``(as_of - within, as_of]``.

    Raises:
        SegmentError: for invalid arguments (negative counts, non-positive window...).
    """
    secs: int | None = None
    if within is not None:
        if not isinstance(within, dt.timedelta):
            raise SegmentError(f"did(within=...) takes a timedelta, got {within!r}")
        total = within.total_seconds()
        if total != int(total):
            raise SegmentError("did(within=...) must be whole seconds")
        secs = int(total)
    return Did(event_type, _to_where(where), at_least, at_most, secs)


@attrs.frozen(slots=True)
class Sample(Segment):
    """Deterministic hash sampling: about ``fraction`` of all members, always the same ones
    for the same ``salt`` (use a campaign id as salt for its holdout)."""

    fraction: float
    salt: str
    kind: ClassVar[str] = "sample"

    def __attrs_post_init__(self) -> None:
        f = self.fraction
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0.0 <= f <= 1.0:
            raise SegmentError(f"sample fraction must be between 0 and 1, got {f!r}")
        if not isinstance(self.salt, str) or len(self.salt) > 128:
            raise SegmentError(f"sample salt must be a str of ≤ 128 chars, got {self.salt!r}")

    @property
    def threshold(self) -> int:
        """Members whose bucket (0..9999) is below this are selected."""
        return round(self.fraction * BUCKETS)


def sample(fraction: float, salt: str = "") -> Sample:
    """About ``fraction`` (0..1) of members, chosen by a keyed hash of the member id."""
    return Sample(float(fraction), salt)


# --------------------------------------------------------------------------- hashing

BUCKETS: Final = 10_000
HASH_PRIME: Final = 2_147_483_647  # 2**31 - 1
"""The modulus of the sampling hash family. Products stay below 2**62, so SQL BIGINT
arithmetic on every dialect computes the same buckets as Python."""


def member_hash(member_id: str) -> int:
    """A stable hash of a member id in ``[0, 2**31 - 1)`` (stored by SQL stores)."""
    return int.from_bytes(hashlib.sha256(member_id.encode()).digest()[:8], "big") % HASH_PRIME


def salt_coefficients(salt: str) -> tuple[int, int]:
    """The (a, b) of the universal hash ``((a*h + b) mod p) mod 10000`` for ``salt``."""
    d = hashlib.sha256(b"membermkt-sample:" + salt.encode()).digest()
    a = int.from_bytes(d[:8], "big") % (HASH_PRIME - 1) + 1
    b = int.from_bytes(d[8:16], "big") % HASH_PRIME
    return a, b


def sample_bucket(member_id: str, salt: str) -> int:
    """The member's bucket (0..9999) for ``salt``: ``((a*h + b) mod p) mod 10000``."""
    a, b = salt_coefficients(salt)
    return ((a * member_hash(member_id) + b) % HASH_PRIME) % BUCKETS


# --------------------------------------------------------------------------- age


def shift_years(d: dt.date, years: int) -> dt.date:
    """``d`` moved by ``years``; Feb 29 becomes Feb 28 in a common year.

    Raises:
        SegmentError: when the result is outside years 1..9999.
    """
    y = d.year + years
    if not 1 <= y <= 9999:
        raise SegmentError(f"date out of range: {d.isoformat()} shifted by {years} years")
    try:
        return d.replace(year=y)
    except ValueError:
        return d.replace(year=y, day=28)


def age_threshold_birthday(n: int, as_of: dt.date) -> dt.date:
    """The latest birthday of someone aged at least ``n`` completed years on ``as_of``.

    ``age >= n  ⟺  birthday <= age_threshold_birthday(n, as_of)`` — a Feb-29 birthday
    counts on Mar 1 in common years. Backends compile age comparisons to birthday ranges
    with this, so no backend computes ages per row.
    """
    return shift_years(as_of, -n)


def _age_ge(n: int, as_of: dt.date) -> Segment:
    # age >= n  <=>  birthday <= as_of shifted back n years (present birthdays only)
    year = as_of.year - n
    if year < 1:
        return FALSE
    if year > 9999:
        return Cmp("birthday", "exists", ())
    return Cmp("birthday", "le", (shift_years(as_of, -n),))


def _age_lt(n: int, as_of: dt.date) -> Segment:
    year = as_of.year - n
    if year < 1:
        return Cmp("birthday", "exists", ())
    if year > 9999:
        return FALSE
    return Cmp("birthday", "gt", (shift_years(as_of, -n),))


def expand_age(node: Cmp, as_of: dt.date) -> Segment:
    """Rewrite a comparison on ``age`` as the equivalent comparisons on ``birthday``.

    Both backends use this, so age is never computed per row and the Feb-29 rule (a Feb-29
    birthday counts on Mar 1 in common years) holds everywhere. Missing birthday → false.
    """
    if node.field != "age":
        raise SegmentError(f"expand_age needs a comparison on age, got {node.field!r}")
    op = node.op
    if op == "exists":
        return Cmp("birthday", "exists", ())
    ns = [int(v) if isinstance(v, int) else math.ceil(v) for v in node.values]  # type: ignore[arg-type]
    if op in ("in", "not_in"):
        eqs = [And.of(_age_ge(n, as_of), _age_lt(n + 1, as_of)) for n in ns]
        if op == "in":
            return Or.of(*eqs)
        return And.of(Cmp("birthday", "exists", ()), *(Not.of(e) for e in eqs))
    if op == "between":
        lo, hi = ns
        return And.of(_age_ge(lo, as_of), _age_lt(hi + 1, as_of))
    n = ns[0]
    if op == "ge":
        return _age_ge(n, as_of)
    if op == "gt":
        return _age_ge(n + 1, as_of)
    if op == "lt":
        return _age_lt(n, as_of)
    if op == "le":
        return _age_lt(n + 1, as_of)
    if op == "eq":
        return And.of(_age_ge(n, as_of), _age_lt(n + 1, as_of))
    if op == "ne":
        return Or.of(_age_lt(n, as_of), _age_ge(n + 1, as_of))
    raise SegmentError(f"{op} is not defined on age")


def completed_years(birthday: dt.date, as_of: dt.date) -> int:
    """Age in completed years (reference definition; Feb 29 counts on Mar 1)."""
    return as_of.year - birthday.year - ((as_of.month, as_of.day) < (birthday.month, birthday.day))


# --------------------------------------------------------------------------- traversal


def walk(segment: Segment) -> Iterator[Segment]:
    """Every node of the tree, parents before children."""
    stack: list[Segment] = [segment]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children()))


def from_json(obj: object) -> Segment:
    """Parse a segment's JSON form (same as :meth:`Segment.from_json`)."""
    return Segment.from_json(obj)


def fields_used(segment: Segment) -> frozenset[str]:
    """Names of all fields compared anywhere in the segment."""
    return frozenset(n.field for n in walk(segment) if isinstance(n, Cmp))
