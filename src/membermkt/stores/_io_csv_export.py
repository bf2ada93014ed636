"""CSV export (members, events): part of :mod:`membermkt.stores.io`."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from membermkt.stores._as_of import events_as_of, members_as_of
from membermkt.stores._common import check_as_of
from membermkt.stores.io import (
    EVENT_COLUMNS,
    MEMBER_COLUMNS,
    STATE_COLUMNS,
    Exportable,
    _open_write,
    _safe_row,
    event_record,
    member_record,
)

__all__ = ["export_events_csv", "export_members_csv"]


def export_members_csv(
    store: Exportable, target: str | Path | IO[str], *, as_of: dt.datetime | None = None
) -> int:
    """Write every member to a CSV file; returns how many. Cells that look like spreadsheet
    formulas are neutralised (:func:`neutralise_cell`). With ``as_of``, the state columns
    are the state as of that time (folded from the events at or before it).

    Raises:
        UsageError: for a naive ``as_of``.
        StoreError: when the store fails.
    """
    as_of = None if as_of is None else check_as_of(as_of)
    rows = (member_record(m) for m in members_as_of(store, as_of))
    return _write_csv(target, [*MEMBER_COLUMNS, *STATE_COLUMNS], rows)


def export_events_csv(
    store: Exportable, target: str | Path | IO[str], *, as_of: dt.datetime | None = None
) -> int:
    """Write every event (with ``as_of``: every event at or before it) to a CSV file;
    returns how many. Cells that look like spreadsheet formulas are neutralised
    (:func:`neutralise_cell`).

    Raises:
        UsageError: for a naive ``as_of``.
        StoreError: when the store fails.
    """
    as_of = None if as_of is None else check_as_of(as_of)
    rows = (event_record(e) for e in events_as_of(store, as_of))
    return _write_csv(target, list(EVENT_COLUMNS), rows)


def _write_csv(
    target: str | Path | IO[str], fieldnames: Sequence[str], rows: Iterable[Mapping[str, Any]]
) -> int:
    """Write a header and ``rows`` (neutralised cells) to ``target``; returns how many rows."""
    f, close = _open_write(target)
    try:
        w = csv.DictWriter(f, fieldnames=fieldnames)
        w.writeheader()
        n = 0
        for rec in rows:
            w.writerow(_safe_row(rec))
            n += 1
        return n
    finally:
        if close:
            f.close()
