"""The demo's member-programme chapter: qualified first members join via the gift form,
tiers are assigned, the durian coupon stock is never over-issued nor given twice, and the
members' report (with tier migrations) is written — the same on a resumed run."""

from __future__ import annotations

from e2e.conftest import DemoRuns
from membermkt.core.membership import (
    CouponStatus,
    coupon_rule_id,
    is_member,
    joined_via,
    membership_as_of,
)
from membermkt.demo._members import DURIAN_COUPONS, DURIAN_STOCK, FIRST_MEMBERS
from membermkt.stores.sql import SqlStore


def test_programme_chapter_and_its_report(demo_runs: DemoRuns) -> None:
    a, b = demo_runs.first["programme"], demo_runs.second["programme"]
    assert a == b  # resumed: nothing joins, changes tier or gets a coupon twice
    assert 0 < a["qualified"] <= FIRST_MEMBERS
    assert a["joined"] == a["qualified"]
    assert sum(a["tiers"].values()) == a["joined"]
    assert a["coupons_granted"] <= DURIAN_COUPONS
    assert a["coupons_used"] <= a["coupons_granted"]
    assert sum(n for _, _, n in a["migrations"]) == a["joined"]
    text = (demo_runs.workdir / "members.md").read_text(encoding="utf-8")
    assert "## Tier migrations" in text
    assert "| durian2026 |" in text
    assert (demo_runs.workdir / "tier-migrations.svg").read_text().startswith("<svg")


def test_coupon_ledger_and_membership_in_the_database(demo_runs: DemoRuns) -> None:
    store = SqlStore(demo_runs.db_url)
    try:
        intents = store.intents(rule_id=coupon_rule_id(DURIAN_STOCK))
        paid = [i for i in intents if i.status == "paid"]
        assert len(paid) == demo_runs.second["programme"]["coupons_granted"]
        assert len({i.member_id for i in intents}) == len(intents)  # one grant per member
        assert {i.status for i in intents} <= {"paid", "failed"}
        assert CouponStatus.GRANTED.value == "granted"
        members = store.get_members([i.member_id for i in paid])
        assert len(members) == len(paid)
        far = max(i.updated_at for i in intents if i.updated_at is not None)
        joined = list(store.select(joined_via("first-members"), far))
        assert sorted(joined) == sorted(store.select(is_member(), far))
        assert all(membership_as_of(store.events_for(m), far).is_member for m in joined)
    finally:
        store.close()
