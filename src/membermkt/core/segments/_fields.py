"""The field schema (built-in field types, operators, name rules) and operand values."""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Mapping
from typing import Final, TypeAlias

import attrs

from membermkt.core.members import DERIVED_FIELDS, PROFILE_FIELDS
from membermkt.errors import SegmentError


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
