"""WeCom relations per (staff, customer): two staff, one deletes → still reachable; both
delete → churned and out of the active classes; staff messages are not customer activity."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from membermkt.core.analytics.activity import activity, activity_class
from membermkt.core.events import Event, fold
from membermkt.core.members import Member
from membermkt.core.segments import attr
from membermkt.stores.memory import InMemoryStore

from .conftest import SQL_BACKENDS, make_store

T0 = dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


@pytest.fixture(params=[pytest.param("memory", id="memory"), *SQL_BACKENDS])
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield InMemoryStore()
        return
    s = make_store(str(request.param))
    yield s
    s.drop_tables()
    s.close()


def _add(staff: str, at: dt.datetime, key: str) -> Event:
    return Event("c1", "contact_added", at, {"staff": staff, "state": f"way-{staff}"}, key=key)


def _delete(staff: str, at: dt.datetime, key: str) -> Event:
    return Event("c1", "contact_deleted", at, {"staff": staff}, key=key)


def test_two_staff_one_deletes_still_reachable_both_delete_churned(store: Any) -> None:
    store.append_events([_add("alice", T0, "a1"), _add("bob", T0 + H, "b1")])
    store.append_events([_delete("alice", T0 + 2 * H, "a2")])
    now = T0 + 3 * H
    m = store.get_member("c1")
    assert m.state.wecom_contact is True
    assert m.state.live_staff == ("bob",)
    alice = next(r for r in m.state.relations if r.staff == "alice")
    assert (alice.added_at, alice.deleted_at, alice.state) == (T0, T0 + 2 * H, "way-alice")
    assert list(store.select(attr("wecom_contact") == True, now)) == ["c1"]  # noqa: E712
    assert list(store.select(activity("active"), now)) == ["c1"]
    assert activity_class(m, now) == "active"

    # a staff message later is not the customer's activity
    store.append_events(
        [Event("c1", "message", T0 + 40 * 24 * H, {"staff": "bob", "direction": "out"}, key="o")]
    )
    store.append_events([_delete("bob", T0 + 4 * H, "b2")])
    later = T0 + 41 * 24 * H
    m = store.get_member("c1")
    assert m.state.wecom_contact is False
    assert m.state.live_staff == ()
    assert m.state.wecom_churned_at == T0 + 4 * H
    assert m.state.last_active_at == T0 + H
    assert list(store.select(attr("wecom_contact") == False, later)) == ["c1"]  # noqa: E712
    assert list(store.select(activity("churned"), now + H)) == ["c1"]
    for name in ("active", "to_be_activated", "dormant"):
        assert list(store.select(activity(name), now + H)) == []
    assert activity_class(m, later) == "churned"
    # as of before bob's deletion, still a contact (relations fold up to as_of too)
    assert list(store.select(attr("wecom_contact") == True, T0 + 3 * H)) == ["c1"]  # noqa: E712
    assert list(store.select(activity("active"), T0 + 3 * H)) == ["c1"]


def test_relations_fold_in_any_order_and_a_follower_is_not_churned_by_wecom() -> None:
    evs = [
        _add("alice", T0, "a1"),
        _delete("alice", T0, "a2"),  # same instant: the deletion wins
        _add("bob", T0 + H, "b1"),
        _add("alice", T0 + 2 * H, "a3"),
        Event("c1", "follow", T0, {}, key="f"),
    ]
    one = fold(Member("c1"), evs).state
    two = fold(Member("c1"), list(reversed(evs))).state
    assert one == two
    assert one.live_staff == ("alice", "bob")
    gone = fold(
        Member("c1"), [*evs, _delete("alice", T0 + 3 * H, "a4"), _delete("bob", T0 + 3 * H, "b4")]
    )
    assert gone.state.wecom_contact is False
    assert gone.state.subscribed is True
    assert activity_class(gone, T0 + 4 * H) == "active"
