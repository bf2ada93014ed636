"""What the segment compiler and its neighbours share: the expression type, epoch
microseconds, the SQLite-safe event-type filter, and the member columns behind each field
(not public API; :mod:`membermkt.stores.sql.compile` re-exports the public names)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement, UnaryExpression
from sqlalchemy.sql.operators import custom_op

from membermkt.core.evaluate import STATE_FIELDS as CORE_STATE_FIELDS
from membermkt.core.segments import FIELD_TYPES

Expr = ColumnElement[bool]

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)


def type_in(col: Any, values: Sequence[str], dialect: str) -> Expr:
    """``col IN values`` for an event-type filter next to ``member_id = …`` and a time range.

    On SQLite the column is written ``+col``, which keeps SQLite from seeking each value in
    the ``(member_id, type, at)`` index: SQLite 3.40.1 (the library of this Python build)
    returns rows outside the ``at`` range from that seek-scan once the planner has the
    statistics of a large events table (``ANALYZE``) — a fold "as of" a past time then
    counted later events (reproduced in ``tests/stores/test_sqlite_in_seek.py``). With
    ``+type`` the index is still used for ``member_id`` and the member's few events are
    filtered while scanning. Other dialects get a plain ``IN``.
    """
    if dialect == "sqlite":
        col = UnaryExpression(col, operator=custom_op("+"), type_=col.type)
    out: Expr = col.in_(list(values))
    return out


def to_epoch_us(when: dt.datetime) -> int:
    """An aware datetime as integer microseconds since the Unix epoch (UTC)."""
    return (when - EPOCH) // _US


def from_epoch_us(us: int) -> dt.datetime:
    """The UTC datetime of ``us`` microseconds since the Unix epoch."""
    return EPOCH + dt.timedelta(microseconds=us)


_STR_FIELDS = {
    "gender": "gender",
    "city": "city",
    "province": "province",
    "country": "country",
    "income_band": "income_band",
    "tier": "tier",
    "source": "source",
}
_TIME_FIELDS = {
    "followed_at": "followed_at",
    "last_active_at": "last_active_at",
    "first_order_at": "first_order_at",
    "last_order_at": "last_order_at",
}
_NOT_NULL = frozenset({"orders_count", "orders_total_fen"})
_COLUMNS = {
    **_STR_FIELDS,
    **_TIME_FIELDS,
    "birthday": "birthday",
    "subscribed": "subscribed",
    "wecom_contact": "wecom_contact",
    "orders_count": "orders_count",
    "orders_total_fen": "orders_total_fen",
}
assert set(_COLUMNS) | {"age"} == set(FIELD_TYPES)

# the derived fields (core.evaluate's set): compared on the stored state when no event of
# the member is later than ``as_of``, else on a fold of the events up to ``as_of`` in SQL
STATE_FIELDS = CORE_STATE_FIELDS

_BOOL_FIELDS = frozenset({"subscribed", "wecom_contact"})

_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "eq": lambda c, v: c == v,
    "ne": lambda c, v: c != v,
    "lt": lambda c, v: c < v,
    "le": lambda c, v: c <= v,
    "gt": lambda c, v: c > v,
    "ge": lambda c, v: c >= v,
}


def _bind(value: Any, type_: Any) -> Any:
    return sa.literal(value, type_)
