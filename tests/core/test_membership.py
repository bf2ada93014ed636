"""The member programme's pure core: tier folds (order-independent, idempotent, immediate
upgrades, downgrades only at reviews after grace), points (never negative, never
double-earned), joining, qualification and entitlements."""

from __future__ import annotations

import datetime as dt
import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from membermkt.core.events import Event
from membermkt.core.members import Member, Profile
from membermkt.core.membership import (
    TIER_CHANGED,
    Benefit,
    Catalogue,
    EarnRule,
    PointsProgram,
    Qualification,
    Signal,
    Tier,
    TierProgram,
    check_invited,
    entitlements_as_of,
    first_member_cohorts,
    grant_event,
    invite,
    joined_event,
    left_event,
    membership_as_of,
    override_event,
    redeem_event,
    redeem_points_event,
    tier_as_of,
)
from membermkt.errors import UsageError
from membermkt.segments import attr, did

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
AS_OF = T0 + dt.timedelta(days=200)
PROGRAM = TierProgram(
    id="club",
    tiers=(
        Tier(name="base"),
        Tier(name="silver", minimums={"spend_fen": 50_000}),
        Tier(name="gold", minimums={"spend_fen": 200_000, "orders": 3}),
    ),
    window=dt.timedelta(days=60),
    review_every=dt.timedelta(days=30),
    review_anchor=T0,
    grace=dt.timedelta(days=20),
)


@st.composite
def tier_histories(draw: st.DrawFn) -> list[Event]:
    out = [
        joined_event(
            "m1",
            T0 + dt.timedelta(days=draw(st.integers(0, 30))),
            source="store-qr",
            channel="wechat.oauth",
            form="gift-v1",
            consent=["phone"],
        )
    ]
    for i in range(draw(st.integers(0, 12))):
        out.append(
            Event(
                "m1",
                "purchase",
                T0 + dt.timedelta(days=draw(st.integers(0, 190)), hours=draw(st.integers(0, 23))),
                {
                    "amount_fen": draw(st.sampled_from([9_900, 60_000, 120_000])),
                    "order_id": f"o{i}",
                },
                key=f"o{i}",
            )
        )
    if draw(st.booleans()):
        out.append(
            override_event(
                "m1",
                T0 + dt.timedelta(days=draw(st.integers(31, 190))),
                tier=draw(st.sampled_from(["base", "gold"])),
                reason="complaint goodwill",
                by="staff-7",
                key="ov1",
            )
        )
    if draw(st.integers(0, 4)) == 0:
        out.append(
            left_event("m1", T0 + dt.timedelta(days=draw(st.integers(100, 199))), reason="asked")
        )
    return out


@given(tier_histories(), st.randoms())
def test_tier_fold_is_order_independent_and_idempotent(
    events: list[Event], rnd: random.Random
) -> None:
    changes = PROGRAM.changes("m1", events, AS_OF)
    shuffled = list(events)
    rnd.shuffle(shuffled)
    assert PROGRAM.changes("m1", shuffled, AS_OF) == changes
    assert PROGRAM.changes("m1", events + changes, AS_OF) == changes
    assert PROGRAM.changes("m1", events + events, AS_OF) == changes
    keys = [c.key for c in changes]
    assert len(set(keys)) == len(keys)


@given(tier_histories())
def test_upgrades_are_immediate(events: list[Event]) -> None:
    changes = PROGRAM.changes("m1", events, AS_OF)
    for p in events:
        if p.type != "purchase" or not membership_as_of(events, p.at).is_member:
            continue
        if any(e.type == "tier_override" and e.at == p.at for e in events):
            continue
        qualified, _ = PROGRAM.qualified(events, p.at)
        current = tier_as_of(changes, p.at)
        assert PROGRAM.rank(current) >= PROGRAM.rank(qualified.name), (p, changes)


@given(tier_histories())
def test_downgrades_only_at_review_after_grace(events: list[Event]) -> None:
    changes = PROGRAM.changes("m1", events, AS_OF)
    reviews = set(PROGRAM.reviews(T0 - dt.timedelta(days=1), AS_OF))
    for prev, ch in itertools.pairwise(changes):
        frm, to = str(ch.properties["from"]), str(ch.properties["to"])
        reason = str(ch.properties["reason"])
        if not to or reason.startswith("override"):
            continue
        if PROGRAM.rank(to) < PROGRAM.rank(frm):
            assert ch.at in reviews, ch
            assert ch.at - prev.at >= PROGRAM.grace, (prev, ch)
            assert reason.startswith("downgrade at review")


def test_tier_story_upgrade_grace_and_review() -> None:
    join = joined_event(
        "m1", T0, source="store-qr", channel="wechat.oauth", form="gift-v1", consent=["phone"]
    )
    buy = Event("m1", "purchase", T0 + dt.timedelta(days=5), {"amount_fen": 60_000}, key="b1")
    changes = PROGRAM.changes("m1", [join, buy], AS_OF)
    assert [(c.properties["to"], c.at) for c in changes] == [
        ("base", T0),
        ("silver", T0 + dt.timedelta(days=5)),  # immediate
        # spend leaves the 60-day window on day 65; the next review is day 90
        ("base", T0 + dt.timedelta(days=90)),
    ]
    assert "spend_fen 60000>=50000" in str(changes[1].properties["reason"])
    assert tier_as_of(changes, T0 + dt.timedelta(days=89)) == "silver"


def test_override_needs_a_known_tier() -> None:
    join = joined_event("m1", T0, source="s", channel="c", form="f", consent=["phone"])
    bad = override_event(
        "m1", T0 + dt.timedelta(days=1), tier="platinum", reason="r", by="b", key="k"
    )
    with pytest.raises(UsageError, match="platinum"):
        PROGRAM.changes("m1", [join, bad], AS_OF)


# --------------------------------------------------------------------------- points

POINTS = PointsProgram(
    rules=(EarnRule(event="purchase", per_yuan=1), EarnRule(event="checkin", fixed=5)),
    expiry=dt.timedelta(days=30),
)


@st.composite
def points_histories(draw: st.DrawFn) -> list[Event]:
    out: list[Event] = []
    for i in range(draw(st.integers(0, 15))):
        at = T0 + dt.timedelta(days=draw(st.integers(0, 90)))
        kind = draw(st.sampled_from(["purchase", "checkin", "points_redeemed"]))
        key = draw(st.sampled_from([f"k{i}", None]))
        if kind == "purchase":
            amount = draw(st.integers(0, 50_000))
            out.append(Event("m1", kind, at, {"amount_fen": amount, "order_id": f"o{i}"}, key=key))
        elif kind == "checkin":
            out.append(Event("m1", kind, at, {"n": i}, key=key))
        else:
            out.append(
                Event("m1", kind, at, {"points": draw(st.integers(-5, 400)), "n": i}, key=key)
            )
    return out


@given(points_histories(), st.data(), st.randoms())
def test_points_never_negative_never_double_earned(
    events: list[Event], data: st.DataObject, rnd: random.Random
) -> None:
    for day in range(0, 100, 7):
        ledger = POINTS.ledger(events, T0 + dt.timedelta(days=day))
        assert ledger.balance >= 0
        assert ledger.balance == ledger.earned - ledger.redeemed - ledger.expired
    final = POINTS.ledger(events, AS_OF)
    # every event earns exactly once...
    assert final.earned == sum(POINTS.earned_by(e) for e in events)
    # ...however often it is ingested, in whatever order
    replays = data.draw(st.lists(st.sampled_from(events), max_size=10)) if events else []
    again = events + replays
    rnd.shuffle(again)
    assert POINTS.ledger(again, AS_OF) == final


def test_points_expire_and_redemptions_over_balance_are_rejected() -> None:
    buy = Event("m1", "purchase", T0, {"amount_fen": 10_000}, key="b")  # 100 points
    spend = Event("m1", "points_redeemed", T0 + dt.timedelta(days=1), {"points": 150}, key="r")
    ledger = POINTS.ledger([buy, spend], T0 + dt.timedelta(days=2))
    assert (ledger.balance, ledger.rejected) == (100, ("r",))
    assert POINTS.ledger([buy], T0 + dt.timedelta(days=30)).balance == 0
    assert POINTS.ledger([buy], T0 + dt.timedelta(days=30)).expired == 100
    ok = redeem_points_event(
        POINTS,
        [buy],
        member_id="m1",
        points=40,
        at=T0 + dt.timedelta(days=3),
        key="r2",
        reason="tea",
    )
    assert POINTS.ledger([buy, ok], T0 + dt.timedelta(days=4)).balance == 60
    with pytest.raises(UsageError, match="available"):
        redeem_points_event(
            POINTS, [buy], member_id="m1", points=101, at=T0, key="r3", reason="tea"
        )


# --------------------------------------------------------------------------- joining etc.


def test_joining_records_consent_and_leaving_ends_membership() -> None:
    j = joined_event(
        "m1",
        T0,
        source="partner:gym",
        channel="wechat.oauth",
        form="gift-v1",
        consent=["phone", "birthday"],
        gift="trial-bottle",
    )
    assert j.properties["consent"] == "birthday,phone"
    ms = membership_as_of([j], T0)
    assert (ms.is_member, ms.join_source, ms.gift) == (True, "partner:gym", "trial-bottle")
    assert not membership_as_of([j], T0 - dt.timedelta(seconds=1)).is_member
    gone = left_event("m1", T0 + dt.timedelta(days=1), reason="asked")
    assert not membership_as_of([j, gone], AS_OF).is_member
    with pytest.raises(UsageError, match="consent"):
        joined_event("m1", T0, source="s", channel="c", form="f", consent=[])
    with pytest.raises(UsageError, match="consent"):
        joined_event("m1", T0, source="s", channel="c", form="f", consent=["blood_type"])


def test_qualification_explains_and_invites() -> None:
    q = Qualification(
        id="first-100",
        target=attr("city") == "Hangzhou",
        signals=(
            Signal(
                name="bought durian twice",
                segment=did("purchase", where={"category": "durian"}, at_least=2),
                weight=3,
            ),
            Signal(
                name="came from the gym partner", segment=attr("source") == "partner:gym", weight=1
            ),
        ),
        threshold=3,
    )
    m = Member("m1", Profile(city="Hangzhou"))
    buys = [
        Event(
            "m1", "purchase", T0 + dt.timedelta(days=i), {"category": "durian", "amount_fen": 5000}
        )
        for i in range(2)
    ]
    a = q.assess(m, buys, AS_OF)
    assert a.qualified
    assert a.score == 3
    assert "+3 bought durian twice" in a.why()
    assert " 0 came from the gym partner" in a.why()
    assert not q.assess(Member("m2", Profile(city="Ningbo")), buys, AS_OF).qualified
    inv = invite(a, AS_OF, qualification=q.id, form="gift-v1")
    assert check_invited([inv], form="gift-v1", at=AS_OF) == inv
    with pytest.raises(UsageError, match="invite-only"):
        check_invited([], form="gift-v1", at=AS_OF)
    with pytest.raises(UsageError, match="not qualified"):
        invite(q.assess(m, [], AS_OF), AS_OF, qualification=q.id, form="gift-v1")


def test_first_member_cohorts_per_source() -> None:
    def join(m: str, src: str) -> Event:
        return joined_event(m, T0, source=src, channel="c", form="f", consent=["phone"])

    histories = {
        "a": [
            join("a", "gym"),
            Event("a", "purchase", T0 + dt.timedelta(days=1), {"amount_fen": 900}),
        ],
        "b": [join("b", "gym"), Event("b", "view", AS_OF - dt.timedelta(days=1), {})],
        "c": [join("c", "mall")],
    }
    rows = first_member_cohorts(
        histories, joined_from=T0, joined_until=T0 + dt.timedelta(days=1), as_of=AS_OF
    )
    assert [(r.source, r.members, r.retained, r.revenue_fen) for r in rows] == [
        ("gym", 2, 1, 900),
        ("mall", 1, 0, 0),
    ]


def test_entitlements_redeem_exactly_once_and_expire() -> None:
    tea = Benefit(id="tea", kind="birthday_gift", validity=dt.timedelta(days=7), tiers={"gold"})
    ship = Benefit(
        id="ship", kind="free_shipping", validity=dt.timedelta(days=30), needs={"durian"}
    )
    cat = Catalogue((tea, ship))
    assert cat.eligible("gold", "apple") == [tea]
    assert cat.eligible("gold", "durian") == [tea, ship]
    assert cat.eligible("base", "durian") == [ship]
    g = grant_event(tea, "m1", T0, reason="birthday")
    r = redeem_event([g], "tea:m1:1", T0 + dt.timedelta(days=1))
    assert r.key == "entitlement_redeemed:tea:m1:1"
    with pytest.raises(UsageError, match="redeemed"):
        redeem_event([g, r], "tea:m1:1", T0 + dt.timedelta(days=2))
    with pytest.raises(UsageError, match="expired"):
        redeem_event([g], "tea:m1:1", T0 + dt.timedelta(days=7))
    with pytest.raises(UsageError, match="no entitlement"):
        redeem_event([g], "ship:m1:1", T0)
    (ent,) = entitlements_as_of([g, r, r], AS_OF)
    assert ent.redeemed_at == T0 + dt.timedelta(days=1)
    assert TIER_CHANGED == "tier_changed"


def test_a_second_grant_of_one_id_renews_it_in_the_fold_and_the_leaf() -> None:
    """Regression (Hypothesis): two grants of one entitlement id, the later appended first.
    The fold keeps the latest grant, as the ``has_unused_entitlement`` leaf does, so a
    redemption between the two grants no longer counts and both agree."""
    from membermkt.core.evaluate import compile_predicate
    from membermkt.core.membership import has_unused_entitlement

    tea = Benefit(id="tea", kind="birthday_gift", validity=dt.timedelta(days=10))
    early = grant_event(tea, "m1", T0, reason="birthday")
    late = grant_event(tea, "m1", T0 + dt.timedelta(days=8), reason="birthday")
    assert early.properties["entitlement"] == late.properties["entitlement"]
    between = redeem_event([early], early.properties["entitlement"], T0 + dt.timedelta(days=1))
    as_of = T0 + dt.timedelta(days=12)
    for events in ([late, early], [early, between, late], [late, between, early]):
        (ent,) = entitlements_as_of(events, as_of)
        assert ent.granted_at == T0 + dt.timedelta(days=8)
        assert ent.redeemed_at is None
        assert ent.usable(as_of)
        leaf = has_unused_entitlement("tea", validity=dt.timedelta(days=10))
        assert compile_predicate(leaf, as_of)(Member("m1"), events) is True


def test_members_report_tables() -> None:
    from membermkt.analytics.members import render_members_report, tier_migrations_svg
    from membermkt.core.evaluate import compile_predicate
    from membermkt.core.membership import members_report, non_member_repeat_buyers

    def hist(m: str, spend: int) -> list[Event]:
        j = joined_event(m, T0, source="gym", channel="c", form="f", consent=["phone"])
        buys = [
            Event(
                m, "purchase", T0 + dt.timedelta(days=2 + i), {"amount_fen": spend}, key=f"{m}{i}"
            )
            for i in range(3)
        ]
        return [j, *buys]

    histories = {"a": hist("a", 90_000), "b": hist("b", 20_000), "c": hist("c", 1_000)}
    for m, evs in histories.items():
        evs += PROGRAM.changes(m, evs, AS_OF)
    coupon = [
        Event("a", "coupon_granted", T0, {"stock_id": "s1", "value_fen": 500}, key="g"),
        Event(
            "a",
            "coupon_used",
            T0 + dt.timedelta(days=2),
            {"stock_id": "s1", "value_fen": 500, "transaction_id": "tx"},
            key="u",
        ),
    ]
    histories["a"] += coupon
    r = members_report(
        histories,
        dates=[T0 + dt.timedelta(days=1), T0 + dt.timedelta(days=5)],
        migration=(T0 + dt.timedelta(days=1), T0 + dt.timedelta(days=5)),
        cohort=(T0, T0 + dt.timedelta(days=1)),
        as_of=T0 + dt.timedelta(days=5),
        tier_order=("base", "silver", "gold"),
    )
    assert r.by_tier[0][1] == {"base": 3}
    assert r.by_tier[1][1] == {"base": 1, "gold": 1, "silver": 1}
    assert r.migrations.rows(r.tier_order) == [
        ("base", "base", 1),
        ("base", "silver", 1),
        ("base", "gold", 1),
    ]
    assert r.migrations.upgrades == 2
    (row,) = r.coupons
    assert (row.granted, row.used, row.revenue_fen) == (1, 1, 90_000)  # the purchase that day
    text = render_members_report(r)
    assert "| base | gold | 1 |" in text
    assert tier_migrations_svg(r.migrations, r.tier_order).startswith("<svg")
    seg = non_member_repeat_buyers(2)
    buyer = [
        Event("z", "purchase", T0, {"amount_fen": 1}, key="z1"),
        Event("z", "purchase", T0, {"amount_fen": 1}, key="z2"),
    ]
    from membermkt.core.events import fold

    assert compile_predicate(seg, AS_OF)(fold(Member("z"), buyer), buyer)
    joined = [*buyer, joined_event("z", T0, source="s", channel="c", form="f", consent=["phone"])]
    assert not compile_predicate(seg, AS_OF)(fold(Member("z"), joined), joined)


def test_points_can_qualify_a_tier() -> None:
    program = TierProgram(
        id="pts",
        tiers=(Tier(name="base"), Tier(name="star", minimums={"points": 300})),
        points=POINTS,
        review_anchor=T0,
    )
    join = joined_event("m1", T0, source="s", channel="c", form="f", consent=["phone"])
    buy = Event("m1", "purchase", T0 + dt.timedelta(days=1), {"amount_fen": 40_000}, key="b")
    changes = program.changes("m1", [join, buy], T0 + dt.timedelta(days=2))
    assert [c.properties["to"] for c in changes] == ["base", "star"]
    assert "points 400>=300" in str(changes[1].properties["reason"])
    with pytest.raises(UsageError, match="points program"):
        TierProgram(id="x", tiers=(Tier(name="a", minimums={"points": 1}),))
