"""The SQL store's one-pass fold equals the core fold (it is on the ingest hot path)."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from membermkt.core.events import Event
from membermkt.stores.sql._rows import (
    STATE_COLS,
    event_row,
    fold_events,
    fold_events_reference,
    fold_state_values,
    state_from_row,
    state_row,
)
from membermkt.testing import strategies as mst

TZ8 = dt.timezone(dt.timedelta(hours=8))


@given(st.lists(mst.events(), max_size=30), st.booleans())
def test_fast_fold_equals_the_reference_fold(events: list[Event], shift_tz: bool) -> None:
    """fold_events == reduce(combine, map(event_state, events)), also for non-UTC times."""
    if shift_tz:
        events = [
            Event(e.member_id, e.type, e.at.astimezone(TZ8), e.properties, e.key) for e in events
        ]
    assert fold_events(events) == fold_events_reference(events)


@given(st.lists(mst.events(), min_size=1, max_size=30), st.booleans())
def test_row_fold_equals_the_reference_fold(events: list[Event], shift_tz: bool) -> None:
    """The fold on event rows (new members at ingest) gives exactly the state columns of
    the reference fold, WeCom relations included."""
    if shift_tz:
        events = [
            Event(e.member_id, e.type, e.at.astimezone(TZ8), e.properties, e.key) for e in events
        ]
    got = fold_state_values([(e, event_row(e)) for e in events])
    want = state_row(fold_events_reference(events))
    assert got == tuple(want[c] for c in STATE_COLS)


@given(st.lists(mst.events(), max_size=30))
def test_state_round_trips_through_a_row(events: list[Event]) -> None:
    """A member state stored in a row reads back equal."""
    state = fold_events_reference(events)
    assert state_from_row(state_row(state)) == state


@given(st.text(alphabet=st.sampled_from(["\x00", "\\", "0", "a", "文"]), max_size=12))
def test_version_tie_breaks_survive_storage(tb: str) -> None:
    """Tie-break strings with NUL (PostgreSQL text cannot hold it) or backslashes round-trip."""
    from membermkt.stores.sql._rows import _tb_in, _tb_out

    assert "\x00" not in _tb_out(tb)
    assert _tb_in(_tb_out(tb)) == tb
