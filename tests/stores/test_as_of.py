"""State as of a time: every derived field is a fold of the events at or before ``as_of``,
on every store (memory, SQLite, PostgreSQL, MariaDB); a stored state is only a cache."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from membermkt.core.events import Event, fold
from membermkt.core.members import Member, MemberState
from membermkt.core.segments import Segment, attr, did
from membermkt.stores.memory import InMemoryStore
from membermkt.stores.sql import SqlStore
from membermkt.testing import strategies as mst

from .conftest import SQL_BACKENDS, make_store

H = dt.timedelta(hours=1)

# (segment, the same condition on a folded state)
_CASES: list[tuple[Segment, Callable[[MemberState], bool]]] = [
    (attr("subscribed") == True, lambda s: s.subscribed is True),  # noqa: E712
    (attr("subscribed") == False, lambda s: s.subscribed is False),  # noqa: E712
    (attr("subscribed").exists(), lambda s: s.subscribed is not None),
    (attr("followed_at").exists(), lambda s: s.followed_at is not None),
    (attr("followed_at") >= mst.AS_OF - 5 * H, lambda s: _ge(s.followed_at, mst.AS_OF - 5 * H)),
    (attr("source") == "parcel", lambda s: s.source == "parcel"),
    (attr("source").startswith("parcel"), lambda s: (s.source or "").startswith("parcel")),
    (attr("source").exists(), lambda s: s.source is not None),
    (attr("last_active_at").exists(), lambda s: s.last_active_at is not None),
    (
        attr("last_active_at") >= mst.AS_OF - 3 * H,
        lambda s: _ge(s.last_active_at, mst.AS_OF - 3 * H),
    ),
    (attr("orders_count") >= 1, lambda s: s.purchases.count >= 1),
    (attr("orders_count") == 0, lambda s: s.purchases.count == 0),
    (attr("orders_total_fen") >= 1990, lambda s: s.purchases.total_fen >= 1990),
    (attr("first_order_at").exists(), lambda s: s.purchases.first_at is not None),
    (
        attr("last_order_at") <= mst.AS_OF - 2 * H,
        lambda s: s.purchases.last_at is not None and s.purchases.last_at <= mst.AS_OF - 2 * H,
    ),
    (attr("wecom_contact") == True, lambda s: s.wecom_contact is True),  # noqa: E712
    (attr("wecom_contact") == False, lambda s: s.wecom_contact is False),  # noqa: E712
    (
        ~(attr("orders_count") >= 1) & (attr("subscribed") == True),  # noqa: E712
        lambda s: s.purchases.count < 1 and s.subscribed is True,
    ),
]


def _ge(x: dt.datetime | None, bound: dt.datetime) -> bool:
    return x is not None and x >= bound


@pytest.fixture(scope="module", params=[pytest.param("memory", id="memory"), *SQL_BACKENDS])
def any_store(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield "memory"
        return
    s = make_store(str(request.param))
    yield s
    s.drop_tables()
    s.close()


def _fresh(any_store: Any) -> InMemoryStore | SqlStore:
    if any_store == "memory":
        return InMemoryStore()
    assert isinstance(any_store, SqlStore)
    any_store.delete_all()
    return any_store


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(history=mst.histories(max_members=8, max_events=30), shift=st.integers(-30, 30))
def test_every_derived_field_is_a_fold_of_events_up_to_as_of(
    any_store: Any, history: tuple[list[Member], list[Event]], shift: int
) -> None:
    members, events = history
    store = _fresh(any_store)
    store.upsert_members(members)
    store.append_events(events)
    as_of = mst.AS_OF + shift * H
    folded = {
        m.id: fold(Member(m.id), [e for e in events if e.member_id == m.id and e.at <= as_of])
        for m in members
    }
    for segment, holds in _CASES:
        want = sorted(mid for mid, m in folded.items() if holds(m.state))
        assert list(store.select(segment, as_of)) == want, (segment, as_of)
        assert store.count(segment, as_of) == len(want)
    # behaviour and state agree: nobody has orders as of a time before their first purchase
    buyers = set(store.select(did("purchase"), as_of))
    assert set(store.select(attr("orders_count") >= 1, as_of)) == buyers


def test_as_of_before_any_event_selects_nobody_by_state(any_store: Any) -> None:
    store = _fresh(any_store)
    t = mst.AS_OF
    store.append_events(
        [
            Event("m1", "follow", t, {"source": "parcel"}, key="f"),
            Event("m1", "purchase", t + H, {"amount_fen": 990}, key="p"),
        ]
    )
    before = t - H
    for seg in (
        attr("orders_count") >= 1,
        attr("subscribed") == True,  # noqa: E712
        attr("source") == "parcel",
        did("purchase"),
    ):
        assert list(store.select(seg, before)) == []
    assert list(store.select(attr("subscribed") == True, t)) == ["m1"]  # noqa: E712
    assert list(store.select(attr("orders_count") >= 1, t)) == []
    assert list(store.select(attr("orders_count") >= 1, t + H)) == ["m1"]
