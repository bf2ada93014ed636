"""Shared pieces of the analytics core: input shapes, validation, a small table value.

Every analytics result can show itself as a :class:`Table` (columns + rows of scalars), which
is what the notebook bridge turns into a DataFrame and what ``_repr_html_`` renders. Only the
standard library is used here.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias

import attrs

from membermkt.core.events import Event
from membermkt.core.members import Member
from membermkt.core.segments import _type_class
from membermkt.errors import UsageError

__all__ = [
    "UNKNOWN",
    "Cell",
    "History",
    "Table",
    "check_as_of",
    "matches_where",
    "nearest_rank",
    "to_where",
]

History: TypeAlias = Iterable[tuple[Member, Sequence[Event]]]
"""What every pure analytics function reads: (member, that member's events) pairs, in any
order; a member's events may be in any order too."""

Cell: TypeAlias = str | int | float | bool | dt.date | dt.datetime | None
"""A table cell."""

UNKNOWN = "(unknown)"
"""The group label used when a member has no value for the grouping field."""


def check_as_of(as_of: object, name: str = "as_of") -> dt.datetime:
    """``as_of`` in UTC.

    Raises:
        UsageError: unless ``as_of`` is a timezone-aware datetime.
    """
    if not isinstance(as_of, dt.datetime) or as_of.utcoffset() is None:
        raise UsageError(f"{name} must be a timezone-aware datetime, got {as_of!r}")
    return as_of.astimezone(dt.UTC)


def to_where(
    value: Mapping[str, object] | Iterable[tuple[str, object]] | None,
) -> tuple[tuple[str, str | int | float | bool], ...]:
    """Normalise an event-property filter to sorted ``(name, value)`` pairs.

    Raises:
        UsageError: for a non-str name or a value that is not str/int/float/bool.
    """
    if value is None:
        return ()
    items = list(value.items()) if isinstance(value, Mapping) else list(value)
    out: dict[str, str | int | float | bool] = {}
    for item in items:
        if not isinstance(item, tuple) or len(item) != 2:
            raise UsageError(f"where items are (property, value) pairs, got {item!r}")
        k, v = item
        if not isinstance(k, str) or not k:
            raise UsageError(f"event property names are non-empty str, got {k!r}")
        if not isinstance(v, str | int | float | bool) or (
            isinstance(v, float) and not math.isfinite(v)
        ):
            raise UsageError(f"where={{{k!r}: ...}} needs a str/int/float/bool, got {v!r}")
        out[k] = v
    return tuple(sorted(out.items()))


def matches_where(event: Event, where: tuple[tuple[str, str | int | float | bool], ...]) -> bool:
    """Whether every ``where`` item equals the event's property of that name (same type
    class, like :func:`membermkt.segments.did`)."""
    props = event.properties
    for k, v in where:
        x = props.get(k)
        if x is None or _type_class(x) != _type_class(v) or x != v:
            return False
    return True


def nearest_rank(sorted_values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0 < q <= 1) by the nearest-rank method, ``None`` when empty."""
    n = len(sorted_values)
    if n == 0:
        return None
    rank = max(1, math.ceil(q * n))
    return sorted_values[rank - 1]


def _fmt(v: Cell) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ", timespec="seconds")
    return str(v)


@attrs.frozen(slots=True)
class Table:
    """Columns and rows of scalars: the tabular face of an analytics result.

    Attributes:
        columns: column names.
        rows: one tuple per row, as long as ``columns``.
        title: a caption.
    """

    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    title: str = ""

    def records(self) -> list[dict[str, Cell]]:
        """The rows as dicts keyed by column name."""
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]

    def to_html(self, *, max_rows: int = 50) -> str:
        """An HTML ``<table>`` (at most ``max_rows`` rows, then a note of how many more)."""
        esc = html.escape
        head = "".join(f"<th>{esc(c)}</th>" for c in self.columns)
        body = [
            "<tr>" + "".join(f"<td>{esc(_fmt(c))}</td>" for c in r) + "</tr>"
            for r in self.rows[:max_rows]
        ]
        more = len(self.rows) - max_rows
        if more > 0:
            body.append(
                f'<tr><td colspan="{len(self.columns)}"><i>… {more} more rows</i></td></tr>'
            )
        cap = f"<caption>{esc(self.title)}</caption>" if self.title else ""
        return (
            f'<table class="membermkt">{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>"
        )

    def _repr_html_(self) -> str:
        return self.to_html()


def group_label(value: Any) -> str:
    """A group key as text (``UNKNOWN`` for a missing value)."""
    if value is None or value == "":
        return UNKNOWN
    return str(value)
