"""ingest_push: a push's resolve, create and append as one unit of work, on every store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from membermkt.channels._ingest import ingest
from membermkt.core.events import Event
from membermkt.core.identity import Evidence, Identity, member_id_for
from membermkt.core.members import Member
from membermkt.core.ports import PushIngest
from membermkt.errors import IdentityConflict, UsageError
from membermkt.stores.memory import InMemoryStore
from membermkt.stores.sql import SqlStore

from .conftest import SQL_BACKENDS, make_store

T0 = dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC)
OPENID = Identity.openid("wxapp", "o-1")
UNIONID = Identity.unionid("u-1")

Store = InMemoryStore | SqlStore


@pytest.fixture(params=[pytest.param("memory", id="memory"), *SQL_BACKENDS])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        yield InMemoryStore()
        return
    s = make_store(str(request.param))
    yield s
    s.drop_tables()
    s.close()


def follow(key: str, at: dt.datetime = T0) -> Any:
    return lambda mid: [Event(mid, "follow", at, {"source": "parcel"}, key=key)]


def test_first_push_creates_the_member_and_a_repush_stores_nothing(store: Store) -> None:
    assert isinstance(store, PushIngest)
    got = store.ingest_push(OPENID, follow("k1"))
    mid = member_id_for(OPENID)
    assert (got.member_id, got.new, got.attached, got.created) == (mid, 1, True, True)
    assert [e.key for e in got.events] == ["k1"]
    assert store.resolve(OPENID) == mid
    member = store.get_member(mid)
    assert member is not None
    assert member.identities == (OPENID,)
    assert member.state.subscribed is True
    again = store.ingest_push(OPENID, follow("k1"))
    assert (again.member_id, again.new, again.attached, again.created) == (mid, 0, False, False)
    assert [e.key for e in store.events_for(mid)] == ["k1"]


def test_a_push_of_a_linked_identity_lands_on_its_member(store: Store) -> None:
    out = store.link(OPENID, UNIONID, Evidence.UNIONID, T0, by="test")
    got = store.ingest_push(OPENID, follow("k2"))
    assert got.member_id == out.member_id
    assert not got.attached
    assert [e.key for e in store.events_for(out.member_id)] == ["k2"]


def test_the_deterministic_member_existing_without_the_identity_gets_it_back(
    store: Store,
) -> None:
    mid = member_id_for(OPENID)
    store.upsert_members([Member(mid, tags={"kept"})])
    got = store.ingest_push(OPENID, follow("k3"))
    assert (got.member_id, got.attached, got.created) == (mid, True, False)
    member = store.get_member(mid)
    assert member is not None
    assert member.tags == {"kept"}
    assert member.identities == (OPENID,)


def test_a_clash_on_the_deterministic_member_is_refused_and_writes_nothing(
    store: Store,
) -> None:
    mid = member_id_for(OPENID)
    other = Identity.openid("wxapp", "o-other")
    store.upsert_members([Member(mid, identities=[other])])
    with pytest.raises(IdentityConflict):
        store.ingest_push(OPENID, follow("k4"))
    assert store.resolve(OPENID) is None
    assert store.events_for(mid) == []


def test_bad_arguments_are_refused(store: Store) -> None:
    with pytest.raises(UsageError, match="Identity"):
        store.ingest_push("o-1", follow("k"))  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"of member"):
        store.ingest_push(OPENID, lambda mid: [Event("someone-else", "follow", T0, key="x")])
    with pytest.raises(UsageError, match="Event"):
        store.ingest_push(OPENID, lambda mid: ["not an event"])  # type: ignore[list-item]
    assert store.resolve(OPENID) is None
    assert store.get_member(member_id_for(OPENID)) is None


class Boom(RuntimeError):
    pass


def _break_append(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the append step fail after the member and identity were written."""

    def fail(*args: Any, **kwargs: Any) -> int:
        raise Boom("append failed")

    if isinstance(store, InMemoryStore):
        monkeypatch.setattr(store, "append_events", fail)
    else:
        monkeypatch.setattr(store, "_append_chunk", fail)


def test_a_failure_between_steps_leaves_nothing_half_written(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    mid = member_id_for(OPENID)
    with monkeypatch.context() as mp:
        _break_append(store, mp)
        with pytest.raises(Boom):
            store.ingest_push(OPENID, follow("k5"))
    assert store.resolve(OPENID) is None
    assert store.get_member(mid) is None
    assert store.events_for(mid) == []
    # and the re-push (WeChat retries) then records it whole
    got = store.ingest_push(OPENID, follow("k5"))
    assert (got.new, got.created) == (1, True)


def test_a_failing_make_events_writes_nothing(store: Store) -> None:
    def broken(mid: str) -> list[Event]:
        raise Boom("bad push")

    with pytest.raises(Boom):
        store.ingest_push(OPENID, broken)
    assert store.resolve(OPENID) is None
    assert store.get_member(member_id_for(OPENID)) is None


def test_sql_push_is_one_transaction_where_the_three_steps_were_three() -> None:
    store = SqlStore("sqlite://")
    begins: list[int] = []
    sa.event.listen(store.engine, "begin", lambda conn: begins.append(1))
    store.create_schema()

    class Plain:
        """A store offering only resolve / upsert_members / append_events."""

        resolve = store.resolve
        upsert_members = store.upsert_members
        append_events = store.append_events

    begins.clear()
    ingest(Plain(), Identity.openid("wxapp", "o-2"), follow("p1"))
    three = len(begins)
    begins.clear()
    store.ingest_push(OPENID, follow("p2"))
    assert (three, len(begins)) == (3, 1)
    begins.clear()
    store.ingest_push(OPENID, follow("p3"))  # a known follower: still one
    assert len(begins) == 1
    store.close()


@pytest.mark.parametrize("backend", SQL_BACKENDS)
def test_two_first_pushes_of_one_follower_at_once_make_one_member(backend: str) -> None:
    """Both transactions resolve nobody before either writes; the loser's insert of the
    identity collides, its transaction is retried and finds the member."""
    import contextlib
    import threading

    store = make_store(backend)
    barrier = threading.Barrier(2, timeout=2 if backend == "sqlite" else 30)
    waited = threading.local()

    def events(key: str) -> Any:
        def make(mid: str) -> list[Event]:
            if not getattr(waited, "once", False):  # both have resolved: go on together
                waited.once = True
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait()
            return [Event(mid, "message", T0, key=key)]

        return make

    results: list[Any] = []
    errors: list[BaseException] = []

    def run(key: str) -> None:
        try:
            results.append(store.ingest_push(OPENID, events(key)))
        except BaseException as exc:  # reported below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=run, args=(k,)) for k in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert {r.member_id for r in results} == {member_id_for(OPENID)}
        assert [r.attached for r in results].count(True) == 1
        assert sorted(e.key for e in store.events_for(member_id_for(OPENID))) == ["a", "b"]
        assert len(list(store.iter_members())) == 1
    finally:
        store.drop_tables()
        store.close()
