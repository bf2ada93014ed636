"""DataFrame import/export (pandas): part of :mod:`membermkt.stores.io`."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from typing import Any

from membermkt.core.ports import EventLog, MemberStore
from membermkt.errors import UsageError
from membermkt.stores._as_of import events_as_of, members_as_of
from membermkt.stores._common import check_as_of
from membermkt.stores.io import (
    EVENT_COLUMNS,
    MEMBER_COLUMNS,
    STATE_COLUMNS,
    Exportable,
    ImportReport,
    _write_events,
    _write_members,
    member_record,
)

__all__ = [
    "events_from_dataframe",
    "events_to_dataframe",
    "members_from_dataframe",
    "members_to_dataframe",
]


def _jsonify(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, sort_keys=True)


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise UsageError(
            "DataFrame import/export needs pandas: pip install 'membermkt[pandas]'"
        ) from None
    return pd


def _frame_records(df: Any, required: Sequence[str]) -> Iterator[tuple[int | str, Any]]:
    lacking = [c for c in required if c not in df.columns]
    if lacking:
        raise UsageError(f"DataFrame lacks required column(s) {lacking}")
    cols = list(df.columns)
    for label, values in zip(df.index, df.itertuples(index=False, name=None), strict=True):
        yield (
            (label if isinstance(label, int | str) else str(label)),
            dict(zip(cols, values, strict=True)),
        )


def members_to_dataframe(store: Exportable, *, as_of: dt.datetime | None = None) -> Any:
    """Every member as a ``pandas.DataFrame`` (one row per member; the CSV columns, with
    nested values — ``tags``, ``attributes``, ``identities``, ``opted_out_channels`` — as
    JSON text so ``DataFrame.to_sql`` works, dates as ``datetime.date`` and times as UTC
    timestamps). :func:`members_from_dataframe` reads it back. With ``as_of``, the state
    columns are the state as of that time (folded from the events at or before it).

    Raises:
        UsageError: when pandas is not installed, or for a naive ``as_of``.
        StoreError: when the store fails.
    """
    pd = _pandas()
    as_of = None if as_of is None else check_as_of(as_of)
    out = []
    for m in members_as_of(store, as_of):
        r: dict[str, Any] = member_record(m)
        r["tags"] = _jsonify(sorted(m.tags))
        r["attributes"] = _jsonify(m.attributes.to_dict())
        r["identities"] = _jsonify([i.token for i in m.identities])
        r["opted_out_channels"] = _jsonify(sorted(m.consent.opted_out_channels))
        r["marketing"] = m.consent.marketing
        r["birthday"] = m.profile.birthday
        s = m.state
        r["subscribed"] = s.subscribed
        r["wecom_contact"] = s.wecom_contact
        for col, v in (
            ("last_active_at", s.last_active_at),
            ("first_order_at", s.purchases.first_at),
            ("last_order_at", s.purchases.last_at),
        ):
            r[col] = pd.Timestamp(v) if v is not None else pd.NaT
        for col in ("gender", "city", "province", "country", "income_band", "tier", "source"):
            r[col] = r[col] or None
        out.append(r)
    return pd.DataFrame(out, columns=[*MEMBER_COLUMNS, *STATE_COLUMNS])


def events_to_dataframe(store: Exportable, *, as_of: dt.datetime | None = None) -> Any:
    """Every event (with ``as_of``: every event at or before it) as a ``pandas.DataFrame``
    (``at`` as UTC timestamps, ``properties`` as JSON text so ``DataFrame.to_sql`` works).

    Raises:
        UsageError: when pandas is not installed, or for a naive ``as_of``.
        StoreError: when the store fails.
    """
    pd = _pandas()
    as_of = None if as_of is None else check_as_of(as_of)
    out = [
        {
            "member_id": e.member_id,
            "type": e.type,
            "at": pd.Timestamp(e.at.astimezone(dt.UTC)),
            "key": e.key,
            "properties": _jsonify(e.properties.to_dict()),
        }
        for e in events_as_of(store, as_of)
    ]
    return pd.DataFrame(out, columns=list(EVENT_COLUMNS))


def members_from_dataframe(
    store: MemberStore, df: Any, *, on_shared_identity: str = "report"
) -> ImportReport:
    """Upsert members from a DataFrame with the member columns (values may be native —
    lists, dicts, dates — or the CSV text forms). Rows are reported by index label.

    Raises:
        UsageError: when pandas is not installed or the ``id`` column is missing.
        StoreError: when the store fails.
    """
    _pandas()
    return _write_members(store, _frame_records(df, ("id",)), on_shared_identity)


def events_from_dataframe(store: EventLog, df: Any) -> ImportReport:
    """Append events from a DataFrame with the event columns.

    Raises:
        UsageError: when pandas is not installed or a required column is missing.
        StoreError: when the store fails.
    """
    _pandas()
    return _write_events(store, _frame_records(df, ("member_id", "type", "at")))
