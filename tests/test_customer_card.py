"""The staff's customer card: identities, tier, source, 90-day orders by category,
preferences, activity, open coupons and the recommended offer — all as of a moment."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from membermkt import Identity, Member
from membermkt.card import customer_card
from membermkt.core.events import Event
from membermkt.core.members import Profile
from membermkt.errors import UsageError
from membermkt.stores.memory import InMemoryStore

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
CORP = "ww-corp"


def _store() -> InMemoryStore:
    s = InMemoryStore()
    s.upsert_members(
        [
            Member(
                "m1",
                profile=Profile(tier="gold"),
                tags={"vip"},
                identities=[Identity("external_userid", "wmEXT1", CORP)],
            )
        ]
    )
    d = dt.timedelta(days=1)
    s.append_events(
        [
            Event(
                "m1",
                "contact_added",
                NOW - 200 * d,
                {"staff": "zhangsan", "source": "store-qr", "channel": "wecom"},
                key="c1",
            ),
            Event(
                "m1",
                "purchase",
                NOW - 150 * d,
                {"amount_fen": 5000, "category": "durian", "order_id": "A0"},
                key="p0",
            ),
            Event(
                "m1",
                "purchase",
                NOW - 60 * d,
                {"amount_fen": 8800, "category": "durian", "order_id": "A1"},
                key="p1",
            ),
            Event(
                "m1",
                "purchase",
                NOW - 30 * d,
                {"amount_fen": 1200, "category": "tea", "order_id": "A2"},
                key="p2",
            ),
            Event(
                "m1",
                "purchase",
                NOW - 2 * d,
                {"amount_fen": 9900, "category": "durian", "order_id": "A3"},
                key="p3",
            ),
            Event(
                "m1",
                "coupon_granted",
                NOW - 10 * d,
                {"stock_id": "S1", "coupon_id": "C1"},
                key="g1",
            ),
            Event(
                "m1", "coupon_granted", NOW - 9 * d, {"stock_id": "S2", "coupon_id": "C2"}, key="g2"
            ),
            Event(
                "m1", "coupon_used", NOW - 5 * d, {"stock_id": "S1", "coupon_id": "C1"}, key="u1"
            ),
            Event(
                "m1",
                "purchase",
                NOW + d,
                {"amount_fen": 100, "category": "tea", "order_id": "LATER"},
                key="p4",
            ),
        ]
    )
    return s


def test_card_by_external_userid() -> None:
    card = customer_card(_store(), "wmEXT1", NOW, corpid=CORP)
    assert card.member_id == "m1"
    assert card.tier == "gold"
    assert card.owner_staff == "zhangsan"
    assert card.source == "store-qr"
    assert card.channel == "wecom"
    assert [o.order_id for o in card.orders_90d] == ["A3", "A2", "A1"]  # A0 too old, LATER future
    assert card.by_category == (("durian", 2, 18700), ("tea", 1, 1200))
    assert card.preferences == (("durian", 3), ("tea", 1))
    assert card.activity == "active"
    assert card.open_coupons == (("S2", "C2"),)
    assert card.offer == "durian-coupon"
    assert card.offer_reason == "bought durian ≥ 3 times"
    doc = json.loads(json.dumps(card.to_dict()))
    assert doc["orders_90d"][0] == {
        "at": (NOW - dt.timedelta(days=2)).isoformat(),
        "order_id": "A3",
        "category": "durian",
        "amount_fen": 9900,
    }
    page = card._repr_html_()
    assert "A3" in page
    assert "durian-coupon" in page
    assert "<script" not in page


def test_card_as_of_the_past_sees_only_the_past() -> None:
    then = NOW - dt.timedelta(days=100)
    card = customer_card(_store(), "m1", then)
    assert [o.order_id for o in card.orders_90d] == ["A0"]
    assert card.offer == "durian-new-arrival"  # one durian purchase then: a trial
    assert card.open_coupons == ()


def test_card_escapes_html_and_refuses_unknowns() -> None:
    s = _store()
    s.upsert_members([Member("<b>x</b>", identities=[])])
    assert "&lt;b&gt;x&lt;/b&gt;" in customer_card(s, "<b>x</b>", NOW)._repr_html_()
    with pytest.raises(UsageError, match="pass corpid="):
        customer_card(s, "wmNOPE", NOW)
    with pytest.raises(UsageError, match="timezone-aware"):
        customer_card(s, "m1", dt.datetime(2026, 1, 1))
