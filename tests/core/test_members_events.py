"""Core vocabulary: validation at construction, identities, and the event fold's laws."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from membermkt import Event, Identity, Member, MemberState, Profile, apply, fold, phone_digest
from membermkt.core.events import event_state
from membermkt.core.identity import member_id_for, merge_plan, normalize_phone
from membermkt.errors import UsageError
from membermkt.testing import strategies as mst

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def ev(t: str, hours: float, key: str | None = None, **props) -> Event:
    return Event("m", t, T0 + dt.timedelta(hours=hours), props, key=key)


# --------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Member(""), "Member.id"),
        (lambda: Member("x", tags="vip"), "not a str"),
        (lambda: Member("x", attributes={"city": "x"}), "shadow"),
        (lambda: Member("x", attributes={"age": 3}), "shadow"),
        (lambda: Member("x", attributes={"k": [1]}), "must be str, int, float or bool"),
        (lambda: Member("x", attributes={"k": float("nan")}), "finite"),
        (lambda: Profile(gender="other"), "gender"),
        (lambda: Profile(birthday=dt.datetime(2000, 1, 1)), "birthday"),
        (lambda: Profile(city=""), "city"),
        (lambda: Event("m", "view", dt.datetime(2026, 1, 1)), "timezone-aware"),
        (lambda: Event("m", "", T0), "Event.type"),
        (lambda: Event("m", "purchase", T0, {"amount_fen": 9.9}), "amount_fen"),
        (lambda: Event("m", "purchase", T0, {"amount_fen": -1}), "amount_fen"),
        (lambda: Event("m", "view", T0, {"x": None}), "Event.properties"),
        (lambda: Identity("phone", "13800138000"), "never a raw number"),
        (lambda: Identity("openid", "o1"), "namespace"),
        (lambda: Identity("nope", "o1"), "nope"),
    ],
)
def test_bad_input_gets_a_clear_usage_error(make, match):
    with pytest.raises(UsageError, match=match):
        make()


def test_phone_digests_ignore_formatting_and_never_keep_the_number():
    a = Identity.phone("138 0013 8000")
    b = Identity.phone("+86-138-0013-8000")
    assert a == b
    assert "13800138000" not in a.value
    assert normalize_phone("0086 13800138000") == "8613800138000"
    assert phone_digest("13800138000", key="k1") != phone_digest("13800138000", key="k2")
    with pytest.raises(UsageError):
        normalize_phone("call me")


def test_identity_tokens_round_trip_and_member_ids_are_deterministic():
    i = Identity.openid("wxapp", "o-abc:def")
    assert Identity.from_token(i.token) == i
    assert member_id_for(i) == member_id_for(Identity.openid("wxapp", "o-abc:def"))
    assert member_id_for(i) != member_id_for(Identity.openid("wxother", "o-abc:def"))


def test_merge_plan_keeps_the_smallest_existing_id():
    i1, i2 = Identity.openid("a", "o1"), Identity.unionid("u1")
    keep, merges = merge_plan([(i1, "m9"), (i2, "m2")], "new")
    assert keep == "m2"
    assert [(m.keep, m.drop) for m in merges] == [("m2", "m9")]
    assert merge_plan([], "new") == ("new", ())


# --------------------------------------------------------------- the fold


def test_fold_counts_purchases_and_tracks_state():
    m = fold(
        Member("m"),
        [
            ev("follow", 0, "f1", source="parcel"),
            ev("menu_click", 1, key="A"),
            ev("purchase", 2, order_id="o1", amount_fen=1990, category="durian"),
            ev("purchase", 5, order_id="o2", amount_fen=990, category="apple"),
            ev("unfollow", 6, "u1"),
        ],
    )
    s = m.state
    assert s.subscribed is False
    assert s.source == "parcel"
    assert s.purchases.count == 2
    assert s.purchases.total_fen == 2980
    assert s.purchases.categories == {"durian", "apple"}
    assert s.purchases.first_at == T0 + dt.timedelta(hours=2)
    assert s.last_active_at == T0 + dt.timedelta(hours=5)  # unfollow is not activity


def test_subscription_is_last_writer_wins_by_event_time_not_arrival():
    follow_late = ev("follow", 10, "f2")
    unfollow_early = ev("unfollow", 5, "u1")
    assert fold(Member("m"), [follow_late, unfollow_early]).state.subscribed is True
    assert fold(Member("m"), [unfollow_early, follow_late]).state.subscribed is True
    # at the very same instant, the removal wins (the safer reading), whatever the order
    tie = [ev("follow", 3, "a"), ev("unfollow", 3, "b")]
    assert fold(Member("m"), tie).state.subscribed is False
    assert fold(Member("m"), list(reversed(tie))).state.subscribed is False


def test_simultaneous_sources_fold_the_same_in_any_order():
    """Regression: two keyless follows at the same instant with different sources."""
    a = ev("follow", 1, source="parcel")
    b = ev("follow", 1, source="store")
    sa, sb = event_state(a), event_state(b)
    assert sa.combine(sb) == sb.combine(sa)
    assert fold(Member("m"), [a, b]).state.source == fold(Member("m"), [b, a]).state.source


def test_source_is_first_touch():
    m = fold(Member("m"), [ev("contact_added", 9, source="store"), ev("follow", 1, source="qr")])
    assert m.state.source == "qr"


def test_apply_refuses_another_members_event():
    with pytest.raises(UsageError, match="applied to member"):
        apply(Member("other"), ev("view", 1))


@given(st.lists(mst.events(st.just("m")), max_size=25), st.randoms(use_true_random=False))
def test_fold_is_order_independent(events, rnd):
    shuffled = list(events)
    rnd.shuffle(shuffled)
    assert fold(Member("m"), events).state == fold(Member("m"), shuffled).state


@given(
    st.lists(mst.events(st.just("m")), max_size=12), st.lists(mst.events(st.just("m")), max_size=12)
)
def test_state_combine_is_a_commutative_monoid(a, b):
    sa = fold(Member("m"), a).state
    sb = fold(Member("m"), b).state
    assert sa.combine(sb) == sb.combine(sa)
    assert sa.combine(MemberState()) == sa
    assert fold(Member("m"), a + b).state == sa.combine(sb)


@given(mst.events(st.just("m")))
def test_fold_of_one_event_is_its_state(e):
    assert apply(Member("m"), e).state == event_state(e)
