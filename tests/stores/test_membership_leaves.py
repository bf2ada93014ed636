"""Membership leaves (``latest``: is_member, joined_via, joined_within, tier_is, unused
entitlements) select the same members in Python and in SQL on every backend, and agree with
the pure folds (``membership_as_of``, ``tier_as_of``, ``entitlements_as_of``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from membermkt.core.evaluate import compile_predicate
from membermkt.core.events import Event
from membermkt.core.members import Member
from membermkt.core.membership import (
    ENTITLEMENT_GRANTED,
    ENTITLEMENT_REDEEMED,
    MEMBER_JOINED,
    MEMBER_LEFT,
    TIER_CHANGED,
    entitlements_as_of,
    has_unused_entitlement,
    is_member,
    joined_via,
    joined_within,
    latest,
    membership_as_of,
    tier_as_of,
    tier_is,
)
from membermkt.core.segjson import json_schema
from membermkt.core.segments import Segment
from membermkt.stores import InMemoryStore
from membermkt.stores.sql import SqlStore

from .conftest import SQL_BACKENDS, make_store

AS_OF = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
IDS = [f"m{i}" for i in range(5)]
VALIDITY = dt.timedelta(days=10)


@st.composite
def _event(draw: st.DrawFn) -> Event:
    kind = draw(
        st.sampled_from(
            [MEMBER_JOINED, MEMBER_LEFT, TIER_CHANGED, ENTITLEMENT_GRANTED, ENTITLEMENT_REDEEMED]
        )
    )
    days = draw(st.integers(-2, 20))  # negative: after as_of (must be ignored)
    at = AS_OF - dt.timedelta(days=days, hours=draw(st.sampled_from([0, 0, 6])))
    props: dict[str, str | int | float | bool] = {}
    if kind == MEMBER_JOINED:
        props["source"] = draw(st.sampled_from(["store-qr", "partner:gym"]))
    if kind == TIER_CHANGED:
        props["to"] = draw(st.sampled_from(["base", "gold", ""]))
    if kind in (ENTITLEMENT_GRANTED, ENTITLEMENT_REDEEMED):
        b = draw(st.sampled_from(["tea", "ship"]))
        props["benefit"] = b
        props["entitlement"] = f"{b}:{draw(st.sampled_from(IDS))}:1"
        props["valid_seconds"] = int(VALIDITY.total_seconds())
    return Event(draw(st.sampled_from(IDS)), kind, at, props)


def _leaves() -> st.SearchStrategy[Segment]:
    return st.sampled_from(
        [
            is_member(),
            ~is_member(),
            joined_via("store-qr"),
            joined_via("partner:gym"),
            joined_within(dt.timedelta(days=7)),
            tier_is("gold"),
            tier_is("base", "gold"),
            has_unused_entitlement("tea", validity=VALIDITY),
            has_unused_entitlement("tea", validity=VALIDITY, expiring_within=dt.timedelta(days=3)),
            latest([TIER_CHANGED], TIER_CHANGED, where={"to": ""}, older_than=dt.timedelta(days=2)),
            is_member() & tier_is("gold"),
            is_member() | has_unused_entitlement("ship", validity=VALIDITY),
        ]
    )


histories = st.lists(_event(), max_size=30)


def _expected(events: list[Event], seg: Segment) -> list[str]:
    pred = compile_predicate(seg, AS_OF)
    return sorted(m for m in IDS if pred(Member(m), [e for e in events if e.member_id == m]))


_SCHEMA = jsonschema.Draft202012Validator(json_schema())


def _check(store: InMemoryStore | SqlStore, events: list[Event], segs: list[Segment]) -> None:
    store.upsert_members([Member(m) for m in IDS])
    store.append_events(events)
    for seg in segs:
        want = _expected(events, seg)
        assert list(store.select(seg, AS_OF)) == want, seg
        assert store.count(seg, AS_OF) == len(want), seg
        assert Segment.from_json(seg.to_json()) == seg
        _SCHEMA.validate(seg.to_json())


@given(histories)
def test_leaves_agree_with_the_folds(events: list[Event]) -> None:
    for m in IDS:
        mine = [e for e in events if e.member_id == m]
        ms = membership_as_of(mine, AS_OF)
        assert compile_predicate(is_member(), AS_OF)(Member(m), mine) == ms.is_member
        for src in ("store-qr", "partner:gym"):
            got = compile_predicate(joined_via(src), AS_OF)(Member(m), mine)
            # several joinings at one latest instant: the leaf holds if any matches
            tied = {
                e.properties["source"]
                for e in mine
                if ms.joined_at is not None and e.type == MEMBER_JOINED and e.at == ms.joined_at
            }
            assert got == (ms.is_member and src in tied)
        tier = tier_as_of(mine, AS_OF)
        latest_tiers = [e for e in mine if e.type == TIER_CHANGED and e.at <= AS_OF]
        if len({e.at for e in latest_tiers}) == len(latest_tiers):  # no ties
            assert compile_predicate(tier_is("gold"), AS_OF)(Member(m), mine) == (tier == "gold")
        ents = [e for e in entitlements_as_of(mine, AS_OF) if e.benefit == "tea"]
        if len(ents) <= 1 and all(
            e.type != ENTITLEMENT_REDEEMED or e.at >= AS_OF - VALIDITY for e in mine
        ):
            leaf = has_unused_entitlement("tea", validity=VALIDITY)
            usable = bool(ents) and ents[0].usable(AS_OF) and ents[0].granted_at > AS_OF - VALIDITY
            got = compile_predicate(leaf, AS_OF)(Member(m), mine)
            same_instant = any(
                e.type == ENTITLEMENT_REDEEMED and ents and e.at == ents[0].granted_at for e in mine
            )
            if not same_instant:
                assert got == usable


@given(histories, st.lists(_leaves(), min_size=1, max_size=4))
def test_in_memory_store_selects_the_python_members(
    events: list[Event], segs: list[Segment]
) -> None:
    _check(InMemoryStore(), events, segs)


@pytest.fixture(scope="module", params=SQL_BACKENDS)
def module_store(request: pytest.FixtureRequest) -> Iterator[SqlStore]:
    store = make_store(str(request.param))
    yield store
    store.drop_tables()
    store.close()


@settings(max_examples=max(10, settings.default.max_examples // 3))
@given(events=histories, segs=st.lists(_leaves(), min_size=2, max_size=5))
def test_sql_store_selects_the_python_members(
    module_store: SqlStore, events: list[Event], segs: list[Segment]
) -> None:
    module_store.delete_all()
    _check(module_store, events, segs)


@pytest.mark.parametrize(
    ("obj", "path"),
    [
        ({"op": "latest", "among": [], "event": "a"}, "$"),
        ({"op": "latest", "among": ["a"], "event": "b"}, "$"),
        ({"op": "latest", "among": ["a"], "event": "a", "where": {"x": [1]}}, "$.where.x"),
        (
            {"op": "latest", "among": ["a"], "event": "a", "newer_than": {"weeks": 1}},
            "$.newer_than",
        ),
        ({"op": "latest", "among": "a", "event": "a"}, "$.among"),
    ],
)
def test_bad_latest_json_names_the_path(obj: dict[str, object], path: str) -> None:
    from membermkt.errors import SegmentError

    with pytest.raises(SegmentError) as err:
        Segment.from_json({"version": 1, **obj})
    assert err.value.path.startswith(path)


def _foreign_redemption() -> list[Event]:
    """The case hypothesis found: duplicate keyless joinings at one instant, and a member
    whose granted entitlement is followed by a redemption of another member's entitlement."""
    valid = int(VALIDITY.total_seconds())
    granted = {"benefit": "tea", "entitlement": "tea:m1:1", "valid_seconds": valid}
    foreign = {"benefit": "tea", "entitlement": "tea:m0:1", "valid_seconds": valid}
    own = {"benefit": "tea", "entitlement": "tea:m2:1", "valid_seconds": valid}
    day = dt.timedelta(days=1)
    return [
        Event("m0", MEMBER_JOINED, AS_OF, {"source": "store-qr"}),
        Event("m0", MEMBER_JOINED, AS_OF, {"source": "store-qr"}),
        Event("m1", ENTITLEMENT_GRANTED, AS_OF - day, granted),
        Event("m1", ENTITLEMENT_REDEEMED, AS_OF, foreign),
        Event("m2", ENTITLEMENT_GRANTED, AS_OF - day, own),
        Event("m2", ENTITLEMENT_REDEEMED, AS_OF, own),
        # a redemption before the grant of the same entitlement does not count either
        Event("m3", ENTITLEMENT_REDEEMED, AS_OF - 2 * day, {**own, "entitlement": "tea:m3:1"}),
        Event("m3", ENTITLEMENT_GRANTED, AS_OF - day, {**own, "entitlement": "tea:m3:1"}),
        # ... while a later one does
        Event("m4", ENTITLEMENT_REDEEMED, AS_OF - 2 * day, {**own, "entitlement": "tea:m4:1"}),
        Event("m4", ENTITLEMENT_GRANTED, AS_OF - day, {**own, "entitlement": "tea:m4:1"}),
        Event("m4", ENTITLEMENT_REDEEMED, AS_OF, {**own, "entitlement": "tea:m4:1"}),
    ]


def test_a_redemption_counts_only_for_an_entitlement_the_member_was_granted() -> None:
    events = _foreign_redemption()
    test_leaves_agree_with_the_folds.hypothesis.inner_test(events)  # type: ignore[attr-defined]
    leaf = has_unused_entitlement("tea", validity=VALIDITY)
    assert _expected(events, leaf) == ["m1", "m3"]
    for m in ("m1", "m3"):
        (ent,) = entitlements_as_of([e for e in events if e.member_id == m], AS_OF)
        assert ent.usable(AS_OF)
    (ent,) = entitlements_as_of([e for e in events if e.member_id == "m4"], AS_OF)
    assert ent.redeemed_at == AS_OF


@pytest.mark.parametrize("backend", ["memory", *SQL_BACKENDS])
def test_stores_ignore_a_redemption_of_another_members_entitlement(backend: str) -> None:
    store: InMemoryStore | SqlStore = (
        InMemoryStore() if backend == "memory" else make_store(backend)
    )
    try:
        leaf = has_unused_entitlement("tea", validity=VALIDITY)
        _check(store, _foreign_redemption(), [leaf, ~leaf, is_member(), joined_via("store-qr")])
        assert list(store.select(leaf, AS_OF)) == ["m1", "m3"]
    finally:
        if isinstance(store, SqlStore):
            store.drop_tables()
            store.close()
