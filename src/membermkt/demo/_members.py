"""Chapter 5, the member programme: qualified first members join via a gift, tiers are
assigned by rule, durian buyers get a durian coupon through WeChat Pay, gold members a
birthday privilege, and the members' report shows the tier migration.

Kept modest in time: only the first ``FIRST_MEMBERS`` qualified buyers are invited (精选:
few and precise), so the chapter reads a few hundred histories whatever the population.
Every write is keyed (joinings, tier changes, coupon grants by ``out_request_no``,
entitlements), so a resumed run adds nothing twice.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import attrs

from membermkt.demo._base import APPID, MCH_ID, Echo, StoryClock, _openid
from membermkt.demo._world import _World

FIRST_MEMBERS = 60
DURIAN_STOCK = "durian2026"
DURIAN_COUPONS = 25
MEMBERS_REPORT_FILE = "members.md"
MIGRATIONS_SVG_FILE = "tier-migrations.svg"


@attrs.frozen(kw_only=True)
class MembersChapter:
    """What the chapter did (database totals)."""

    qualified: int
    joined: int
    tiers: dict[str, int]
    coupons_granted: int
    coupons_refused: int
    coupons_used: int
    unused_tea_expiring: int
    migrations: list[tuple[str, str, int]]
    report: Path | None


def _programme() -> tuple[Any, Any, Any, Any]:
    from membermkt.core.membership import (
        Benefit,
        Catalogue,
        JoinOffer,
        Qualification,
        Signal,
        Tier,
        TierProgram,
    )
    from membermkt.segments import attr, did

    qualification = Qualification(
        id="first-members",
        target=(attr("subscribed") == True) & (attr("orders_count") >= 1),  # noqa: E712
        signals=(
            Signal(
                name="bought durian",
                segment=did("purchase", where={"category": "durian"}),
                weight=2,
            ),
            Signal(name="spent ¥300+", segment=attr("orders_total_fen") >= 30_000, weight=2),
            Signal(name="came by the parcel QR", segment=attr("source") == "parcel", weight=1),
            Signal(name="3+ orders", segment=attr("orders_count") >= 3, weight=1),
        ),
        threshold=3,
    )
    offer = JoinOffer(
        source="first-members", form="trial-bottle-v1", gift="trial-bottle", invite_only=True
    )
    tiers = TierProgram(
        id="durian-club",
        tiers=(
            Tier(name="member"),
            Tier(name="silver", minimums={"spend_fen": 20_000}),
            Tier(name="gold", minimums={"spend_fen": 60_000, "orders": 3}),
        ),
        window=dt.timedelta(days=90),
        review_every=dt.timedelta(days=30),
        review_anchor=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        grace=dt.timedelta(days=30),
    )
    tea = Benefit(
        id="birthday-tea",
        kind="birthday_gift",
        validity=dt.timedelta(days=14),
        tiers={"gold"},
        description="a pot of durian-blossom tea on the house",
    )
    return qualification, offer, tiers, Catalogue((tea,))


def _coupon_service(store: Any, world: _World, clock: StoryClock) -> tuple[Any, Any]:
    from membermkt.engine.coupons import CouponService
    from membermkt.payouts.wechatpay.coupons import CouponConfig, WeChatPayCouponGateway
    from membermkt.payouts.wechatpay.gateway import load_merchant_signer, load_platform_keys

    creds = world.pay.credentials
    with tempfile.TemporaryDirectory(prefix="membermkt-demo-keys-") as keys:
        files = creds.write(keys)
        signer = load_merchant_signer(
            MCH_ID, files["merchant_key"], cert_file=files["merchant_cert"]
        )
    gateway = WeChatPayCouponGateway(
        CouponConfig(appid=APPID),
        signer,
        load_platform_keys(certificates=[creds.platform_cert]),
        api_v3_key=world.pay.api_v3_key,
        transport=world.pay.transport(),
        clock=clock,
    )
    if DURIAN_STOCK not in world.pay.stocks:
        world.pay.create_stock(DURIAN_STOCK, max_coupons=DURIAN_COUPONS, coupon_amount_fen=1_000)
        world.pay.set_coupon_callback("https://shop.example/wechatpay/favor")
    return CouponService(store, gateway, clock), gateway


def _member_programme(
    store: Any,
    world: _World,
    clock: StoryClock,
    as_of: dt.datetime,
    report_as_of: dt.datetime,
    echo: Echo,
    work: Path | None,
) -> MembersChapter:

    started_at = clock.now()
    try:
        return _play(store, world, clock, as_of, report_as_of, echo, work)
    finally:
        clock.set(started_at)  # the next chapters continue the main story's time


def _play(
    store: Any,
    world: _World,
    clock: StoryClock,
    as_of: dt.datetime,
    report_as_of: dt.datetime,
    echo: Echo,
    work: Path | None,
) -> MembersChapter:
    from membermkt.analytics.members import render_members_report, tier_migrations_svg
    from membermkt.core.events import Event
    from membermkt.core.membership import (
        CouponStatus,
        coupon_rule_id,
        grant_event,
        invite,
        is_member,
        members_report,
        tier_as_of,
        tier_is,
    )
    from membermkt.segments import did

    qualification, offer, program, catalogue = _programme()
    joined_at = as_of - dt.timedelta(days=75)
    coupon_at = report_as_of  # after the campaign's conversion window: no cross-talk
    report_as_of = coupon_at + dt.timedelta(days=7)
    # 1. qualify (pure, explainable) and invite the best few; they join via the gift form
    candidates = sorted(store.select(qualification.target, joined_at))
    people = store.get_members(candidates)
    histories = {mid: store.events_for(mid, until=joined_at) for mid in candidates}
    ranked = qualification.rank(
        ((people[m], histories[m]) for m in candidates if m in people),
        joined_at,
        top=FIRST_MEMBERS,
    )
    if ranked:
        echo("      why the best candidate qualified: " + "; ".join(ranked[0].why()[1:]))
    events: list[Event] = []
    for i, a in enumerate(ranked):
        at = joined_at + dt.timedelta(minutes=i)
        events.append(invite(a, at, qualification=qualification.id, form=offer.form))
        events.append(offer.event(a.member_id, at + dt.timedelta(minutes=5)))
    store.append_events(events)
    # 2. the durian coupon to member durian buyers, through WeChat Pay (idempotent grants)
    clock.set(coupon_at)
    service, gateway = _coupon_service(store, world, clock)
    durian = is_member() & did("purchase", where={"category": "durian"})
    outcomes = [
        service.grant(
            mid, _openid(people[mid]), stock_id=DURIAN_STOCK, reason="durian-2026", value_fen=1_000
        )
        for mid in sorted(store.select(durian, coupon_at))
        if mid in people
    ]
    granted = [o for o in outcomes if o.status is CouponStatus.GRANTED]
    # some use it within the week (the emulator's COUPON.USE callbacks → coupon_used events)
    used = 0
    for o in granted[::3]:
        coupon = world.pay.coupons.get(o.coupon_id or "")
        if coupon is None or coupon.status != "SENDED":
            continue
        at = coupon_at + dt.timedelta(days=2, minutes=used)
        clock.set(at)
        tx = f"42000{used:08d}"
        world.pay.use_coupon(coupon.coupon_id, transaction_id=tx)
        store.append_events(
            [
                Event(
                    o.member_id,
                    "purchase",
                    at,
                    {
                        "amount_fen": 8_800,
                        "category": "durian",
                        "transaction_id": tx,
                        "order_id": tx,
                    },
                    key=f"purchase:{tx}",
                )
            ]
        )
        used += 1
        # the platform calls back at once; verified, decrypted, recorded once per coupon
        world.pay.deliver_callbacks(
            lambda h, b: service.record_use(gateway.parse_use_notification(h, b))
        )
    # 3. tiers by rule: the program's tier_changed events up to the report date (after
    #    the coupon purchases, so every run computes them from the same history)
    members = sorted(store.select(is_member(), report_as_of))
    changes = [
        c
        for mid in members
        for c in program.changes(mid, store.events_for(mid, until=report_as_of), report_as_of)
    ]
    store.append_events(changes)
    clock.set(report_as_of)
    # 4. privileges: gold members get the birthday tea (valid 14 days)
    (tea,) = catalogue.eligible("gold")
    gold = sorted(store.select(tier_is("gold"), report_as_of - dt.timedelta(days=3)))
    store.append_events(
        [
            grant_event(tea, mid, report_as_of - dt.timedelta(days=10), reason="gold welcome")
            for mid in gold
        ]
    )
    expiring = store.count(tea.unused(expiring_within=dt.timedelta(days=7)), report_as_of)
    # 5. the members' report
    everyone = {mid: store.events_for(mid, until=report_as_of) for mid in set(members) | set(gold)}
    dates = [joined_at + dt.timedelta(days=d) for d in (1, 30, 60)] + [report_as_of]
    report = members_report(
        everyone,
        dates=dates,
        migration=(joined_at + dt.timedelta(days=1), report_as_of),
        cohort=(joined_at, joined_at + dt.timedelta(days=1)),
        as_of=report_as_of,
        tier_order=tuple(t.name for t in program.tiers),
    )
    path = None
    if work is not None:
        path = work / MEMBERS_REPORT_FILE
        path.write_text(render_members_report(report), encoding="utf-8")
        (work / MIGRATIONS_SVG_FILE).write_text(
            tier_migrations_svg(report.migrations, report.tier_order), encoding="utf-8"
        )
    tiers: dict[str, int] = {}
    for mid in members:
        t = tier_as_of(everyone[mid], report_as_of) or "(none)"
        tiers[t] = tiers.get(t, 0) + 1
    return MembersChapter(
        qualified=len(ranked),
        joined=len(members),
        tiers=dict(sorted(tiers.items())),
        coupons_granted=len(store.intents(rule_id=coupon_rule_id(DURIAN_STOCK), status="paid")),
        coupons_refused=sum(1 for o in outcomes if o.status is CouponStatus.FAILED),
        coupons_used=store.count(
            did("coupon_used", where={"stock_id": DURIAN_STOCK}), report_as_of
        ),
        unused_tea_expiring=expiring,
        migrations=report.migrations.rows(report.tier_order),
        report=path,
    )
