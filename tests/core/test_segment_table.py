"""MemberTable: segments over columns select what compile_predicate selects (#18)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from membermkt import Event, Member, Profile, fold
from membermkt.core.members import MemberState
from membermkt.core.table import MemberTable, compile_table
from membermkt.errors import SegmentError, UsageError
from membermkt.segments import ago, attr, compile_predicate, did, tag
from membermkt.testing import strategies as mst

AS_OF = mst.AS_OF
H = dt.timedelta(hours=1)
THOROUGH = settings(max_examples=settings.default.max_examples * 3)


def _rows(members: list[Member], events: list[Event]) -> list[tuple[Member, list[Event]]]:
    by_id: dict[str, list[Event]] = {m.id: [] for m in members}
    for e in events:
        by_id[e.member_id].append(e)
    return [(fold(m, by_id[m.id]), by_id[m.id]) for m in members]


def _by_predicate(seg, rows: Sequence[tuple[Member, list[Event]]], as_of: dt.datetime):
    pred = compile_predicate(seg, as_of)
    return [m.id for m, evs in rows if pred(m, evs)]


@THOROUGH
@given(mst.cases(), st.integers(-48, 48))
def test_table_selects_what_the_predicate_selects(case, shift: int) -> None:
    """Any segment, any as_of on the grid (so some members' stored state is stale: their
    events after as_of are folded in): the same members, in row order."""
    members, events, seg = case
    rows = _rows(members, events)
    as_of = AS_OF + shift * H
    table = MemberTable(rows)
    want = _by_predicate(seg, rows, as_of)
    assert table.select(seg, as_of) == want
    assert table.count(seg, as_of) == len(want)
    # the compiled scan is reusable, and a second table of the same rows answers alike
    scan = compile_table(seg, as_of)
    assert scan(table) == scan(MemberTable(rows)) == table.indices(seg, as_of)


def test_equality_and_in_filters_treat_a_missing_value_as_unequal() -> None:
    rows = [
        (Member("a", Profile(city="Hangzhou", gender="female")), []),
        (Member("b", Profile(city=None, gender="female")), []),
        (Member("c", Profile(city="Shanghai")), []),
    ]
    table = MemberTable(rows)
    assert table.select(attr("city") == "Hangzhou", AS_OF) == ["a"]
    assert table.select(attr("city").isin(["Hangzhou", "Shanghai"]), AS_OF) == ["a", "c"]
    assert table.select(~(attr("city") == "Hangzhou"), AS_OF) == ["b", "c"]
    both = (attr("gender") == "female") & attr("city").isin(["Shanghai", "Hangzhou"])
    assert table.select(both, AS_OF) == ["a"]


def test_a_stale_member_is_refolded_up_to_as_of() -> None:
    """The stored state says active yesterday, but as of a week ago the member had done
    nothing: derived fields are folds of events up to as_of, in the table too."""
    recent = Event("m1", "menu_click", AS_OF - 24 * H, {"key": "A"}, key="k1")
    old = Event("m2", "menu_click", AS_OF - 10 * 24 * H, {"key": "A"}, key="k2")
    rows = _rows([Member("m1"), Member("m2")], [recent, old])
    assert rows[0][0].state.last_event_at == AS_OF - 24 * H
    table = MemberTable(rows)
    seg = attr("last_active_at") >= ago(days=30)
    assert table.select(seg, AS_OF) == ["m1", "m2"]
    week_ago = AS_OF - 7 * 24 * H
    assert table.select(seg, week_ago) == ["m2"]
    assert table.select(attr("last_active_at").exists(), week_ago) == ["m2"]
    # equality on a derived field is not pre-filtered from a stale stored column either
    sub = Event("m1", "follow", AS_OF - 2 * H, {"source": "parcel"}, key="f1")
    rows = _rows([Member("m1")], [sub])
    assert MemberTable(rows).select(attr("subscribed") == True, AS_OF) == ["m1"]  # noqa: E712
    assert MemberTable(rows).select(attr("subscribed") == True, AS_OF - 3 * H) == []  # noqa: E712


def test_did_counts_the_window_with_events_in_any_order() -> None:
    buys = [
        Event("m1", "purchase", AS_OF - k * 24 * H, {"amount_fen": 100}, key=f"p{k}")
        for k in (40, 1, 100, 2, 3)
    ]
    rows = [(Member("m1", state=MemberState()), buys)]
    table = MemberTable(rows)
    ninety = dt.timedelta(days=90)
    assert table.select(did("purchase", at_least=4, within=ninety), AS_OF) == ["m1"]
    assert table.select(did("purchase", at_least=5, within=ninety), AS_OF) == []
    assert table.select(did("purchase", at_most=3, within=ninety), AS_OF - 48 * H) == ["m1"]
    assert table.select(did("purchase", at_least=5), AS_OF) == ["m1"]
    assert table.times("purchase") == [tuple(sorted(e.at for e in buys))]


def test_custom_attributes_tags_and_ids() -> None:
    rows = [
        (Member("a", tags=frozenset({"vip"}), attributes={"level": 3}), []),
        (Member("b", attributes={"level": "3"}), []),
    ]
    table = MemberTable(rows)
    assert table.select(attr("level") == 3, AS_OF) == ["a"]
    assert table.select(tag("vip") | (attr("level") == "3"), AS_OF) == ["a", "b"]
    assert table.column("id") == ["a", "b"]
    assert len(table) == 2


def test_bad_input_is_refused() -> None:
    with pytest.raises(UsageError, match="pair"):
        MemberTable([Member("a")])  # type: ignore[list-item]
    with pytest.raises(UsageError, match="starts with a Member"):
        MemberTable([("a", [])])  # type: ignore[list-item]
    with pytest.raises(SegmentError, match="expected a segment"):
        compile_table("city", AS_OF)  # type: ignore[arg-type]
    with pytest.raises(SegmentError, match="timezone-aware"):
        compile_table(attr("city") == "x", dt.datetime(2026, 1, 1))
    with pytest.raises(SegmentError, match="age"):
        MemberTable([]).column("age")
