"""DuckDB staff metrics find replies with window functions (#18): the same numbers as the
pure first-reply tracker at the edges — ties, unanswered outs, several ins, two staff."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from membermkt import Event, analytics
from membermkt.core import analytics as core
from membermkt.stores.sql import SqlStore

T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
S = dt.timedelta(seconds=1)
AS_OF = T0 + dt.timedelta(days=3)


def _msg(mid: str, staff: str, at: dt.datetime, direction: str, n: int) -> Event:
    props = {"channel": "wecom", "staff": staff, "direction": direction}
    return Event(mid, "message", at, props, key=f"k{n}")


def _events() -> list[Event]:
    rows = [
        # a: out before any in (no reply), in + out at the same instant (reply of 0 s),
        # two ins then an out (from the first in), two outs in a row (one reply)
        ("m1", "a", T0, "out"),
        ("m1", "a", T0 + 10 * S, "in"),
        ("m1", "a", T0 + 10 * S, "out"),
        ("m1", "a", T0 + 20 * S, "in"),
        ("m1", "a", T0 + 25 * S, "in"),
        ("m1", "a", T0 + 40 * S, "out"),
        ("m1", "a", T0 + 41 * S, "out"),
        ("m1", "a", T0 + dt.timedelta(days=1), "in"),  # never answered, next day
        # the same staff, another member: the conversation starts afresh
        ("m2", "a", T0 + 5 * S, "in"),
        ("m2", "a", T0 + 5 * S + dt.timedelta(microseconds=7), "out"),
        # another staff answers m1 on their own conversation
        ("m1", "b", T0 + 30 * S, "in"),
        ("m1", "b", T0 + 3 * 3600 * S, "out"),
        ("m1", "b", T0 + 3 * 3600 * S, "out"),
    ]
    out = [_msg(mid, st, at, d, n) for n, (mid, st, at, d) in enumerate(rows)]
    out.append(Event("m1", "contact_added", T0, {"staff": "a"}, key="c1"))
    out.append(Event("m2", "contact_deleted", T0 + S, {"staff": "a", "by": "staff"}, key="c2"))
    return out


def test_duckdb_staff_metrics_equal_the_tracker(tmp_path: Path) -> None:
    pytest.importorskip("duckdb")
    events = _events()
    with SqlStore(f"sqlite:///{tmp_path / 's.db'}") as store:
        store.append_events(events)
        with analytics.DuckDBAnalytics.from_store(store) as duck:
            for since in (None, T0 + 15 * S):
                got = duck.staff_metrics(as_of=AS_OF, since=since)
                want = core.staff_metrics(events, as_of=AS_OF, since=since)
                assert got == want
    rows = {r.staff: r for r in core.staff_metrics(events, as_of=AS_OF).rows}
    # the case is not trivial: for a, replies of 0 s and 20 s (m1) and 7 µs (m2)
    assert rows["a"].replies == 3
    assert rows["a"].reply_seconds_total == pytest.approx(20.000007)
    assert rows["b"].replies == 1
    assert rows["a"].active_days == 2
