"""Algebraic properties of the segment algebra (the oracle is tests/_oracle.py)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _oracle import interpret
from membermkt import Event, Member, fold
from membermkt.core.segments import And, Not, Or, Segment
from membermkt.errors import SegmentError
from membermkt.segments import FALSE, TRUE, compile_predicate, sample
from membermkt.testing import strategies as mst

AS_OF = mst.AS_OF
THOROUGH = settings(max_examples=settings.default.max_examples * 3)
"""The differential tests are the cheapest way to find backend bugs: give them more runs."""


def _folded(history: tuple[list[Member], list[Event]]) -> list[tuple[Member, list[Event]]]:
    members, events = history
    by_id: dict[str, list[Event]] = {m.id: [] for m in members}
    for e in events:
        by_id[e.member_id].append(e)
    return [(fold(m, by_id[m.id]), by_id[m.id]) for m in members]


def _selected_by_predicate(seg: Segment, data: Sequence[tuple[Member, list[Event]]]) -> set[str]:
    pred = compile_predicate(seg, AS_OF)
    return {m.id for m, evs in data if pred(m, evs)}


def _selected_by_oracle(seg: Segment, data: Sequence[tuple[Member, list[Event]]]) -> set[str]:
    return {m.id for m, evs in data if interpret(seg, m, evs, AS_OF)}


@THOROUGH
@given(mst.cases())
def test_compiled_predicate_equals_reference_interpreter(case):
    """The compiled closure and the naive oracle select the same members."""
    members, events, seg = case
    data = _folded((members, events))
    assert _selected_by_predicate(seg, data) == _selected_by_oracle(seg, data)


@given(mst.cases())
def test_simplify_preserves_meaning(case):
    members, events, seg = case
    data = _folded((members, events))
    assert _selected_by_predicate(seg.simplify(), data) == _selected_by_oracle(seg, data)


@given(mst.segments())
def test_simplify_is_idempotent(seg):
    once = seg.simplify()
    assert once.simplify() == once


@given(mst.segments())
def test_json_round_trip_is_identity(seg):
    doc = seg.to_json()
    assert doc["version"] == 1
    # survives real JSON text too
    assert Segment.from_json(json.loads(json.dumps(doc))) == seg


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=20,
)

json_like_segments = st.recursive(
    st.fixed_dictionaries(
        {
            "op": st.sampled_from(
                [
                    "eq",
                    "in",
                    "between",
                    "did",
                    "sample",
                    "tags_any",
                    "exists",
                    "true",
                    "nope",
                    "not",
                    "and",
                ]
            )
        },
        optional={
            "field": st.sampled_from(["city", "age", "birthday", "last_active_at", "x", 3]),
            "value": json_values,
            "values": json_values,
            "low": json_values,
            "high": json_values,
            "event": json_values,
            "within": json_values,
            "at_least": json_values,
            "fraction": json_values,
            "tags": json_values,
        },
    ),
    lambda kids: st.fixed_dictionaries(
        {
            "op": st.sampled_from(["and", "or", "not"]),
            "args": st.lists(kids, max_size=3),
            "arg": kids,
        }
    ),
    max_leaves=10,
)


@given(st.one_of(json_values, json_like_segments.map(lambda d: {"version": 1, **d})))
def test_from_json_raises_only_segment_error(obj):
    """Arbitrary JSON either parses or raises SegmentError — nothing else."""
    error: SegmentError | None = None
    try:
        seg = Segment.from_json(obj)
    except SegmentError as exc:
        error = exc
    if error is not None:
        assert error.path.startswith("$")
    else:
        assert isinstance(seg, Segment)


def test_from_json_names_the_path_of_the_bad_node():
    doc = {
        "version": 1,
        "op": "and",
        "args": [
            {"op": "eq", "field": "city", "value": "Shanghai"},
            {"op": "or", "args": [{"op": "eq", "field": "age", "value": "thirty"}]},
        ],
    }
    with pytest.raises(SegmentError) as info:
        Segment.from_json(doc)
    assert info.value.path == "$.args[1].args[0]"
    assert "age" in str(info.value)


def test_from_json_refuses_missing_version():
    with pytest.raises(SegmentError, match="version"):
        Segment.from_json({"op": "true"})


def test_from_json_refuses_deep_nesting():
    doc: dict = {"op": "true"}
    for _ in range(200):
        doc = {"op": "not", "arg": doc}
    with pytest.raises(SegmentError, match="deeper"):
        Segment.from_json({"version": 1, **doc})


def _equivalent(a: Segment, b: Segment, data) -> bool:
    return _selected_by_oracle(a, data) == _selected_by_oracle(b, data)


segs = mst.segments(max_leaves=4)


@given(mst.histories(), segs, segs)
def test_de_morgan(history, a, b):
    data = _folded(history)
    assert _equivalent(Not(And((a, b))), Or((Not(a), Not(b))), data)
    assert _equivalent(Not(Or((a, b))), And((Not(a), Not(b))), data)


@given(mst.histories(), segs, segs, segs)
def test_distributivity(history, a, b, c):
    data = _folded(history)
    assert _equivalent(And((a, Or((b, c)))), Or((And((a, b)), And((a, c)))), data)
    assert _equivalent(Or((a, And((b, c)))), And((Or((a, b)), Or((a, c)))), data)


@given(mst.histories(), segs, segs)
def test_absorption_identity_annihilator_complement(history, a, b):
    data = _folded(history)
    everyone = {m.id for m, _ in data}
    assert _equivalent(And((a, Or((a, b)))), a, data)
    assert _equivalent(Or((a, And((a, b)))), a, data)
    assert _selected_by_predicate(a & TRUE, data) == _selected_by_predicate(a, data)
    assert _selected_by_predicate(a | FALSE, data) == _selected_by_predicate(a, data)
    assert _selected_by_predicate(a & FALSE, data) == set()
    assert _selected_by_predicate(a | TRUE, data) == everyone
    # the complement selects exactly the others (missing values included)
    inside = _selected_by_predicate(a, data)
    assert _selected_by_predicate(~a, data) == everyone - inside


def test_sample_is_deterministic_and_close_to_its_fraction():
    members = [Member(f"member-{i}") for i in range(20_000)]
    for fraction, salt in ((0.1, "holdout"), (0.5, "c-42"), (0.33, "")):
        pred = compile_predicate(sample(fraction, salt), AS_OF)
        chosen = [m.id for m in members if pred(m, ())]
        again = [m.id for m in members if pred(m, ())]
        assert chosen == again
        assert abs(len(chosen) / len(members) - fraction) <= 0.02


def test_samples_with_different_salts_are_not_the_same_members():
    members = [Member(f"member-{i}") for i in range(5_000)]
    a = compile_predicate(sample(0.5, "a"), AS_OF)
    b = compile_predicate(sample(0.5, "b"), AS_OF)
    overlap = sum(1 for m in members if a(m, ()) and b(m, ()))
    # independent halves overlap on about a quarter
    assert 0.2 < overlap / len(members) < 0.3


def test_feb_29_birthday_counts_on_march_1_in_common_years():
    from membermkt import Profile
    from membermkt.segments import attr

    leapling = Member("x", Profile(birthday=dt.date(2004, 2, 29)))
    at_18 = attr("age") >= 18
    feb_28 = dt.datetime(2022, 2, 28, 12, tzinfo=dt.UTC)
    mar_1 = dt.datetime(2022, 3, 1, 0, tzinfo=dt.UTC)
    assert not compile_predicate(at_18, feb_28)(leapling, ())
    assert compile_predicate(at_18, mar_1)(leapling, ())
    # in a leap year, on the day itself
    assert compile_predicate(attr("age") == 20, dt.datetime(2024, 2, 29, tzinfo=dt.UTC))(
        leapling, ()
    )
