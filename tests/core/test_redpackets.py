"""Pure red-packet core: lucky split, decide() limits, bill numbers, claim report."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from membermkt.core.events import Event
from membermkt.core.members import Member
from membermkt.core.redpackets import (
    WECHATPAY_V2_REDPACK,
    WECHATPAY_V3_TRANSFER,
    Claim,
    ClaimState,
    Deny,
    DenyReason,
    FixedAmount,
    Grant,
    LuckySplit,
    RedPacketRule,
    UniformAmount,
    bill_no,
    budget_keys,
    claim_event,
    claim_report,
    decide,
    is_valid_bill_no,
    lucky_split,
    paid_event,
)
from membermkt.errors import UsageError
from membermkt.segments import did

T0 = dt.datetime(2026, 11, 23, 4, 0, tzinfo=dt.UTC)
MCH = "1900000109"


def rule(**kw: object) -> RedPacketRule:
    base: dict[str, object] = {
        "id": "r1",
        "mch_id": MCH,
        "amount": FixedAmount(500),
        "total_budget_fen": 50_000,
    }
    base.update(kw)
    return RedPacketRule(**base)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- lucky split


@given(
    parts=st.integers(1, 60),
    min_fen=st.integers(1, 500),
    extra=st.integers(0, 50_000),
    cap_extra=st.none() | st.integers(0, 5_000),
    seed=st.integers(0, 2**32),
)
def test_lucky_split_sums_exactly_within_bounds(
    parts: int, min_fen: int, extra: int, cap_extra: int | None, seed: int
) -> None:
    total = parts * min_fen + extra
    max_fen = None if cap_extra is None else min_fen + cap_extra
    if max_fen is not None and parts * max_fen < total:
        with pytest.raises(UsageError):
            lucky_split(total, parts, min_fen, random.Random(seed), max_fen=max_fen)
        return
    out = lucky_split(total, parts, min_fen, random.Random(seed), max_fen=max_fen)
    assert len(out) == parts
    assert sum(out) == total
    assert all(min_fen <= x <= (max_fen or total) for x in out)
    assert out == lucky_split(total, parts, min_fen, random.Random(seed), max_fen=max_fen)


def test_lucky_split_refuses_impossible_bounds() -> None:
    with pytest.raises(UsageError, match="more than the total"):
        lucky_split(100, 3, 50, random.Random(0))
    with pytest.raises(UsageError, match="cannot reach"):
        lucky_split(1000, 3, 1, random.Random(0), max_fen=100)
    with pytest.raises(UsageError, match="parts"):
        lucky_split(100, 0, 1, random.Random(0))


@given(
    parts=st.integers(1, 30),
    min_fen=st.integers(100, 300),
    extra=st.integers(0, 20_000),
    seed=st.integers(0, 2**32),
)
def test_lucky_split_strategy_drawn_claim_by_claim_sums_to_total(
    parts: int, min_fen: int, extra: int, seed: int
) -> None:
    total = parts * min_fen + extra
    strategy = LuckySplit(total_fen=total, parts=parts, min_fen=min_fen, max_fen=min_fen + extra)
    rng = random.Random(seed)
    got: list[int] = []
    while (x := strategy.draw(rng, granted_count=len(got), granted_fen=sum(got))) is not None:
        got.append(x)
    assert len(got) == parts
    assert sum(got) == total
    lo, hi = strategy.bounds
    assert all(lo <= x <= hi for x in got)


def test_uniform_amount_is_whole_fen_within_bounds() -> None:
    s = UniformAmount(100, 105)
    rng = random.Random(1)
    seen = {s.draw(rng, granted_count=0, granted_fen=0) for _ in range(200)}
    assert seen == set(range(100, 106))
    with pytest.raises(UsageError):
        UniformAmount(200, 100)


# --------------------------------------------------------------------------- decide


def test_rule_validation() -> None:
    with pytest.raises(UsageError, match="leave the bounds"):
        rule(amount=FixedAmount(50))  # v2 red packets start at 1 CNY
    with pytest.raises(UsageError, match="mch_id"):
        rule(mch_id="12345678901")
    with pytest.raises(UsageError, match="starts_at"):
        rule(starts_at=T0, ends_at=T0)
    with pytest.raises(UsageError, match="exceeds the total budget"):
        rule(total_budget_fen=100)
    assert rule(amount=FixedAmount(1), product=WECHATPAY_V3_TRANSFER).product.bill_format == "v3"


def test_decide_happy_path_and_reservations() -> None:
    r = rule(daily_budget_fen=5_000, max_packets=10)
    c = Claim.with_phone(member_id="m1", address="o1", phone="13800138000", order_id="A1")
    g = decide(r, Member("m1"), c, ClaimState(), T0, random.Random(0))
    assert isinstance(g, Grant)
    assert (g.amount_fen, g.sequence, g.order_id) == (500, 1, "A1")
    keys = {k for k, _ in g.items}
    expected = budget_keys(
        r, as_of=T0, member_id="m1", phone_digest=c.phone_digest, order_id="A1", address="o1"
    )
    assert keys == set(expected.values())
    assert dict(g.items)[expected["total"]] == 500
    assert dict(g.items)[expected["member"]] == 1


@pytest.mark.parametrize(
    ("kw", "state", "reason"),
    [
        ({"starts_at": T0 + dt.timedelta(hours=1)}, {}, DenyReason.NOT_STARTED),
        ({"ends_at": T0}, {}, DenyReason.ENDED),
        ({}, {"member_claims": 1}, DenyReason.MEMBER_LIMIT),
        ({"per_phone_limit": 2}, {"phone_claims": 2}, DenyReason.PHONE_LIMIT),
        ({}, {"order_claims": 1}, DenyReason.ORDER_LIMIT),
        ({"max_packets": 3}, {"granted_count": 3}, DenyReason.PACKETS_EXHAUSTED),
        ({}, {"granted_fen": 49_600}, DenyReason.BUDGET_EXHAUSTED),
        ({"daily_budget_fen": 1000}, {"day_granted_fen": 600}, DenyReason.DAILY_BUDGET_EXHAUSTED),
        ({}, {"user_day_count": 10}, DenyReason.PLATFORM_USER_LIMIT),
        ({}, {"user_day_fen": 99_600}, DenyReason.PLATFORM_USER_LIMIT),
        ({"require_purchase": True}, {}, DenyReason.NO_PURCHASE),
    ],
)
def test_decide_denies(kw: dict[str, object], state: dict[str, int], reason: DenyReason) -> None:
    c = Claim.with_phone(member_id="m1", address="o1", phone="13800138000", order_id="A1")
    d = decide(rule(**kw), Member("m1"), c, ClaimState(**state), T0, random.Random(0))
    assert isinstance(d, Deny)
    assert d.reason is reason


def test_decide_purchase_proof() -> None:
    c = Claim.with_phone(member_id="m1", address="o1", phone="13800138000")
    buy = Event("buyer", "purchase", T0 - dt.timedelta(days=1), {"order_id": "A1", "amount_fen": 1})
    r = rule(require_purchase=True, purchase_within=dt.timedelta(days=7))
    no = decide(r, Member("m1"), c, ClaimState(purchases=[buy]), T0, random.Random(0))
    assert isinstance(no, Deny)
    ok = decide(
        r,
        Member("m1"),
        c,
        ClaimState(purchases=[buy], phone_owner_ids={"buyer"}),
        T0,
        random.Random(0),
    )
    assert isinstance(ok, Grant)
    assert ok.order_id == "A1"  # the verified order counts against the per-order limit
    late = decide(
        r,
        Member("m1"),
        c,
        ClaimState(purchases=[buy], phone_owner_ids={"buyer"}),
        T0 + dt.timedelta(days=30),
        random.Random(0),
    )
    assert isinstance(late, Deny)
    bare = Claim(member_id="m1", address="o1")
    assert decide(r, Member("m1"), bare, ClaimState(), T0, random.Random(0)) == Deny(
        reason=DenyReason.NO_PROOF
    )


def test_decide_eligibility_segment() -> None:
    r = rule(eligibility=did("purchase", at_least=1))
    c = Claim(member_id="m1", address="o1")
    buy = Event("m1", "purchase", T0 - dt.timedelta(days=1), {"amount_fen": 100})
    assert isinstance(decide(r, Member("m1"), c, ClaimState(), T0, random.Random(0)), Deny)
    assert isinstance(
        decide(r, Member("m1"), c, ClaimState(events=[buy]), T0, random.Random(0)), Grant
    )


def test_decide_refuses_naive_time_and_foreign_claims() -> None:
    c = Claim(member_id="m1", address="o1")
    with pytest.raises(UsageError, match="aware"):
        decide(rule(), Member("m1"), c, ClaimState(), T0.replace(tzinfo=None), random.Random(0))
    with pytest.raises(UsageError, match="claim of member"):
        decide(rule(), Member("m2"), c, ClaimState(), T0, random.Random(0))


def test_claim_never_keeps_a_raw_phone() -> None:
    c = Claim.with_phone(member_id="m1", address="o1", phone="13800138000")
    assert "13800138000" not in repr(c)
    with pytest.raises(UsageError, match="never a raw number"):
        Claim(member_id="m1", address="o1", phone_digest="13800138000")


amounts = st.one_of(
    st.integers(100, 20_000).map(FixedAmount),
    st.tuples(st.integers(100, 20_000), st.integers(0, 5_000)).map(
        lambda t: UniformAmount(t[0], min(20_000, t[0] + t[1]))
    ),
    st.tuples(st.integers(1, 20), st.integers(100, 300), st.integers(0, 5_000)).map(
        lambda t: LuckySplit(total_fen=t[0] * t[1] + t[2], parts=t[0], min_fen=t[1], max_fen=20_000)
    ),
)


@settings(max_examples=300)
@given(
    amount=amounts,
    total=st.integers(20_000, 200_000),
    daily=st.none() | st.integers(20_000, 100_000),
    packets=st.none() | st.integers(1, 50),
    per_member=st.integers(1, 3),
    per_phone=st.none() | st.integers(1, 3),
    state=st.builds(
        ClaimState,
        member_claims=st.integers(0, 4),
        phone_claims=st.integers(0, 4),
        order_claims=st.integers(0, 2),
        granted_count=st.integers(0, 60),
        granted_fen=st.integers(0, 200_000),
        day_granted_fen=st.integers(0, 100_000),
        user_day_count=st.integers(0, 11),
        user_day_fen=st.integers(0, 100_000),
    ),
    seed=st.integers(0, 2**16),
)
def test_decide_never_grants_beyond_any_limit(
    amount: FixedAmount | UniformAmount | LuckySplit,
    total: int,
    daily: int | None,
    packets: int | None,
    per_member: int,
    per_phone: int | None,
    state: ClaimState,
    seed: int,
) -> None:
    r = rule(
        amount=amount,
        total_budget_fen=max(total, amount.bounds[0]),
        daily_budget_fen=daily,
        max_packets=packets,
        per_member_limit=per_member,
        per_phone_limit=per_phone,
    )
    c = Claim.with_phone(member_id="m1", address="o1", phone="13800138000", order_id="A1")
    d = decide(r, Member("m1"), c, state, T0, random.Random(seed))
    if isinstance(d, Deny):
        return
    p = WECHATPAY_V2_REDPACK
    assert p.min_fen <= d.amount_fen <= p.max_fen
    assert amount.bounds[0] <= d.amount_fen <= amount.bounds[1]
    assert state.granted_fen + d.amount_fen <= r.total_budget_fen
    assert daily is None or state.day_granted_fen + d.amount_fen <= daily
    assert packets is None or state.granted_count + 1 <= packets
    assert state.member_claims + 1 <= per_member
    assert per_phone is None or state.phone_claims + 1 <= per_phone
    assert state.order_claims + 1 <= 1
    assert state.user_day_count + 1 <= (p.per_user_daily_count or 0)
    assert state.user_day_fen + d.amount_fen <= (p.per_user_daily_fen or 0)
    # every reservation row stays within its own limit when reserved from the state's usage
    for res in d.reservations:
        assert 0 < res.amount <= res.limit
    assert is_valid_bill_no(d.bill_no, "v2")


# --------------------------------------------------------------------------- bill numbers


keys = st.tuples(
    st.sampled_from(["r1", "r-2", "spring.sale"]),
    st.text("abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=40),
    st.integers(1, 10_000),
)


@given(key=keys, fmt=st.sampled_from([WECHATPAY_V2_REDPACK, WECHATPAY_V3_TRANSFER]))
def test_bill_numbers_are_deterministic_and_valid(key: tuple[str, str, int], fmt: object) -> None:
    r = rule(id=key[0], amount=FixedAmount(100), product=fmt)
    a = bill_no(r, key[1], key[2], T0)
    assert a == bill_no(r, key[1], key[2], T0)
    assert is_valid_bill_no(a, r.product.bill_format)
    if r.product.bill_format == "v2":
        assert len(a) == 28
        assert a.startswith(MCH + "20261123")
        assert a[len(MCH) + 8 :].isdigit()
    else:
        assert len(a) == 32
    assert bill_no(r, key[1], key[2], T0, salt=1) != a


@given(st.sets(keys, min_size=2, max_size=200))
def test_bill_numbers_are_unique_per_business_key(business_keys: set[tuple[str, str, int]]) -> None:
    for product in (WECHATPAY_V2_REDPACK, WECHATPAY_V3_TRANSFER):
        bills = {bill_no(rule(id=k[0], product=product), k[1], k[2], T0) for k in business_keys}
        assert len(bills) == len(business_keys)


def test_bill_number_day_is_beijing_time() -> None:
    late_utc = dt.datetime(2026, 11, 23, 17, 0, tzinfo=dt.UTC)  # 01:00 on the 24th in Beijing
    assert bill_no(rule(), "m1", 1, late_utc)[len(MCH) : len(MCH) + 8] == "20261124"
    assert not is_valid_bill_no("x" * 29, "v2")
    assert not is_valid_bill_no("abc-def", "v3")
    with pytest.raises(UsageError, match="sequence"):
        bill_no(rule(), "m1", 0, T0)


# --------------------------------------------------------------------------- events & report


def test_claim_and_paid_events_feed_the_report() -> None:
    r = rule()
    c1 = Claim(member_id="m1", address="o1", source="qr:parcel")
    c2 = Claim(member_id="m2", address="o2", source="menu")
    g1 = decide(r, Member("m1"), c1, ClaimState(), T0, random.Random(0))
    g2 = decide(r, Member("m2"), c2, ClaimState(), T0 + dt.timedelta(hours=9), random.Random(0))
    assert isinstance(g1, Grant)
    assert isinstance(g2, Grant)
    events = [
        claim_event(r, c1, g1, T0),
        claim_event(r, c1, g1, T0),  # duplicate push
        paid_event(rule_id="r1", member_id="m1", bill_no=g1.bill_no, amount_fen=500, at=T0),
        claim_event(r, c2, g2, T0 + dt.timedelta(hours=9)),
        Event("m1", "purchase", T0 + dt.timedelta(days=2), {"amount_fen": 3000}),
        Event("m2", "purchase", T0 - dt.timedelta(days=2), {"amount_fen": 3000}),
    ]
    report = claim_report(events, "r1", T0 + dt.timedelta(days=30))
    assert report.claims == 2
    assert (report.paid, report.paid_fen) == (1, 500)
    assert [row.repurchased for row in report.rows] == [True, False]
    assert report.rows[0].repurchase_fen == 3000
    assert dict(report.by_hour) == {12: 1, 21: 1}
    assert dict(report.by_source) == {"menu": (1, 0, 0), "qr:parcel": (1, 1, 1)}
    within = claim_report(
        events, "r1", T0 + dt.timedelta(days=30), repurchase_within=dt.timedelta(days=1)
    )
    assert within.repurchase_rate == 0.0
