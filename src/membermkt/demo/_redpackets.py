"""Chapter 3, red packets: buyers claim with their phone number and the order id on the
parcel; claims are verified and paid through the WeChat Pay emulator."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

from membermkt.core.events import Event
from membermkt.core.members import Member
from membermkt.demo._base import (
    MCH_ID,
    RULE_ID,
    Echo,
    StoryClock,
    _bar,
    _hash_unit,
    _openid,
    _parcel_order,
    _phone,
)
from membermkt.demo._world import _World


def _red_packets(
    store: Any,
    world: _World,
    population: Sequence[tuple[Member, list[Event]]],
    clock: StoryClock,
    progress: bool,
    *,
    claimed: bool,
    echo: Echo,
) -> tuple[dict[str, int], int, int]:
    from membermkt.core.redpackets import Claim, RedPacketRule, UniformAmount
    from membermkt.engine.redpackets import RedPacketService
    from membermkt.segments import did

    as_of = clock.now()
    rule = RedPacketRule(
        id=RULE_ID,
        mch_id=MCH_ID,
        amount=UniformAmount(100, 500),
        total_budget_fen=150_000,
        eligibility=did("follow"),
        starts_at=as_of - dt.timedelta(days=400),
        ends_at=as_of + dt.timedelta(days=30),
        require_purchase=True,
    )
    service = RedPacketService(
        store,
        world.gateway,
        clock=clock,
        rng=random.Random(RULE_ID),
        sleep=lambda s: None,
    )
    # who claims, and when: a few minutes after following, the buyer types the phone number
    # and the order id printed on the parcel; one in ten mistypes the order id
    claims: list[tuple[dt.datetime, Claim]] = []
    for member, events in population:
        order = _parcel_order(member, events)
        claim_ev = next((e for e in events if e.type == "redpacket_claim"), None)
        if order is None or claim_ev is None or claim_ev.at > as_of:
            continue
        order_id = str(order.properties["order_id"])
        if _hash_unit("typo", member.id) < 0.1:
            order_id = order_id.replace("-p0", "-p1")
        number = _phone(member)
        claims.append(
            (
                claim_ev.at,
                Claim.for_phone(
                    member_id=member.id,
                    address=_openid(member),
                    phone=None if number is None else store.phones.identity(number),
                    order_id=order_id,
                    source=f"qr:{claim_ev.properties.get('source', 'parcel')}",
                ),
            )
        )
    claims.sort(key=lambda c: (c[0], c[1].member_id))
    if claimed:
        # an earlier run submitted every claim: only finish payouts it left open
        finished = service.resume_open(rule.id)
        claims = []
        if finished:
            echo(f"      finished {len(finished):,} payouts an earlier run left open")
    outcomes: Counter[str] = Counter()
    payouts = 0
    bar = _bar(progress, len(claims), "red packets")
    try:
        for at, claim in claims:
            clock.set(at)
            out = service.claim(rule, claim)
            if out.status == "denied":
                outcomes[f"denied:{out.reason}"] += 1
            else:
                outcomes[out.status] += 1
            if out.status == "paid" and not out.resumed:
                payouts += 1
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        clock.set(as_of)
    intents = list(store.intents(rule_id=rule.id))
    paid_fen = sum(i.amount_fen for i in intents if i.status == "paid")
    echo(
        "      claims this run: "
        + (", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items())) or "none (all done)")
        + f"; payouts in the ledger {sum(i.status == 'paid' for i in intents):,}"
        + f" (¥{paid_fen / 100:,.2f} of ¥{rule.total_budget_fen / 100:,.2f})"
    )
    return dict(outcomes), len(world.pay.payments), paid_fen
