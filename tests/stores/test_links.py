"""Store-side identity linking: link, the merge audit trail and splits, on every store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from membermkt.core.events import Event, fold
from membermkt.core.identity import Evidence, Identity, member_id_for
from membermkt.core.members import Member, Profile
from membermkt.errors import IdentityConflict, UsageError
from membermkt.stores.memory import InMemoryStore
from membermkt.stores.sql import SqlStore
from membermkt.testing.phones import TEST_PHONES

from .conftest import SQL_BACKENDS, make_store

T0 = dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC)
OPENID = Identity.openid("wxapp", "o-1")
UNIONID = Identity.unionid("u-1")
PHONE = TEST_PHONES.identity("13800138000")
BUYER = Identity.platform_buyer("tmall", "tb-1")

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


def _buyer_and_follower(store: Store) -> tuple[str, str]:
    store.upsert_members(
        [
            Member("buyer", Profile(city="Hangzhou"), {"tmall"}, {"vip": True}, [BUYER, PHONE]),
            Member("zz-follower", identities=[OPENID], tags={"fan"}),
        ]
    )
    store.append_events(
        [
            Event("buyer", "purchase", T0, {"amount_fen": 5000, "order_id": "A"}, key="A"),
            Event("zz-follower", "follow", T0 + dt.timedelta(days=1), {"source": "parcel"}),
        ]
    )
    return "buyer", "zz-follower"


def test_link_attaches_creates_and_is_idempotent(store: Store) -> None:
    out = store.link(OPENID, UNIONID, Evidence.UNIONID, T0, by="wechat.user_info")
    assert out.created
    assert out.member_id == min(member_id_for(OPENID), member_id_for(UNIONID))
    assert store.resolve(UNIONID) == store.resolve(OPENID) == out.member_id
    again = store.link(UNIONID, OPENID, "unionid", T0)
    assert not again.changed
    assert again.member_id == out.member_id
    got = store.get_member(out.member_id)
    assert got is not None
    assert set(got.identities) == {OPENID, UNIONID}
    assert store.merges() == []


def test_link_merges_with_audit_trail_and_split_restores(store: Store) -> None:
    buyer, follower = _buyer_and_follower(store)
    before = {m: store.get_member(m) for m in (buyer, follower)}
    events_before = {m: store.events_for(m) for m in (buyer, follower)}
    out = store.link(PHONE, OPENID, "verified_phone", T0 + dt.timedelta(days=2), by="phoneform")
    assert out.merge is not None
    assert out.member_id == buyer
    assert store.get_member(follower) is None
    merged = store.get_member(buyer)
    assert merged is not None
    assert set(merged.identities) == {BUYER, PHONE, OPENID}
    assert merged.tags == {"tmall", "fan"}
    assert merged.state.source == "parcel"
    assert merged.state.purchases.total_fen == 5000
    union = [*events_before[buyer], *events_before[follower]]
    assert merged.state == fold(Member(buyer), [e.with_member(buyer) for e in union]).state
    (rec,) = store.merges(buyer)
    assert (rec.keep, rec.drop, rec.link.by) == (buyer, follower, "phoneform")
    assert rec.link.evidence is Evidence.VERIFIED_PHONE
    assert rec.identities == (OPENID,)
    assert store.merges("nobody") == []

    # an event after the merge stays with the survivor
    store.append_events([Event(buyer, "purchase", T0 + dt.timedelta(days=3), {"amount_fen": 7})])
    done = store.unmerge(rec.id, at=T0 + dt.timedelta(days=4), by="ops")
    assert done.undone_by == "ops"
    assert store.merges()[0].undone_at is not None
    b, f = store.get_member(buyer), store.get_member(follower)
    assert f == before[follower]
    assert b is not None
    assert before[buyer] is not None
    assert b.identities == before[buyer].identities
    assert b.tags == before[buyer].tags
    assert b.profile == before[buyer].profile
    assert b.attributes == before[buyer].attributes
    assert b.state.purchases.total_fen == 5007
    assert b.state.source is None
    assert store.events_for(follower) == events_before[follower]
    assert store.resolve(OPENID) == follower
    with pytest.raises(UsageError, match="already undone"):
        store.unmerge(rec.id, at=T0, by="ops")


def test_refused_links_change_nothing(store: Store) -> None:
    store.upsert_members(
        [Member("a", identities=[UNIONID, PHONE]), Member("b", identities=[Identity.unionid("u2")])]
    )
    with pytest.raises(IdentityConflict, match="two people"):
        store.link(Identity.unionid("u2"), PHONE, "verified_phone", T0)
    with pytest.raises(IdentityConflict, match="cannot merge"):
        store.link(Identity.unionid("u2"), PHONE, "claimed", T0)
    with pytest.raises(IdentityConflict, match="cannot link"):
        store.link(OPENID, PHONE, "unionid", T0)
    with pytest.raises(IdentityConflict, match="another unionid"):
        store.link(Identity.unionid("u3"), PHONE, "verified_phone", T0)
    assert store.resolve(PHONE) == "a"
    assert store.merges() == []
    with pytest.raises(UsageError, match="unknown merge"):
        store.unmerge("g0", at=T0, by="x")


def test_later_merges_are_split_first(store: Store) -> None:
    store.upsert_members(
        [
            Member("a", identities=[PHONE]),
            Member("b", identities=[OPENID]),
            Member("c", identities=[BUYER]),
        ]
    )
    first = store.link(PHONE, OPENID, "verified_phone", T0).merge
    second = store.link(BUYER, PHONE, "order_phone", T0).merge
    assert first is not None
    assert second is not None
    with pytest.raises(UsageError, match="later merges"):
        store.unmerge(first.id, at=T0, by="x")
    store.unmerge(second.id, at=T0, by="x")
    store.unmerge(first.id, at=T0, by="x")
    assert {store.resolve(i) for i in (PHONE, OPENID, BUYER)} == {"a", "b", "c"}


_PEOPLE = 3


def _ids(n: int) -> dict[str, Identity]:
    return {
        "openid": Identity.openid("wxapp", f"o{n}"),
        "unionid": Identity.unionid(f"u{n}"),
        "phone": TEST_PHONES.identity(f"1380013800{n}"),
        "buyer": Identity.platform_buyer("jd", f"b{n}"),
    }


_STEP = st.one_of(
    st.tuples(
        st.just("link"),
        st.integers(0, _PEOPLE - 1),
        st.sampled_from(
            [
                ("openid", "unionid", "unionid"),
                ("phone", "openid", "verified_phone"),
                ("buyer", "phone", "order_phone"),
            ]
        ),
    ),
    st.tuples(
        st.just("event"),
        st.integers(0, _PEOPLE - 1),
        st.tuples(
            st.sampled_from(["openid", "unionid", "phone", "buyer"]),
            st.sampled_from(["follow", "unfollow", "purchase", "message"]),
            st.integers(0, 50),
        ),
    ),
)


def _apply(store: InMemoryStore, step: tuple[object, ...], n: int) -> None:
    kind, person, what = step
    assert isinstance(person, int)
    ids = _ids(person)
    if kind == "link":
        x, y, ev = what  # type: ignore[misc]
        store.link(ids[x], ids[y], ev, T0)
        return
    ident_name, etype, minute = what  # type: ignore[misc]
    ident = ids[ident_name]
    mid = store.resolve(ident)
    if mid is None:
        mid = member_id_for(ident)
        store.upsert_members([Member(mid, identities=[ident])])
    props = {"amount_fen": minute} if etype == "purchase" else {}
    store.append_events([Event(mid, etype, T0 + dt.timedelta(minutes=minute), props, key=f"k{n}")])


def _view(store: InMemoryStore) -> set[tuple[frozenset[Identity], object]]:
    return {(frozenset(m.identities), m.state) for m in store.iter_members()}


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_STEP, max_size=25), st.randoms(use_true_random=False))
def test_any_order_or_twice_gives_the_same_members_and_state(
    steps: list[tuple[object, ...]], rnd: object
) -> None:
    numbered = list(enumerate(steps))
    one = InMemoryStore()
    for n, s in numbered:
        _apply(one, s, n)
    shuffled = list(numbered)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    two = InMemoryStore()
    for n, s in shuffled + shuffled:
        _apply(two, s, n)
    assert _view(one) == _view(two)
    for m in two.iter_members():
        assert m.state == fold(Member(m.id), two.events_for(m.id)).state
    # merge then split (in reverse order) restores the members
    three = InMemoryStore()
    events_only = [(n, s) for n, s in numbered if s[0] == "event"]
    for n, s in events_only:
        _apply(three, s, n)
    base = {m.id: m for m in three.iter_members()}
    for n, s in numbered:
        if s[0] == "link":
            _apply(three, s, n)
    for rec in reversed(three.merges()):
        three.unmerge(rec.id, at=T0, by="t")
    after = {m.id: m for m in three.iter_members()}
    for mid, m in base.items():
        assert after[mid].state == m.state
        assert set(m.identities) <= set(after[mid].identities)
