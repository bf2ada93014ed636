"""The store contract: a pytest suite every :class:`~membermkt.core.ports.Store` must pass.

Subclass :class:`StoreContract` in a test module and provide a ``store`` fixture yielding a
fresh, empty store::

    import pytest
    from membermkt.stores import InMemoryStore
    from membermkt.testing.store_contract import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self):
            yield InMemoryStore()

The suite checks outcomes only (what the store returns afterwards), never how it got there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from membermkt.core.delivery import Delivery, DeliveryStatus
from membermkt.core.evaluate import compile_predicate
from membermkt.core.events import Event, fold
from membermkt.core.identity import Identity
from membermkt.core.members import Consent, Member, Profile
from membermkt.core.ports import PayoutIntent, Store
from membermkt.core.segments import (
    TRUE,
    attr,
    did,
    sample,
    tag,
)
from membermkt.errors import IdentityConflict, LedgerError, UsageError

__all__ = ["StoreContract"]

UTC = dt.UTC
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
"""The reference time of the suite."""


def _h(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def _delivery(key: str, campaign: str = "c1", channel: str = "wechat.mass") -> Delivery:
    return Delivery(
        key=key,
        campaign_id=campaign,
        member_id="m" + key,
        channel=channel,
        address="o" + key,
        variant="A",
        payload={"text": "hi"},
    )


class StoreContract:
    """Behaviour every store must have. Subclasses provide a ``store`` fixture."""

    @pytest.fixture
    def store(self) -> Iterator[Any]:
        """A fresh, empty store (override in the subclass)."""
        raise pytest.UsageError("StoreContract subclasses must define a `store` fixture")

    # ------------------------------------------------------------------ protocol

    def test_implements_the_store_protocol(self, store: Any) -> None:
        """The store has every method of :class:`membermkt.core.ports.Store`."""
        assert isinstance(store, Store)

    # ------------------------------------------------------------------ members

    def test_upsert_then_get_round_trips_every_member_field(self, store: Any) -> None:
        """What goes in comes out: profile, tags, attributes, identities, consent."""
        m = Member(
            "m1",
            Profile(
                gender="female",
                city="Hangzhou",
                province="Zhejiang",
                country="CN",
                birthday=dt.date(1990, 2, 28),
                income_band="10k+",
                tier="gold",
            ),
            tags={"vip", "50%"},
            attributes={"level": 3, "score": 2.5, "nick": "小王", "flag": True},
            identities=[Identity.openid("wxapp", "o1"), Identity.unionid("u1")],
            consent=Consent(marketing=False, opted_out_channels={"wechat.mass"}),
        )
        assert store.upsert_members([m, Member("m2")]) == 2
        got = store.get_member("m1")
        assert got == m
        assert isinstance(got.attributes["level"], int)
        assert isinstance(got.attributes["score"], float)
        assert got.attributes["flag"] is True
        assert store.get_member("m2") == Member("m2")
        assert store.get_member("nobody") is None

    def test_upsert_replaces_but_keeps_folded_state(self, store: Any) -> None:
        """Re-upserting a member with an empty state keeps what its events folded."""
        store.append_events([Event("m1", "purchase", _h(-1), {"amount_fen": 990}, key="k1")])
        store.upsert_members([Member("m1", Profile(city="Beijing"), tags={"a"})])
        got = store.get_member("m1")
        assert got.profile.city == "Beijing"
        assert got.state.purchases.count == 1
        store.upsert_members([Member("m1", Profile(city="Shanghai"))])
        got = store.get_member("m1")
        assert got.profile.city == "Shanghai"
        assert got.tags == frozenset()
        assert got.state.purchases.total_fen == 990

    def test_resolve_and_an_identity_is_never_moved_by_an_upsert(self, store: Any) -> None:
        """An identity belongs to one member; listing it on another member is refused
        (``on_shared_identity="report"``, the default) and nothing of the call is written."""
        o1, o2 = Identity.openid("wxapp", "o1"), Identity.openid("wxapp", "o2")
        store.upsert_members([Member("m1", identities=[o1])])
        assert store.resolve(o1) == "m1"
        assert store.resolve(o2) is None
        with pytest.raises(IdentityConflict) as caught:
            store.upsert_members([Member("m0", identities=[o2]), Member("m2", identities=[o1])])
        assert set(caught.value.members) == {"m1", "m2"}
        assert store.resolve(o1) == "m1"
        assert store.get_member("m1").identities == (o1,)
        assert store.get_member("m0") is None
        assert store.resolve(o2) is None
        # two members of one call listing one identity: refused too
        with pytest.raises(IdentityConflict):
            store.upsert_members([Member("m3", identities=[o2]), Member("m4", identities=[o2])])
        assert store.get_member("m3") is None
        # re-upserting the holder, or dropping the identity from it, is no move
        store.upsert_members([Member("m1", Profile(city="Xi'an"), identities=[o1])])
        store.upsert_members([Member("m1")])
        assert store.resolve(o1) is None
        store.upsert_members([Member("m2", identities=[o1])])
        assert store.resolve(o1) == "m2"
        with pytest.raises(UsageError, match="on_shared_identity"):
            store.upsert_members([Member("m5")], on_shared_identity="move")

    def test_upsert_merges_by_shared_identity_on_request(self, store: Any) -> None:
        """``on_shared_identity="merge"``: the members become one (the smaller id survives),
        the merge is in the audit trail and can be split (stores with ``merges``)."""
        if not hasattr(store, "merges"):
            pytest.skip("the store keeps no merge audit trail (no merges/unmerge)")
        o1, p1 = Identity.openid("wxapp", "o1"), Identity.platform_buyer("tmall", "b1")
        store.upsert_members([Member("zz-follower", tags={"fan"}, identities=[o1])])
        store.append_events([Event("zz-follower", "follow", _h(-2), {"source": "qr"}, key="f")])
        with pytest.raises(UsageError, match="at="):
            store.upsert_members([Member("crm-1", identities=[o1])], on_shared_identity="merge")
        n = store.upsert_members(
            [Member("crm-1", Profile(city="Wuhan"), {"crm"}, identities=[p1, o1])],
            on_shared_identity="merge",
            at=_h(-1),
            by="import",
        )
        assert n == 1
        assert store.resolve(o1) == store.resolve(p1) == "crm-1"
        assert store.get_member("zz-follower") is None
        got = store.get_member("crm-1")
        assert got.tags == {"crm", "fan"}
        assert got.profile.city == "Wuhan"
        assert got.state.source == "qr"
        [rec] = store.merges("crm-1")
        assert (rec.keep, rec.drop, rec.link.by, rec.link.evidence.value) == (
            "crm-1",
            "zz-follower",
            "import",
            "operator",
        )
        store.unmerge(rec.id, at=_h(0), by="ops")
        assert store.resolve(o1) == "zz-follower"
        assert store.resolve(p1) == "crm-1"
        assert [e.key for e in store.events_for("zz-follower")] == ["f"]

    def test_a_refused_merge_writes_nothing(self, store: Any) -> None:
        """Two unionids are two people: the merge an upsert asks for is refused whole."""
        if not hasattr(store, "merges"):
            pytest.skip("the store keeps no merge audit trail (no merges/unmerge)")
        o1, u1, u2 = Identity.openid("wxapp", "o1"), Identity.unionid("u1"), Identity.unionid("u2")
        store.upsert_members([Member("a", identities=[o1, u1])])
        with pytest.raises(IdentityConflict):
            store.upsert_members(
                [Member("new", tags={"x"}), Member("b", identities=[u2, o1])],
                on_shared_identity="merge",
                at=_h(0),
            )
        assert store.get_member("new") is None
        assert store.get_member("b") is None
        assert store.resolve(o1) == "a"
        assert store.merges() == []

    def test_merge_members_folds_drop_into_keep(self, store: Any) -> None:
        """Merging moves identities, tags, missing attributes and events; drop disappears."""
        o1, u1 = Identity.openid("wxapp", "o1"), Identity.unionid("u1")
        store.upsert_members(
            [
                Member("a", Profile(city="Hangzhou"), {"x"}, {"level": 1}, [o1]),
                Member("b", Profile(city="Beijing", tier="gold"), {"y"}, {"level": 2, "z": "q"}),
            ]
        )
        store.upsert_members(
            [Member("b", Profile(city="Beijing", tier="gold"), {"y"}, {"level": 2, "z": "q"}, [u1])]
        )
        store.append_events(
            [
                Event("a", "purchase", _h(-3), {"amount_fen": 100}, key="e1"),
                Event("b", "purchase", _h(-2), {"amount_fen": 200}, key="e2"),
                Event("b", "follow", _h(-1), {"source": "store"}, key="e3"),
            ]
        )
        store.merge_members("a", "b")
        assert store.get_member("b") is None
        m = store.get_member("a")
        assert m.profile.city == "Hangzhou"
        assert m.profile.tier == "gold"
        assert m.tags == {"x", "y"}
        assert m.attributes == {"level": 1, "z": "q"}
        assert store.resolve(u1) == "a"
        assert store.resolve(o1) == "a"
        assert m.state.purchases.count == 2
        assert m.state.purchases.total_fen == 300
        assert m.state.subscribed is True
        assert [e.key for e in store.events_for("a")] == ["e1", "e2", "e3"]
        assert store.events_for("b") == []
        # the moved events still de-duplicate
        assert store.append_events([Event("b", "follow", _h(-1), key="e3")]) == 0
        with pytest.raises(UsageError):
            store.merge_members("a", "a")
        with pytest.raises(UsageError):
            store.merge_members("a", "nobody")

    def test_tag_and_untag_count_changes(self, store: Any) -> None:
        """tag/untag return how many members actually changed; unknown ids are ignored."""
        store.upsert_members([Member("m1"), Member("m2", tags={"vip"})])
        assert store.tag(["m1", "m2", "nobody"], "vip") == 1
        assert store.get_member("m1").tags == {"vip"}
        assert store.tag(["m1"], "vip") == 0
        assert store.untag(["m1", "m2"], "vip") == 2
        assert store.untag(["m1"], "vip") == 0
        assert store.get_member("m2").tags == frozenset()
        with pytest.raises(UsageError):
            store.tag(["m1"], "")

    # ------------------------------------------------------------------ events

    def test_append_is_idempotent_by_key(self, store: Any) -> None:
        """The same events appended twice are stored once (WeChat re-pushes callbacks)."""
        evs = [
            Event("m1", "follow", _h(-5), {"source": "parcel"}, key="k1"),
            Event("m1", "purchase", _h(-4), {"amount_fen": 1990, "category": "durian"}, key="k2"),
            Event("m1", "view", _h(-3), {"url": "/a"}),
        ]
        assert store.append_events(evs) == 3
        assert store.append_events(evs[:2]) == 0
        assert store.append_events([evs[0], evs[0]]) == 0
        dup = Event("m1", "purchase", _h(-2), {"amount_fen": 5}, key="k3")
        assert store.append_events([dup, dup]) == 1
        m = store.get_member("m1")
        assert m.state.purchases.count == 2
        assert m.state.purchases.total_fen == 1995
        assert len(store.events_for("m1")) == 4

    def test_state_is_the_fold_of_stored_events(self, store: Any) -> None:
        """The member's state equals ``fold`` over its events, whatever the batching."""
        evs = [
            Event("m1", "follow", _h(-10), {"source": "parcel"}, key="a"),
            Event("m1", "unfollow", _h(-8), key="b"),
            Event("m1", "follow", _h(-6), {"source": "store"}, key="c"),
            Event("m1", "purchase", _h(-5), {"amount_fen": 100, "category": "apple"}, key="d"),
            Event("m1", "purchase", _h(-7), {"amount_fen": 50, "category": "durian"}, key="e"),
            Event("m1", "contact_added", _h(-4), key="f"),
            Event("m1", "contact_deleted", _h(-4), key="g"),
            Event("m1", "message", _h(-1), key="h"),
        ]
        store.append_events(evs[4:])
        store.append_events(evs[:4])
        assert store.get_member("m1").state == fold(Member("m1"), evs).state

    def test_events_for_window_types_and_order(self, store: Any) -> None:
        """events_for returns ``since < at <= until`` of the given types, by time."""
        evs = [
            Event("m1", t, _h(h), key=f"k{h}")
            for t, h in [("view", -1), ("message", -3), ("view", -2), ("view", 0)]
        ]
        store.append_events(evs)
        assert [e.at for e in store.events_for("m1")] == [_h(-3), _h(-2), _h(-1), _h(0)]
        got = store.events_for("m1", since=_h(-3), until=_h(-1), types=["view"])
        assert [e.at for e in got] == [_h(-2), _h(-1)]
        assert got[0] == evs[2]
        assert store.events_for("nobody") == []

    def test_event_properties_round_trip_with_types(self, store: Any) -> None:
        """Event properties keep their types (int, float, bool, str) and the event its key."""
        e = Event("m1", "x", _h(0), {"i": 3, "f": 3.5, "b": False, "s": "文"}, key="k")
        store.append_events([e])
        (got,) = store.events_for("m1")
        assert got == e
        assert got.at == e.at
        assert isinstance(got.properties["i"], int)
        assert got.properties["b"] is False

    # ------------------------------------------------------------------ segments

    def _population(self, store: Any) -> None:
        store.upsert_members(
            [
                Member(
                    "m1",
                    Profile(city="Hangzhou", birthday=dt.date(1990, 3, 1)),
                    {"vip"},
                    {"level": 3},
                ),
                Member("m2", Profile(city="hangzhou"), {"vip", "new"}, {"level": "3"}),
                Member("m3", Profile(), (), {"level": 3.0}),
                Member("m4", Profile(city="Hang%"), {"a_b"}),
            ]
        )
        store.append_events(
            [
                Event("m1", "purchase", _h(-30), {"amount_fen": 990}, key="p1"),
                Event("m1", "purchase", _h(-2), {"amount_fen": 990}, key="p2"),
                Event("m2", "purchase", _h(-1), {"amount_fen": 10}, key="p3"),
                Event("m3", "purchase", _h(1), {"amount_fen": 10}, key="p4"),
            ]
        )

    def test_select_count_and_missing_values(self, store: Any) -> None:
        """Comparisons are exact and case-sensitive; missing → false, negation → true."""
        self._population(store)

        def ids(seg: Any) -> list[str]:
            got = list(store.select(seg, T0))
            assert store.count(seg, T0) == len(got)
            return got

        assert ids(TRUE) == ["m1", "m2", "m3", "m4"]
        assert ids(attr("city") == "Hangzhou") == ["m1"]
        assert ids(~(attr("city") == "Hangzhou")) == ["m2", "m3", "m4"]
        assert ids(attr("city").startswith("Hang")) == ["m1", "m4"]
        assert ids(attr("city").contains("%")) == ["m4"]
        assert ids(attr("level") == 3) == ["m1", "m3"]
        assert ids(~(attr("level") == 3)) == ["m2", "m4"]
        assert ids(attr("level") == "3") == ["m2"]
        assert ids(attr("age") >= 36) == ["m1"]
        assert ids(~(attr("age") >= 36)) == ["m2", "m3", "m4"]
        assert ids(tag("vip") & ~tag("new")) == ["m1"]
        assert ids(did("purchase", within=dt.timedelta(hours=24))) == ["m1", "m2"]
        assert ids(did("purchase", at_least=2)) == ["m1"]
        assert ids(did("purchase", at_least=0, at_most=0)) == ["m3", "m4"]
        # derived state is as of T0: m3's only purchase is later, like did("purchase")
        assert ids(attr("orders_count") >= 1) == ["m1", "m2"]
        assert ids(attr("orders_count") >= 1) == ids(did("purchase"))
        assert list(store.select(attr("orders_count") >= 1, _h(1))) == ["m1", "m2", "m3"]
        assert ids(attr("city").isin(["Hangzhou", "hangzhou"])) == ["m1", "m2"]
        assert ids(attr("city").not_in(["Hangzhou"])) == ["m2", "m4"]

    def test_select_agrees_with_the_reference_predicate(self, store: Any) -> None:
        """Each store selects what :func:`compile_predicate` selects on the same data."""
        self._population(store)
        segs = [
            sample(0.5, "c1"),
            attr("level").between(2, 3) | tag("a_b"),
            did("purchase", where={"amount_fen": 990}, at_least=1, at_most=1),
            attr("last_order_at") > T0 - dt.timedelta(hours=3),
        ]
        members = {mid: store.get_member(mid) for mid in ["m1", "m2", "m3", "m4"]}
        for seg in segs:
            pred = compile_predicate(seg, T0)
            want = [mid for mid, m in members.items() if pred(m, store.events_for(mid))]
            assert list(store.select(seg, T0)) == want, seg

    def test_sample_is_deterministic_and_bounded(self, store: Any) -> None:
        """sample returns up to n ids of the segment, the same for the same seed."""
        store.upsert_members([Member(f"m{i:03d}") for i in range(50)])
        a = store.sample(TRUE, T0, 10, seed=7)
        assert len(a) == 10
        assert a == sorted(a)
        assert store.sample(TRUE, T0, 10, seed=7) == a
        assert store.sample(TRUE, T0, 10, seed=8) != a
        assert store.sample(attr("city").exists(), T0, 10, seed=7) == []
        assert len(store.sample(TRUE, T0, 500, seed=1)) == 50
        with pytest.raises(UsageError):
            store.sample(TRUE, T0, -1, seed=1)

    def test_naive_as_of_is_refused(self, store: Any) -> None:
        """Time is always timezone-aware."""
        with pytest.raises(UsageError):
            store.count(TRUE, dt.datetime(2026, 1, 1))

    # ------------------------------------------------------------------ ledger

    def test_record_plan_is_idempotent(self, store: Any) -> None:
        """Planning the same deliveries twice records them once."""
        ds = [_delivery("1"), _delivery("2")]
        assert store.record_plan(ds, now=T0) == 2
        assert store.record_plan([*ds, _delivery("3")], now=T0) == 1
        recs = list(store.deliveries("c1"))
        assert [r.key for r in recs] == ["1", "2", "3"]
        assert all(r.status is DeliveryStatus.PLANNED and r.attempts == 0 for r in recs)
        assert recs[0].delivery == ds[0]

    def test_claim_hands_each_delivery_out_once(self, store: Any) -> None:
        """Claimed deliveries become ``sending`` with attempts + 1 and are not claimed again."""
        store.record_plan([_delivery(str(i)) for i in range(5)], now=T0)
        store.record_plan([_delivery("x", channel="wecom")], now=T0)
        first = store.claim("c1", worker="w1", limit=3, now=_h(1), channel="wechat.mass")
        second = store.claim("c1", worker="w2", limit=10, now=_h(1), channel="wechat.mass")
        assert len(first) == 3
        assert len(second) == 2
        assert {r.key for r in first}.isdisjoint({r.key for r in second})
        assert all(r.status is DeliveryStatus.SENDING and r.attempts == 1 for r in first)
        assert first[0].worker == "w1"
        assert store.claim("c1", worker="w3", limit=10, now=_h(1), channel="wechat.mass") == []
        assert [r.key for r in store.claim("c1", worker="w3", limit=10, now=_h(1))] == ["x"]

    def test_mark_follows_the_state_machine(self, store: Any) -> None:
        """mark validates transitions; a re-queued delivery is claimed again."""
        store.record_plan([_delivery("1"), _delivery("2")], now=T0)
        store.claim("c1", worker="w", limit=2, now=T0)
        store.mark("1", DeliveryStatus.SENT, now=_h(1), platform_id="msg1")
        store.mark("2", DeliveryStatus.PLANNED, now=_h(1), reason="errcode:45009")
        with pytest.raises(LedgerError):
            store.mark("1", DeliveryStatus.PLANNED, now=_h(2))
        with pytest.raises(LedgerError):
            store.mark("nope", DeliveryStatus.SENT, now=_h(2))
        (again,) = store.claim("c1", worker="w", limit=5, now=_h(2))
        assert again.key == "2"
        assert again.attempts == 2
        sent = list(store.deliveries("c1", status=DeliveryStatus.SENT))
        assert [(r.key, r.platform_id) for r in sent] == [("1", "msg1")]
        counts = store.status_counts("c1")
        assert counts["sent"] == 1
        assert counts["sending"] == 1
        assert counts["planned"] == 0

    def test_stale_finds_abandoned_sends(self, store: Any) -> None:
        """Deliveries left ``sending`` since before a cut-off are reported."""
        store.record_plan([_delivery("1"), _delivery("2")], now=T0)
        store.claim("c1", worker="w", limit=1, now=T0)
        store.claim("c1", worker="w", limit=1, now=_h(2))
        assert [r.key for r in store.stale("c1", older_than=_h(1))] == ["1"]
        assert store.stale("c1", older_than=T0) == []

    # ------------------------------------------------------------------ budgets

    def test_reserve_is_all_or_nothing(self, store: Any) -> None:
        """reserve takes every amount or none; limits are never exceeded."""
        store.ensure_budget("total", limit=1000)
        store.ensure_budget("daily", limit=300)
        store.ensure_budget("daily", limit=999_999)  # an existing row keeps its limit
        assert store.reserve([("total", 200), ("daily", 200)]) is True
        assert store.reserve([("total", 200), ("daily", 200)]) is False
        assert store.budget("total").reserved == 200
        assert store.budget("daily").limit == 300
        assert store.reserve([("daily", 50), ("daily", 50)]) is True
        assert store.budget("daily").remaining == 0
        store.settle([("total", 200), ("daily", 100)])
        store.release([("daily", 100)])
        d = store.budget("daily")
        assert (d.reserved, d.spent, d.remaining) == (100, 100, 100)
        assert store.budget("total").spent == 200
        with pytest.raises(UsageError):
            store.reserve([("nope", 1)])
        with pytest.raises(UsageError):
            store.release([("daily", 1000)])
        assert store.budget("nope") is None

    # ------------------------------------------------------------------ payouts

    def test_payout_intents(self, store: Any) -> None:
        """Intents are recorded once by bill number and updated in place."""
        i = PayoutIntent(
            bill_no="B1",
            rule_id="r1",
            member_id="m1",
            address="o1",
            amount_fen=100,
            reservations=(("total", 100),),
            created_at=T0,
            updated_at=T0,
        )
        assert store.record_intent(i) == i
        other = PayoutIntent(bill_no="B1", rule_id="r2", member_id="m2", address="o", amount_fen=5)
        assert store.record_intent(other) == i
        store.record_intent(
            PayoutIntent(bill_no="B0", rule_id="r2", member_id="m2", address="o2", amount_fen=7)
        )
        store.update_intent("B1", status="paid", now=_h(1), detail="ok")
        (got,) = store.intents(rule_id="r1")
        assert (got.status, got.detail, got.updated_at) == ("paid", "ok", _h(1))
        assert got.reservations == (("total", 100),)
        assert [x.bill_no for x in store.intents()] == ["B0", "B1"]
        assert [x.bill_no for x in store.intents(status="reserved")] == ["B0"]
        with pytest.raises(LedgerError):
            store.update_intent("nope", status="paid", now=_h(1))
        with pytest.raises(UsageError):
            store.update_intent("B1", status="bogus", now=_h(1))
